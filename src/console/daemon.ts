// The console daemon shell (albatross-console, daemon.md §3): a Unix socket server at
// <tmpdir>/util/console.sock and one reader per unikernel FIFO <tmpdir>/fifo/<name>.
// All decisions live in state.ts (bookkeeping), lines.ts (line splitting) and ring.ts;
// this file only moves bytes.

import fs, { constants as fsc, promises as fsp } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeWire, END } from "../commands/index.js";
import type { Command, Header, Wire } from "../commands/index.js";
import { makeName, nameFileComponent, nameToString } from "../core/name.js";
import type { Label, Name, Path } from "../core/name.js";
import { encodeConsoleData } from "./data.js";
import { initialSplitState, splitReads } from "./lines.js";
import type { SplitState } from "./lines.js";
import type { ConsoleEntry, Ring } from "./ring.js";
import { ConsoleState, NAME_USED, OPENING, PATH_USED } from "./state.js";
import { FramedConnection } from "../transport/connection.js";
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, refuseConnection, TEXT_TOO_MANY } from "../transport/limits.js";

const CONSOLE_SOCKET_NAME = "console.sock";
/** Commands to the console daemon are tiny; a larger frame is hostile (override: --max-frame). */
const DEFAULT_CONSOLE_MAX_FRAME = 1024 * 1024;
/**
 * Upstream listens with backlog 1. Node's Unix-socket connect is non-blocking, and on Linux
 * a full backlog makes it fail with EAGAIN instead of waiting, so a burst of clients (hostd
 * plus a few `console` subscribers, or tests) would see spurious connect errors.
 * Deviation: a modest backlog.
 */
const LISTEN_BACKLOG = 16;
/** A closed connection whose peer does not read its pending output is destroyed after this. */
const CLOSE_GRACE_MS = 10_000;

export interface ConsoleDaemonOptions {
  readonly tmpdir: string;
  /** per unikernel (default 5; upstream's off-by-one lets one more coexist) */
  readonly maxSubscribers?: number;
  /** an already listening socket (systemd socket activation) instead of <tmpdir>/util/console.sock */
  readonly listenFd?: number;
  /** largest accepted request frame (default 1 MiB) */
  readonly maxFrame?: number;
  /** concurrent connections (default 1024); one more gets `Failure "too many connections"` and is closed */
  readonly maxConnections?: number;
  /**
   * a connection without a request in progress and without a subscription is closed after
   * this long (default 60 s); subscriptions are never cut
   */
  readonly idleTimeoutMs?: number;
  /** a message, with its level when it is not "info" (src/core/log.ts) */
  readonly log?: ConsoleLog;
}

type ConsoleLog = (line: string, level?: "debug" | "info" | "warn" | "error") => void;

export interface ConsoleDaemon {
  close(): Promise<void>;
  readonly socketPath: string;
  /** open FIFO readers and client connections (diagnostics, tests) */
  stats(): { readonly readers: number; readonly connections: number };
}

const enc = new TextEncoder();
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

class Daemon {
  readonly state: ConsoleState<Client>;
  readonly clients = new Set<Client>();
  readonly readers = new Set<FifoReader>();
  readonly log: ConsoleLog;
  readonly maxFrame: number;
  /** set by close(): no new readers */
  closing = false;
  maxConnections = DEFAULT_MAX_CONNECTIONS;
  idleMs = DEFAULT_IDLE_TIMEOUT_MS;

  constructor(
    readonly tmpdir: string,
    maxSubscribers: number,
    maxFrame: number,
    log: ConsoleLog,
  ) {
    this.state = new ConsoleState<Client>(maxSubscribers);
    this.maxFrame = maxFrame;
    this.log = log;
  }

  fifoPath(name: Name): string {
    return join(this.tmpdir, "fifo", nameFileComponent(name));
  }

