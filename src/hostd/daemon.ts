// hostd's shell: the albatrossd process (daemon.md §2). Owns the sockets, files, processes
// and taps; every decision is taken by the pure core in vmmd.ts. All state changes run
// under one global lock (upstream's create lock).
import { promises as fsp, writeSync } from "node:fs";
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { createServer, type Server, type Socket } from "node:net";
import { decodeWire, encodeWire } from "../commands/codec.js";
import { WIRE_VERSION, type Command, type Header, type UnikernelConfig, type Wire } from "../commands/types.js";
import { nameToString, rootName, type Name } from "../core/name.js";
import { connectUnix } from "../transport/frames.js";
import { socketPath as daemonSocket } from "../transport/routes.js";
import { emptyResources } from "../policy/resources.js";
import { runBlockStep, type BlockHost } from "./blocks.js";
import { FrameError, FrameReader, MemoryBudget, ReadTimeout, writeFrame } from "../transport/requests.js";
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, refuseConnection, TEXT_TOO_MANY } from "../transport/limits.js";
import { DEFAULT_MAX_REQUEST_MEMORY } from "./limits.js";
import { NameOwners } from "./owners.js";
import { connectConsole, openHost, StartupError } from "./startup.js";
import { DEFAULT_MAX_IMAGE_SIZE, imageTooLarge, readImageManifest } from "./image.js";
import { zlibError } from "./sparse.js";
import { destroyTap, NetError } from "./net.js";
import { FifoSpares, signalProcess } from "./process.js";
import { fifoDir } from "./paths.js";
import { inProcess, type Launcher } from "./launcher.js";
import { errText } from "./fsio.js";
import { Intents, type IntentRecord } from "./runtime.js";
import { createUnikernel, PAUSE_STEPS, recordFailure, type CreateHost, type PauseStep } from "./create.js";
import type { Store } from "./store.js";
import { formatExit, type ExitStatus } from "./types.js";
import {
  beginShutdown,
  failure,
  handleCommand,
  handleExit,
  initialState,
  replyWire,
  restartDecision,
  restartChecked,
  restoreOrder,
  stateToDump,
  statsDisconnected,
  success,
  successString,
  TEXT,
  type Cleanup,
  type Outcome,
  type Step,
  type VmmdOptions,
  type VmmdState,
} from "./vmmd.js";

export interface HostdOptions {
  readonly tmpdir: string;
  readonly dbdir: string;
  readonly dropPath: boolean;
  /** an inherited listening socket (systemd socket activation) instead of <tmpdir>/util/vmmd.sock */
  readonly listenFd?: number;
  readonly maxFrame: number;
  /** default `<tmpdir>/util/console.sock` */
  readonly consoleSocket?: string;
  /** how long start-up waits for the console daemon's socket (0: one attempt, as upstream) */
  readonly consoleTimeoutMs: number;
  /** default `<tmpdir>/util/vmmd.sock` */
  readonly socket?: string;
  /** debug messages are shown (e.g. a create's timing line is worth making) */
  readonly verbose: boolean;
  /** where messages go: the CLI's logger (src/core/log.ts), which filters by level */
  readonly log: (level: Level, msg: string) => void;
  /** the largest inflated image (default 256 MiB): a decompression bomb stops there */
  readonly maxImageSize?: number;
  /** concurrent connections on the socket (default 1024); further ones get a Failure and are closed */
  readonly maxConnections?: number;
  /** a connection waiting this long for its next request (or upload data) is closed (default 60 s) */
  readonly idleTimeoutMs?: number;
  /**
   * bytes the request frames over 64 KiB of all connections may take at once (default
   * 1 GiB): held from the frame's length until the request is done; one more is refused
   */
  readonly maxRequestMemory?: number;
  /** start from the newest intact stored state (store.ts) */
  readonly restoreBackup?: boolean;
  /** the longest a recorded change waits before it is folded into the state file (ms) */
  readonly foldDelayMs?: number;
}

// the test hook's steps (create.ts)
export { PAUSE_STEPS, type PauseStep };

