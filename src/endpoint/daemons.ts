// The endpoint's connections to the local daemons' Unix sockets (daemon.md §6 step 3).
//
// A daemon takes one command per connection (albatrossd: the chain's policy adds, then one
// command; every other reply closes it), so a connection is never reused. It can be opened
// ahead of time, though: after a request has been served by a socket, one spare connection
// to that socket is opened in the background, and the next request takes it ready-made —
// the connect, and the daemon's accept, are then off the request's path (with one client at
// a time, 3-5 % more connections per second in bench/endpoint.bench.ts on a 2-core VM).
//
// Nothing is written on a spare until the request that takes it has been authorised (the
// endpoint only asks for a connection after its checks), so a spare is exactly the
// connection the request would have opened, a little earlier. A daemon never speaks first:
// a spare that receives anything, is closed by the daemon (restart, shutdown) or fails is
// dropped, and the next request connects afresh (and reports "couldn't reach service" if
// that fails). One spare per socket at most, opened only after a request to it succeeded:
// an endpoint whose daemon is down does not keep retrying in the background.
//
// A spare lives at most SPARE_MAX_AGE_MS. The daemons close connections that wait for a
// request longer than their --idle-timeout (60 s by default, at least 1 s): a spare taken
// just as the daemon closes it would lose its request. Kept well below the daemons'
// default, the age leaves that race to daemons configured with an idle timeout under it.

import net from "node:net";
import { connectUnix } from "../transport/frames.js";

/** The longest a spare connection is kept before it is closed unused. */
const SPARE_MAX_AGE_MS = 10_000;

interface Spare {
  readonly sock: net.Socket;
  /** removes the listeners that watch the idle spare */
  readonly unwatch: () => void;
}

export class DaemonConnections {
  private readonly spares = new Map<string, Spare>();
  private readonly pending = new Set<string>();
  private closed = false;
  /** requests served by a spare / by a fresh connect (for tests and statistics) */
  spareHits = 0;
  freshConnects = 0;

  /** `spares: false`: every request connects afresh (upstream's behaviour). */
  constructor(
    private readonly useSpares = true,
    private readonly maxAgeMs = SPARE_MAX_AGE_MS,
  ) {}

  /** A connected socket to `file`: the spare if one is ready, else a fresh connection. */
  connect(file: string): Promise<net.Socket> {
    const spare = this.spares.get(file);
    // (a spare still connecting is left for a later request)
    if (spare && !spare.sock.connecting && !spare.sock.destroyed && spare.sock.writable) {
      this.spares.delete(file);
      spare.unwatch();
      // as connectUnix leaves its sockets: later errors are the reader's/writer's to see
      spare.sock.on("error", () => undefined);
      this.spareHits++;
      return Promise.resolve(spare.sock);
    }
    this.freshConnects++;
    return connectUnix(file);
  }

  /**
   * Open a spare connection to `file` in the background, unless there is one already. The
   * endpoint calls this when a request's exchange with the daemon is over; the connect
   * itself waits for the next turn of the event loop (a timer): measured on the 2-core VM,
   * connecting at once — while the daemon is still taking the finished connection down, or
   * still answering — gains less than half as much.
   */
  prepare(file: string): void {
    if (!this.useSpares || this.closed || this.spares.has(file) || this.pending.has(file)) return;
    this.pending.add(file);
    setTimeout(() => {
      this.pending.delete(file);
      this.open(file);
    }, 0).unref();
  }

  private open(file: string): void {
    if (this.closed || this.spares.has(file)) return;
    const sock = net.createConnection({ path: file });
    const drop = (): void => {
      clearTimeout(aged);
      if (this.spares.get(file) === spare) this.spares.delete(file);
      sock.destroy();
    };
    const aged = setTimeout(drop, this.maxAgeMs);
    aged.unref();
    const spare: Spare = {
      sock,
      unwatch: () => {
        clearTimeout(aged);
        sock.off("data", drop);
        sock.off("end", drop);
        sock.off("close", drop);
        sock.off("error", drop);
      },
    };
    // (a data listener: the idle spare is read, so an EOF or unexpected bytes are noticed)
    sock.on("data", drop);
    sock.on("end", drop);
    sock.on("close", drop);
    sock.on("error", drop);
    this.spares.set(file, spare);
  }

  /** The spares this holds right now (tests). */
  get spareCount(): number {
    return this.spares.size;
  }

  /** Close every spare; no new ones are opened. */
  close(): void {
    this.closed = true;
    for (const s of this.spares.values()) {
      s.unwatch();
      s.sock.destroy();
    }
    this.spares.clear();
  }
}
