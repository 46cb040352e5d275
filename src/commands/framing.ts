// Length-prefixed framing (wire.md §3): every chunk is a 4-byte big-endian signed length
// followed by that many payload bytes. A length <= 0 means "end of stream" to the reader
// (a zero-length chunk terminates raw data streams). Upstream has no size limit besides
// int32; we cap frames at `maxFrame` (default 64 MiB) so a hostile peer cannot make us
// allocate 2 GiB. Pure: consumes only the bytes/iterable it is given.

import type { Bytes } from "./der.js";

export const DEFAULT_MAX_FRAME = 64 * 1024 * 1024;

/** Returned by FrameDecoder.next() when a length <= 0 was read. */
export const END: unique symbol = Symbol("END");

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

export interface FrameOptions {
  /** largest accepted payload in bytes (default 64 MiB) */
  readonly maxFrame?: number;
}

/** `len(4, BE) || payload`. */
export function encodeFrame(payload: Bytes): Bytes {
  if (payload.length > 0x7fffffff) throw new RangeError(`frame of ${payload.length} bytes exceeds the int32 length field`);
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setInt32(0, payload.length, false);
  out.set(payload, 4);
  return out;
}

/** The zero-length chunk that terminates a raw data stream. */
export const END_FRAME: Bytes = new Uint8Array(4);

/**
 * Incremental frame reader. Chunks are queued as-is; a payload is copied exactly once,
 * into a buffer of its final size, so a 16 MiB frame in 64 KiB chunks costs O(n).
 */
export class FrameDecoder {
  readonly maxFrame: number;
  private readonly chunks: Bytes[] = [];
  private head = 0; // index of the first unconsumed chunk
  private offset = 0; // bytes consumed from chunks[head]
  private available = 0;
  /** payload length of the frame being assembled, once its header was read */
  private pending: number | null = null;

  constructor(opts: FrameOptions = {}) {
    const max = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`invalid maxFrame ${max}`);
    this.maxFrame = max;
  }

  /** Number of buffered bytes not yet returned. */
  get buffered(): number {
    return this.available;
  }

  /**
   * Queue bytes. The chunk is not copied: payloads that lie within one chunk are returned
   * as views of it, so callers must not reuse a pushed buffer. Node Buffers are re-viewed
   * as plain Uint8Arrays so decoded values compare equal to constructed ones.
   */
  push(chunk: Bytes): void {
    if (chunk.length === 0) return;
    if (Object.getPrototypeOf(chunk) !== Uint8Array.prototype) {
      chunk = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    this.chunks.push(chunk);
    this.available += chunk.length;
  }

  /** The next payload, END for a length <= 0, or null if more bytes are needed. */
  next(): Bytes | typeof END | null {
    if (this.pending === null) {
      if (this.available < 4) return null;
      const h = this.take(4);
      const len = (h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!; // signed int32
      if (len <= 0) return END;
      if (len > this.maxFrame) {
        throw new FrameError(`frame length ${len} exceeds the limit of ${this.maxFrame} bytes`);
      }
      this.pending = len;
    }
    if (this.available < this.pending) return null;
    const payload = this.take(this.pending);
    this.pending = null;
    return payload;
  }

  /** Remove and return exactly `n` buffered bytes (n <= available). */
  private take(n: number): Uint8Array {
    const first = this.chunks[this.head]!;
    // Fast path: entirely within the first chunk -> a view, no copy.
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[this.head]!;
      const k = Math.min(n - o, c.length - this.offset);
      out.set(c.subarray(this.offset, this.offset + k), o);
      o += k;
      this.advance(k);
    }
    return out;
  }

  private advance(k: number): void {
    this.offset += k;
    this.available -= k;
    if (this.offset === this.chunks[this.head]!.length) {
      this.chunks[this.head] = EMPTY; // release the memory
      this.head++;
      this.offset = 0;
      if (this.head > 1024 && this.head * 2 > this.chunks.length) {
        this.chunks.splice(0, this.head);
        this.head = 0;
      }
    }
  }
}

const EMPTY = new Uint8Array(0);

export interface ReadFramesOptions extends FrameOptions {
  /**
   * What to do when the iterable ends in the middle of a frame: throw a FrameError
   * (default, as upstream: EOF mid-chunk is an error).
   */
  readonly allowTrailing?: boolean;
}

/**
 * Yield the payloads of the frames in `stream` until an END marker (length <= 0) or the
 * end of the iterable. Ending inside a frame throws FrameError.
 */
export async function* readFrames(stream: AsyncIterable<Bytes>, opts: ReadFramesOptions = {}): AsyncGenerator<Bytes, void> {
  const dec = new FrameDecoder(opts);
  for await (const chunk of stream) {
    dec.push(chunk);
    for (;;) {
      const f = dec.next();
      if (f === null) break;
      if (f === END) return;
      yield f;
    }
  }
  if (dec.buffered > 0 && !opts.allowTrailing) {
    throw new FrameError(`stream ended inside a frame (${dec.buffered} bytes pending)`);
  }
}
