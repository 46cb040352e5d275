// A straightforward DER encoder for tests: hand-made vectors, and the reference the
// production two-pass writer (src/commands/writer.ts) is checked against. Each value is its
// own buffer, copied into its parent's (simple, and slow for large values).
import { MAX_INT63, MIN_INT63, TAG, compareBytes, ctx, formatGeneralizedTime, tlvHeader, type Bytes } from "../../src/commands/der.js";

const utf8 = (s: string): Bytes => new TextEncoder().encode(s);

/** One TLV from parts (parts are concatenated as content). */
export function tlv(tag: number, ...parts: Bytes[]): Bytes {
  let len = 0;
  for (const p of parts) len += p.length;
  const hdr = tlvHeader(tag, len);
  const out = new Uint8Array(hdr.length + len);
  out.set(hdr, 0);
  let o = hdr.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const seq = (...parts: Bytes[]): Bytes => tlv(TAG.SEQUENCE, ...parts);
export const explicit = (n: number, ...parts: Bytes[]): Bytes => tlv(ctx(n), ...parts);

/** SET OF: elements sorted bytewise by their complete encodings (DER). */
export function setOf(elements: Bytes[]): Bytes {
  const sorted = [...elements].sort(compareBytes);
  return tlv(TAG.SET, ...sorted);
}

export function encBigint(v: bigint): Bytes {
  if (v > MAX_INT63 || v < MIN_INT63) throw new RangeError(`integer ${v} outside the 63-bit range`);
  const bytes: number[] = [];
  let x = v;
  for (;;) {
    const b = Number(x & 0xffn);
    bytes.unshift(b);
    x >>= 8n;
    if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) break;
  }
  return tlv(TAG.INTEGER, Uint8Array.from(bytes));
}

export function encInt(v: number): Bytes {
  if (!Number.isSafeInteger(v)) throw new RangeError(`integer ${v} is not a safe integer`);
  return encBigint(BigInt(v));
}

export const encBool = (b: boolean): Bytes => Uint8Array.of(TAG.BOOLEAN, 1, b ? 0xff : 0);
export const encNull = (): Bytes => Uint8Array.of(TAG.NULL, 0);
export const encOctets = (b: Bytes): Bytes => tlv(TAG.OCTET_STRING, b);
export const encUtf8 = (s: string): Bytes => tlv(TAG.UTF8String, utf8(s));
export const encTime = (d: Date): Bytes => tlv(TAG.GeneralizedTime, utf8(formatGeneralizedTime(d)));

export function encInt64(v: bigint): Bytes {
  const x = BigInt.asUintN(64, v);
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((x >> BigInt(8 * (7 - i))) & 0xffn);
  return encOctets(out);
}
