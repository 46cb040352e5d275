// The number-only fast paths of src/ca/asn1.ts (OBJECT IDENTIFIER and certificate time
// decoding) must give exactly what the reference decoding gives — the same text / Date for
// what it accepts, the same error for what it refuses. The reference here is an independent
// re-statement of the rules (BigInt arcs; regular expression on the time string).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { decodeOidContent, readCertTime, TAG_UTCTIME } from "../../src/ca/asn1.js";
import { Cursor, DecodeError, TAG } from "../../src/commands/der.js";

/** BigInt OID decoding: the text, or null where decodeOidContent must refuse. */
function refOid(b: Uint8Array): string | null {
  if (b.length === 0 || b.length > 64) return null;
  const arcs: bigint[] = [];
  let v = 0n;
  let first = true;
  for (const x of b) {
    if (first && x === 0x80) return null;
    first = false;
    v = (v << 7n) | BigInt(x & 0x7f);
    if ((x & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
      first = true;
    }
  }
  if (!first) return null;
  const f = arcs[0]!;
  const head = f < 40n ? [0n, f] : f < 80n ? [1n, f - 40n] : [2n, f - 80n];
  return [...head, ...arcs.slice(1)].join(".");
}

/** Base-128 encoding of arcs (the first already combined). */
function encArcs(arcs: bigint[]): Uint8Array {
  const out: number[] = [];
  for (const a of arcs) {
    const groups: number[] = [];
    let v = a;
    do {
      groups.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    groups.forEach((g, i) => {
      out.push(i < groups.length - 1 ? g | 0x80 : g);
    });
  }
  return Uint8Array.from(out);
}

function oidOrError(b: Uint8Array): string | null {
  try {
    return decodeOidContent(b, 0, "oid");
  } catch (e) {
    assert.ok(e instanceof DecodeError);
    return null;
  }
}

test("OID: well-known values", () => {
  assert.equal(decodeOidContent(Uint8Array.from([0x55, 0x1d, 0x13]), 0, "x"), "2.5.29.19");
  assert.equal(decodeOidContent(Uint8Array.from([0x2b, 0x65, 0x70]), 0, "x"), "1.3.101.112");
  assert.equal(decodeOidContent(Uint8Array.from([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]), 0, "x"), "1.2.840.113549.1.1.11");
  assert.equal(decodeOidContent(Uint8Array.from([0x27]), 0, "x"), "0.39");
  assert.equal(decodeOidContent(Uint8Array.from([0x4f]), 0, "x"), "1.39");
  assert.equal(decodeOidContent(Uint8Array.from([0x81, 0x00]), 0, "x"), "2.48");
});

test("OID: arcs at and beyond 2^53 (general path) decode exactly", () => {
  const big = [2n ** 45n - 1n, 2n ** 45n, 2n ** 53n + 1n, 2n ** 70n + 12345n];
  for (const a of big) {
    assert.equal(decodeOidContent(encArcs([42n, a]), 0, "x"), `1.2.${a}`);
    assert.equal(decodeOidContent(encArcs([a + 80n, 7n]), 0, "x"), `2.${a}.7`);
  }
});

test("OID: malformed encodings are refused with the same messages", () => {
  assert.throws(() => decodeOidContent(Uint8Array.from([0x2a, 0x80, 0x01]), 3, "p"), { message: /non-minimal OBJECT IDENTIFIER arc/ });
  assert.throws(() => decodeOidContent(Uint8Array.from([0x2a, 0x86]), 3, "p"), { message: /truncated OBJECT IDENTIFIER/ });
  assert.throws(() => decodeOidContent(new Uint8Array(0), 3, "p"), { message: /empty OBJECT IDENTIFIER/ });
  assert.throws(() => decodeOidContent(new Uint8Array(65).fill(1), 3, "p"), { message: /OBJECT IDENTIFIER too long/ });
});

test("OID: agrees with the BigInt reference on arbitrary bytes and arcs", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 70 }), (b) => {
      assert.equal(oidOrError(b), refOid(b));
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n }), { minLength: 1, maxLength: 8 }), (arcs) => {
      const b = encArcs(arcs);
      assert.equal(oidOrError(b), refOid(b));
    }),
    { numRuns: 3000 },
  );
});

/** The time TLV through readCertTime: the Date's time, or the error message. */
function time(tag: number, s: string): number | string {
  const content = Uint8Array.from(s, (ch) => ch.charCodeAt(0) & 0xff);
  const c = Cursor.of(Uint8Array.from([tag, content.length, ...content]), "t");
  try {
    return readCertTime(c, "notBefore").getTime();
  } catch (e) {
    assert.ok(e instanceof DecodeError);
    return (e as Error).message;
  }
}

/** Regular-expression reference: the time, or null when refused. */
function refTime(tag: number, s: string): number | null {
  const m = (tag === TAG_UTCTIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(s);
  if (!m) return null;
  let year = Number(m[1]);
  if (tag === TAG_UTCTIME) year = year >= 50 ? 1900 + year : 2000 + year;
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59 || date.getUTCDate() !== d) return null;
  return date.getTime();
}

test("time: valid values, both encodings, the 1950/2049 pivot", () => {
  assert.equal(time(TAG_UTCTIME, "491231235959Z"), Date.UTC(2049, 11, 31, 23, 59, 59));
  assert.equal(time(TAG_UTCTIME, "500101000000Z"), Date.UTC(1950, 0, 1, 0, 0, 0));
  assert.equal(time(TAG.GeneralizedTime, "20500101000000Z"), Date.UTC(2050, 0, 1));
  assert.equal(time(TAG.GeneralizedTime, "20240229120000Z"), Date.UTC(2024, 1, 29, 12));
});

test("time: refused values keep their messages", () => {
  assert.match(String(time(TAG_UTCTIME, "240230000000Z")), /invalid time "240230000000Z"/);
  assert.match(String(time(TAG_UTCTIME, "2402010000Z")), /invalid UTCTime "2402010000Z"/);
  assert.match(String(time(TAG_UTCTIME, "24020100000+Z")), /invalid UTCTime/);
  assert.match(String(time(TAG.GeneralizedTime, "20240101000000.5Z")), /invalid GeneralizedTime/);
  assert.match(String(time(TAG.GeneralizedTime, "20241301000000Z")), /invalid time/);
  assert.match(String(time(TAG.OCTET_STRING, "20240101000000Z")), /expected a time/);
});

test("time: agrees with the regular-expression reference", () => {
  const digits = fc.constantFrom(..."0123456789");
  const near = fc.oneof(
    fc.array(digits, { minLength: 10, maxLength: 16 }).map((a) => a.join("") + "Z"),
    fc.string({ unit: fc.constantFrom(..."0123456789Z+-. "), minLength: 0, maxLength: 18 }),
  );
  fc.assert(
    fc.property(fc.constantFrom(TAG_UTCTIME, TAG.GeneralizedTime), near, (tag, s) => {
      const got = time(tag, s);
      const want = refTime(tag, s);
      if (want === null) assert.equal(typeof got, "string", `${s} should be refused`);
      else assert.equal(got, want);
    }),
    { numRuns: 5000 },
  );
});