export { StartupError };

type Level = "debug" | "info" | "warn" | "error";

/** One global lock (FIFO order). */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => next);
    await prev;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        release();
      }
    };
  }
}

/** A client connection to albatross-console or the stats channel: request, one reply. */
class RequestChannel {
  private readonly reader: FrameReader;
  constructor(
    readonly sock: Socket,
    maxFrame: number,
    reader?: FrameReader,
  ) {
    this.reader = reader ?? new FrameReader(sock, maxFrame);
  }
  get alive(): boolean {
    return !this.sock.destroyed;
  }
  async request(w: Wire): Promise<Wire> {
    if (!(await writeFrame(this.sock, encodeWire(w)))) throw new Error("write failed");
    const f = await this.reader.next();
    if (f === null) throw new Error("connection closed");
    return decodeWire(f);
  }
  close(): void {
    this.sock.destroy();
  }
}

/** Commands that only read the state: answered without the global lock. */
const QUERIES: ReadonlySet<Command["kind"]> = new Set(["unikernel-info", "unikernel-info-v5", "unikernel-info-v4", "policy-info", "block-info"]);

/** The commands that change what runs under a name: one at a time per name (owners.ts). */
const LIFECYCLE: ReadonlySet<Command["kind"]> = new Set(["unikernel-create", "unikernel-force-create", "unikernel-destroy", "unikernel-restart"]);

const deflateAsync = promisify(zlib.deflate);
const inflateAsync = promisify(zlib.inflate);

export class Hostd {
  private state: VmmdState;
  private readonly lock = new Mutex();
  private readonly owners = new NameOwners();
  private readonly core: VmmdOptions;
  private console: RequestChannel | null = null;
  private stats: RequestChannel | null = null;
  private server: Server | null = null;
  private readonly exitWaiters = new Map<number, (s: ExitStatus) => void>();
  private readonly exitPromises = new Map<number, Promise<ExitStatus>>();
  private readonly connections = new Set<Socket>();
  private readonly maxConnections: number;
  private readonly idleMs: number;
  /** the request frames in memory (--max-request-memory) */
  readonly requestMemory: MemoryBudget;
  private readonly spares: FifoSpares;
  private ready!: Promise<void>;
  private shutdownPromise: Promise<void> | null = null;
  private store!: Store;
  private launcher: Launcher = inProcess;
  private readonly intents: Intents;
  /** the intent record of each running unikernel, by name text (removed once its resources are freed) */
  private readonly records = new Map<string, IntentRecord>();
  private readonly pause = parsePause(process.env["DROMEDARY_TEST_PAUSE_AT"]);
  /** what a create needs of the daemon (create.ts) */
  private readonly createHost: CreateHost;
  /** what the block commands need of it (blocks.ts) */
  private readonly blockHost: BlockHost;
  readonly socketPath: string;
  readonly consolePath: string;

  constructor(readonly opts: HostdOptions) {
    this.core = { tmpdir: opts.tmpdir, dbdir: opts.dbdir, dropPath: opts.dropPath, maxImageBytes: opts.maxImageSize ?? DEFAULT_MAX_IMAGE_SIZE };
    this.state = initialState(emptyResources());
    this.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.requestMemory = new MemoryBudget(opts.maxRequestMemory ?? DEFAULT_MAX_REQUEST_MEMORY);
    this.socketPath = opts.socket ?? daemonSocket(opts.tmpdir, "vmmd");
    this.consolePath = opts.consoleSocket ?? daemonSocket(opts.tmpdir, "console");
    this.spares = new FifoSpares(fifoDir(opts.tmpdir));
    this.intents = new Intents(opts.tmpdir);
    const d = this;
    this.createHost = {
      get state() {
        return d.state;
      },
      set state(s: VmmdState) {
        d.state = s;
      },
      core: this.core,
      get store() {
        return d.store;
      },
      intents: this.intents,
      spares: this.spares,
      get launcher() {
        return d.launcher;
      },
      verbose: opts.verbose,
      log: (level, msg) => this.log(level, msg),
      pauseAt: (step, name) => this.pauseAt(step, name),
      consoleRequest: (w) => this.consoleRequest(w),
      statsRequest: (w) => this.statsRequest(w),
      freeResources: (c) => this.freeResources(c),
      dump: (st) => this.dump(st),
      running: (name, pid, intent, exited) => {
        this.records.set(nameToString(name), intent);
        void exited.then((status) => this.onExit(name, pid, status));
      },
    };
    this.blockHost = {
      get state() {
        return d.state;
      },
      set state(s: VmmdState) {
        d.state = s;
      },
      dbdir: opts.dbdir,
      idleMs: this.idleMs,
      lock: () => this.lock.acquire(),
      send: (sock, header, o) => this.send(sock, header, o),
    };
  }

