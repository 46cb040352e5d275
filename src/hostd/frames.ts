// Length-prefixed frames on a stream socket (wire.md §3.1): a 4-byte big-endian signed
// length, then that many bytes; a length <= 0 ends the stream. Used for wire messages and
// for the raw chunks of a block upload (the same framing).
import type { Socket } from "node:net";

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

/** Upstream has no limit besides int32; images travel in one frame locally. */
export const DEFAULT_MAX_FRAME = 256 * 1024 * 1024;

/**
 * Pull-style reader: `next()` resolves to the next payload, null at the end of the stream
 * (a length <= 0, or EOF at a frame boundary), and rejects with FrameError on EOF inside a
 * frame, a frame longer than `maxFrame`, or a socket error. Reads are serialised.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private eof = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private finished = false;

  constructor(
    private readonly sock: Socket,
    private readonly maxFrame: number = DEFAULT_MAX_FRAME,
  ) {
    sock.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      // Back-pressure: keep at most one maximal frame (plus slack) in memory.
      if (this.buffered > Math.min(this.maxFrame, 1 << 20) + 4 + 65536) sock.pause();
      this.notify();
    });
    sock.on("end", () => {
      this.eof = true;
      this.notify();
    });
    sock.on("close", () => {
      this.eof = true;
      this.notify();
    });
    sock.on("error", (e) => {
      this.error = e;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async need(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.error !== null) throw new FrameError(`read error: ${this.error.message}`);
      if (this.eof) return false;
      if (this.sock.isPaused()) this.sock.resume();
      await new Promise<void>((res) => (this.wake = res));
    }
    return true;
  }

  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    if (this.sock.isPaused() && this.buffered < 65536) this.sock.resume();
    return out;
  }

  next(): Promise<Uint8Array | null> {
    const r = this.queue.then(() => this.read());
    this.queue = r.catch(() => undefined);
    return r;
  }

  private async read(): Promise<Uint8Array | null> {
    if (this.finished) return null;
    if (!(await this.need(4))) {
      if (this.buffered > 0) throw new FrameError("end of file inside a frame header");
      this.finished = true;
      return null;
    }
    const len = this.take(4).readInt32BE(0);
    if (len <= 0) {
      this.finished = true;
      return null;
    }
    if (len > this.maxFrame) throw new FrameError(`frame of ${len} bytes exceeds the limit of ${this.maxFrame} bytes`);
    if (!(await this.need(len))) throw new FrameError("end of file inside a frame");
    const b = this.take(len);
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }

  /** Read (and discard) frames again after the end marker (for a connection that goes on). */
  reset(): void {
    this.finished = false;
  }
}

export function frame(payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(4 + payload.length);
  b.writeInt32BE(payload.length, 0);
  b.set(payload, 4);
  return b;
}

/** Write one frame; resolves false if the socket is gone. */
export function writeFrame(sock: Socket, payload: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    if (sock.destroyed || !sock.writable) {
      resolve(false);
      return;
    }
    sock.write(frame(payload), (e) => resolve(e == null));
  });
}
