// The stats daemon shell (albatross-stats, daemon.md §4): the Unix socket server at
// <tmpdir>/util/stat.sock, the connection to hostd (vmmd.sock, re-established every second
// while it fails), the sampling timer, the subscribers' writes and the /metrics listener.
// Decisions live in registry.ts, conversions in sample.ts and metrics.ts, file reads in
// reader.ts; this file moves bytes.

import net from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import { decodeWire, END } from "../commands/index.js";
import type { Command, Wire } from "../commands/index.js";
import { rootName, nameToString, type Name } from "../core/name.js";
import { connectUnix } from "../transport/frames.js";
import { listenInherited, listenUnix } from "../transport/listen.js";
import type { UnikernelSnapshot } from "./metrics.js";
import { StatsMetrics, serveMetrics, type ListenAddress } from "./prometheus.js";
import { Sampler } from "./reader.js";
import {
  finishRound,
  handle,
  hostdLost,
  initialStatsState,
  planRound,
  unsubscribe,
  type Input,
  type Limits,
  type Outcome,
  type Registration,
  type StatsState,
} from "./registry.js";
import { cpuShare, statsData } from "./sample.js";
import { STATS_DEFAULTS } from "./limits.js";
import { FramedConnection } from "../transport/connection.js";

const STAT_SOCKET_NAME = "stat.sock";

/** Upstream: 1 s between attempts to reach albatrossd. */
const RECONNECT_MS = 1000;
/** hostd answers Stats_initial at once; a hostd that does not is retried. */
const INITIAL_REPLY_TIMEOUT_MS = 10_000;
/** A closed connection whose peer does not read its pending output is destroyed after this. */
const CLOSE_GRACE_MS = 5_000;

type LogLevel = "debug" | "info" | "warn" | "error";

export interface StatsDaemonOptions {
  readonly tmpdir: string;
  /** an already listening socket (systemd socket activation) instead of <tmpdir>/util/stat.sock */
  readonly listenFd?: number;
  /** default <tmpdir>/util/vmmd.sock */
  readonly vmmdSocket?: string;
  /** seconds between sampling rounds (default 10) */
  readonly intervalSeconds?: number;
  readonly maxUnikernels?: number;
  readonly maxSubscribers?: number;
  readonly maxConnections?: number;
  readonly maxFrame?: number;
  readonly maxPendingBytes?: number;
  /** serve Prometheus metrics here */
  readonly metricsListen?: ListenAddress;
  readonly procRoot?: string;
  readonly sysRoot?: string;
  readonly debugfsRoot?: string;
  readonly log?: (level: LogLevel, line: string) => void;
  /** milliseconds between attempts to reach hostd (default 1000) */
  readonly reconnectMs?: number;
  /**
   * A full garbage collection (V8's gc()), run between rounds once the heap grew by
   * GC_SLACK_BYTES since the last collection; without it V8 lets the old generation grow by at
   * least 8 MB of garbage (and 30 MB at first) before it collects.
   */
  readonly collectGarbage?: () => void;
}

/** Heap growth after which a full collection is run between rounds (collectGarbage). */
const GC_SLACK_BYTES = 4 * 1024 * 1024;

interface StatsDaemonStatus {
  readonly hostdConnected: boolean;
  readonly unikernels: number;
  readonly subscribers: number;
  readonly connections: number;
  readonly samples: number;
  readonly openHandles: number;
}

export interface StatsDaemon {
  readonly socketPath: string;
  /** where /metrics is served (the bound port when 0 was asked for) */
  readonly metricsAddress: net.AddressInfo | null;
  /** run a sampling round now (tests, benchmarks); returns its duration in ms */
  sampleNow(): number;
  status(): StatsDaemonStatus;
  /** the Prometheus registry (null without --metrics-listen) */
  readonly metrics: StatsMetrics | null;
  close(): Promise<void>;
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const enc = new TextEncoder();

type Mode = "client" | "hostd-initial" | "hostd";

class Daemon {
  state: StatsState<Conn> = initialStatsState<Conn>();
  readonly conns = new Set<Conn>();
  readonly limits: Limits;
  readonly sampler: Sampler;
  readonly metrics: StatsMetrics | null;
  hostd: Conn | null = null;
  closing = false;
  samples = 0;
  readErrors = 0;
  lastSampleEndMs: number | null = null;
  lastSampleSeconds: number | null = null;

