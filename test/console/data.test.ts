// The console daemon's batch encoder must produce exactly the codec's bytes.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeWire, encodeFrame, encodeWire, END, FrameDecoder } from "../../src/commands/index.js";
import { encodeConsoleData } from "../../src/console/data.js";
import type { ConsoleEntry } from "../../src/console/ring.js";
import { parseName } from "../../src/core/name.js";
import type { Name } from "../../src/core/name.js";

function reference(version: number, name: Name, entries: readonly ConsoleEntry[]): Uint8Array {
  const frames = entries.map((e) =>
    encodeFrame(
      encodeWire({
        header: { version, sequence: 0n, name },
        payload: { kind: "data", data: { kind: "console", timestamp: new Date(e.timestamp), line: e.line } },
      }),
    ),
  );
  return new Uint8Array(Buffer.concat(frames));
}

const at = (ms: number, len: number, fill = 0x41): ConsoleEntry => ({ timestamp: ms, line: new Uint8Array(len).fill(fill) });

describe("console data encoding", () => {
  it("matches encodeFrame(encodeWire(..)) around every DER length boundary", () => {
    const name = parseName("foo:bar");
    const t = Date.UTC(2025, 7, 22, 13, 5, 0, 123);
    for (const len of [0, 1, 50, 100, 106, 107, 108, 127, 128, 200, 255, 256, 524, 1023, 65535, 65536, 70000]) {
      const es = [at(t, len)];
      assert.deepEqual(encodeConsoleData(5, name, es), reference(5, name, es), `line of ${len} bytes`);
    }
  });

  it("whole seconds have no fraction; batches mix timestamps; names of every shape", () => {
    const t = Date.UTC(2026, 0, 1, 0, 0, 0);
    const es = [at(t, 3), at(t, 4), at(t + 1, 5), at(t + 1000, 0x90, 0x00), at(t + 1000, 2)];
    for (const n of [":a", "a:b", "x:y:z:" + "l".repeat(63).slice(0, 60), ":" + "q".repeat(63)]) {
      const name = parseName(n);
      assert.deepEqual(encodeConsoleData(5, name, es), reference(5, name, es), n);
    }
    assert.deepEqual(encodeConsoleData(5, parseName(":a"), []), new Uint8Array(0));
  });

  it("random batches equal the reference and decode back to the entries", () => {
    const entry = fc.record({
      timestamp: fc.integer({ min: 0, max: Date.UTC(9999, 11, 31) }),
      line: fc.uint8Array({ maxLength: 1100 }),
    });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 20 }), fc.constantFrom(":vm", "a:b", "svc:web:x"), (es, n) => {
        const name = parseName(n);
        const got = encodeConsoleData(5, name, es);
        assert.deepEqual(got, reference(5, name, es));
        const dec = new FrameDecoder();
        dec.push(got);
        for (const e of es) {
          const f = dec.next();
          assert.ok(f !== null && f !== END);
          const w = decodeWire(f);
          assert.ok(w.payload.kind === "data" && w.payload.data.kind === "console");
          assert.equal(w.payload.data.timestamp.getTime(), e.timestamp);
          assert.deepEqual(w.payload.data.line, e.line);
          assert.equal(w.header.sequence, 0n);
        }
        assert.equal(dec.next(), null);
      }),
      { numRuns: 200, seed: 11 },
    );
  });
});
