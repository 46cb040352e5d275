// A two-pass DER writer: exact-size output, one allocation, no intermediate buffers.
//
// Encoders are written once against the `Out` interface and run twice: first against a
// `Sizer`, which records the content length of every TLV in pre-order, then against a
// `Writer`, which replays those lengths while writing into a buffer of the exact final
// size. Compared with the tests' `tlv()` (test/support/der.ts: copies the content at every level)
// a create command with a 16 MiB image copies the image once, and a 10,000-entry state
// file allocates no per-field Uint8Arrays. Encoders must be deterministic (same calls in
// both passes); all of codec.ts' are pure functions of their input. Pure: no I/O.

import { MAX_INT63, MIN_INT63, TAG, compareBytes, formatGeneralizedTime, type Bytes } from "./der.js";

export interface Out {
  /** A TLV whose content is whatever `body` writes (SEQUENCE, SET, [n] EXPLICIT, ...). */
  tlv(tag: number, body: () => void): void;
  /** A primitive TLV with the given content bytes (OCTET STRING, UTF8String, ...). */
  prim(tag: number, content: Bytes): void;
  /** An INTEGER from a safe integer. */
  int(v: number): void;
  /** An INTEGER from a 63-bit bigint. */
  bigint(v: bigint): void;
  bool(b: boolean): void;
  null(): void;
  /** A UTF8String holding `s` encoded as UTF-8. */
  utf8(s: string): void;
  /** albatross Int64: OCTET STRING of exactly 8 bytes, big-endian two's complement. */
  int64(v: bigint): void;
  /** GeneralizedTime (wire.md §1: no fraction, or exactly 3 digits). */
  time(d: Date): void;
  /** SET OF: `f` writes each element; the encodings are then sorted bytewise (DER). */
  setOf<T>(xs: readonly T[], f: (x: T) => void): void;
}

export type Encoder<T> = (o: Out, v: T) => void;

// --- helpers -----------------------------------------------------------------------------

function lengthSize(len: number): number {
  if (len < 0x80) return 1;
  if (len < 0x100) return 2;
  if (len < 0x10000) return 3;
  if (len < 0x1000000) return 4;
  return 5;
}

/** Number of content octets of the minimal two's complement encoding of a safe integer. */
function intSize(v: number): number {
  let n = 1;
  let lim = 128; // 2^(8n-1)
  while (v >= lim || v < -lim) {
    n++;
    lim *= 256;
  }
  return n;
}

function checkSafe(v: number): void {
  if (!Number.isSafeInteger(v)) throw new RangeError(`integer ${v} is not a safe integer`);
}

function checkInt63(v: bigint): void {
  if (v > MAX_INT63 || v < MIN_INT63) throw new RangeError(`integer ${v} outside the 63-bit range`);
}

function checkInt64(v: bigint): void {
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) throw new RangeError(`${v} outside the Int64 range`);
}

const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** Content bytes of a bigint INTEGER outside the safe range (rare: 2^62-1 and friends). */
function bigintContent(v: bigint): number[] {
  const bytes: number[] = [];
  let x = v;
  for (;;) {
    const b = Number(x & 0xffn);
    bytes.unshift(b);
    x >>= 8n;
    if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) return bytes;
  }
}

