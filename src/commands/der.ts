// Strict DER reader and writer for the albatross wire formats.
//
// Written by hand on purpose: albatross decodes with asn1-combinators in DER mode, which
// rejects non-minimal lengths/integers, indefinite lengths, constructed strings and trailing
// bytes. asn1js/pkijs and @peculiar/asn1-schema are BER-lenient (they accept all of these), do
// not report byte offsets, and cannot express albatross' untagged nested CHOICEs and the
// 63-bit/Int64 conventions without a re-encode-and-compare pass over every value. A strict
// TLV layer is ~250 lines; everything above it (src/commands/codec.ts) is table-like code.
//
// Pure: no I/O. Errors are always DecodeError with the byte offset and a dotted path.

export class DecodeError extends Error {
  readonly offset: number;
  readonly path: string;
  readonly reason: string;
  constructor(reason: string, offset: number, path: string) {
    super(`${reason} at byte ${offset}${path ? ` (${path})` : ""}`);
    this.name = "DecodeError";
    this.reason = reason;
    this.offset = offset;
    this.path = path;
  }
}

export type Bytes = Uint8Array;

/** Tag byte constants (universal, primitive unless noted). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8String: 0x0c,
  GeneralizedTime: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific constructed tag byte `[n]` (EXPLICIT tagging), n < 31. */
export const ctx = (n: number): number => 0xa0 | n;

export interface Tlv {
  /** The identifier octet (only low-tag-number form is accepted). */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  readonly contentStart: number;
  /** Offset just past the content. */
  readonly end: number;
}

/** Parse one TLV header at `pos`; the value must end at or before `limit`. */
export function readTlv(buf: Bytes, pos: number, limit: number, path: string): Tlv {
  return tlvAt(buf, pos, limit, null, path);
}

function tlvFail(owner: Cursor | null, what: string, reason: string, at: number): never {
  throw new DecodeError(reason, at, owner ? owner.sub(what) : what);
}

/**
 * readTlv with a lazily built error path (`owner.sub(what)`): the dotted path string is
 * only needed when something fails, and building it for every TLV of a large state file
 * costs about a third of the decoding time.
 */
function tlvAt(buf: Bytes, pos: number, limit: number, owner: Cursor | null, what: string): Tlv {
  if (pos >= limit) return tlvFail(owner, what, "unexpected end of data", pos);
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) return tlvFail(owner, what, `unsupported high tag number (0x${hex2(tag)})`, pos);
  // Universal strings must be primitive in DER.
  if ((tag & 0xc0) === 0 && (tag & 0x20) !== 0 && tag !== TAG.SEQUENCE && tag !== TAG.SET) {
    return tlvFail(owner, what, `constructed encoding of universal tag 0x${hex2(tag & 0x1f)} is not DER`, pos);
  }
  let p = pos + 1;
  if (p >= limit) return tlvFail(owner, what, "truncated length", p);
  const first = buf[p++]!;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else if (first === 0x80) {
    return tlvFail(owner, what, "indefinite length is not DER", p - 1);
  } else {
    const n = first & 0x7f;
    if (n > 4) return tlvFail(owner, what, `length of ${n} octets is too large`, p - 1);
    if (p + n > limit) return tlvFail(owner, what, "truncated length", p);
    if (buf[p] === 0) return tlvFail(owner, what, "non-minimal length encoding", p - 1);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
    if (len < 0x80) return tlvFail(owner, what, "non-minimal length encoding", p - n - 1);
  }
  if (p + len > limit) {
    return tlvFail(owner, what, `length ${len} exceeds the ${limit - p} available bytes`, pos);
  }
  return { tag, start: pos, contentStart: p, end: p + len };
}

/** A cursor over the content of a constructed value (or a whole buffer). */
export class Cursor {
  pos: number;
  /** the full dotted path, built on first use (see `child`) */
  private fullPath: string | undefined;
  private parent: Cursor | undefined;
  private segment = "";

  constructor(
    readonly buf: Bytes,
    start: number,
    readonly end: number,
    path: string,
  ) {
    this.pos = start;
    this.fullPath = path;
  }