  /**
   * New lines of `name` (already in its ring): send them to every subscriber. A subscriber
   * whose connection is gone is unsubscribed (upstream: "a write error unsubscribes").
   * Returns the connections whose output buffer is full: the reader waits for them, as
   * upstream's read loop waits for its writes (so a slow subscriber slows the console down
   * instead of making this process buffer without bound).
   */
  deliver(path: Path, label: Label, name: Name, entries: readonly ConsoleEntry[]): Client[] {
    const subs = this.state.subscribers(path, label);
    if (subs.length === 0) return [];
    const blocked: Client[] = [];
    let cached: { version: number; bytes: Uint8Array } | null = null;
    for (const sub of [...subs]) {
      const c = sub.conn;
      if (!c.writable) {
        this.state.unsubscribe(path, label, c);
        continue;
      }
      if (cached === null || cached.version !== sub.version) cached = { version: sub.version, bytes: encodeConsoleData(sub.version, name, entries) };
      if (!c.sock.write(cached.bytes)) blocked.push(c);
    }
    return blocked;
  }

  /** Before a new reader for `nameText` starts: close the orphaned ones of that name. */
  reapOrphans(nameText: string): void {
    for (const r of [...this.readers]) {
      if (r.nameText !== nameText || !r.orphaned()) continue;
      this.log(`${nameText}: closing the reader of a removed FIFO that never had a writer`);
      r.destroy();
    }
  }

  closeAll(conns: readonly Client[]): void {
    for (const c of conns) c.close();
  }

  logAll(lines: readonly string[]): void {
    for (const l of lines) this.log(l);
  }
}

/** Resolves when `c` can take more output or is gone. */
function drained(c: Client): Promise<void> {
  return new Promise((resolve) => {
    if (!c.writable || !c.sock.writableNeedDrain) return resolve();
    const done = (): void => {
      c.sock.off("drain", done);
      c.sock.off("close", done);
      resolve();
    };
    c.sock.on("drain", done);
    c.sock.on("close", done);
  });
}

/**
 * Reads one unikernel's FIFO.
 *
 * The FIFO is opened O_RDONLY|O_NONBLOCK before the tender (the writer) exists, exactly as
 * upstream, so that albatrossd's blocking O_WRONLY open can succeed. Choice of reading
 * mechanism (measured on Linux, Node 20):
 * - net.Socket({ fd }) wraps the fd in a libuv pipe handle driven by epoll. Linux reports a
 *   FIFO read end readable (or hung up) only once a writer has opened it and written or
 *   closed — the same condition upstream's `Lwt_unix.wait_read` waits for — and libuv does
 *   not read before epoll says so. Hence the "no writer yet" state is never taken as EOF,
 *   while the writer's close is seen as EOF at once. No thread-pool thread is held.
 * - fs.createReadStream / fs.read go through the thread pool: on an O_NONBLOCK fd they fail
 *   with EAGAIN (or report EOF while no writer exists), and on a blocking fd every idle
 *   console would pin one of the four pool threads.
 * - Holding our own write fd on the FIFO would hide the EOF of the tender's exit, which
 *   must turn the console inactive (list-inactive).
 * A restarted tender is a new create in albatrossd (new FIFO, new Console_add), so a new
 * reader is started for it; ring and subscribers carry over (state.ts).
 *
 * libuv reads up to 64 KiB at a time; `splitReads` cuts that into the 512-byte reads that
 * upstream's algorithm is defined on, and the whole read shares one timestamp.
 */
class FifoReader {
  private split: SplitState = initialSplitState;
  private readonly stream: net.Socket;
  readonly name: Name;
  readonly nameText: string;
  private sawData = false;

  constructor(
    private readonly daemon: Daemon,
    private readonly fd: number,
    private readonly path: Path,
    private readonly label: Label,
    private readonly ring: Ring,
    generation: number,
    budget: bigint,
  ) {
    this.name = makeName(path, label);
    this.nameText = nameToString(this.name);
    this.stream = new net.Socket({ fd, readable: true, writable: false });
    daemon.readers.add(this);
    this.stream.on("data", (buf: Buffer) => this.onData(buf));
    this.stream.on("error", (e) => daemon.log(`${nameToString(this.name)} error while reading: ${errText(e)}`, "warn"));
    this.stream.on("close", () => {
      daemon.readers.delete(this);
      daemon.state.readerEnded(path, label, generation, budget);
      daemon.log(`${nameToString(this.name)} end of file while reading`);
    });
  }

