// One accepted connection on a daemon's Unix socket (the console and stats daemons): frames
// in through a bounded decoder, wire messages out, and a close that lets pending output
// drain first (destroyed after a grace period if the peer does not read it).
import type net from "node:net";
import { encodeFrame, encodeWire, FrameDecoder } from "../commands/index.js";
import type { Wire } from "../commands/index.js";

export class FramedConnection {
  protected closed = false;
  protected readonly decoder: FrameDecoder;

  constructor(
    readonly sock: net.Socket,
    maxFrame: number,
    private readonly closeGraceMs: number,
  ) {
    this.decoder = new FrameDecoder({ maxFrame });
  }

  /** Can we still write to it? */
  get writable(): boolean {
    return !this.closed && !this.sock.destroyed && this.sock.writable;
  }

  send(w: Wire): boolean {
    if (!this.writable) return false;
    this.sock.write(encodeFrame(encodeWire(w)));
    return true;
  }

  /** Close after pending output was flushed (upstream closes the fd after its awaited writes). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.end(() => this.sock.destroy());
    const t = setTimeout(() => this.sock.destroy(), this.closeGraceMs);
    t.unref();
    this.sock.once("close", () => clearTimeout(t));
  }

  destroy(): void {
    this.closed = true;
    this.sock.destroy();
  }
}
