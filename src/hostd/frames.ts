// Length-prefixed frames on a stream socket (wire.md §3.1): a 4-byte big-endian signed
// length, then that many bytes; a length <= 0 ends the stream. Used for wire messages and
// for the raw chunks of a block upload (the same framing).
import type { Socket } from "node:net";
import { FrameError, encodeFrame } from "../commands/framing.js";
import { ReadTimeout, SocketFrames } from "../net/frames.js";

export { FrameError, ReadTimeout };

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

  constructor(
    sock: Socket,
    private readonly maxFrame: number = DEFAULT_MAX_FRAME,
  ) {
    // Back-pressure: keep at most one maximal frame (plus slack) in memory.
    this.frames = new SocketFrames(sock, { maxFrame, highBytes: Math.min(maxFrame, 1 << 20) + 4 + 65536, lowBytes: 65536 });
  }

  /**
   * With `timeoutMs`, rejects with ReadTimeout (src/net/frames.ts) when no complete frame
   * (or end) arrives in time; the reader stays usable.
   */
  next(timeoutMs?: number): Promise<Uint8Array | null> {
    const r = this.queue.then(() => this.read(timeoutMs));
    this.queue = r.catch(() => undefined);
    return r;
  }

  private async read(timeoutMs?: number): Promise<Uint8Array | null> {
    if (this.finished) return null;
    const e = await this.frames.next(timeoutMs);
    switch (e.kind) {
      case "frame":
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
