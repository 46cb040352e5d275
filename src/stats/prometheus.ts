// `--metrics-listen`: the sampling rounds as Prometheus metrics (prom-client), served on
// GET /metrics. The families and series come from metrics.ts; this file holds the
// prom-client registry and the HTTP server.
//
// The per-unikernel families are rewritten once per sampling round (the kernel's counters
// are mirrored: reset, then set to the value read), so a scrape only formats; the daemon's
// health is read at scrape time.

import http from "node:http";
import client from "prom-client";
import { baseLabels, HEALTH_METRICS, UNIKERNEL_METRICS, type UnikernelSnapshot } from "./metrics.js";
import type { HostFacts } from "./sample.js";
import { MAX_METRICS_CONNECTIONS } from "./limits.js";

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

type Family = client.Counter<string> | client.Gauge<string>;

export class StatsMetrics {
  readonly registry = new client.Registry();
  private readonly families: ReadonlyArray<readonly [(typeof UNIKERNEL_METRICS)[number], Family]>;

  constructor(health: () => Health, now: () => number = () => performance.now()) {
    const registers = [this.registry];
    this.families = UNIKERNEL_METRICS.map((d) => {
      const cfg = { name: d.name, help: d.help, labelNames: [...d.labelNames], registers };
      return [d, d.type === "counter" ? new client.Counter(cfg) : new client.Gauge(cfg)] as const;
    });
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

  /** Replace the per-unikernel series by those of the latest round. */
  update(snapshots: Iterable<UnikernelSnapshot>, host: HostFacts): void {
    for (const [, f] of this.families) f.reset();
    for (const u of snapshots) {
      const base = baseLabels(u.name);
      for (const [d, f] of this.families) {
        for (const [labels, value] of d.series(u, host, base)) {
          if (!Number.isFinite(value)) continue;
          if (f instanceof client.Counter) f.inc(labels, value);
          else f.set(labels, value);
        }
      }
    }
  }

  /** The exposition text (what GET /metrics answers). */
  render(): Promise<string> {
    return this.registry.metrics();
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
