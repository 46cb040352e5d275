// Length-prefixed frames on a stream socket (wire.md §3.1): a 4-byte big-endian signed
// length, then that many bytes; a length <= 0 ends the stream. Used for wire messages and
// for the raw chunks of a block upload (the same framing).
import type { Socket } from "node:net";
import { FrameError, encodeFrame } from "../commands/framing.js";
import { ReadTimeout, SocketFrames } from "./frames.js";

export { FrameError, ReadTimeout };

/** Frames up to this size are not counted against a MemoryBudget (commands without images). */
const BUDGET_FREE = 64 * 1024;

/**
 * Bytes that the request frames of all connections may take at once (hostd's
 * --max-request-memory): reserved when a frame's length is read, given back when the
 * request is done.
 */
export class MemoryBudget {
  used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** Upstream has no limit besides int32; images travel in one frame locally. */
export const DEFAULT_MAX_FRAME = 257 * 1024 * 1024; // an uncompressed image of --max-image-size (256 MiB) and its config

/**
 * Pull-style reader: `next()` resolves to the next payload, null at the end of the stream
 * (a length <= 0, or EOF at a frame boundary), and rejects with FrameError on EOF inside a
 * frame, a frame longer than `maxFrame`, or a socket error. Reads are serialised.
 */
export class FrameReader {
  private readonly frames: SocketFrames;
  private queue: Promise<unknown> = Promise.resolve();
  private finished = false;
  /** reservations (bytes) of the frames admitted and not yet handed out, in order */
  private readonly admitted: number[] = [];
  /** the reservation of the frame handed out last (the consumer holds it until its next read) */
  private current = 0;

  /**
   * With a `budget`, every frame larger than BUDGET_FREE is reserved from it when its
   * length is read (before its payload is buffered), and given back when the consumer
   * asks for the next frame or calls dispose(); a frame the budget cannot take is refused
   * (FrameError with `refused`).
   */
  constructor(
    sock: Socket,
    private readonly maxFrame: number = DEFAULT_MAX_FRAME,
    private readonly budget?: MemoryBudget,
  ) {
    // Back-pressure: keep at most one maximal frame (plus slack) in memory.
    this.frames = new SocketFrames(sock, {
      maxFrame,
      highBytes: Math.min(maxFrame, 1 << 20) + 4 + 65536,
      lowBytes: 65536,
      ...(budget !== undefined ? { admit: (len: number) => this.admit(len) } : {}),
    });
  }

  private admit(len: number): boolean {
    const cost = len > BUDGET_FREE ? len : 0;
    if (cost > 0 && !this.budget!.take(cost)) return false;
    this.admitted.push(cost);
    return true;
  }

  /**
   * With `timeoutMs`, rejects with ReadTimeout (src/transport/frames.ts) when no complete frame
   * (or end) arrives in time; the reader stays usable.
   */
  next(timeoutMs?: number): Promise<Uint8Array | null> {
    const r = this.queue.then(() => this.read(timeoutMs));
    this.queue = r.catch(() => undefined);
    return r;
  }

  /** Give back every reservation (the connection is done). */
  dispose(): void {
    const all = this.current + this.admitted.reduce((a, b) => a + b, 0);
    this.current = 0;
    this.admitted.length = 0;
    if (all > 0) this.budget?.give(all);
  }

  private async read(timeoutMs?: number): Promise<Uint8Array | null> {
    // the consumer is done with the frame it got last
    if (this.current > 0) this.budget?.give(this.current);
    this.current = 0;
    if (this.finished) return null;
    const e = await this.frames.next(timeoutMs);
    switch (e.kind) {
      case "frame":
        this.current = this.admitted.shift() ?? 0;
        return e.payload;
      case "eof":
        if (e.inFrame) throw new FrameError("end of file inside a frame");
        if (e.buffered > 0) throw new FrameError("end of file inside a frame header");
        this.finished = true; // at a boundary: the end, as a length <= 0
        return null;
      case "end":
        this.finished = true;
        return null;
      case "error":
        if (e.error instanceof FrameError && e.error.refused) {
          const b = this.budget!;
          throw new FrameError(
            `a request of ${e.error.frameLength} bytes does not fit: ${b.used} of ${b.limit} bytes are taken by requests in progress`,
            e.error.frameLength,
            true,
          );
        }
        if (e.error instanceof FrameError) throw new FrameError(`frame of ${e.error.frameLength} bytes exceeds the limit of ${this.maxFrame} bytes`);
        throw new FrameError(`read error: ${e.error.message}`);
    }
  }

  /** Read (and discard) frames again after the end marker (for a connection that goes on). */
  reset(): void {
    this.finished = false;
  }
}

/** Write one frame; resolves false if the socket is gone. */
export function writeFrame(sock: Socket, payload: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    if (sock.destroyed || !sock.writable) {
      resolve(false);
      return;
    }
    sock.write(encodeFrame(payload), (e) => resolve(e == null));
  });
}