  constructor(
    readonly opts: StatsDaemonOptions,
    readonly log: (level: LogLevel, line: string) => void,
  ) {
    this.limits = {
      maxUnikernels: opts.maxUnikernels ?? STATS_DEFAULTS.maxUnikernels,
      maxSubscribers: opts.maxSubscribers ?? STATS_DEFAULTS.maxSubscribers,
      maxNics: STATS_DEFAULTS.maxNics,
    };
    this.sampler = new Sampler({
      ...(opts.procRoot !== undefined ? { procRoot: opts.procRoot } : {}),
      ...(opts.sysRoot !== undefined ? { sysRoot: opts.sysRoot } : {}),
      ...(opts.debugfsRoot !== undefined ? { debugfsRoot: opts.debugfsRoot } : {}),
      io: opts.metricsListen !== undefined,
      log: (level, line) => log(level, line),
    });
    this.metrics =
      opts.metricsListen === undefined
        ? null
        : new StatsMetrics(() => ({
            hostdConnected: this.hostd !== null && this.hostd.mode === "hostd",
            lastSampleEndMs: this.lastSampleEndMs,
            lastSampleSeconds: this.lastSampleSeconds,
            samples: this.samples,
            readErrors: this.readErrors,
            unikernels: this.state.units.size,
            subscribers: this.state.subs.size,
            connections: this.conns.size,
          }));
  }

  get maxFrame(): number {
    return this.opts.maxFrame ?? STATS_DEFAULTS.maxFrame;
  }

  released(regs: readonly Registration[]): void {
    for (const r of regs) this.sampler.release(r);
  }

  logAll(level: LogLevel, lines: readonly string[]): void {
    for (const l of lines) this.log(level, l);
  }

  /** One request from `conn`: decide, reply, apply the effects. */
  request(conn: Conn, wire: Wire): void {
    const { header, payload } = wire;
    const input: Input = payload.kind === "command" ? this.inputOf(payload.command) : { kind: "other", what: payload.kind };
    const d = handle(this.state, this.limits, conn, header, input);
    this.state = d.state;
    this.logAll(d.reply.kind === "failure" ? "warn" : input.kind === "add" || input.kind === "remove" ? "info" : "debug", d.log);
    this.released(d.removed);
    if (input.kind === "subscribe" && d.reply.kind === "success") conn.subscriptions.set(nameToString(header.name), header.name);
    const reply: Wire =
      d.reply.kind === "success"
        ? { header, payload: { kind: "reply", reply: { kind: "string", text: enc.encode(d.reply.text) } } }
        : { header, payload: { kind: "failure", message: enc.encode(d.reply.text) } };
    const written = conn.send(reply);
    for (const c of d.close) c.close();
    // A Failure reply (or a failed write) ends the connection (daemon.md §1).
    if (d.reply.kind === "failure" || !written) conn.close();
  }

  private inputOf(cmd: Command): Input {
    switch (cmd.kind) {
      case "stats-add":
        return {
          kind: "add",
          vmmdev: cmd.vmmdev,
          pid: cmd.pid,
          nics: cmd.network.length > this.limits.maxNics ? [] : this.sampler.resolveNics(cmd.network.map((n) => ({ netif: n.bridge, tap: n.tap }))),
          requested: cmd.network.length,
        };
      case "stats-remove":
        return { kind: "remove" };
      case "stats-subscribe":
        return { kind: "subscribe" };
      case "stats-initial":
        return { kind: "initial" };
      default:
        return { kind: "other", what: cmd.kind };
    }
  }

