// The two-pass writer against der.ts' straightforward `tlv()` writer.
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { encBigint, encBool, encInt, encInt64, encNull, encTime, encUtf8, setOf, tlv } from "../support/der.js";
import { encode, type Out } from "../../src/commands/writer.js";

type Tree =
  | { t: "int"; v: number }
  | { t: "big"; v: bigint }
  | { t: "bool"; v: boolean }
  | { t: "null" }
  | { t: "utf8"; v: string }
  | { t: "i64"; v: bigint }
  | { t: "time"; v: Date }
  | { t: "prim"; tag: number; v: Uint8Array }
  | { t: "cons"; tag: number; kids: Tree[] }
  | { t: "set"; kids: Tree[] };

const leaf: fc.Arbitrary<Tree> = fc.oneof(
  fc.oneof(fc.integer(), fc.maxSafeInteger()).map((v) => ({ t: "int", v }) as const),
  fc.bigInt({ min: -(1n << 62n), max: (1n << 62n) - 1n }).map((v) => ({ t: "big", v }) as const),
  fc.boolean().map((v) => ({ t: "bool", v }) as const),
  fc.constant({ t: "null" } as const),
  fc.string({ unit: "binary", maxLength: 20 }).map((v) => ({ t: "utf8", v }) as const),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map((v) => ({ t: "i64", v }) as const),
  fc.date({ min: new Date("0000-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59.999Z"), noInvalidDate: true }).map((v) => ({ t: "time", v }) as const),
  // sizes around the short/long length boundaries
  fc
    .tuple(fc.constantFrom(0x04, 0x0c), fc.constantFrom(0, 1, 127, 128, 255, 256, 65535, 65536))
    .map(([tag, n]) => ({ t: "prim", tag, v: new Uint8Array(n).fill(n & 0xff) }) as const),
);

const tree: fc.Arbitrary<Tree> = fc.letrec<{ node: Tree }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.record({ tag: fc.constantFrom(0x30, 0xa0, 0xa5, 0xb4), kids: fc.array(tie("node"), { maxLength: 4 }) }).map((r) => ({ t: "cons", ...r }) as const),
    fc.array(tie("node"), { maxLength: 4 }).map((kids) => ({ t: "set", kids }) as const),
  ),
})).node;

function reference(x: Tree): Uint8Array {
  switch (x.t) {
    case "int":
      return encInt(x.v);
    case "big":
      return encBigint(x.v);
    case "bool":
      return encBool(x.v);
    case "null":
      return encNull();
    case "utf8":
      return encUtf8(x.v);
    case "i64":
      return encInt64(x.v);
    case "time":
      return encTime(x.v);
    case "prim":
      return tlv(x.tag, x.v);
    case "cons":
      return tlv(x.tag, ...x.kids.map(reference));
    case "set":
      return setOf(x.kids.map(reference));
  }
}

function write(o: Out, x: Tree): void {
  switch (x.t) {
    case "int":
      return o.int(x.v);
    case "big":
      return o.bigint(x.v);
    case "bool":
      return o.bool(x.v);
    case "null":
      return o.null();
    case "utf8":
      return o.utf8(x.v);
    case "i64":
      return o.int64(x.v);
    case "time":
      return o.time(x.v);
    case "prim":
      return o.prim(x.tag, x.v);
    case "cons":
      return o.tlv(x.tag, () => {
        for (const k of x.kids) write(o, k);
      });
    case "set":
      return o.setOf(x.kids, (k) => write(o, k));
  }
}

describe("two-pass writer", () => {
  it("produces the same bytes as der.ts for random trees", () => {
    fc.assert(
      fc.property(tree, (x) => {
        assert.deepEqual(encode(write, x), reference(x));
      }),
      { seed: 77, numRuns: 400 },
    );
  });

  it("writes 4-byte long-form lengths", () => {
    const big = new Uint8Array(0x1000000 + 3);
    const b = encode((o: Out, v: Uint8Array) => o.tlv(0x30, () => o.prim(0x04, v)), big);
    assert.deepEqual([...b.subarray(0, 12)], [0x30, 0x84, 0x01, 0x00, 0x00, 0x09, 0x04, 0x84, 0x01, 0x00, 0x00, 0x03]);
    assert.equal(b.length, big.length + 12);
  });

  it("rejects values that cannot be encoded", () => {
    assert.throws(() => encode((o: Out, v: number) => o.int(v), 2 ** 53), RangeError);
    assert.throws(() => encode((o: Out, v: bigint) => o.bigint(v), 1n << 62n), RangeError);
    assert.throws(() => encode((o: Out, v: bigint) => o.int64(v), 1n << 63n), RangeError);
    assert.throws(() => encode((o: Out, v: Date) => o.time(v), new Date("+010000-01-01T00:00:00Z")), RangeError);
  });
});
