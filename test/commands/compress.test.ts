import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { Readable } from "node:stream";
import * as zlib from "node:zlib";
import { InflateError, createLimitedInflate, deflate, inflate } from "../../src/commands/compress.js";

const text = new TextEncoder().encode("albatross ".repeat(10_000));

/** 1 GiB of zeros as one zlib stream (~4.5 MB), deflated piecewise: never held in plain. */
let bombCache: Promise<Uint8Array> | undefined;
function zeroBomb(): Promise<Uint8Array> {
  bombCache ??= (async () => {
    const d = zlib.createDeflate({ level: 1 });
    const out: Buffer[] = [];
    d.on("data", (c: Buffer) => out.push(c));
    const done = new Promise((r) => d.on("end", r));
    const zero = Buffer.alloc(1 << 20);
    for (let i = 0; i < 1024; i++) if (!d.write(zero)) await new Promise((r) => d.once("drain", r));
    d.end();
    await done;
    return new Uint8Array(Buffer.concat(out));
  })();
  return bombCache;
}

describe("compress", () => {
  it("round-trips at every level; output is zlib (RFC 1950) format", () => {
    for (let level = 0; level <= 9; level++) {
      const c = deflate(text, level);
      assert.equal(c[0]! & 0x0f, 8, "CM = deflate");
      assert.equal(((c[0]! << 8) | c[1]!) % 31, 0, "FCHECK");
      assert.deepEqual(inflate(c, { maxBytes: text.length }), text);
      assert.deepEqual(new Uint8Array(zlib.inflateSync(c)), text);
    }
    assert.ok(deflate(text, 9).length < text.length / 50);
    assert.throws(() => deflate(text, 10), RangeError);
  });

  it("rejects invalid, truncated and non-zlib (gzip, raw) data with InflateError", () => {
    const c = deflate(text, 6);
    assert.throws(() => inflate(Uint8Array.of(1, 2, 3), { maxBytes: 100 }), InflateError);
    assert.throws(() => inflate(c.subarray(0, c.length - 5), { maxBytes: 1 << 20 }), InflateError);
    assert.throws(() => inflate(new Uint8Array(zlib.gzipSync(text)), { maxBytes: 1 << 20 }), InflateError);
    assert.throws(() => inflate(new Uint8Array(zlib.deflateRawSync(text)), { maxBytes: 1 << 20 }), InflateError);
  });

  it("stops at maxBytes (exact limit passes, one byte less fails)", () => {
    const c = deflate(text, 9);
    assert.equal(inflate(c, { maxBytes: text.length }).length, text.length);
    assert.throws(() => inflate(c, { maxBytes: text.length - 1 }), /exceeds the limit of 99999 bytes/);
    assert.throws(() => inflate(deflate(Uint8Array.of(1), 1), { maxBytes: 0 }), InflateError);
    assert.equal(inflate(deflate(new Uint8Array(0), 1), { maxBytes: 0 }).length, 0);
  });

  it("rejects a 1 GiB zero bomb at a 16 MiB limit without inflating it all", async () => {
    const bomb = await zeroBomb();
    assert.ok(bomb.length < 8 << 20, `bomb is ${bomb.length} bytes`);
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => inflate(bomb, { maxBytes: 16 << 20 }), /exceeds the limit of 16777216 bytes/);
    // generous bound: far below the 1 GiB the bomb expands to
    assert.ok(process.memoryUsage().arrayBuffers - before < 256 << 20);
  });

  it("createLimitedInflate inflates a stream split arbitrarily", async () => {
    const c = deflate(text, 9);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < c.length; i += 7) parts.push(c.subarray(i, i + 7));
    const out: Uint8Array[] = [];
    for await (const x of Readable.from(parts).pipe(createLimitedInflate(text.length))) out.push(x as Uint8Array);
    assert.deepEqual(new Uint8Array(Buffer.concat(out)), text);
  });

  it("createLimitedInflate fails with InflateError on a bomb, garbage and truncation", async () => {
    const consume = async (parts: Uint8Array[], max: number) => {
      for await (const _ of Readable.from(parts).pipe(createLimitedInflate(max))) void _;
    };
    await assert.rejects(consume([await zeroBomb()], 16 << 20), (e: unknown) => e instanceof InflateError && /exceeds the limit/.test(e.message));
    await assert.rejects(consume([Uint8Array.of(1, 2, 3, 4)], 100), InflateError);
    const c = deflate(text, 9);
    await assert.rejects(consume([c.subarray(0, c.length - 4)], 1 << 20), InflateError);
  });
});
