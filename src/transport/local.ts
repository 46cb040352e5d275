// The local client's side of a daemon's Unix socket (daemon.md §1, wire.md §3.1): connect,
// write framed wire messages, and read the replies (over the one frame reader, frames.ts).

import type net from "node:net";
import { encodeWire } from "../commands/codec.js";
import type { Bytes } from "../commands/der.js";
import { FrameError, encodeFrame } from "../commands/framing.js";
import type { Wire } from "../commands/types.js";
import { SocketFrames, connectUnix } from "./frames.js";

export type FrameEvent =
  | { readonly kind: "frame"; readonly payload: Bytes }
  /** socket EOF (also inside a frame), a length <= 0, or the connection closing */
  | { readonly kind: "end" }
  | { readonly kind: "error"; readonly message: string };

/** The local client's view of the replies; pauses the socket when 64 wait unread. */
export class ReplyReader {
  private readonly frames: SocketFrames;

  constructor(sock: net.Socket, maxFrame: number) {
    this.frames = new SocketFrames(sock, { maxFrame, stopAtEnd: true, highWater: 64 });
  }

  /** Whether anything (a reply, EOF, an error) has arrived yet. */
  get hasInput(): boolean {
    return this.frames.ready;
  }

  /** The next event; after an `end`/`error` event, further calls report `end`. */
  async next(): Promise<FrameEvent> {
    const e = await this.frames.next();
    if (e.kind === "frame") return e;
    if (e.kind !== "error") return { kind: "end" };
    const err: NodeJS.ErrnoException = e.error;
    return { kind: "error", message: err instanceof FrameError ? err.message : `read error: ${err.code ?? err.message}` };
  }
}

/** Connect to a Unix socket; rejects with a one-line message. */
export function connectDaemon(socketFile: string): Promise<net.Socket> {
  return connectUnix(socketFile).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`couldn't connect to ${socketFile} (${e.code ?? e.message})`);
  });
}

/** Write bytes, waiting for the kernel to take them (backpressure). */
export function writeAll(sock: net.Socket, data: Bytes): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed || !sock.writable) {
      reject(new Error("connection closed"));
      return;
    }
    sock.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

export const wireFrame = (w: Wire): Bytes => encodeFrame(encodeWire(w));