  private onData(buf: Buffer): void {
    try {
      this.consume(buf);
    } catch (e) {
      // Never let one console take the daemon down (an exception here would be uncaught).
      this.daemon.log(`${nameToString(this.name)} error while processing console data: ${errText(e)}`, "warn");
    }
  }

  private consume(buf: Buffer): void {
    this.sawData = true;
    const r = splitReads(this.split, buf);
    this.split = r.state;
    if (r.lines.length === 0) return;
    const timestamp = Date.now();
    const entries: ConsoleEntry[] = r.lines.map((line) => ({ timestamp, line }));
    for (const e of entries) this.ring.push(e.timestamp, e.line);
    const blocked = this.daemon.deliver(this.path, this.label, this.name, entries);
    if (blocked.length > 0) {
      this.stream.pause();
      void Promise.all(blocked.map(drained)).then(() => {
        if (!this.stream.destroyed) this.stream.resume();
      });
    }
  }

  /**
   * Never saw a writer's byte and its FIFO has been unlinked: nobody can open it any more,
   * so no EOF will ever come (albatrossd removes the FIFO when exec fails after
   * Console_add). Upstream keeps such a reader — and its fd — forever. Synchronous fstat:
   * the fd cannot be closed and reused between the `destroyed` check and the call.
   */
  orphaned(): boolean {
    if (this.sawData || this.stream.destroyed) return false;
    try {
      return fs.fstatSync(this.fd).nlink === 0;
    } catch {
      return false;
    }
  }

  destroy(): void {
    this.stream.destroy();
  }
}

type Next = "continue" | "close";

