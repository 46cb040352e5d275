// Reading and writing length-prefixed chunks (wire.md §3) on a stream socket — a Unix socket
// to a daemon or a TLS connection — with the limits a network-facing process needs: a maximum
// chunk size, an idle timeout for reads, and a stall timeout for writes that the peer does not
// drain. Used by the TLS endpoint (both sides) and by the remote client.

import type { Duplex } from "node:stream";
import type { Bytes } from "../commands/der.js";
import { FrameError, encodeFrame } from "../commands/framing.js";
import { SocketFrames } from "./frames.js";

/** What `ChunkReader.next()` yields. */
export type ChunkEvent =
  | { readonly kind: "chunk"; readonly payload: Bytes }
  /** a chunk length <= 0: the explicit end of a stream (zero-length terminator) */
  | { readonly kind: "terminator" }
  /** the peer closed (also in the middle of a chunk: `partial` then tells so) */
  | { readonly kind: "eof"; readonly partial: boolean }
  | { readonly kind: "error"; readonly message: string; readonly code?: string };

export interface ChunkReaderOptions {
  /** largest accepted chunk payload */
  readonly maxChunk: number;
  /** after this many buffered chunks the socket is paused until the consumer catches up */
  readonly highWater?: number;
}

/**
 * Pull-style chunk reader (the socket pauses while 16 chunks, or more than maxChunk bytes,
 * wait). After a
 * terminator the reader keeps decoding, so a stream can carry several zero-terminated
 * sections (as the daemons' policy-add/command/reply sequence does not, but a raw upload
 * followed by wire messages could). An oversized chunk destroys the socket at once.
 */
export class ChunkReader {
  private readonly frames: SocketFrames;

  constructor(sock: Duplex, opts: ChunkReaderOptions) {
    // Paused once 16 chunks, or more than one maximal chunk's bytes, wait: a connection
    // holds at most about two maximal chunks (the one being assembled and the waiting ones).
    this.frames = new SocketFrames(sock, {
      maxFrame: opts.maxChunk,
      highWater: opts.highWater ?? 16,
      highBytes: opts.maxChunk,
      lowBytes: Math.min(opts.maxChunk, 1 << 20),
      destroyOnFrameError: true,
    });
  }

  /**
   * The next event. With `timeoutMs`, rejects with ReadTimeout (src/transport/frames.ts) when
   * nothing arrives in time (the reader stays usable; the caller normally destroys the socket).
   */
  async next(timeoutMs?: number): Promise<ChunkEvent> {
    const e = await this.frames.next(timeoutMs);
    switch (e.kind) {
      case "frame":
        return { kind: "chunk", payload: e.payload };
      case "end":
        return { kind: "terminator" };
      case "eof":
        // as before: a header whose payload has not begun counts as a boundary (no caller
        // reads `partial` today; `e.inFrame` would tell)
        return { kind: "eof", partial: e.buffered > 0 };
      case "error": {
        const code = e.error instanceof FrameError ? "ECHUNKSIZE" : (e.error as NodeJS.ErrnoException).code;
        return { kind: "error", message: e.error.message, ...(code ? { code } : {}) };
      }
    }
  }
}

class WriteError extends Error {
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

/** Above this a chunk's length goes out as a write of its own instead of a copy of the payload. */
const COPY_LIMIT = 64 * 1024;

/**
 * Like writeChunk, but a large payload is not copied behind its length prefix: the two are
 * written together (corked: one writev for a socket).
 */
function writeFramed(sock: Duplex, payload: Bytes, stallMs?: number): Promise<void> {
  if (payload.length <= COPY_LIMIT || sock.destroyed || !sock.writable) return writeChunk(sock, payload, stallMs);
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setInt32(0, payload.length, false);
  sock.cork();
  sock.write(prefix);
  const done = writeBytes(sock, payload, stallMs);
  sock.uncork();
  return done;
}

/**
 * One chunk whose payload is the concatenation of `pieces` (encodeWirePieces: a create's image
 * not copied behind the bytes around it), written together (corked: one writev for a socket).
 */
export function writeFramedPieces(sock: Duplex, pieces: readonly Bytes[], stallMs?: number): Promise<void> {
  if (pieces.length === 1) return writeFramed(sock, pieces[0]!, stallMs);
  let length = 0;
  for (const p of pieces) length += p.length;
  if (length <= COPY_LIMIT || sock.destroyed || !sock.writable) {
    const all = new Uint8Array(length);
    let at = 0;
    for (const p of pieces) {
      all.set(p, at);
      at += p.length;
    }
    return writeChunk(sock, all, stallMs);
  }
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setInt32(0, length, false);
  sock.cork();
  sock.write(prefix);
  for (let i = 0; i < pieces.length - 1; i++) sock.write(pieces[i]!);
  // (the last write's callback: everything before it was handed to the kernel too)
  const done = writeBytes(sock, pieces[pieces.length - 1]!, stallMs);
  sock.uncork();
  return done;
}

/** The zero-length chunk ending a raw stream. */
export const writeTerminator = (sock: Duplex, stallMs?: number): Promise<void> => writeBytes(sock, new Uint8Array(4), stallMs);
