import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { END, END_FRAME, FrameDecoder, FrameError, FrameStream, encodeFrame } from "../../src/commands/framing.js";
import { hex } from "./support.js";

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function* chunks(b: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, Math.min(b.length, i + size));
}

describe("framing", () => {
  it("encodes a 4-byte big-endian length", () => {
    assert.equal(hex(encodeFrame(Uint8Array.of(1, 2, 3))), "00 00 00 03 01 02 03");
    assert.equal(hex(encodeFrame(new Uint8Array(0))), "00 00 00 00");
    assert.equal(hex(END_FRAME), "00 00 00 00");
  });

  it("reassembles frames delivered byte by byte and in odd chunk sizes", () => {
    const a = pattern(1000, 1),
      b = pattern(3, 2),
      c = pattern(70_000, 3);
    const stream = Uint8Array.from([...encodeFrame(a), ...encodeFrame(b), ...encodeFrame(c), ...END_FRAME]);
    for (const size of [1, 2, 3, 7, 4096, stream.length]) {
      const dec = new FrameDecoder();
      const got: (Uint8Array | typeof END)[] = [];
      for (const ch of chunks(stream, size)) {
        dec.push(ch);
        for (let f = dec.next(); f !== null; f = dec.next()) got.push(f);
      }
      assert.equal(got.length, 4, `chunk size ${size}`);
      assert.deepEqual(got[0], a);
      assert.deepEqual(got[1], b);
      assert.deepEqual(got[2], c);
      assert.equal(got[3], END);
      assert.equal(dec.buffered, 0);
    }
  });

  it("returns null until a frame is complete", () => {
    const dec = new FrameDecoder();
    assert.equal(dec.next(), null);
    dec.push(Uint8Array.of(0, 0));
    assert.equal(dec.next(), null);
    dec.push(Uint8Array.of(0, 2, 9));
    assert.equal(dec.next(), null);
    dec.push(Uint8Array.of(8));
    assert.deepEqual(dec.next(), Uint8Array.of(9, 8));
  });

  it("treats zero and negative lengths as END", () => {
    const dec = new FrameDecoder();
    dec.push(Uint8Array.of(0xff, 0xff, 0xff, 0xfe));
    assert.equal(dec.next(), END);
    dec.push(Uint8Array.of(0, 0, 0, 0));
    assert.equal(dec.next(), END);
  });

  it("rejects an oversize frame naming the length and the limit", () => {
    const dec = new FrameDecoder({ maxFrame: 1024 });
    dec.push(Uint8Array.of(0, 0, 4, 1));
    assert.throws(
      () => dec.next(),
      (e: unknown) => e instanceof FrameError && /1025/.test(e.message) && /1024/.test(e.message),
    );
    const dflt = new FrameDecoder();
    dflt.push(Uint8Array.of(0x7f, 0xff, 0xff, 0xff));
    assert.throws(() => dflt.next(), /2147483647.*67108864/);
  });

  it("a 16 MiB frame in 64 KiB chunks arrives intact", () => {
    const payload = pattern(16 * 1024 * 1024, 5);
    const dec = new FrameDecoder();
    dec.push(encodeFrame(payload).subarray(0, 4));
    let out: Uint8Array | typeof END | null = null;
    for (const ch of chunks(payload, 64 * 1024)) {
      assert.equal(out, null);
      dec.push(ch);
      out = dec.next();
    }
    assert.ok(out instanceof Uint8Array);
    assert.equal(Buffer.compare(out, payload), 0);
  });
});

describe("framing with Node Buffers", () => {
  it("returns plain Uint8Arrays even when Buffers are pushed", () => {
    const dec = new FrameDecoder();
    dec.push(Buffer.from(encodeFrame(Uint8Array.of(1, 2, 3))));
    const f = dec.next();
    assert.ok(f instanceof Uint8Array && !Buffer.isBuffer(f));
    assert.deepEqual(f, Uint8Array.of(1, 2, 3));
  });
});

describe("FrameStream (the socket readers' shared core)", () => {
  const cat = (...parts: Uint8Array[]): Uint8Array => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const EOF = { kind: "eof", buffered: 0, inFrame: false };

  it("queues frames and end markers, keeps decoding after an end, and counts what waits", () => {
    const s = new FrameStream();
    assert.equal(s.take(), null);
    for (const c of chunks(cat(encodeFrame(Uint8Array.of(1, 2)), END_FRAME, encodeFrame(Uint8Array.of(3)), Uint8Array.of(0, 0)), 3)) s.push(c);
    assert.equal(s.queued, 3);
    assert.equal(s.pendingBytes, 3 + 2); // queued payloads + the unfinished header
    assert.deepEqual(s.take(), { kind: "frame", payload: Uint8Array.of(1, 2) });
    assert.deepEqual(s.take(), { kind: "end" });
    assert.deepEqual(s.take(), { kind: "frame", payload: Uint8Array.of(3) });
    assert.equal(s.pendingBytes, 2);
    assert.equal(s.take(), null);
    s.close();
    assert.equal(s.finished, true);
    assert.deepEqual(s.take(), { kind: "eof", buffered: 2, inFrame: false });
    // after the last event: a clean eof, and further input is ignored
    s.push(encodeFrame(Uint8Array.of(4)));
    assert.deepEqual(s.take(), EOF);
  });

  it("stopAtEnd makes the first end marker the last event", () => {
    const s = new FrameStream({ stopAtEnd: true });
    s.push(cat(END_FRAME, encodeFrame(Uint8Array.of(1))));
    assert.equal(s.finished, true);
    assert.deepEqual(s.take(), { kind: "end" });
    assert.deepEqual(s.take(), EOF);
  });

  it("EOF inside a frame says whether its header was read; the first error or EOF is the last event", () => {
    const s = new FrameStream();
    s.push(Uint8Array.of(0, 0, 0, 5));
    s.close();
    assert.deepEqual(s.take(), { kind: "eof", buffered: 0, inFrame: true });
    const t = new FrameStream();
    const boom = new Error("boom");
    t.fail(boom);
    t.close();
    assert.deepEqual(t.take(), { kind: "error", error: boom });
    assert.deepEqual(t.take(), EOF);
  });

  it("an oversized frame is returned by push and becomes the last event", () => {
    const s = new FrameStream({ maxFrame: 10 });
    const err = s.push(cat(encodeFrame(Uint8Array.of(1)), encodeFrame(new Uint8Array(11))));
    assert.ok(err instanceof FrameError);
    assert.equal(err.frameLength, 11);
    assert.equal(err.message, "frame length 11 exceeds the limit of 10 bytes");
    assert.equal(s.push(encodeFrame(new Uint8Array(11))), undefined);
    assert.deepEqual(s.take(), { kind: "frame", payload: Uint8Array.of(1) });
    assert.deepEqual(s.take(), { kind: "error", error: err });
  });
});
