// Length-prefixed framing (wire.md §3): every chunk is a 4-byte big-endian signed length
// followed by that many payload bytes. A length <= 0 means "end of stream" to the reader
// (a zero-length chunk terminates raw data streams). Upstream has no size limit besides
// int32; we cap frames at `maxFrame` (default 64 MiB) so a hostile peer cannot make us
// allocate 2 GiB. Pure: consumes only the bytes it is given.

import type { Bytes } from "./der.js";

/**
 * The decoder's cap when its user gives none (tests, tools). The daemons' and clients' limits
 * are their own (src/transport/requests.ts DEFAULT_MAX_FRAME, the --max-frame flags).
 */
const FALLBACK_MAX_FRAME = 64 * 1024 * 1024;

/** Returned by FrameDecoder.next() when a length <= 0 was read. */
export const END: unique symbol = Symbol("END");

export class FrameError extends Error {
  constructor(
    message: string,
    /** for a frame over the size limit (or refused by `admit`): its announced length */
    readonly frameLength?: number,
    /** the frame was within the limit but refused by `admit` */
    readonly refused = false,
  ) {
    super(message);
    this.name = "FrameError";
  }
}

export interface FrameOptions {
  /** largest accepted payload in bytes (default 64 MiB) */
  readonly maxFrame?: number;
  /**
   * asked for every frame (within maxFrame) once its length is read, before its payload
   * is buffered: false refuses it (a FrameError with `refused`), e.g. a memory budget
   */
  readonly admit?: (length: number) => boolean;
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
  private readonly admit: ((length: number) => boolean) | undefined;
  private readonly chunks: Bytes[] = [];
  private head = 0; // index of the first unconsumed chunk
  private offset = 0; // bytes consumed from chunks[head]
  private available = 0;
  /** payload length of the frame being assembled, once its header was read */
  private pending: number | null = null;

  constructor(opts: FrameOptions = {}) {
    const max = opts.maxFrame ?? FALLBACK_MAX_FRAME;
    if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`invalid maxFrame ${max}`);
    this.maxFrame = max;
    this.admit = opts.admit;
  }

  /** Number of buffered bytes not yet returned. */
  get buffered(): number {
    return this.available;
  }

  /** Whether a frame's header was read and its payload is still incomplete. */
  get inFrame(): boolean {
    return this.pending !== null;
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
        throw new FrameError(`frame length ${len} exceeds the limit of ${this.maxFrame} bytes`, len);
      }
      if (this.admit !== undefined && !this.admit(len)) throw new FrameError(`frame of ${len} bytes refused`, len, true);
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

/** What `FrameStream.take()` yields. */
export type FrameStreamEvent =
  | { readonly kind: "frame"; readonly payload: Bytes }
  /** a length <= 0: the explicit end of a stream (zero-length terminator) */
  | { readonly kind: "end" }
  /**
   * the input ended; `buffered` bytes of an unfinished frame were left over, and `inFrame`
   * tells whether that frame's header had been read (it may have no payload bytes yet)
   */
  | { readonly kind: "eof"; readonly buffered: number; readonly inFrame: boolean }
  /** an oversized frame (a FrameError with `frameLength`) or the transport's own error */
  | { readonly kind: "error"; readonly error: Error };

export interface FrameStreamOptions extends FrameOptions {
  /** make the first length <= 0 the last event (default: keep decoding after it) */
  readonly stopAtEnd?: boolean;
}

/**
 * The event queue behind every socket frame reader (src/transport/frames.ts adapts it to a
 * socket), without I/O: bytes, EOF and errors are pushed in and decoded at once; `take()`
 * hands out the events in order. The first eof/error (or, with `stopAtEnd`, the first end
 * marker) is the last event: later input is ignored and `take()` then reports a clean eof.
 */
export class FrameStream {
  private readonly decoder: FrameDecoder;
  private readonly stopAtEnd: boolean;
  private readonly queue: FrameStreamEvent[] = [];
  private done = false;
  private payloadBytes = 0; // of the queued frames

  constructor(opts: FrameStreamOptions = {}) {
    this.decoder = new FrameDecoder(opts);
    this.stopAtEnd = opts.stopAtEnd ?? false;
  }

  /** Whether the last event has been queued (or taken). */
  get finished(): boolean {
    return this.done;
  }

  /** Number of events waiting. */
  get queued(): number {
    return this.queue.length;
  }

  /** Bytes received and not yet taken: queued payloads plus the frame being assembled. */
  get pendingBytes(): number {
    return this.payloadBytes + this.decoder.buffered;
  }

  /**
   * Queue bytes (not copied, see FrameDecoder.push) and decode what they complete. Returns
   * the FrameError if they announced an oversized frame (then the last event).
   */
  push(chunk: Bytes): FrameError | undefined {
    if (this.done) return undefined;
    this.decoder.push(chunk);
    try {
      for (;;) {
        const f = this.decoder.next();
        if (f === null) return undefined;
        if (f !== END) this.add({ kind: "frame", payload: f });
        else if (this.stopAtEnd) return void this.finish({ kind: "end" });
        else this.add({ kind: "end" });
      }
    } catch (e) {
      // an oversized length: nothing sensible can follow
      this.finish({ kind: "error", error: e as FrameError });
      return e as FrameError;
    }
  }

  /** The input ended (also in the middle of a frame: the event tells so). */
  close(): void {
    this.finish({ kind: "eof", buffered: this.decoder.buffered, inFrame: this.decoder.inFrame });
  }

  /** The input failed. */
  fail(error: Error): void {
    this.finish({ kind: "error", error });
  }

  /** The next event, or null while none waits; after the last one, a clean eof. */
  take(): FrameStreamEvent | null {
    const e = this.queue.shift();
    if (e?.kind === "frame") this.payloadBytes -= e.payload.length;
    return e ?? (this.done ? { kind: "eof", buffered: 0, inFrame: false } : null);
  }

  private add(e: FrameStreamEvent): void {
    this.queue.push(e);
    if (e.kind === "frame") this.payloadBytes += e.payload.length;
  }

  private finish(e: FrameStreamEvent): void {
    if (this.done) return;
    this.done = true;
    this.add(e);
  }
}