  /** A connection ended. */
  gone(conn: Conn): void {
    this.conns.delete(conn);
    for (const name of conn.subscriptions.values()) this.state = unsubscribe(this.state, name, conn);
    conn.subscriptions.clear();
    if (conn === this.hostd) {
      this.hostd = null;
      if (conn.mode === "hostd") {
        const lost = hostdLost(this.state);
        this.state = lost.state;
        this.released(lost.removed);
        this.log("warn", `connection to hostd lost (${lost.removed.length} unikernels unregistered), reconnecting`);
      }
      if (!this.closing) this.scheduleHostd();
    }
  }

  // -------------------------------------------------------------------------------------
  // The connection to hostd (daemon.md §4): Stats_initial, then served like a client.

  private hostdTimer: NodeJS.Timeout | null = null;
  private hostdFailing = false;

  stopReconnecting(): void {
    this.closing = true;
    if (this.hostdTimer !== null) clearTimeout(this.hostdTimer);
    this.hostdTimer = null;
  }

  scheduleHostd(delay = this.opts.reconnectMs ?? RECONNECT_MS): void {
    if (this.closing || this.hostdTimer !== null) return;
    this.hostdTimer = setTimeout(() => {
      this.hostdTimer = null;
      void this.connectHostd();
    }, delay);
  }

  async connectHostd(): Promise<void> {
    if (this.closing || this.hostd !== null) return;
    const path = this.opts.vmmdSocket ?? join(this.opts.tmpdir, "util", "vmmd.sock");
    let sock: net.Socket;
    try {
      sock = await connectUnix(path);
    } catch (e) {
      if (!this.hostdFailing)
        this.log(
          "warn",
          `cannot connect to hostd at ${path} (${(e as NodeJS.ErrnoException).code ?? errText(e)}), retrying every ${(this.opts.reconnectMs ?? RECONNECT_MS) / 1000} s`,
        );
      this.hostdFailing = true;
      this.scheduleHostd();
      return;
    }
    if (this.closing) {
      sock.destroy();
      return;
    }
    this.hostdFailing = false;
    const conn = new Conn(this, sock, "hostd-initial");
    this.hostd = conn;
    const initial: Wire = { header: { version: 5, sequence: 0n, name: rootName }, payload: { kind: "command", command: { kind: "stats-initial" } } };
    if (!conn.send(initial)) conn.close();
    conn.armInitialTimeout(INITIAL_REPLY_TIMEOUT_MS);
  }

  /** The first frame on the hostd connection: Success empty with our sequence. */
  initialReply(conn: Conn, w: Wire): void {
    const p = w.payload;
    if (p.kind === "reply" && p.reply.kind === "empty" && w.header.sequence === 0n) {
      conn.mode = "hostd";
      this.log("info", "connected to hostd, waiting for its unikernels");
      return;
    }
    this.log("warn", `unexpected answer from hostd to Stats_initial (${p.kind}${p.kind === "reply" ? ` ${p.reply.kind}` : ""}), retrying`);
    conn.close();
  }

  // -------------------------------------------------------------------------------------
  // Sampling (daemon.md §4): every interval, independent of how long a round takes.

