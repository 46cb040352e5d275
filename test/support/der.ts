// A straightforward DER encoder for tests: hand-made vectors, and the reference the
// production two-pass writer (src/commands/writer.ts) is checked against.
import { TAG, compareBytes, ctx, encBigint, encOctets, formatGeneralizedTime, tlv, type Bytes } from "../../src/commands/der.js";

export { encBigint, encOctets, tlv };

const utf8 = (s: string): Bytes => new TextEncoder().encode(s);

export const seq = (...parts: Bytes[]): Bytes => tlv(TAG.SEQUENCE, ...parts);
export const explicit = (n: number, ...parts: Bytes[]): Bytes => tlv(ctx(n), ...parts);

/** SET OF: elements sorted bytewise by their complete encodings (DER). */
export function setOf(elements: Bytes[]): Bytes {
  const sorted = [...elements].sort(compareBytes);
  return tlv(TAG.SET, ...sorted);
}

export function encInt(v: number): Bytes {
  if (!Number.isSafeInteger(v)) throw new RangeError(`integer ${v} is not a safe integer`);
  return encBigint(BigInt(v));
}

export const encBool = (b: boolean): Bytes => Uint8Array.of(TAG.BOOLEAN, 1, b ? 0xff : 0);
export const encNull = (): Bytes => Uint8Array.of(TAG.NULL, 0);
export const encUtf8 = (s: string): Bytes => tlv(TAG.UTF8String, utf8(s));
export const encTime = (d: Date): Bytes => tlv(TAG.GeneralizedTime, utf8(formatGeneralizedTime(d)));

export function encInt64(v: bigint): Bytes {
  const x = BigInt.asUintN(64, v);
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((x >> BigInt(8 * (7 - i))) & 0xffn);
  return encOctets(out);
}
