// Small X.509-level ASN.1 *reading* helpers on top of the strict DER layer
// (src/commands/der.ts): object identifiers, BIT STRINGs, UTCTime/GeneralizedTime for
// certificate validity, arbitrary-size INTEGER contents (serials), distinguished names.
// Writing is @peculiar/x509's (src/ca/issue.ts, src/ca/csr.ts); the one name we build,
// `CN=<name>`, is made with its Name class here. Pure: no I/O.

import "reflect-metadata";
import { Name } from "@peculiar/x509";
import { type Cursor, DecodeError, TAG, type Bytes, type Tlv } from "../commands/der.js";
import { hex } from "../core/hex.js";

export const TAG_UTCTIME = 0x17;
const TAG_PRINTABLE = 0x13;
const TAG_T61 = 0x14;
const TAG_IA5 = 0x16;
const TAG_BMP = 0x1e;

export const OID = {
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  nameConstraints: "2.5.29.30",
  certificatePolicies: "2.5.29.32",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  anyExtendedKeyUsage: "2.5.29.37.0",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  extensionRequest: "1.2.840.113549.1.9.14",
  ed25519: "1.3.101.112",
  ecPublicKey: "1.2.840.10045.2.1",
  p256: "1.2.840.10045.3.1.7",
  p384: "1.3.132.0.34",
  p521: "1.3.132.0.35",
  rsaEncryption: "1.2.840.113549.1.1.1",
  sha256WithRSA: "1.2.840.113549.1.1.11",
  sha384WithRSA: "1.2.840.113549.1.1.12",
  sha512WithRSA: "1.2.840.113549.1.1.13",
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  ecdsaWithSHA384: "1.2.840.10045.4.3.3",
  ecdsaWithSHA512: "1.2.840.10045.4.3.4",
} as const;

// --- OBJECT IDENTIFIER ---

export function decodeOidContent(b: Bytes, offset: number, path: string): string {
  if (b.length === 0) throw new DecodeError("empty OBJECT IDENTIFIER", offset, path);
  if (b.length > 64) throw new DecodeError("OBJECT IDENTIFIER too long", offset, path);
  return oidFast(b) ?? oidGeneral(b, offset, path);
}

/** Above this an arc may not stay exact in a double after one more 7-bit shift. */
const ARC_FAST_MAX = 2 ** 45;

/**
 * decodeOidContent for the usual case, in plain numbers (the general path below works in
 * BigInt — exact for any arc, but several times slower, and the TLS endpoint decodes a few
 * dozen OIDs per connection): the same text for a well-formed OID whose arcs all stay below
 * 2^45; null for anything else (malformed or huge arcs), which the general path then decodes
 * or refuses with its error.
 */
function oidFast(b: Bytes): string | null {
  let out = "";
  let v = 0;
  let first = true;
  let arc0 = true;
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (first && x === 0x80) return null;
    first = false;
    if (v >= ARC_FAST_MAX) return null;
    v = v * 128 + (x & 0x7f);
    if ((x & 0x80) === 0) {
      if (arc0) {
        out = v < 40 ? `0.${v}` : v < 80 ? `1.${v - 40}` : `2.${v - 80}`;
        arc0 = false;
      } else {
        out += `.${v}`;
      }
      v = 0;
      first = true;
    }
  }
  return first ? out : null;
}

function oidGeneral(b: Bytes, offset: number, path: string): string {
  const arcs: bigint[] = [];
  let v = 0n;
  let first = true;
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (first && x === 0x80) throw new DecodeError("non-minimal OBJECT IDENTIFIER arc", offset, path);
    first = false;
    v = (v << 7n) | BigInt(x & 0x7f);
    if ((x & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
      first = true;
    }
  }
  if (!first) throw new DecodeError("truncated OBJECT IDENTIFIER", offset, path);
  const f = arcs[0]!;
  const head = f < 40n ? [0n, f] : f < 80n ? [1n, f - 40n] : [2n, f - 80n];
  return [...head, ...arcs.slice(1)].join(".");
}

export function readOid(c: Cursor, what: string): string {
  const t = c.expect(TAG.OID, what);
  return decodeOidContent(c.buf.subarray(t.contentStart, t.end), t.start, c.sub(what));
}