  static of(buf: Bytes, path = ""): Cursor {
    return new Cursor(buf, 0, buf.length, path);
  }

  /** A cursor over [start, end) whose path is `parent.sub(segment)`, computed lazily. */
  static child(parent: Cursor, start: number, end: number, segment: string): Cursor {
    const c = new Cursor(parent.buf, start, end, "");
    c.fullPath = undefined;
    c.parent = parent;
    c.segment = segment;
    return c;
  }

  /** Dotted path of this cursor (for error messages). */
  get path(): string {
    if (this.fullPath === undefined) {
      this.fullPath = this.parent!.sub(this.segment);
      this.parent = undefined;
    }
    return this.fullPath;
  }

  sub(path: string): string {
    const p = this.path;
    return p ? `${p}.${path}` : path;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  peekTag(): number | undefined {
    return this.pos < this.end ? this.buf[this.pos] : undefined;
  }

  fail(reason: string, path?: string, offset = this.pos): never {
    throw new DecodeError(reason, offset, path === undefined ? this.path : this.sub(path));
  }

  next(what: string): Tlv {
    const t = tlvAt(this.buf, this.pos, this.end, this, what);
    this.pos = t.end;
    return t;
  }

  /** Read the next TLV, requiring `tag`. */
  expect(tag: number, what: string): Tlv {
    const got = this.peekTag();
    if (got === undefined) this.fail(`missing ${what}`, what);
    if (got !== tag) {
      // A universal string tag with the constructed bit set (e.g. 0x2c for 0x0c) is a
      // segmented BER string: name that rather than a plain tag mismatch.
      if ((tag & 0xe0) === 0 && got === (tag | 0x20)) {
        this.fail(`constructed encoding of universal tag 0x${hex2(tag)} is not DER`, what);
      }
      this.fail(`expected tag 0x${hex2(tag)} for ${what}, got 0x${hex2(got)}`, what);
    }
    return this.next(what);
  }

  /** Read the next TLV if it has `tag`. */
  optional(tag: number, what: string): Tlv | undefined {
    return this.peekTag() === tag ? this.next(what) : undefined;
  }

  /** A cursor over the content of `t`. */
  enter(t: Tlv, what: string): Cursor {
    return Cursor.child(this, t.contentStart, t.end, what);
  }

  /** Enter a constructed value with `tag` (SEQUENCE, SET or [n] EXPLICIT). */
  into(tag: number, what: string): Cursor {
    return this.enter(this.expect(tag, what), what);
  }

  intoOptional(tag: number, what: string): Cursor | undefined {
    const t = this.optional(tag, what);
    return t ? this.enter(t, what) : undefined;
  }

  /** Require that everything was consumed. */
  done(): void {
    if (this.pos < this.end) this.fail(`${this.end - this.pos} trailing bytes`);
  }

  // --- primitives (each reads the next TLV with its universal tag) ---

  bigint(what: string): bigint {
    return intContent(this.buf, this.expect(TAG.INTEGER, what), this, what);
  }

  /** An INTEGER that must be a JavaScript safe integer (albatross ints are 63-bit). */
  int(what: string): number {
    const t = this.expect(TAG.INTEGER, what);
    const n = t.end - t.contentStart;
    if (n >= 1 && n <= 6) {
      // fast path (same checks as intContent, without the BigInt round trip)
      const b0 = this.buf[t.contentStart]!;
      if (n > 1) {
        const b1 = this.buf[t.contentStart + 1]!;
        if ((b0 === 0 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) {
          throw new DecodeError("non-minimal INTEGER encoding", t.start, this.sub(what));
        }
      }
      let x = b0 >= 0x80 ? b0 - 256 : b0;
      for (let i = 1; i < n; i++) x = x * 256 + this.buf[t.contentStart + i]!;
      return x;
    }
    return toSafe(intContent(this.buf, t, this, what), t.start, this.sub(what));
  }

  /** albatross `int32`: INTEGER reduced modulo 2^32 to a signed 32-bit value, as upstream. */
  int32(what: string): number {
    const v = this.bigint(what);
    return Number(BigInt.asIntN(32, v));
  }

  bool(what: string): boolean {
    const t = this.expect(TAG.BOOLEAN, what);
    if (t.end - t.contentStart !== 1) this.fail("BOOLEAN must have exactly one content byte", what, t.start);
    return this.buf[t.contentStart] !== 0;
  }

  null(what: string): void {
    const t = this.expect(TAG.NULL, what);
    if (t.end !== t.contentStart) this.fail("NULL must be empty", what, t.start);
  }

  octets(what: string): Bytes {
    const t = this.expect(TAG.OCTET_STRING, what);
    return this.buf.subarray(t.contentStart, t.end);
  }

  utf8Bytes(what: string): Bytes {
    const t = this.expect(TAG.UTF8String, what);
    return this.buf.subarray(t.contentStart, t.end);
  }

  /** A UTF8String as text. Invalid UTF-8 is a decode error (use utf8Bytes for raw data). */
  utf8(what: string): string {
    const t = this.expect(TAG.UTF8String, what);
    const b = this.buf.subarray(t.contentStart, t.end);
    return asciiFast(b) ?? decodeUtf8(b, t.start, this.sub(what));
  }

  /** albatross Int64: OCTET STRING of 8 bytes, big-endian two's complement. */
  int64(what: string): bigint {
    const t = this.expect(TAG.OCTET_STRING, what);
    const n = t.end - t.contentStart;
    // Upstream reads the first 8 bytes of a longer string and fails on shorter ones;
    // we are strict both ways: only exactly 8 bytes re-encode identically.
    if (n !== 8) this.fail(`Int64 must be 8 bytes, got ${n}`, what, t.start);
    let v = 0n;
    for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(this.buf[t.contentStart + i]!);
    return BigInt.asIntN(64, v);
  }

  time(what: string): Date {
    const t = this.expect(TAG.GeneralizedTime, what);
    return parseGeneralizedTime(this.buf.subarray(t.contentStart, t.end), t.start, this.sub(what));
  }
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Short pure-ASCII strings (device names, keys) without TextDecoder's fixed cost. */
function asciiFast(b: Bytes): string | undefined {
  if (b.length > 64) return undefined;
  let s = "";
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

function decodeUtf8(b: Bytes, offset: number, path: string): string {
  const fast = asciiFast(b);
  if (fast !== undefined) return fast;
  try {
    return utf8Decoder.decode(b);
  } catch {
    throw new DecodeError("invalid UTF-8 in UTF8String", offset, path);
  }
}

/** Bytes as text, replacing invalid UTF-8 (for display only). */
export const text = (b: Bytes): string => new TextDecoder().decode(b);

function intContent(buf: Bytes, t: Tlv, at: Cursor, what: string): bigint {
  const n = t.end - t.contentStart;
  const path = (): string => at.sub(what);
  if (n === 0) throw new DecodeError("empty INTEGER", t.start, path());
  const b0 = buf[t.contentStart]!;
  if (n > 1) {
    const b1 = buf[t.contentStart + 1]!;
    if ((b0 === 0 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) {
      throw new DecodeError("non-minimal INTEGER encoding", t.start, path());
    }
  }
  if (n > 8) throw new DecodeError("int overflow", t.start, path());
  if (n <= 6) {
    // fast path: fits a double exactly, no BigInt arithmetic
    let x = b0 >= 0x80 ? b0 - 256 : b0;
    for (let i = 1; i < n; i++) x = x * 256 + buf[t.contentStart + i]!;
    return BigInt(x);
  }
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(buf[t.contentStart + i]!);
  v = BigInt.asIntN(n * 8, v);
  if (v > MAX_INT63 || v < MIN_INT63) throw new DecodeError("int overflow", t.start, path());
  return v;
}

/** OCaml native int range (63-bit). */
export const MAX_INT63 = (1n << 62n) - 1n;
export const MIN_INT63 = -(1n << 62n);

function toSafe(v: bigint, offset: number, path: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new DecodeError("integer exceeds 2^53", offset, path);
  }
  return Number(v);
}

const hex2 = (n: number): string => n.toString(16).padStart(2, "0");

// --- GeneralizedTime ---

/**
 * Decode as upstream does (wire.md §1): YYYYMMDDHH[MM[SS]][.f{0,7}][Z|+hhmm|-hhmm]; the
 * fraction's first (up to) 3 digits are a whole number of milliseconds.
 */
function parseGeneralizedTime(b: Bytes, offset: number, path: string): Date {
  // The longest accepted form is 27 characters; checking first also keeps a hostile
  // multi-megabyte value away from String.fromCharCode's argument limit.
  if (b.length > 32) throw new DecodeError(`invalid GeneralizedTime (${b.length} bytes)`, offset, path);
  const s = String.fromCharCode(...b);
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(?:(\d{2})(\d{2})?)?(?:\.(\d{0,7}))?(Z|[+-]\d{4})?$/.exec(s);
  if (!m) throw new DecodeError(`invalid GeneralizedTime ${JSON.stringify(s)}`, offset, path);
  const [, Y, Mo, D, H, Mi, S, frac, zone] = m;
  const ms = frac ? Number(frac.slice(0, 3) || "0") : 0;
  const year = Number(Y),
    month = Number(Mo),
    day = Number(D),
    hour = Number(H);
  const minute = Number(Mi ?? "0"),
    second = Number(S ?? "0");
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw new DecodeError(`invalid GeneralizedTime ${JSON.stringify(s)}`, offset, path);
  }
  // Date.UTC maps years 0..99 to 1900..1999: set the full year explicitly.
  const probe = new Date(Date.UTC(2000, 0, 1));
  probe.setUTCFullYear(year, month - 1, day);
  let t = probe.getTime() + ((hour * 60 + minute) * 60 + second) * 1000 + ms;
  if (probe.getUTCDate() !== day) throw new DecodeError(`invalid GeneralizedTime ${JSON.stringify(s)}`, offset, path);
  if (zone && zone !== "Z") {
    const sign = zone[0] === "+" ? 1 : -1;
    const off = (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5))) * 60_000;
    t -= sign * off;
  }
  const d = new Date(t);
  // A zone offset can push the instant out of 0000..9999 (upstream Ptime rejects those).
  if (d.getUTCFullYear() < 0 || d.getUTCFullYear() > 9999) {
    throw new DecodeError(`GeneralizedTime ${JSON.stringify(s)} out of range`, offset, path);
  }
  return d;
}

export function formatGeneralizedTime(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new RangeError("invalid date");
  // GeneralizedTime has a 4-digit year (upstream Ptime: 0000..9999).
  if (d.getUTCFullYear() < 0 || d.getUTCFullYear() > 9999) throw new RangeError(`year ${d.getUTCFullYear()} outside 0..9999`);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const base = p(d.getUTCFullYear(), 4) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) + p(d.getUTCHours()) + p(d.getUTCMinutes()) + p(d.getUTCSeconds());
  const ms = d.getUTCMilliseconds();
  return ms ? `${base}.${p(ms, 3)}Z` : `${base}Z`;
}

// --- writer ---

function lengthOctets(len: number): number[] {
  if (len < 0x80) return [len];
  const out: number[] = [];
  let l = len;
  while (l > 0) {
    out.unshift(l & 0xff);
    l = Math.floor(l / 256);
  }
  return [0x80 | out.length, ...out];
}

/** The identifier and length octets of a TLV whose content is `len` bytes long. */
export const tlvHeader = (tag: number, len: number): Bytes => Uint8Array.from([tag, ...lengthOctets(len)]);

export function compareBytes(a: Bytes, b: Bytes): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/** Decode a complete buffer with `f`, requiring that nothing trails the top-level value. */
export function decodeAll<T>(buf: Bytes, path: string, f: (c: Cursor) => T): T {
  const c = Cursor.of(buf, path);
  const v = f(c);
  if (!c.atEnd()) throw new DecodeError("trailing bytes", c.pos, path);
  return v;
}