  round(): number {
    const t0 = performance.now();
    const targets = planRound(this.state, this.metrics !== null);
    const results: Array<{ target: (typeof targets)[number]; outcome: Outcome }> = [];
    const fresh: UnikernelSnapshot[] = [];
    if (targets.length > 0) {
      this.sampler.beginRound(targets.some((t) => this.sampler.wantsKvm(t.reg)));
      const host = this.sampler.host;
      for (const target of targets) {
        const r = this.sampler.read(target.reg, performance.now());
        if (r.kind !== "ok") {
          if (r.kind === "malformed") this.readErrors++;
          results.push({ target, outcome: r });
          continue;
        }
        const stats = statsData(r.readings, host.clockTick);
        results.push({ target, outcome: { kind: "ok", stats } });
        if (this.metrics !== null)
          fresh.push({
            name: target.reg.name,
            stats,
            readings: r.readings,
            cpuShare: cpuShare(r.prevCpu, r.cpu, host.clockTick),
            memoryLimitBytes: r.memoryMB === null ? null : r.memoryMB * 1024 * 1024,
          });
      }
    }
    const f = finishRound(this.state, results);
    this.state = f.state;
    this.logAll("info", f.log);
    this.released(f.removed);
    // one write system call per subscriber and round, not one per message
    const corked = new Set<Conn>();
    for (const d of f.deliveries) {
      const c = d.conn;
      if (!corked.has(c) && c.writable) {
        c.sock.cork();
        corked.add(c);
      }
      if (!c.writable) {
        this.state = unsubscribe(this.state, d.subscription, c);
        continue;
      }
      if (c.sock.writableLength > (this.opts.maxPendingBytes ?? STATS_DEFAULTS.maxPendingBytes)) {
        this.log("warn", `subscriber ${nameToString(d.subscription)} does not read its statistics, dropping it`);
        this.state = unsubscribe(this.state, d.subscription, c);
        c.destroy();
        continue;
      }
      if (!c.send(d.wire)) this.state = unsubscribe(this.state, d.subscription, c);
    }
    for (const c of corked) if (!c.sock.destroyed) c.sock.uncork();
    const t1 = performance.now();
    this.samples++;
    this.lastSampleEndMs = t1;
    this.lastSampleSeconds = (t1 - t0) / 1000;
    // made now for a scraper seen lately, not counted in the round's duration (logged apart)
    const formatMs = this.metrics === null ? null : this.metrics.update(fresh, this.sampler.host);
    this.log(
      "debug",
      `round ${this.samples}: ${targets.length} unikernels sampled, ${f.deliveries.length} messages, ${(t1 - t0).toFixed(2)} ms${formatMs === null ? "" : `; /metrics text made in ${formatMs.toFixed(2)} ms`}`,
    );
    return t1 - t0;
  }
}

/** One connection: the hostd channel or a client's. */
class Conn extends FramedConnection {
  private initialTimer: NodeJS.Timeout | null = null;
  /** subscriptions made on this connection (name text -> name) */
  readonly subscriptions = new Map<string, Name>();

  constructor(
    private readonly daemon: Daemon,
    sock: net.Socket,
    public mode: Mode,
  ) {
    super(sock, daemon.maxFrame, CLOSE_GRACE_MS);
    daemon.conns.add(this);
    sock.on("data", (chunk: Buffer) => this.onData(chunk));
    sock.on("end", () => this.close());
    sock.on("error", (e) => daemon.log("debug", `connection error: ${errText(e)}`));
    sock.on("close", () => {
      this.closed = true;
      if (this.initialTimer !== null) clearTimeout(this.initialTimer);
      daemon.gone(this);
    });
  }