  /** The test hook (PAUSE_STEPS): stop here if asked to. */
  private pauseAt(step: PauseStep, name?: Name): void {
    if (this.pause === null || this.pause.step !== step) return;
    if (this.pause.name !== null && (name === undefined || nameToString(name) !== this.pause.name)) return;
    writeSync(2, `hostd: [TEST] paused at ${step}\n`);
    process.kill(process.pid, "SIGSTOP");
  }

  log(level: Level, msg: string): void {
    this.opts.log(level, msg);
  }

  /** Current state (for tests and benchmarks). */
  get current(): VmmdState {
    return this.state;
  }

  // -------------------------------------------------------------------------------------
  // Start-up (§2.2)

  async start(): Promise<void> {
    const o = this.opts;
    // steps 1–7 (startup.ts)
    const opened = await openHost(
      {
        tmpdir: o.tmpdir,
        dbdir: o.dbdir,
        ...(o.restoreBackup !== undefined ? { restoreBackup: o.restoreBackup } : {}),
        ...(o.foldDelayMs !== undefined ? { foldDelayMs: o.foldDelayMs } : {}),
        log: (level, msg) => this.log(level, msg),
        pause: (step) => this.pauseAt(step),
      },
      this.spares,
      this.intents,
    );
    this.launcher = opened.launcher;
    this.store = opened.store;
    this.state = opened.state;
    const unkillable = opened.unkillable;

    // step 8: console connection (startup.ts)
    this.console = new RequestChannel(
      await connectConsole({
        tmpdir: o.tmpdir,
        consolePath: this.consolePath,
        consoleSocket: o.consoleSocket,
        consoleTimeoutMs: o.consoleTimeoutMs,
        log: (level, msg) => this.log(level, msg),
      }),
      o.maxFrame,
    );

    // step 9: the listening socket; connections wait for `ready` (after step 11)
    let markReady!: () => void;
    this.ready = new Promise((r) => (markReady = r));
    await this.listen();

    // step 10
    const onTerm = () => void this.shutdown().then(() => process.exit(0));
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onTerm);

