// `--metrics-listen`: the sampling rounds as Prometheus metrics, served on GET /metrics. The
// families and series come from metrics.ts; this file formats them and holds the HTTP
// server.
//
// The per-unikernel families change only with a round: their text is made once per round,
// into a Buffer that every scrape of that round sends as it is. It is made right after the
// round when a scraper came within SCRAPER_RECENT_MS (so a scrape finds it ready; the daemon
// logs how long it took, apart from the round's own duration), otherwise at the first
// scrape after the round. The text is prom-client's exposition format byte for byte (a test
// compares them), made without its per-series objects and arrays: the label text of a
// unikernel or interface is made once and reused round after round. The daemon's health is
// read at every scrape, with prom-client's Gauge and Counter. `registry` holds every family
// (for listing them, e.g. the dashboard test).

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

/** A scraper seen within this long has the text made right after each round. */
const SCRAPER_RECENT_MS = 5 * 60_000;

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

// prom-client's escaping (lib/registry.js escapeString, escapeLabelValue)
const escapeString = (s: string): string => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabelValue = (s: string): string => escapeString(s).replace(/"/g, '\\"');

/** `name="value",...` of a label set, made once per label object (they are kept and reused). */
const labelTexts = new WeakMap<Labels, string>();
function labelText(l: Labels): string {
  let t = labelTexts.get(l);
  if (t === undefined) {
    t = Object.entries(l)
      .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
      .join(",");
    labelTexts.set(l, t);
  }
  return t;
}

/**
 * A per-unikernel family as prom-client's registry sees it (name, type, help; no values:
 * its text is made by StatsMetrics), so that `registry` lists every family.
 */
class Family {
  /** `# HELP` and `# TYPE` lines, as prom-client writes them */
  readonly header: string;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {
    const n = escapeString(name);
    this.header = `# HELP ${n} ${escapeString(help)}\n# TYPE ${n} ${type}`;
  }
  get(): Promise<{ name: string; help: string; type: string; values: never[]; aggregator: "sum" }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: [], aggregator: "sum" });
  }
  reset(): void {}
}

/** The per-unikernel text of one round and the scrapes sending it now. */
interface Text {
  readonly buf: Buffer;
  readonly length: number;
  sending: number;
}

export class StatsMetrics {
  readonly registry = new client.Registry();
  private readonly families: ReadonlyArray<readonly [MetricDef, Family]>;
  /** the shared label objects of each unikernel and interface, kept while it is sampled */
  private shared = new Map<string, Labels>();
  /** the latest round, until its text is made */
  private latest: UnikernelSnapshot[] = [];
  private text: Text | null = null;
  /** a buffer to make the next text in (not being sent) */
  private spare: Buffer | null = null;
  private host: HostFacts = { clockTick: 100, pageSize: 4096, bootTime: 0 };
  private lastScrapeMs: number | null = null;
  private readonly health = new client.Registry();

  constructor(
    health: () => Health,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.families = UNIKERNEL_METRICS.map((d) => {
      const f = new Family(d.name, d.help, d.type);
      // prom-client's Registry only needs name, type, get() and reset() of a metric
      this.registry.registerMetric(f as unknown as Prom.Metric);
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

  /**
   * The latest round. Its text is made now when a scraper came within SCRAPER_RECENT_MS
   * (returns how long that took, ms), otherwise at the first scrape (returns null).
   */
  update(snapshots: Iterable<UnikernelSnapshot>, host: HostFacts): number | null {
    this.latest = [...snapshots];
    this.host = host;
    this.drop(this.text);
    this.text = null;
    if (this.lastScrapeMs === null || this.now() - this.lastScrapeMs > SCRAPER_RECENT_MS) return null;
    const t0 = this.now();
    this.format();
    return this.now() - t0;
  }

  /** A text no longer current: its buffer is reused once no scrape is sending it. */
  private drop(t: Text | null): void {
    if (t !== null && t.sending === 0 && (this.spare === null || t.buf.length > this.spare.length)) this.spare = t.buf;
  }

  /** Make the text of the latest round (then its snapshots are let go). */
  private format(): Text {
    const next = new Map<string, Labels>();
    // the same label objects round after round: their text is made once
    const shared = (key: string, make: () => Labels): Labels => {
      const l = next.get(key) ?? this.shared.get(key) ?? make();
      next.set(key, l);
      return l;
    };
    const shares: Shared[] = this.latest.map((u) => {
      const nameText = nameToString(u.name);
      const unikernel = shared(nameText, () => baseLabels(u.name));
      return { unikernel, iface: (i) => shared(`${nameText}\0${i.netif}\0${i.tap}\0${i.bridge ?? ""}`, () => ifaceLabels(unikernel, i)) };
    });
    // one string per family (prom-client: lines joined by \n, families by \n\n, a final \n)
    const parts: string[] = [];
    let size = 0;
    for (const [d, f] of this.families) {
      let s = f.header;
      const name = escapeString(d.name);
      for (let k = 0; k < this.latest.length; k++) {
        for (const [own, sh, value] of d.series(this.latest[k]!, this.host, shares[k]!)) {
          if (!Number.isFinite(value)) continue;
          const o = labelText(own);
          const t = labelText(sh);
          const labels = o === "" ? (t === "" ? "" : `{${t}}`) : t === "" ? `{${o}}` : `{${o},${t}}`;
          s += `\n${name}${labels} ${value}`;
        }
      }
      parts.push(s);
      size += Buffer.byteLength(s) + 2;
    }
    this.shared = next;
    this.latest = [];
    size -= 1; // the last family ends with one \n, not two
    const buf = this.spare !== null && this.spare.length >= size ? this.spare : Buffer.allocUnsafeSlow(size + (size >> 3));
    this.spare = null;
    let pos = 0;
    for (let i = 0; i < parts.length; i++) {
      pos += buf.write(parts[i]!, pos);
      buf[pos++] = 0x0a;
      if (i < parts.length - 1) buf[pos++] = 0x0a;
    }
    this.text = { buf, length: pos, sending: 0 };
    return this.text;
  }

  /** Health at scrape time, prom-client's text. */
  private healthText(): Promise<string> {
    return this.health.metrics();
  }

  /**
   * What GET /metrics sends: the per-unikernel text of the latest round, `\n`, then the
   * daemon's health (prom-client). `done()` once sent: the buffer is reused afterwards.
   */
  async scrape(): Promise<{ readonly unikernels: Buffer; readonly health: string; done(): void }> {
    this.lastScrapeMs = this.now();
    const t = this.text ?? this.format();
    t.sending++;
    let health: string;
    try {
      health = await this.healthText();
    } catch (e) {
      t.sending--;
      throw e;
    }
    let sent = false;
    return {
      unikernels: t.buf.subarray(0, t.length),
      health: `\n${health}`,
      done: () => {
        if (sent) return;
        sent = true;
        t.sending--;
        if (t !== this.text) this.drop(t);
      },
    };
  }

  /** The exposition text (what GET /metrics answers). */
  async render(): Promise<string> {
    const s = await this.scrape();
    const text = s.unikernels.toString() + s.health;
    s.done();
    return text;
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
    metrics.scrape().then(
      (s) => {
        res.once("close", s.done);
        res.writeHead(200, { "content-type": metrics.contentType, "content-length": s.unikernels.length + Buffer.byteLength(s.health) });
        if (req.method === "HEAD") res.end();
        else {
          res.write(s.unikernels);
          res.end(s.health);
        }
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