/** UTF-8 length of a JS string (lone surrogates count as U+FFFD, like TextEncoder). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

const utf8Encoder = new TextEncoder();

// --- pass 1: sizes -----------------------------------------------------------------------

class Sizer implements Out {
  size = 0;
  readonly lens: number[] = [];
  /** content bytes of primitives of at least `threshold` bytes (left out by a split Writer) */
  big = 0;
  constructor(private readonly threshold = Infinity) {}

  tlv(_tag: number, body: () => void): void {
    const idx = this.lens.length;
    this.lens.push(0);
    const start = this.size;
    body();
    const len = this.size - start;
    this.lens[idx] = len;
    this.size += 1 + lengthSize(len);
  }
  prim(_tag: number, content: Bytes): void {
    this.size += 1 + lengthSize(content.length) + content.length;
    if (content.length >= this.threshold) this.big += content.length;
  }
  int(v: number): void {
    checkSafe(v);
    this.size += 2 + intSize(v);
  }
  bigint(v: bigint): void {
    checkInt63(v);
    this.size += 2 + (v >= SAFE_MIN && v <= SAFE_MAX ? intSize(Number(v)) : bigintContent(v).length);
  }
  bool(): void {
    this.size += 3;
  }
  null(): void {
    this.size += 2;
  }
  utf8(s: string): void {
    const n = utf8Length(s);
    this.size += 1 + lengthSize(n) + n;
  }
  int64(v: bigint): void {
    checkInt64(v);
    this.size += 10;
  }
  time(d: Date): void {
    this.size += 2 + formatGeneralizedTime(d).length;
  }
  setOf<T>(xs: readonly T[], f: (x: T) => void): void {
    this.tlv(TAG.SET, () => {
      for (const x of xs) f(x);
    });
  }
}

// --- pass 2: bytes -----------------------------------------------------------------------

class Writer implements Out {
  readonly buf: Uint8Array;
  pos = 0;
  private li = 0;
  /** contents left out of `buf` (at least `threshold` bytes), with the position they belong at */
  readonly holes: { pos: number; content: Bytes }[] = [];

  constructor(
    size: number,
    private readonly lens: readonly number[],
    private readonly threshold = Infinity,
  ) {
    this.buf = new Uint8Array(size);
  }

  private header(tag: number, len: number): void {
    const b = this.buf;
    b[this.pos++] = tag;
    if (len < 0x80) {
      b[this.pos++] = len;
      return;
    }
    const n = lengthSize(len) - 1;
    b[this.pos++] = 0x80 | n;
    for (let i = n - 1; i >= 0; i--) {
      b[this.pos + i] = len & 0xff;
      len = Math.floor(len / 256);
    }
    this.pos += n;
  }