  armInitialTimeout(ms: number): void {
    this.initialTimer = setTimeout(() => {
      this.initialTimer = null;
      if (this.mode === "hostd-initial") {
        this.daemon.log("warn", `hostd did not answer Stats_initial within ${ms / 1000} s, retrying`);
        this.destroy();
      }
    }, ms);
    this.initialTimer.unref();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.decoder.push(chunk);
    try {
      for (;;) {
        if (this.closed) return;
        const f = this.decoder.next();
        if (f === null) return;
        if (f === END) {
          this.close();
          return;
        }
        let w: Wire;
        try {
          w = decodeWire(f);
        } catch (e) {
          // upstream: a read error closes the connection without a reply
          this.daemon.log("warn", `closing a connection: undecodable message: ${errText(e)}`);
          this.close();
          return;
        }
        if (this.mode === "hostd-initial") {
          if (this.initialTimer !== null) clearTimeout(this.initialTimer);
          this.initialTimer = null;
          this.daemon.initialReply(this, w);
        } else {
          this.daemon.request(this, w);
        }
      }
    } catch (e) {
      // an oversized frame, or a bug: it costs this connection, never the daemon
      this.daemon.log("warn", `closing a connection: ${errText(e)}`);
      this.close();
    }
  }
}

/** Start the daemon: listen, reach out to hostd, sample every interval until close(). */
export async function startStatsDaemon(opts: StatsDaemonOptions): Promise<StatsDaemon> {
  const log = opts.log ?? ((): void => undefined);
  const d = new Daemon(opts, log);
  const maxConnections = opts.maxConnections ?? STATS_DEFAULTS.maxConnections;
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    const clients = [...d.conns].filter((c) => c.mode === "client").length;
    if (clients >= maxConnections || d.closing) {
      log("warn", `refusing a connection: already ${maxConnections} connections (--max-connections)`);
      sock.destroy();
      return;
    }
    new Conn(d, sock, "client");
  });
  let socketPath: string;
  let ownsPath = false;
  if (opts.listenFd !== undefined) {
    await listenInherited(server, opts.listenFd);
    const a = server.address();
    socketPath = typeof a === "string" ? a : `fd ${opts.listenFd}`;
  } else {
    socketPath = join(opts.tmpdir, "util", STAT_SOCKET_NAME);
    await listenUnix(server, socketPath);
    ownsPath = true;
  }
  server.on("error", (e) => log("error", `listening socket error: ${errText(e)}`));
  log("info", `listening on ${socketPath}`);

  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | null = null;
  if (d.metrics !== null && opts.metricsListen !== undefined) {
    try {
      metricsServer = await serveMetrics(d.metrics, opts.metricsListen, (l) => log("warn", l));
    } catch (e) {
      server.close();
      if (ownsPath) await import("node:fs/promises").then((f) => f.unlink(socketPath)).catch(() => undefined);
      throw new Error(`cannot serve metrics on ${opts.metricsListen.host}:${opts.metricsListen.port}: ${errText(e)}`);
    }
    const a = metricsServer.address() as net.AddressInfo;
    log("info", `serving metrics on http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}/metrics`);
  }

  const intervalMs = (opts.intervalSeconds ?? STATS_DEFAULTS.intervalSeconds) * 1000;
  // a round's garbage, collected half an interval after it (not while a round or, in the
  // usual case, a scrape runs) once the heap grew by GC_SLACK_BYTES
  const collect = opts.collectGarbage;
  let heapBase = v8.getHeapStatistics().used_heap_size;
  let gcTimer: NodeJS.Timeout | null = null;
  const timer = setInterval(() => {
    try {
      d.round();
    } catch (e) {
      log("error", `sampling round failed: ${errText(e)}`);
    }
    if (collect === undefined || gcTimer !== null) return;
    // the base: the heap after the last collection (ours, or V8's own when it is lower)
    const used = v8.getHeapStatistics().used_heap_size;
    heapBase = Math.min(heapBase, used);
    if (used > heapBase + GC_SLACK_BYTES) {
      gcTimer = setTimeout(() => {
        gcTimer = null;
        collect();
        heapBase = v8.getHeapStatistics().used_heap_size;
      }, intervalMs / 2);
      gcTimer.unref();
    }
  }, intervalMs);
  void d.connectHostd();

  let closing: Promise<void> | null = null;
  return {
    socketPath,
    metricsAddress: metricsServer === null ? null : (metricsServer.address() as net.AddressInfo),
    metrics: d.metrics,
    sampleNow: () => d.round(),
    status: () => ({
      hostdConnected: d.hostd !== null && d.hostd.mode === "hostd",
      unikernels: d.state.units.size,
      subscribers: d.state.subs.size,
      connections: d.conns.size,
      samples: d.samples,
      openHandles: d.sampler.open,
    }),
    close(): Promise<void> {
      closing ??= (async () => {
        d.stopReconnecting();
        clearInterval(timer);
        if (gcTimer !== null) clearTimeout(gcTimer);
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const c of [...d.conns]) c.destroy();
        if (metricsServer !== null) {
          metricsServer.closeAllConnections();
          await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
        }
        await done;
        d.sampler.closeAll();
        if (ownsPath) await import("node:fs/promises").then((f) => f.unlink(socketPath)).catch(() => undefined);
      })();
      return closing;
    },
  };
}