// --- BIT STRING ---

/** Content of a BIT STRING that must be a whole number of bytes (keys, signatures). */
export function readOctetAlignedBitString(c: Cursor, what: string): Bytes {
  const t = c.expect(TAG.BIT_STRING, what);
  if (t.end === t.contentStart) c.fail("empty BIT STRING", what, t.start);
  if (c.buf[t.contentStart] !== 0) c.fail("BIT STRING with unused bits where whole bytes are expected", what, t.start);
  return c.buf.subarray(t.contentStart + 1, t.end);
}

/**
 * A named-bit BIT STRING as a set of bit numbers. Lenient on purpose: ocaml-x509 (hence every
 * albatross certificate) encodes keyUsage as two bytes with 7 unused bits even when the
 * trailing bits are zero, which strict DER forbids; accepting it is what every validator does.
 */
export function readNamedBits(c: Cursor, what: string): Set<number> {
  const t = c.expect(TAG.BIT_STRING, what);
  const n = t.end - t.contentStart;
  if (n === 0) c.fail("empty BIT STRING", what, t.start);
  const unused = c.buf[t.contentStart]!;
  if (unused > 7 || (n === 1 && unused !== 0)) c.fail("invalid BIT STRING", what, t.start);
  const bits = new Set<number>();
  for (let i = 1; i < n; i++) {
    const byte = c.buf[t.contentStart + i]!;
    for (let j = 0; j < 8; j++) if (byte & (0x80 >> j)) bits.add((i - 1) * 8 + j);
  }
  return bits;
}

// --- INTEGER of any size (serial numbers, pathLen) ---

/** Raw two's-complement content of an INTEGER, minimality checked, any length. */
export function readIntegerContent(c: Cursor, what: string): Bytes {
  const t: Tlv = c.expect(TAG.INTEGER, what);
  const n = t.end - t.contentStart;
  if (n === 0) c.fail("empty INTEGER", what, t.start);
  if (n > 1) {
    const b0 = c.buf[t.contentStart]!,
      b1 = c.buf[t.contentStart + 1]!;
    if ((b0 === 0 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) c.fail("non-minimal INTEGER encoding", what, t.start);
  }
  return c.buf.subarray(t.contentStart, t.end);
}

/** A small non-negative INTEGER (pathLenConstraint, versions). */
export function readSmallUint(c: Cursor, what: string): number {
  const b = readIntegerContent(c, what);
  if (b[0]! & 0x80) c.fail("negative INTEGER", what);
  if (b.length > 4) c.fail("INTEGER too large", what);
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

// --- Time (RFC 5280 §4.1.2.5) ---

export function readCertTime(c: Cursor, what: string): Date {
  const tag = c.peekTag();
  const t = c.next(what);
  if (t.end - t.contentStart > 32) c.fail(`time value too long`, what, t.start);
  const fast = timeFast(c.buf, t.contentStart, t.end, tag ?? -1);
  if (fast !== null) return fast;
  // Anything the fast path does not take (malformed, or a wrong tag): the reference parse,
  // which also words the error.
  const s = String.fromCharCode(...c.buf.subarray(t.contentStart, t.end));
  let m: RegExpExecArray | null;
  let year: number;
  if (tag === TAG_UTCTIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) c.fail(`invalid UTCTime ${JSON.stringify(s)}`, what, t.start);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (tag === TAG.GeneralizedTime) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) c.fail(`invalid GeneralizedTime ${JSON.stringify(s)}`, what, t.start);
    year = Number(m[1]);
  } else {
    return c.fail(`expected a time for ${what}`, what, t.start);
  }
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59 || date.getUTCDate() !== d) {
    c.fail(`invalid time ${JSON.stringify(s)}`, what, t.start);
  }
  return date;
}

/**
 * readCertTime's result for a well-formed `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ`
 * (GeneralizedTime) straight from the bytes, without the string and regular expression of
 * the reference parse (the TLS endpoint reads two per certificate per connection); null when
 * the value is not exactly that or not a valid date — the reference parse then refuses it
 * with its message. Same accepted set and same Date as the reference parse.
 */