/** One accepted connection. */
class Client extends FramedConnection {
  private busy = false;
  private eof = false;
  /** set after a subscribe: the next input of any kind closes the connection */
  private subscription: { path: Path; label: Label } | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly daemon: Daemon,
    sock: net.Socket,
  ) {
    super(sock, daemon.maxFrame, CLOSE_GRACE_MS);
    daemon.clients.add(this);
    this.armIdle();
    sock.on("data", (chunk: Buffer) => {
      if (this.closed) return;
      this.disarmIdle();
      this.decoder.push(chunk);
      void this.drain();
    });
    sock.on("end", () => {
      this.eof = true;
      void this.drain();
    });
    sock.on("error", (e) => daemon.log(`connection error: ${errText(e)}`, "debug"));
    sock.on("close", () => {
      this.closed = true;
      this.disarmIdle();
      daemon.clients.delete(this);
      const s = this.subscription;
      if (s !== null) daemon.state.waitingClosed(s.path, s.label, this);
    });
  }

  /**
   * Not upstream: a connection waiting for its next request (no request in progress, no
   * subscription) is closed after --idle-timeout. hostd's own connection, idle between
   * creates, is closed too; hostd reconnects (and sends a request that met the close
   * once more).
   */
  private armIdle(): void {
    this.disarmIdle();
    if (this.closed || this.subscription !== null || this.busy) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.closed || this.subscription !== null || this.busy) return;
      this.daemon.log(`closing a connection idle for ${this.daemon.idleMs} ms`, "debug");
      this.close();
    }, this.daemon.idleMs);
    this.idleTimer.unref();
  }

  private disarmIdle(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** Process buffered frames one at a time (a Console_add awaits its open). */
  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.loop();
    } catch (e) {
      // A bug must cost one connection, not the daemon (this promise is not awaited).
      this.daemon.log(`error while handling a connection: ${errText(e)}`, "warn");
      this.close();
    } finally {
      this.busy = false;
      this.armIdle();
    }
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      let frame: Uint8Array | typeof END | null;
      try {
        frame = this.decoder.next();
      } catch (e) {
        this.daemon.log(`exception while reading: ${errText(e)}`, "warn");
        this.close();
        return;
      }
      if (frame === null) {
        if (this.eof) this.close();
        return;
      }
      // After a subscribe the daemon reads once more and closes, whatever arrives.
      if (frame === END || this.subscription !== null) {
        this.close();
        return;
      }
      let wire: Wire;
      try {
        wire = decodeWire(frame);
      } catch (e) {
        this.daemon.log(`exception while reading: ${errText(e)}`, "warn");
        this.close();
        return;
      }
      let next = this.handle(wire);
      if (typeof next !== "string") {
        this.sock.pause();
        next = await next;
        if (!this.sock.destroyed) this.sock.resume();
      }
      if (next === "close") {
        this.close();
        return;
      }
    }
  }

  private handle(wire: Wire): Next | Promise<Next> {
    const { header, payload } = wire;
    if (payload.kind !== "command" || !isConsoleCommand(payload.command)) {
      this.daemon.log(`unexpected wire (${payload.kind === "command" ? payload.command.kind : payload.kind}) for ${nameToString(header.name)}`, "warn");
      return "close";
    }
    const cmd = payload.command;
    const { name } = header;
    if (cmd.kind === "console-list-inactive") {
      if (name.label !== null) {
        this.send(failure(header, NAME_USED));
        return "close";
      }
      const names = this.daemon.state.listInactive(name.path);
      this.send({ header, payload: { kind: "reply", reply: { kind: "consoles", names } } });
      return "close";
    }
    if (name.label === null) {
      this.send(failure(header, PATH_USED));
      return "close";
    }
    const label = name.label;
    if (cmd.kind === "console-add") return this.add(header, name.path, label, cmd.budget);
    return this.subscribe(header, name.path, label, cmd.sinceCount);
  }

  private async add(header: Header, path: Path, label: Label, budget: bigint): Promise<Next> {
    const d = this.daemon;
    const name = makeName(path, label);
    const file = d.fifoPath(name);
    const fd = await openFifo(file, d.log);
    if (d.closing) {
      if (fd !== null) fs.close(fd, () => undefined);
      return "close";
    }
    if (fd === null) {
      // Upstream keeps reading commands after a failed add, too.
      return this.send(failure(header, OPENING)) ? "continue" : "close";
    }
    d.reapOrphans(nameToString(name));
    const decision = d.state.add(path, label, budget);
    d.logAll(decision.log);
    d.closeAll(decision.close);
    try {
      new FifoReader(d, fd, path, label, decision.ring, decision.reader, budget);
    } catch (e) {
      // Not expected for a FIFO (checked by openFifo); keep the bookkeeping consistent.
      d.log(`${file} error while reading: ${errText(e)}`, "warn");
      fs.close(fd, () => undefined);
      d.state.readerEnded(path, label, decision.reader, budget);
    }
    return this.send({ header, payload: { kind: "reply", reply: { kind: "empty" } } }) ? "continue" : "close";
  }

  private subscribe(header: Header, path: Path, label: Label, sinceCount: Extract<Command, { kind: "console-subscribe" }>["sinceCount"]): Next {
    const d = this.daemon;
    const decision = d.state.subscribe(path, label, this, header.version);
    d.logAll(decision.log);
    d.closeAll(decision.close); // may include this very connection (its label was dropped)
    this.subscription = { path, label };
    if (!this.send({ header, payload: { kind: "reply", reply: { kind: "string", text: enc.encode(decision.reply) } } })) {
      d.state.unsubscribe(path, label, this);
      return "continue"; // already closing
    }
    if (decision.ring !== null) {
      const history = sinceCount.kind === "count" ? decision.ring.last(sinceCount.count) : decision.ring.since(sinceCount.since.getTime());
      if (history.length > 0) this.sock.write(encodeConsoleData(header.version, makeName(path, label), history));
    }
    // Keep the connection: live lines follow; the next input (or EOF) closes it.
    return "continue";
  }
}

function isConsoleCommand(c: Command): c is Extract<Command, { kind: "console-add" | "console-subscribe" | "console-list-inactive" }> {
  return c.kind === "console-add" || c.kind === "console-subscribe" || c.kind === "console-list-inactive";
}

function failure(header: Header, message: string): Wire {
  return { header, payload: { kind: "failure", message: enc.encode(message) } };
}