  tlv(tag: number, body: () => void): void {
    this.header(tag, this.lens[this.li++]!);
    body();
  }
  prim(tag: number, content: Bytes): void {
    const n = content.length;
    this.header(tag, n);
    if (n >= this.threshold) {
      this.holes.push({ pos: this.pos, content });
      return;
    }
    if (n < 32) {
      // TypedArray.set has a fixed cost that dominates for short strings/MACs
      const b = this.buf;
      for (let i = 0; i < n; i++) b[this.pos + i] = content[i]!;
    } else {
      this.buf.set(content, this.pos);
    }
    this.pos += n;
  }
  int(v: number): void {
    const n = intSize(v);
    this.header(TAG.INTEGER, n);
    const b = this.buf;
    for (let i = n - 1; i >= 0; i--) {
      b[this.pos + i] = ((v % 256) + 256) % 256;
      v = Math.floor(v / 256);
    }
    this.pos += n;
  }
  bigint(v: bigint): void {
    if (v >= SAFE_MIN && v <= SAFE_MAX) return this.int(Number(v));
    const c = bigintContent(v);
    this.header(TAG.INTEGER, c.length);
    this.buf.set(c, this.pos);
    this.pos += c.length;
  }
  bool(v: boolean): void {
    this.buf[this.pos++] = TAG.BOOLEAN;
    this.buf[this.pos++] = 1;
    this.buf[this.pos++] = v ? 0xff : 0;
  }
  null(): void {
    this.buf[this.pos++] = TAG.NULL;
    this.buf[this.pos++] = 0;
  }
  utf8(s: string): void {
    const n = utf8Length(s);
    this.header(TAG.UTF8String, n);
    const b = this.buf;
    if (n === s.length) {
      for (let i = 0; i < n; i++) b[this.pos + i] = s.charCodeAt(i);
    } else {
      utf8Encoder.encodeInto(s, b.subarray(this.pos, this.pos + n));
    }
    this.pos += n;
  }
  int64(v: bigint): void {
    this.header(TAG.OCTET_STRING, 8);
    const x = BigInt.asUintN(64, v);
    const hi = Number(x >> 32n);
    const lo = Number(x & 0xffffffffn);
    const b = this.buf;
    for (let i = 0; i < 4; i++) {
      b[this.pos + i] = (hi >>> (24 - 8 * i)) & 0xff;
      b[this.pos + 4 + i] = (lo >>> (24 - 8 * i)) & 0xff;
    }
    this.pos += 8;
  }
  time(d: Date): void {
    const s = formatGeneralizedTime(d);
    this.header(TAG.GeneralizedTime, s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
  }
  setOf<T>(xs: readonly T[], f: (x: T) => void): void {
    this.header(TAG.SET, this.lens[this.li++]!);
    if (xs.length < 2) {
      for (const x of xs) f(x);
      return;
    }
    const start = this.pos;
    const bounds: number[] = [];
    let sorted = true;
    for (const x of xs) {
      const s = this.pos;
      f(x);
      const n = bounds.length;
      if (sorted && n > 0 && compareRanges(this.buf, bounds[n - 2]!, bounds[n - 1]!, s, this.pos) > 0) sorted = false;
      bounds.push(s, this.pos);
    }
    if (sorted) return; // already in DER order (e.g. a canonical or decoded list)
    // DER: order the complete element encodings bytewise (a prefix sorts first).
    const region = this.buf.slice(start, this.pos);
    const parts: Bytes[] = [];
    for (let i = 0; i < bounds.length; i += 2) parts.push(region.subarray(bounds[i]! - start, bounds[i + 1]! - start));
    parts.sort(compareBytes);
    let o = start;
    for (const p of parts) {
      this.buf.set(p, o);
      o += p.length;
    }
  }
}

/** compareBytes on two ranges of one buffer, without creating views. */
function compareRanges(b: Uint8Array, a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let i = 0; i < n; i++) {
    const d = b[a0 + i]! - b[b0 + i]!;
    if (d !== 0) return d;
  }
  return a1 - a0 - (b1 - b0);
}

/** The size of `enc`'s encoding of `v` (the first pass alone: nothing is copied). */
export function encodedSize<T>(enc: Encoder<T>, v: T): number {
  const sizer = new Sizer();
  enc(sizer, v);
  return sizer.size;
}

/**
 * `encode`, but every primitive content of at least `threshold` bytes (an image) is not
 * copied: it is returned as a piece of its own, between the encoded bytes around it. The
 * pieces, concatenated, are exactly `encode(enc, v)`.
 */
export function encodePieces<T>(enc: Encoder<T>, v: T, threshold: number): Bytes[] {
  const sizer = new Sizer(threshold);
  enc(sizer, v);
  const w = new Writer(sizer.size - sizer.big, sizer.lens, threshold);
  enc(w, v);
  if (w.pos !== sizer.size - sizer.big) throw new Error(`DER writer size mismatch (${w.pos} != ${sizer.size - sizer.big})`);
  const out: Bytes[] = [];
  let from = 0;
  for (const h of w.holes) {
    if (h.pos > from) out.push(w.buf.subarray(from, h.pos));
    out.push(h.content);
    from = h.pos;
  }
  if (from < w.buf.length) out.push(w.buf.subarray(from));
  return out;
}

/** Run `enc` twice (sizes, then bytes) and return the exact-size encoding. */
export function encode<T>(enc: Encoder<T>, v: T): Bytes {
  const sizer = new Sizer();
  enc(sizer, v);
  const w = new Writer(sizer.size, sizer.lens);
  enc(w, v);
  if (w.pos !== sizer.size) throw new Error(`DER writer size mismatch (${w.pos} != ${sizer.size})`);
  return w.buf;
}