function timeFast(b: Bytes, start: number, end: number, tag: number): Date | null {
  const n = end - start;
  const yl = tag === TAG_UTCTIME ? 2 : tag === TAG.GeneralizedTime ? 4 : -1;
  if (yl < 0 || n !== yl + 11 || b[end - 1] !== 0x5a /* Z */) return null;
  for (let i = start; i < end - 1; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return null;
  }
  const num = (i: number, len: number): number => {
    let v = 0;
    for (let k = 0; k < len; k++) v = v * 10 + (b[start + i + k]! - 0x30);
    return v;
  };
  let year = num(0, yl);
  if (yl === 2) year = year >= 50 ? 1900 + year : 2000 + year;
  const mo = num(yl, 2),
    d = num(yl + 2, 2),
    h = num(yl + 4, 2),
    mi = num(yl + 6, 2),
    se = num(yl + 8, 2);
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59 || date.getUTCDate() !== d) return null;
  return date;
}

// --- Distinguished names ---

interface Attribute {
  readonly oid: string;
  /** the string value (any directory string type); other types as `#<hex DER>` */
  readonly value: string;
}

/** RDNSequence as a list of RDNs, each a list of attributes. */
export type DistinguishedName = readonly (readonly Attribute[])[];

const SHORT: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
};

const latin1 = new TextDecoder("latin1");
const utf16be = new TextDecoder("utf-16be", { fatal: true });
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function readDirectoryString(c: Cursor, what: string): string {
  const tag = c.peekTag();
  const t = c.next(what);
  const b = c.buf.subarray(t.contentStart, t.end);
  try {
    switch (tag) {
      case TAG.UTF8String:
        return utf8Strict.decode(b);
      case TAG_PRINTABLE:
      case TAG_IA5:
      case TAG_T61:
        return latin1.decode(b);
      case TAG_BMP:
        return utf16be.decode(b);
      default:
        // not a string type: keep the value comparable and printable as `#<hex of its DER>`
        return `#${hex(c.buf.subarray(t.start, t.end))}`;
    }
  } catch {
    return c.fail("invalid string encoding", what, t.start);
  }
}

export function readName(c: Cursor, what: string): DistinguishedName {
  const seqC = c.into(TAG.SEQUENCE, what);
  const rdns: Attribute[][] = [];
  while (!seqC.atEnd()) {
    const set = seqC.into(TAG.SET, "rdn");
    const rdn: Attribute[] = [];
    while (!set.atEnd()) {
      const atv = set.into(TAG.SEQUENCE, "attribute");
      const oid = readOid(atv, "type");
      const value = readDirectoryString(atv, "value");
      atv.done();
      rdn.push({ oid, value });
    }
    if (rdn.length === 0) set.fail("empty relative distinguished name");
    rdns.push(rdn);
  }
  return rdns;
}

/**
 * `CN=<cn>` as albatross writes it (cli.md §4): one RDN, the value a UTF8String. The
 * library's string and plain-JSON forms would pick PrintableString for printable names;
 * the typed JSON form pins UTF8String, and takes the value as is (no escapes).
 */
export function cnName(cn: string): Name {
  return new Name([{ [OID.commonName]: [{ utf8String: cn }] }]);
}

/** DER of `cnName(cn)`. */
export function encodeCnName(cn: string): Bytes {
  return new Uint8Array(cnName(cn).toArrayBuffer());
}

/** First CommonName, as ocaml-x509's `Distinguished_name.common_name`. */
export function commonName(dn: DistinguishedName): string | null {
  for (const rdn of dn) for (const a of rdn) if (a.oid === OID.commonName) return a.value;
  return null;
}

export function dnToString(dn: DistinguishedName): string {
  if (dn.length === 0) return "(empty)";
  return dn.map((rdn) => rdn.map((a) => `${SHORT[a.oid] ?? a.oid}=${a.value}`).join("+")).join(", ");
}

/** Equality of names by attribute types and string values (string types are not compared). */
export function dnEquals(a: DistinguishedName, b: DistinguishedName): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!,
      y = b[i]!;
    if (x.length !== y.length) return false;
    for (let j = 0; j < x.length; j++) {
      if (x[j]!.oid !== y[j]!.oid || x[j]!.value !== y[j]!.value) return false;
    }
  }
  return true;
}

export function bytesEqual(a: Bytes, b: Bytes): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
