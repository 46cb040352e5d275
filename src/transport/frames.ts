// The one frame reader on stream sockets (wire.md §3): feeds a Unix or TLS socket's bytes,
// EOF and errors into the pure FrameStream (commands/framing.ts), with backpressure
// (highWater/highBytes/lowBytes), read timeouts and a frame size limit. Its views, each only
// options plus the events in its caller's terms: local.ts ReplyReader (the local client),
// chunks.ts ChunkReader (the TLS endpoint, both sides, and the remote client), requests.ts
// FrameReader (a daemon's requests, with a memory budget). Also the one Unix socket connect.

import net from "node:net";
import type { Duplex } from "node:stream";
import { FrameStream, type FrameStreamEvent, type FrameStreamOptions } from "../commands/framing.js";

export class ReadTimeout extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReadTimeout";
  }
}

export interface SocketFramesOptions extends FrameStreamOptions {
  /** pause the socket once this many events wait (default: no limit) */
  readonly highWater?: number;
  /** ... or once this many received bytes wait (default: no limit) */
  readonly highBytes?: number;
  /** bytes must have dropped below this before a paused socket resumes (default: no limit) */
  readonly lowBytes?: number;
  /** destroy the socket on an oversized frame (a FrameError), at once */
  readonly destroyOnFrameError?: boolean;
}

/**
 * Pull-style frame reader on a socket. Incoming bytes are decoded as they arrive; when more
 * than `highWater` events or `highBytes` bytes wait, the socket is paused (TCP/Unix
 * backpressure to the sender) until the consumer has caught up to half the events and
 * below `lowBytes` — or waits for more, since the frame being assembled may be larger.
 * One `next()` may be pending at a time.
 */
export class SocketFrames {
  private readonly stream: FrameStream;
  private readonly highWater: number;
  private readonly highBytes: number;
  private readonly lowBytes: number;
  private waiter: ((e: FrameStreamEvent) => void) | null = null;

  constructor(
    private readonly sock: Duplex,
    opts: SocketFramesOptions,
  ) {
    const s = (this.stream = new FrameStream(opts));
    this.highWater = opts.highWater ?? Infinity;
    this.highBytes = opts.highBytes ?? Infinity;
    this.lowBytes = opts.lowBytes ?? Infinity;
    sock.on("data", (b: Buffer) => {
      if (s.push(b) && opts.destroyOnFrameError) sock.destroy();
      this.wake();
      // (a consumer still waiting is waiting for the rest of a frame: never pause then)
      if (!s.finished && !this.waiter && (s.queued >= this.highWater || s.pendingBytes > this.highBytes) && !sock.isPaused()) sock.pause();
    });
    const ended = (): void => {
      s.close();
      this.wake();
    };
    sock.on("end", ended);
    sock.on("close", ended);
    sock.on("error", (e: Error) => {
      s.fail(e);
      this.wake();
    });
  }

  /** Whether an event is ready without waiting (a frame, the end, EOF, an error). */
  get ready(): boolean {
    return this.stream.queued > 0 || this.stream.finished;
  }

  /**
   * The next event. With `timeoutMs`, rejects with ReadTimeout when nothing arrives in time
   * (the reader stays usable; the caller normally destroys the socket).
   */
  next(timeoutMs?: number): Promise<FrameStreamEvent> {
    const s = this.stream;
    const e = s.take();
    if (this.sock.isPaused() && !s.finished && (e === null || (s.queued < this.highWater / 2 && s.pendingBytes < this.lowBytes))) {
      this.sock.resume();
    }
    if (e) return Promise.resolve(e);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      this.waiter = (ev) => {
        if (timer) clearTimeout(timer);
        resolve(ev);
      };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => {
          this.waiter = null;
          reject(new ReadTimeout(`no data for ${timeoutMs} ms`));
        }, timeoutMs);
        timer.unref?.();
      }
    });
  }

  private wake(): void {
    const e = this.waiter && this.stream.take();
    if (!e) return;
    const w = this.waiter!;
    this.waiter = null;
    w(e);
  }
}

/**
 * Connect to a Unix socket; rejects with the socket's own error (each caller words it).
 * Later socket errors are left to the reader/writer (which see them); a no-op listener
 * keeps them from becoming uncaught (EPIPE when the daemon already replied and closed).
 */
export function connectUnix(file: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path: file });
    const onError = (e: NodeJS.ErrnoException) => {
      sock.destroy();
      reject(e);
    };
    sock.once("error", onError);
    sock.once("connect", () => {
      sock.off("error", onError);
      sock.on("error", () => undefined);
      resolve(sock);
    });
  });
}

/** Pause before connection attempt `attempt + 1` (0-based): `firstMs`, doubling, at most `maxMs`. Pure. */
export function retryDelay(attempt: number, firstMs = 50, maxMs = 1000): number {
  return Math.min(maxMs, firstMs * 2 ** Math.min(attempt, 30));
}

/** Errors a daemon that is still starting gives: no socket file yet, nobody listening yet, backlog full. */
const NOT_YET = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN"]);

export interface PatientConnectOptions {
  /** keep trying for this long (0: one attempt) */
  readonly timeoutMs: number;
  /** pauses between attempts: retryDelay(attempt, firstDelayMs, maxDelayMs); defaults 50 and 1000 ms */
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /** called once, when the first attempt failed and waiting begins (one log line, not one per attempt) */
  readonly onWait?: (error: NodeJS.ErrnoException) => void;
}

/**
 * connectUnix, retried with growing pauses (retryDelay) while the error says the daemon is
 * not up yet (NOT_YET) and `timeoutMs` has not passed; any other error, or the last one
 * once the time is up, is thrown as connectUnix throws it.
 */
export async function connectUnixPatiently(file: string, o: PatientConnectOptions): Promise<net.Socket> {
  const deadline = Date.now() + o.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await connectUnix(file);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const left = deadline - Date.now();
      if (!NOT_YET.has(err.code ?? "") || left <= 0) throw err;
      if (attempt === 0) o.onWait?.(err);
      await new Promise((r) => setTimeout(r, Math.min(left, retryDelay(attempt, o.firstDelayMs, o.maxDelayMs))));
    }
  }
}