    // step 11: bring the unikernels of the state file back. Upstream dumps the state after
    // each one (so a crash half-way loses the rest); we record once after all of them,
    // which gives the same result: the unikernels that came back, if any did.
    let restored = 0;
    for (const u of restoreOrder(opened.unikernels)) {
      const release = await this.lock.acquire();
      try {
        if (this.state.shuttingDown) break;
        if (unkillable.includes(nameToString(u.name))) {
          this.log("error", `not restoring ${nameToString(u.name)}: a tender of it from an earlier hostd is still running`);
          continue;
        }
        const r = await this.createUnikernel(u.name, u.config, false);
        if (r.kind === "failure") this.log("warn", `restoring ${nameToString(u.name)}: ${r.message}`);
        else {
          restored++;
          this.log("info", `restored ${nameToString(u.name)}`);
        }
      } finally {
        release();
      }
    }
    if (restored > 0) {
      const release = await this.lock.acquire();
      try {
        await this.dump();
      } finally {
        release();
      }
    }
    markReady();
  }

  private async listen(): Promise<void> {
    // Half-open: a client may shut down its sending side (e.g. to end a block upload by EOF)
    // and still read the reply.
    const server = createServer({ allowHalfOpen: true }, (sock) => void this.serve(sock));
    this.server = server;
    server.on("error", (e) => this.log("error", `listening socket: ${errText(e)}`));
    const fd = this.opts.listenFd;
    if (fd !== undefined) {
      await new Promise<void>((res, rej) => {
        server.once("error", rej);
        server.listen({ fd }, () => res());
      });
      this.log("info", `listening on the inherited socket (fd ${fd})`);
      return;
    }
    try {
      await fsp.rm(this.socketPath, { force: true });
    } catch (e) {
      throw new StartupError(`cannot remove ${this.socketPath} (${errText(e)}); check the permissions of ${this.opts.tmpdir}/util`, 125);
    }
    // Group bits must survive the umask (the socket is group albatross, mode 0660 or so).
    const old = process.umask(process.umask() & 0o707);
    try {
      await new Promise<void>((res, rej) => {
        server.once("error", rej);
        // Upstream listens with backlog 1; Node's clients get EAGAIN instead of queueing
        // on a full Unix-socket backlog, so allow pending connections (a burst of clients
        // while hostd is busy; beyond --max-connections they get a reply, not EAGAIN).
        server.listen({ path: this.socketPath, backlog: 128 }, () => res());
      });
    } catch (e) {
      throw new StartupError(`cannot listen on ${this.socketPath}: ${errText(e)}`, 125);
    } finally {
      process.umask(old);
    }
    this.log("info", `listening on ${this.socketPath}`);
  }

  // -------------------------------------------------------------------------------------
  // Connections (§2.3)

  private async serve(sock: Socket): Promise<void> {
    sock.on("error", () => undefined);
    // Not upstream: a cap on connections. One beyond it is told so and closed, instead of
    // hostd running out of file descriptors (issue 10).
    if (this.connections.size >= this.maxConnections) {
      this.log("warn", `too many connections (${this.maxConnections}), refusing one`);
      refuseConnection(sock, TEXT_TOO_MANY);
      return;
    }
    this.connections.add(sock);
    sock.on("close", () => this.connections.delete(sock));
    const reader = new FrameReader(sock, this.opts.maxFrame, this.requestMemory);
    await this.ready;
    try {
      for (;;) {
        let f: Uint8Array | null;
        try {
          // Not upstream: a connection without a request for --idle-timeout is closed (a
          // request in progress is never cut: this only waits for the next one).
          f = await reader.next(this.idleMs);
        } catch (e) {
          if (e instanceof ReadTimeout) this.log("debug", `closing an idle connection (${this.idleMs} ms without a request)`);
          else if (e instanceof FrameError && e.refused) {
            // Not upstream: the requests in progress hold --max-request-memory already.
            this.log("warn", `refusing a request: ${errText(e)}`);
            await this.send(sock, { version: WIRE_VERSION, sequence: 0n, name: rootName }, failure(`hostd busy: ${errText(e)}, try again`));
          } else this.log("warn", `closing connection: ${errText(e)}`);
          break;
        }
        if (f === null) break;
        let w: Wire;
        try {
          w = decodeWire(f);
        } catch (e) {
          // A message the daemon cannot decode: close without a reply (§1).
          this.log("warn", `closing connection: undecodable message: ${errText(e)}`);
          break;
        }
        const keep = await this.handle(sock, reader, w);
        if (keep === "stats") return; // the connection now belongs to the stats channel
        if (!keep) break;
      }
    } finally {
      reader.dispose();
      if (!sock.destroyed && this.stats?.sock !== sock) sock.end();
    }
  }

  private async send(sock: Socket, header: Header, o: Outcome): Promise<boolean> {
    return writeFrame(sock, encodeWire(replyWire(header, o)));
  }

  /** One command; returns whether to keep reading from this connection. */
  private async handle(sock: Socket, reader: FrameReader, w: Wire): Promise<boolean | "stats"> {
    const header = w.header;
    if (w.payload.kind !== "command") {
      await this.send(sock, header, failure(TEXT.unknownCommand));
      return false;
    }
    // Not upstream (which takes the global lock for every command): the read-only queries
    // are answered from the current state without waiting for the lock, so a create that
    // takes a while (a large image inflating, a slow console) does not hold up `info`. A
    // change is committed to the state in one step, so a query sees the state before or
    // after it — as if it had been served before or after the change.
    if (QUERIES.has(w.payload.command.kind)) {
      if (this.state.shuttingDown) return false;
      const step = handleCommand(this.state, this.core, header, w.payload.command);
      if (step.kind === "reply" && !step.dump && step.state === this.state) {
        await this.send(sock, header, step.outcome);
        return false;
      }
    }
    // One owner per unikernel name (owners.ts): a lifecycle command waits for the previous
    // one on its name to have replied, before it takes the global lock.
    const owner = LIFECYCLE.has(w.payload.command.kind) ? await this.owners.acquire(nameToString(header.name)) : null;
    try {
      return await this.handleOwned(sock, reader, w.header, w.payload.command);
    } finally {
      owner?.();
    }
  }

  private async handleOwned(sock: Socket, reader: FrameReader, header: Header, command: Command): Promise<boolean | "stats"> {
    const release = await this.lock.acquire();
    let released = false;
    const unlock = () => {
      if (!released) {
        released = true;
        release();
      }
    };
    try {
      if (this.state.shuttingDown) {
        unlock();
        return false;
      }
      const step = handleCommand(this.state, this.core, header, command);
      return await this.runStep(step, sock, reader, header, unlock);
    } catch (e) {
      this.log("error", `while handling ${command.kind}: ${errText(e)}`);
      unlock();
      return false;
    } finally {
      unlock();
    }
  }

  private async runStep(step: Step, sock: Socket, reader: FrameReader, header: Header, unlock: () => void): Promise<boolean | "stats"> {
    // A change that is recorded (dump) becomes the state only once it is durable: the
    // queries, answered without the lock, never see one that could still fail.
    if (step.kind !== "reply" || !step.dump) this.state = step.state;
    switch (step.kind) {
      case "reply": {
        if (step.dump) {
          const why = await this.dump(step.state);
          if (why !== null) {
            // not acknowledged, so not made
            unlock();
            await this.send(sock, header, failure(recordFailure(why)));
            return false;
          }
          // (under the lock, only a lost stats connection can have changed the state meanwhile)
          this.state = { ...step.state, statsSeq: this.state.statsSeq };
        }
        unlock();
        await this.send(sock, header, step.outcome);
        return step.keepOpen && step.outcome.kind === "success";
      }
      case "create": {
        const r = await this.createUnikernel(step.name, step.config, true);
        await this.send(sock, header, r);
        return false;
      }
      case "restart-check": {
        // the running unikernel's image file, read in pieces (the lock stays held)
        const manifest = await readImageManifest(step.image);
        return this.runStep(restartChecked(this.state, step.name, step.config, manifest), sock, reader, header, unlock);
      }
      case "get-convert": {
        unlock();
        let out: Outcome;
        if (step.convert === "deflate") {
          out = success({ kind: "unikernel-image", compressed: true, image: await deflateAsync(step.image, { level: step.level }) });
        } else {
          // on the thread pool, bounded like a create (the stored image passed that bound)
          const max = this.core.maxImageBytes;
          try {
            const image = await inflateAsync(step.image, { maxOutputLength: Math.max(1, max) });
            out = success({ kind: "unikernel-image", compressed: false, image: new Uint8Array(image.buffer, image.byteOffset, image.length) });
          } catch (e) {
            out = failure(
              (e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE"
                ? `failed to uncompress: ${imageTooLarge(max)}`
                : `failed to uncompress: ${zlibError(e)}`,
            );
          }
        }
        await this.send(sock, header, out);
        return false;
      }
      case "replace": {
        const exited = this.exitPromise(step.waiterId);
        if (!signalProcess(step.pid)) this.log("warn", `kill ${step.pid} failed`);
        unlock();
        await exited;
        const release = await this.lock.acquire();
        try {
          if (step.then.kind === "destroy") {
            const why = await this.dump();
            release();
            await this.send(
              sock,
              header,
              why === null
                ? successString(TEXT.destroyed)
                : failure(
                    `${recordFailure(why)} (the unikernel is stopped but stays in the stored state: destroy it again once the change can be recorded, or it is started again at hostd's next start)`,
                  ),
            );
          } else {
            const r = await this.createUnikernel(step.name, step.then.config, true);
            await this.send(sock, header, r);
          }
        } finally {
          release();
        }
        return false;
      }
      case "block-add":
      case "block-remove":
      case "block-set":
      case "block-set-old":
      case "block-dump":
        return runBlockStep(this.blockHost, step, sock, reader, header, unlock);
      case "stats-initial": {
        this.stats?.close();
        // The connection's reader is handed over (a second reader would see the same bytes).
        const ch = new RequestChannel(sock, this.opts.maxFrame, reader);
        this.stats = ch;
        sock.once("close", () => {
          if (this.stats === ch) {
            this.stats = null;
            this.state = statsDisconnected(this.state);
          }
        });
        await this.send(sock, header, step.outcome);
        for (const add of step.adds) await this.statsRequest(add);
        return "stats";
      }
    }
  }

  private exitPromise(id: number): Promise<ExitStatus> {
    let p = this.exitPromises.get(id);
    if (p === undefined) {
      p = new Promise<ExitStatus>((res) => this.exitWaiters.set(id, res));
      this.exitPromises.set(id, p);
    }
    return p;
  }

  private async statsRequest(w: Wire): Promise<void> {
    const ch = this.stats;
    if (ch === null) return;
    try {
      const r = await ch.request(w);
      if (r.header.sequence !== w.header.sequence || r.payload.kind !== "reply") throw new Error("unexpected reply");
    } catch (e) {
      this.log("warn", `stats: ${errText(e)}, dropping the stats connection`);
      ch.close();
      if (this.stats === ch) {
        this.stats = null;
        this.state = statsDisconnected(this.state);
      }
    }
  }

  private async consoleRequest(w: Wire): Promise<Wire | null> {
    for (let attempt = 0; ; attempt++) {
      const reused = this.console?.alive === true;
      try {
        if (!reused) {
          // Not upstream: reconnect to a restarted console daemon instead of failing forever.
          this.console = new RequestChannel(await connectUnix(this.consolePath), this.opts.maxFrame);
        }
        return await this.console!.request(w);
      } catch (e) {
        this.console?.close();
        this.console = null;
        // The console daemon closes a connection idle for its --idle-timeout; a request
        // written just as it did so was never read (it answers every request it reads):
        // send it once more on a fresh connection.
        if (reused && attempt === 0) continue;
        this.log("warn", `console: ${errText(e)}`);
        return null;
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Create (§2.4), under the lock

  /** Create `name` (create.ts); `dump` = record the change durably before the reply. */
  private createUnikernel(name: Name, config: UnikernelConfig, dump: boolean): Promise<Outcome> {
    return createUnikernel(this.createHost, name, config, dump);
  }

  /** Image, FIFO, taps — in this order, stopping at the first error (returned). */
  private async freeResources(c: Cleanup): Promise<string | null> {
    try {
      if (c.image !== "") await fsp.rm(c.image, { force: true });
      if (c.fifo !== "") await fsp.rm(c.fifo, { force: true });
      for (const t of c.taps) await destroyTap(t);
      return null;
    } catch (e) {
      const msg = e instanceof NetError ? e.upstream : errText(e);
      this.log("warn", `freeing resources: ${msg}`);
      return msg;
    }
  }

  // -------------------------------------------------------------------------------------
  // Exit (§2.8)

  private async onExit(name: Name, pid: number, status: ExitStatus): Promise<void> {
    const release = await this.lock.acquire();
    let wake;
    try {
      const u = this.state.running.find(name);
      if (u === undefined || u.pid !== pid) return;
      this.log("info", `${nameToString(name)} (pid ${pid}) ${formatExit(status)}`);
      const ex = handleExit(this.state, this.core, name);
      if (ex === null) return;
      this.state = ex.state;
      const freed = await this.freeResources(ex.cleanup);
      const record = this.records.get(nameToString(name));
      this.records.delete(nameToString(name));
      // Only once everything is freed (else the next start reaps the rest).
      if (freed === null) await record?.remove().catch((e: unknown) => this.log("warn", `removing ${record.path}: ${errText(e)}`));
      if (ex.statsRemove !== null) await this.statsRequest(ex.statsRemove);
      if (ex.dump) await this.dump();
      wake = ex.wake;
    } finally {
      release();
    }
    if (wake === null || wake === undefined) return;
    if (wake.kind === "exit") {
      for (const id of wake.ids) {
        this.exitPromise(id);
        this.exitWaiters.get(id)?.(status);
        this.exitWaiters.delete(id);
        this.exitPromises.delete(id);
      }
      return;
    }
    // A restart waiter: decide under the lock (a destroy may have come in between), as the
    // name's owner (a restart is a create of that name).
    const config = wake.config;
    const owner = await this.owners.acquire(nameToString(name));
    const release2 = await this.lock.acquire();
    try {
      const d = restartDecision(this.state, name, config, status);
      this.state = d.state;
      if (d.action.kind === "dump") {
        if (!this.state.shuttingDown) await this.dump();
        return;
      }
      if (this.state.shuttingDown) return;
      this.log("info", `restarting ${nameToString(name)} (${d.action.reason})`);
      const r = await this.createUnikernel(name, d.action.config, d.action.dump);
      if (r.kind === "failure") this.log("warn", `restart of ${nameToString(name)} failed: ${r.message}`);
    } finally {
      release2();
      owner();
    }
  }

  // -------------------------------------------------------------------------------------
  // State file (§2.10)

  /**
   * Upstream's dump: the registered unikernels and the policies become the stored state —
   * as one journal record of what changed (store.ts), folded into the state file later.
   * null once that is durable, else the reason it is not (logged).
   */
  private async dump(st: VmmdState = this.state): Promise<string | null> {
    try {
      await this.store.record(stateToDump(st));
      return null;
    } catch (e) {
      const why = errText(e);
      this.log("error", `could not record the change: ${why}`);
      return why;
    }
  }

  // -------------------------------------------------------------------------------------
  // SIGTERM (§2.12)

  shutdown(): Promise<void> {
    // A second SIGTERM runs the same (harmless) sequence; we simply join the first one.
    if (this.shutdownPromise !== null) return this.shutdownPromise;
    this.shutdownPromise = (async () => {
      const release = await this.lock.acquire();
      let waits: Promise<ExitStatus>[];
      try {
        this.server?.close();
        const s = beginShutdown(this.state);
        this.state = s.state;
        waits = s.targets.map((t) => {
          const p = this.exitPromise(t.waiterId);
          if (!signalProcess(t.pid)) this.log("warn", `kill ${t.pid} failed`);
          return p;
        });
      } finally {
        release();
      }
      await Promise.all(waits);
      // Wait for the exit handlers (resources freed) to have run.
      const fin = await this.lock.acquire();
      fin();
      // the journal folded into the state file: albatross's own format, up to date
      await this.store.close();
      await this.spares.close();
      this.console?.close();
      this.stats?.close();
      for (const c of this.connections) c.destroy();
      this.launcher.close();
      this.log("info", "shut down");
    })();
    return this.shutdownPromise;
  }
}

function parsePause(v: string | undefined): { step: string; name: string | null } | null {
  if (v === undefined || v === "") return null;
  const i = v.indexOf(",");
  return i < 0 ? { step: v, name: null } : { step: v.slice(0, i), name: v.slice(i + 1) };
}

/** Run hostd until SIGTERM. */
export async function runHostd(opts: HostdOptions): Promise<Hostd> {
  const d = new Hostd(opts);
  await d.start();
  return d;
}
