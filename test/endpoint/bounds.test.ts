// The endpoint's bounds (issue 10): images collected at once are limited (a further create
// waits for a slot, then is told the endpoint is busy), an image over the size limit is
// refused, and a daemon's Failure ends a relayed stream as the one final reply (a leaf with
// CN "." used to get two).
import "reflect-metadata";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import tls from "node:tls";
import { encodeFrame } from "../../src/commands/framing.js";
import { nameToString } from "../../src/core/name.js";
import { ChunkReader } from "../../src/transport/chunks.js";
import { decodeWire } from "../../src/commands/codec.js";
import type { Wire } from "../../src/commands/types.js";
import {
  cmds,
  endpointFixture,
  exchange,
  fail,
  failureText,
  keyPem,
  leaf,
  pem,
  str,
  type FakeDaemons,
  type Node,
  type Pki,
  type Running,
} from "../support/endpoint.js";

let pki: Pki;
let fake: FakeDaemons;
let ep: Running;

endpointFixture({ uploadIdleMs: 800, maxImageUploads: 1, maxImageBytes: 1 << 20 }, (f) => {
  ({ pki, fake, ep } = f);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TLS client that uploads `pieces` one every `gapMs`, then the terminator; its replies. */
function slowUpload(chain: Node[], pieces: Uint8Array[], gapMs: number): Promise<Wire[]> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port: ep.port,
      ca: pem(pki.root),
      cert: pem(...chain),
      key: keyPem(chain[0]!),
      checkServerIdentity: () => undefined,
    });
    s.on("error", () => undefined);
    const replies: Wire[] = [];
    const reader = new ChunkReader(s, { maxChunk: 1 << 24 });
    s.on("secureConnect", () => {
      void (async () => {
        for (const p of pieces) {
          await sleep(gapMs);
          if (s.destroyed) return;
          s.write(encodeFrame(p));
        }
        if (!s.destroyed) s.write(new Uint8Array(4));
      })();
    });
    void (async () => {
      for (;;) {
        const ev = await reader.next();
        if (ev.kind !== "chunk") break;
        replies.push(decodeWire(ev.payload));
      }
      s.destroy();
      resolve(replies);
    })();
  });
}

describe("endpoint: image uploads are bounded", () => {
  it("one image at a time (--max-image-uploads 1): a second create waits, and is told the endpoint is busy after the upload timeout", async () => {
    const l = await leaf(pki.arc, "web", cmds.create({ image: new Uint8Array(0) }));
    // the first keeps sending (never idle for 800 ms) for about 2 s
    const first = slowUpload(
      [l, pki.arc],
      Array.from({ length: 7 }, (_, i) => Uint8Array.of(i)),
      300,
    );
    await sleep(150);
    const t0 = Date.now();
    const second = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root, upload: [Uint8Array.of(1)] });
    const waited = Date.now() - t0;
    assert.equal(failureText(second.replies[0]!), "endpoint busy: 1 image uploads in progress, try again");
    assert.ok(waited >= 700, `answered after ${waited} ms`);
    await ep.waitLog(/no image upload slot within 800 ms/);
    // the first one completes, and then the slot is free again
    const r1 = await first;
    assert.deepEqual(
      r1.map((w) => w.payload),
      [str("ok")],
    );
    // (released when the endpoint is done with the connection, which may be just after the
    // client saw it close)
    for (let i = 0; i < 100 && ep.ep.imageSlots.inUse !== 0; i++) await sleep(20);
    assert.equal(ep.ep.imageSlots.inUse, 0);
    const third = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root, upload: [Uint8Array.of(1, 2, 3)] });
    assert.deepEqual(
      third.replies.map((w) => w.payload),
      [str("ok")],
    );
  });

  it("an image over --max-image-size is refused before anything reaches a daemon; the slot is freed", async () => {
    const l = await leaf(pki.arc, "web", cmds.create({ image: new Uint8Array(0) }));
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root, upload: [new Uint8Array(600_000), new Uint8Array(600_000)] });
    assert.equal(r.replies.length, 0);
    assert.equal(fake.received.length, 0);
    await ep.waitLog(/more than 1048576 bytes/);
    assert.equal(ep.ep.imageSlots.inUse, 0);
  });
});

describe("endpoint: a daemon's Failure ends a stream with exactly one reply", () => {
  it("console subscribe of a path (leaf CN '.'): the console daemon's Failure is the one reply", async () => {
    fake.behaviour = () => ({ replies: [fail("path used instead of name")], close: true });
    const l = await leaf(pki.arc, ".", cmds.console);
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(r.replies.length, 1);
    assert.equal(failureText(r.replies[0]!), "path used instead of name");
    assert.equal(nameToString(r.replies[0]!.header.name), "arc:");
    assert.equal(r.replies[0]!.header.sequence, 0n);
  });

  it("block dump refused by hostd: one reply", async () => {
    fake.behaviour = (w) =>
      w.payload.kind === "command" && w.payload.command.kind === "policy-add"
        ? { replies: [str("added policy")] }
        : { replies: [fail("dump block: not found")], close: true };
    const r = await exchange({ port: ep.port, chain: [await leaf(pki.arc, ".", cmds.blockDump), pki.arc], ca: pki.root });
    assert.deepEqual(r.replies.map(failureText), ["dump block: not found"]);
  });
});