/**
 * Open a FIFO for reading without blocking (no writer exists yet). Returns the raw fd, or
 * null (logged) on failure. Deviation: upstream would also "read" a regular file or a
 * directory placed there; albatrossd only sends Console_add after making sure a FIFO
 * exists, so anything else is refused (`opening`) rather than, e.g., reading /dev/zero.
 * (The callback API is used because a promises FileHandle cannot give its fd away.)
 */
async function openFifo(file: string, log: ConsoleLog): Promise<number | null> {
  let fd: number;
  try {
    fd = await fsOpen(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (e) {
    log(`${file} error in open: ${errText(e)}`, "warn");
    return null;
  }
  try {
    if ((await fsFstat(fd)).isFIFO()) return fd;
    log(`${file} is not a FIFO`, "warn");
  } catch (e) {
    log(`${file} error in fstat: ${errText(e)}`, "warn");
  }
  fs.close(fd, () => undefined);
  return null;
}

const fsOpen = promisify(fs.open) as (path: string, flags: number) => Promise<number>;
const fsFstat = promisify(fs.fstat) as (fd: number) => Promise<fs.Stats>;

/** Start the daemon: listen, then serve until close(). */
export async function startConsoleDaemon(opts: ConsoleDaemonOptions): Promise<ConsoleDaemon> {
  const log = opts.log ?? ((): void => undefined);
  const daemon = new Daemon(opts.tmpdir, opts.maxSubscribers ?? 5, opts.maxFrame ?? DEFAULT_CONSOLE_MAX_FRAME, log);
  daemon.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  daemon.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    // Not upstream: a cap on connections (a flood of idle ones would exhaust descriptors).
    if (daemon.clients.size >= daemon.maxConnections) {
      log(`too many connections (${daemon.maxConnections}), refusing one`, "warn");
      refuseConnection(sock, TEXT_TOO_MANY);
      return;
    }
    new Client(daemon, sock);
  });
  let socketPath: string;
  let ownsPath = false;
  if (opts.listenFd !== undefined) {
    await listen(server, { fd: opts.listenFd });
    const a = server.address();
    socketPath = typeof a === "string" ? a : `fd ${opts.listenFd}`;
  } else {
    socketPath = join(opts.tmpdir, "util", CONSOLE_SOCKET_NAME);
    await fsp.mkdir(join(opts.tmpdir, "util"), { recursive: true });
    try {
      await fsp.unlink(socketPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM") throw new Error(`cannot remove ${socketPath}: permission denied (is the daemon running as the right user?)`);
      if (code !== "ENOENT") throw new Error(`cannot remove ${socketPath}: ${errText(e)}`);
    }
    // Bind with group bits unmasked (upstream: umask (old land 0o707)) so that the group of
    // the socket (albatross) may connect. The bind happens synchronously inside listen().
    const old = process.umask(0o022);
    process.umask(old & 0o707);
    try {
      await listen(server, { path: socketPath, backlog: LISTEN_BACKLOG }, () => process.umask(old));
    } finally {
      process.umask(old);
    }
    ownsPath = true;
  }
  // e.g. EMFILE while accepting: log it, keep serving (an unhandled 'error' would exit).
  server.on("error", (e) => log(`listening socket error: ${errText(e)}`, "error"));
  log(`listening on ${socketPath}`);
  let closing: Promise<void> | null = null;
  return {
    socketPath,
    stats: () => ({ readers: daemon.readers.size, connections: daemon.clients.size }),
    close(): Promise<void> {
      closing ??= (async () => {
        daemon.closing = true;
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const c of [...daemon.clients]) c.destroy();
        for (const r of [...daemon.readers]) r.destroy();
        await done;
        if (ownsPath) await fsp.unlink(socketPath).catch(() => undefined);
      })();
      return closing;
    },
  };
}

function listen(server: net.Server, options: net.ListenOptions | { fd: number }, afterCall?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once("error", onError);
    const done = (): void => {
      server.off("error", onError);
      resolve();
    };
    if ("fd" in options) server.listen(options, done);
    else server.listen(options, done);
    afterCall?.();
  });
}
