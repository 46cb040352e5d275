// Test support for the stats daemon: a stand-in tender running without hostd (a real
// process to sample), an in-process stats daemon on a temporary tmpdir, and small wire
// helpers. Test support only.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeWire, encodeWire } from "../../src/commands/codec.js";
import { encodeFrame } from "../../src/commands/framing.js";
import type { Command, StatsData, Wire } from "../../src/commands/types.js";
import { parseName } from "../../src/core/name.js";
import { startStatsDaemon, type StatsDaemon, type StatsDaemonOptions } from "../../src/stats/daemon.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { standinTender } from "../support/standin.js";
import { fileURLToPath } from "node:url";

import { sleep, waitFor } from "../support/hostd.js";

export { sleep, waitFor };

/** A temporary directory, removed after `fn`. */
export async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "dromedary-stats-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The stand-in tender started directly (no hostd, no taps): `solo5-hvt --mem=MB KERNEL
 * ARGS`, e.g. `--standin-run`. Killed by `stop()`.
 */
export async function startTender(dir: string, args: readonly string[], memMB = 32): Promise<{ proc: ChildProcess; pid: number; stop(): Promise<void> }> {
  const kernel = join(dir, `k${Math.random().toString(36).slice(2)}.hvt`);
  await writeFile(kernel, buildSolo5Elf({ target: "hvt", devices: [] }).bytes);
  const proc = spawn(await standinTender(), [`--mem=${memMB}`, kernel, ...args], { stdio: ["ignore", "ignore", "ignore"] });
  const pid = proc.pid!;
  return {
    proc,
    pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGKILL");
      }),
  };
}

/** An in-process stats daemon on `<dir>/run/util/stat.sock`; `lines` collects its log. */
export async function startDaemon(dir: string, over: Partial<StatsDaemonOptions> = {}): Promise<{ d: StatsDaemon; lines: string[]; tmp: string }> {
  const tmp = join(dir, "run");
  await mkdir(join(tmp, "util"), { recursive: true });
  const lines: string[] = [];
  const d = await startStatsDaemon({ tmpdir: tmp, intervalSeconds: 3600, log: (level, line) => lines.push(`${level}: ${line}`), ...over });
  return { d, lines, tmp };
}

export function connectSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(path);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export const wire = (name: string, command: Command, sequence = 0n, version = 5): Wire => ({
  header: { version, sequence, name: parseName(name) },
  payload: { kind: "command", command },
});

/** A connection reading wire messages into `messages` (for subscribers and fake hostds). */
export class WireConn {
  readonly messages: Wire[] = [];
  closed = false;
  private buf = Buffer.alloc(0);

  constructor(readonly sock: Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4) {
        const len = this.buf.readInt32BE(0);
        if (len <= 0 || this.buf.length < 4 + len) break;
        this.messages.push(decodeWire(new Uint8Array(this.buf.subarray(4, 4 + len))));
        this.buf = this.buf.subarray(4 + len);
      }
    });
    sock.on("error", () => undefined);
    sock.on("close", () => (this.closed = true));
  }

  static async open(path: string): Promise<WireConn> {
    return new WireConn(await connectSocket(path));
  }

  send(w: Wire): void {
    this.sock.write(encodeFrame(encodeWire(w)));
  }

  /** Wait for the n-th message (1-based). */
  async nth(n: number, timeoutMs = 10_000): Promise<Wire> {
    return waitFor(`message ${n}`, () => this.messages[n - 1], timeoutMs);
  }

  /** The statistics received so far, as [name text, data]. */
  stats(): Array<[string, StatsData]> {
    const out: Array<[string, StatsData]> = [];
    for (const m of this.messages) {
      const p = m.payload;
      if (p.kind === "data" && p.data.kind === "statistics") out.push([`${m.header.name.path.join(":")}:${m.header.name.label ?? ""}`, p.data.stats]);
    }
    return out;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** One request on a fresh connection; its single reply as `success: text` / `failure: text`. */
export async function ask(path: string, w: Wire): Promise<string> {
  const c = await WireConn.open(path);
  try {
    c.send(w);
    const r = await c.nth(1);
    const p = r.payload;
    if (p.kind === "failure") return `failure: ${Buffer.from(p.message).toString("utf8")}`;
    if (p.kind === "reply" && p.reply.kind === "string") return `success: ${Buffer.from(p.reply.text).toString("utf8")}`;
    return p.kind;
  } finally {
    c.close();
  }
}

/** Every PromQL expression of a Grafana dashboard (panel targets and variable queries). */
export function dashboardQueries(dash: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown, key: string): void => {
    if (Array.isArray(v)) for (const x of v) walk(x, key);
    else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (typeof v === "string" && (key === "expr" || key === "definition")) out.push(v);
  };
  walk(dash, "");
  return out;
}

/** The shipped dashboard (from dist/test/stats/ or test/stats/). */
export const DASHBOARD = fileURLToPath(new URL("../../../packaging/grafana/dromedary.json", import.meta.url));

/** Metric names in a PromQL expression: identifiers that are not functions, keywords or labels. */
export function metricNames(expr: string): string[] {
  // Grafana's label_values(METRIC, LABEL): only its first argument is a metric
  const grafana = expr.replace(/\blabel_values\(([^,]*?)(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*)?\)\s*$/, "$1");
  const noStrings = grafana.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const noBraces = noStrings.replace(/\{[^}]*\}/g, "{}").replace(/\[[^\]]*\]/g, "[]");
  const noGrouping = noBraces.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const words = noGrouping.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return words.filter((w, i, all) => {
    const after = noGrouping.slice(noGrouping.indexOf(w) + w.length).trimStart();
    const isCall = after.startsWith("(");
    return !isCall && !["bool", "offset", "and", "or", "unless"].includes(w) && all.indexOf(w) === i;
  });
}
