// Reading and writing length-prefixed chunks (wire.md §3) on a stream socket — a Unix socket
// to a daemon or a TLS connection — with the limits a network-facing process needs: a maximum
// chunk size, an idle timeout for reads, and a stall timeout for writes that the peer does not
// drain. Used by the TLS endpoint (both sides) and by the remote client.

import type { Duplex } from "node:stream";
import type { Bytes } from "../commands/der.js";
import { END, FrameDecoder, encodeFrame } from "../commands/framing.js";

/** What `ChunkReader.next()` yields. */
export type ChunkEvent =
  | { readonly kind: "chunk"; readonly payload: Bytes }
  /** a chunk length <= 0: the explicit end of a stream (zero-length terminator) */
  | { readonly kind: "terminator" }
  /** the peer closed (also in the middle of a chunk: `partial` then tells so) */
  | { readonly kind: "eof"; readonly partial: boolean }
  | { readonly kind: "error"; readonly message: string; readonly code?: string };

export class ChunkTimeout extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChunkTimeout";
  }
}

export interface ChunkReaderOptions {
  /** largest accepted chunk payload */
  readonly maxChunk: number;
  /** after this many buffered chunks the socket is paused until the consumer catches up */
  readonly highWater?: number;
}

/**
 * Pull-style chunk reader. Incoming bytes are decoded as they arrive; when more than
 * `highWater` chunks wait, the socket is paused (TCP/Unix backpressure to the sender).
 * After a terminator the reader keeps decoding, so a stream can carry several
 * zero-terminated sections (as the daemons' policy-add/command/reply sequence does not, but
 * a raw upload followed by wire messages could).
 */
export class ChunkReader {
  private readonly decoder: FrameDecoder;
  private readonly queue: ChunkEvent[] = [];
  private waiter: ((e: ChunkEvent) => void) | null = null;
  private done = false;
  private readonly highWater: number;

  constructor(
    private readonly sock: Duplex,
    opts: ChunkReaderOptions,
  ) {
    this.decoder = new FrameDecoder({ maxFrame: opts.maxChunk });
    this.highWater = opts.highWater ?? 16;
    sock.on("data", (b: Buffer) => this.onData(b));
    sock.on("end", () => this.finish({ kind: "eof", partial: this.decoder.buffered > 0 }));
    sock.on("close", () => this.finish({ kind: "eof", partial: this.decoder.buffered > 0 }));
    sock.on("error", (e: NodeJS.ErrnoException) => this.finish({ kind: "error", message: e.message, ...(e.code ? { code: e.code } : {}) }));
  }

  /** Whether the peer has closed / failed (events may still be queued). */
  get finished(): boolean {
    return this.done;
  }

  /** Whether an event is ready without waiting. */
  get ready(): boolean {
    return this.queue.length > 0 || this.done;
  }

  private onData(b: Buffer): void {
    if (this.done) return;
    this.decoder.push(new Uint8Array(b.buffer, b.byteOffset, b.length));
    try {
      for (;;) {
        const f = this.decoder.next();
        if (f === null) break;
        this.push(f === END ? { kind: "terminator" } : { kind: "chunk", payload: f });
      }
    } catch (e) {
      // an oversized length: nothing sensible can follow
      this.finish({ kind: "error", message: (e as Error).message, code: "ECHUNKSIZE" });
      this.sock.destroy();
      return;
    }
    if (this.queue.length >= this.highWater && !this.sock.isPaused()) this.sock.pause();
  }

  private push(e: ChunkEvent): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(e);
    } else {
      this.queue.push(e);
    }
  }

  private finish(e: ChunkEvent): void {
    if (this.done) return;
    this.done = true;
    this.push(e);
  }

  /**
   * The next event. With `timeoutMs`, rejects with ChunkTimeout when nothing arrives in
   * time (the reader stays usable; the caller normally destroys the socket).
   */
  next(timeoutMs?: number): Promise<ChunkEvent> {
    const e = this.queue.shift();
    if (this.queue.length < this.highWater / 2 && this.sock.isPaused() && !this.done) this.sock.resume();
    if (e) return Promise.resolve(e);
    if (this.done) return Promise.resolve({ kind: "eof", partial: false });
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      this.waiter = (ev) => {
        if (timer) clearTimeout(timer);
        resolve(ev);
      };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => {
          this.waiter = null;
          reject(new ChunkTimeout(`no data for ${timeoutMs} ms`));
        }, timeoutMs);
        timer.unref?.();
      }
    });
  }
}

export class WriteError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "WriteError";
  }
}

/**
 * Write bytes and wait until the socket has taken them (its buffer drained below the
 * high-water mark). A peer that does not read for `stallMs` makes this reject — the caller
 * then treats the connection as failed instead of buffering without bound.
 */
export function writeBytes(sock: Duplex, data: Bytes, stallMs?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed || !sock.writable) {
      reject(new WriteError("connection closed", "ECLOSED"));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let watching = false;
    let settled = false;
    const settle = (err?: Error | null) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (watching) sock.off("close", onClose);
      if (err) reject(err instanceof WriteError ? err : new WriteError(err.message, (err as NodeJS.ErrnoException).code));
      else resolve();
    };
    const onClose = () => settle(new WriteError("connection closed", "ECLOSED"));
    // The callback fires once the data is handed to the kernel (or on error); for large
    // amounts that is our backpressure.
    sock.write(data, (err) => settle(err));
    // Nothing left in the stream's buffer: the data went to the kernel during write() and
    // the callback is already queued (next tick) — no peer can stall it, so the common case
    // (a small message) needs no timer and no listener. Otherwise watch for a stall or close.
    if (settled || sock.writableLength === 0) return;
    watching = true;
    sock.once("close", onClose);
    if (stallMs !== undefined && stallMs > 0) {
      timer = setTimeout(() => settle(new WriteError(`peer did not read for ${stallMs} ms`, "ESTALL")), stallMs);
      timer.unref?.();
    }
  });
}

/** One chunk: `len(4, BE) || payload`. */
export const writeChunk = (sock: Duplex, payload: Bytes, stallMs?: number): Promise<void> => writeBytes(sock, encodeFrame(payload), stallMs);

/** The zero-length chunk ending a raw stream. */
export const writeTerminator = (sock: Duplex, stallMs?: number): Promise<void> => writeBytes(sock, new Uint8Array(4), stallMs);
