// `--metrics-listen`: the sampling rounds as Prometheus metrics (prom-client), served on
// GET /metrics. The families and series come from metrics.ts; this file holds the
// prom-client registry and the HTTP server.
//
// The per-unikernel families are built from the latest sampling round (the kernel's counters
// are mirrored, not counted) and formatted at most once per round, at the first scrape
// after it; the daemon's health is read at every scrape. `registry` holds every family (for
// listing them, e.g. the dashboard test).

import http from "node:http";
import { createRequire } from "node:module";
import type * as Prom from "prom-client";
import { baseLabels, HEALTH_METRICS, ifaceLabels, UNIKERNEL_METRICS, type Labels, type MetricDef, type Shared, type UnikernelSnapshot } from "./metrics.js";
import { nameToString } from "../core/name.js";
import type { HostFacts } from "./sample.js";
import { MAX_METRICS_CONNECTIONS } from "./limits.js";

// prom-client's index loads all of it (cluster aggregation, the push gateway client, the
// default process metrics, OpenTelemetry): about 12 MB of resident memory for a daemon that
// uses three of its classes, which take about 1 MB on their own.
const load = createRequire(import.meta.url);
const client = {
  Registry: load("prom-client/lib/registry") as typeof Prom.Registry,
  Gauge: load("prom-client/lib/gauge") as typeof Prom.Gauge,
  Counter: load("prom-client/lib/counter") as typeof Prom.Counter,
};

/** What the daemon reports about itself at scrape time. */
export interface Health {
  readonly hostdConnected: boolean;
  /** performance.now() of the end of the last round (null: none yet) */
  readonly lastSampleEndMs: number | null;
  readonly lastSampleSeconds: number | null;
  readonly samples: number;
  readonly readErrors: number;
  readonly unikernels: number;
  readonly subscribers: number;
  readonly connections: number;
}

/** One sample of a family: its own labels, plus the labels of its unikernel (shared). */
interface Value {
  readonly value: number;
  readonly labels: Labels;
  readonly sharedLabels: Labels;
}

/**
 * A per-unikernel family as a prom-client collector: the registry formats whatever `get()`
 * returns. The values are rebuilt once per round (no per-series label validation and
 * hashing as with Counter.inc/Gauge.set: the kernel's counters are mirrored, not counted),
 * and the labels shared by all series of a unikernel (or interface) are one object, whose
 * formatted text prom-client caches.
 */
class Family {
  values: Value[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}
  get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: "sum" }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.values, aggregator: "sum" });
  }
  reset(): void {
    this.values = [];
  }
}

export class StatsMetrics {
  readonly registry = new client.Registry();
  private readonly families: ReadonlyArray<readonly [MetricDef, Family]>;
  /** the shared label objects of each unikernel and interface, kept while it is sampled */
  private shared = new Map<string, Labels>();
  private cached: string | null = null;
  private latest: UnikernelSnapshot[] = [];
  private host: HostFacts = { clockTick: 100, pageSize: 4096, bootTime: 0 };
  private readonly perUnikernel = new client.Registry();
  private readonly health = new client.Registry();

  constructor(health: () => Health, now: () => number = () => performance.now()) {
    this.families = UNIKERNEL_METRICS.map((d) => {
      const f = new Family(d.name, d.help, d.type);
      // prom-client's Registry only needs name, type, get() and reset() of a metric
      this.registry.registerMetric(f as unknown as Prom.Metric);
      this.perUnikernel.registerMetric(f as unknown as Prom.Metric);
      return [d, f] as const;
    });
    const registers = [this.health, this.registry];
    const gauge = (m: { name: string; help: string }, value: (h: Health) => number | null): void => {
      new client.Gauge({
        name: m.name,
        help: m.help,
        registers,
        collect() {
          const v = value(health());
          this.reset();
          if (v !== null) this.set(v);
        },
      });
    };
    const counter = (m: { name: string; help: string }, value: (h: Health) => number): void => {
      new client.Counter({
        name: m.name,
        help: m.help,
        registers,
        collect() {
          this.reset();
          this.inc(value(health()));
        },
      });
    };
    const H = HEALTH_METRICS;
    gauge(H.hostdConnected, (h) => (h.hostdConnected ? 1 : 0));
    gauge(H.lastSampleAge, (h) => (h.lastSampleEndMs === null ? null : Math.max(0, (now() - h.lastSampleEndMs) / 1000)));
    gauge(H.sampleDuration, (h) => h.lastSampleSeconds);
    counter(H.samples, (h) => h.samples);
    counter(H.readErrors, (h) => h.readErrors);
    gauge(H.unikernels, (h) => h.unikernels);
    gauge(H.subscribers, (h) => h.subscribers);
    gauge(H.connections, (h) => h.connections);
  }

  /** The latest round (formatted at the first scrape after it). */
  update(snapshots: Iterable<UnikernelSnapshot>, host: HostFacts): void {
    this.latest = [...snapshots];
    this.host = host;
    this.cached = null;
  }

  /**
   * Build the families' values from the latest round. They live only while being
   * formatted: kept between rounds, 25 values per unikernel would be promoted to the old
   * generation every round (and make V8 grow its young generation, i.e. the daemon's RSS).
   */
  private fill(): void {
    const next = new Map<string, Labels>();
    // the same label objects round after round: prom-client caches their text by identity
    const shared = (key: string, make: () => Labels): Labels => {
      const l = next.get(key) ?? this.shared.get(key) ?? make();
      next.set(key, l);
      return l;
    };
    for (const [, f] of this.families) f.reset();
    for (const u of this.latest) {
      const nameText = nameToString(u.name);
      const unikernel = shared(nameText, () => baseLabels(u.name));
      const sh: Shared = { unikernel, iface: (i) => shared(`${nameText}\0${i.netif}\0${i.tap}\0${i.bridge ?? ""}`, () => ifaceLabels(unikernel, i)) };
      for (const [d, f] of this.families) {
        for (const [labels, sharedLabels, value] of d.series(u, this.host, sh)) {
          if (Number.isFinite(value)) f.values.push({ value, labels, sharedLabels });
        }
      }
    }
    this.shared = next;
  }

  /**
   * The exposition text (what GET /metrics answers). The per-unikernel part only changes
   * with a round and is formatted once per round; the daemon's health at every scrape.
   */
  async render(): Promise<string> {
    if (this.cached === null) {
      this.fill();
      try {
        this.cached = await this.perUnikernel.metrics();
      } finally {
        for (const [, f] of this.families) f.reset();
      }
    }
    return `${this.cached}\n${await this.health.metrics()}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT` or `[IPv6]:PORT` (a literal address, as --influx). */
export function parseListen(s: string): ListenAddress | null {
  const m = /^\[([0-9a-fA-F:.]+)\]:([0-9]{1,5})$/.exec(s) ?? /^([0-9.]+|localhost):([0-9]{1,5})$/.exec(s);
  if (m === null) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  return { host: m[1]!, port };
}

const REQUEST_TIMEOUT_MS = 10_000;

/** Serve GET /metrics; resolves once listening. */
export function serveMetrics(metrics: StatsMetrics, at: ListenAddress, log: (line: string) => void): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    if (url !== "/metrics" && !url.startsWith("/metrics?")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: the metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    metrics.render().then(
      (text) => {
        res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (e: unknown) => {
        log(`rendering the metrics failed: ${e instanceof Error ? e.message : String(e)}`);
        res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
      },
    );
  });
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = 5_000;
  server.on("clientError", (_e, sock) => sock.destroy());
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off("error", reject);
      server.on("error", (e) => log(`metrics listener: ${e.message}`));
      resolve(server);
    });
  });
}
