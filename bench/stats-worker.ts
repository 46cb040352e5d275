// The measuring half of stats.bench.ts, run inside a network namespace:
//   node stats-worker.js <stand-in tender binary> <count>
// Makes a bridge and <count> taps, starts a stand-in tender on each, runs `dromedary
// stats-daemon` as its own process (so its RSS and CPU time are its own), registers the
// tenders, subscribes to `:`, scrapes /metrics after every round (but in the run without
// it) and prints one JSON line (stats.bench.ts WorkerResult). Round
// durations (and the /metrics text made after a round) come from the daemon's own debug log
// line per round; each daemon is stopped with SIGTERM. Not a bench module itself.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { encodeFrame, encodeWire } from "../src/commands/index.js";
import { parseName } from "../src/core/name.js";
import { buildSolo5Elf } from "../test/support/elf-builder.js";
import { SEMI_SPACE_MB, type WorkerResult } from "./stats.bench.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** seconds between rounds while measuring (the CPU share is then scaled to 10 s) */
const INTERVAL = 0.5;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Send `count` Stats_add on one connection, one after the other. */
async function register(socket: string, pids: readonly number[]): Promise<void> {
  const s = await connectTo(socket);
  let replies = 0;
  let buf = Buffer.alloc(0);
  let wake: (() => void) | null = null;
  s.on("data", (b: Buffer) => {
    buf = Buffer.concat([buf, b]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      buf = buf.subarray(4 + buf.readInt32BE(0));
      replies++;
    }
    wake?.();
  });
  for (let i = 0; i < pids.length; i++) {
    const w = {
      header: { version: 5, sequence: BigInt(i + 1), name: parseName(`tenant${i % 10}:vm${i}`) },
      payload: {
        kind: "command" as const,
        command: { kind: "stats-add" as const, vmmdev: "", pid: pids[i]!, network: [{ bridge: "service", tap: `vmmtap${i}` }] },
      },
    };
    s.write(encodeFrame(encodeWire(w)));
    while (replies <= i) await new Promise<void>((r) => (wake = r));
  }
  s.destroy();
}

/** The CPU time (user + system) of a process so far, in clock ticks. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]);
}

const rssMB = (pid: number): { rss: number; peak: number } => {
  const st = readFileSync(`/proc/${pid}/status`, "latin1");
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(st)![1]) / 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
};

/** `dromedary stats-daemon -v` as its own process; its per-round log lines give the durations. */
class DaemonProc {
  readonly proc: ChildProcess;
  readonly rounds: number[] = [];
  /** ms to make the /metrics text right after each round (rounds after a scrape) */
  readonly formats: number[] = [];
  readonly socket: string;
  private roundWaiters: Array<() => void> = [];
  constructor(dir: string, name: string, metricsPort: number | null, nodeFlags: readonly string[] = []) {
    const tmp = join(dir, name);
    mkdirSync(join(tmp, "util"), { recursive: true });
    this.socket = join(tmp, "util", "stat.sock");
    const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
    this.proc = spawn(
      process.execPath,
      [
        ...nodeFlags,
        cli,
        "stats-daemon",
        "-v",
        "--tmpdir",
        tmp,
        "--interval",
        String(INTERVAL),
        ...(metricsPort !== null ? ["--metrics-listen", `127.0.0.1:${metricsPort}`] : []),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let buf = "";
    this.proc.stderr!.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = / round \d+: (\d+) unikernels sampled, \d+ messages, ([\d.]+) ms(?:; \/metrics text made in ([\d.]+) ms)?/.exec(line);
        if (m !== null && Number(m[1]) > 0) {
          this.rounds.push(Number(m[2]));
          this.formats.push(m[3] === undefined ? NaN : Number(m[3]));
          for (const w of this.roundWaiters.splice(0)) w();
        }
      }
    });
  }
  nextRound(): Promise<void> {
    return new Promise((r) => this.roundWaiters.push(r));
  }
  async ready(): Promise<void> {
    while (!existsSync(this.socket)) await sleep(20);
  }
  /** SIGTERM; the exit code and how long it took (SIGKILL after 10 s: code null). */
  stop(): Promise<{ code: number | null; ms: number }> {
    return new Promise((r) => {
      const t0 = performance.now();
      if (this.proc.exitCode !== null) return r({ code: this.proc.exitCode, ms: 0 });
      const kill = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      this.proc.once("exit", (code) => {
        clearTimeout(kill);
        r({ code, ms: performance.now() - t0 });
      });
      this.proc.kill("SIGTERM");
    });
  }
}

/** A `:` subscriber in this process: counts frames. */
async function subscribe(socket: string): Promise<{ sock: Socket; frames: () => number }> {
  const s = await connectTo(socket);
  let n = 0;
  let buf = Buffer.alloc(0);
  s.on("data", (b: Buffer) => {
    buf = Buffer.concat([buf, b]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      buf = buf.subarray(4 + buf.readInt32BE(0));
      n++;
    }
  });
  s.write(
    encodeFrame(encodeWire({ header: { version: 5, sequence: 0n, name: parseName(":") }, payload: { kind: "command", command: { kind: "stats-subscribe" } } })),
  );
  return { sock: s, frames: () => n };
}

async function main(): Promise<void> {
  const [tender, countText] = process.argv.slice(2);
  const count = Number(countText);
  const dir = mkdtempSync(join(tmpdir(), "dromedary-stats-bench-"));
  const tenders: ChildProcess[] = [];
  try {
    execFileSync("ip", ["link", "add", "br0", "type", "bridge"]);
    execFileSync("ip", ["link", "set", "br0", "up"]);
    const batch: string[] = [];
    for (let i = 0; i < count; i++) batch.push(`tuntap add vmmtap${i} mode tap`, `link set vmmtap${i} master br0`, `link set vmmtap${i} up`);
    execFileSync("ip", ["-batch", "-"], { input: batch.join("\n") + "\n" });
    const kernel = join(dir, "net.hvt");
    writeFileSync(kernel, buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes);
    let started = 0;
    for (let i = 0; i < count; i++) {
      const p = spawn(tender!, ["--mem=32", `--net:service=vmmtap${i}`, kernel, "--standin-run"], { stdio: ["ignore", "pipe", "inherit"] });
      p.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("Hello, World")) started++;
      });
      tenders.push(p);
    }
    const t0 = Date.now();
    while (started < count) {
      if (Date.now() - t0 > 60_000) throw new Error(`only ${started} of ${count} stand-ins started`);
      await sleep(20);
    }
    const pids = tenders.map((p) => p.pid!);

    const port = 20000 + Math.floor(Math.random() * 20000);
    const url = `http://127.0.0.1:${port}/metrics`;
    /**
     * `n` rounds after 3 of warm-up (the files are opened in the first). With `scrape`, a
     * scraper from the warm-up on: /metrics fetched twice after every round (the first finds
     * the text made right after the round, the second too), as Prometheus would come.
     */
    const measure = async (name: string, metrics: boolean, n: number, scrape: boolean, nodeFlags: readonly string[] = []) => {
      const d = new DaemonProc(dir, name, metrics ? port : null, nodeFlags);
      await d.ready();
      const rssBefore = rssMB(d.proc.pid!).rss;
      await register(d.socket, pids);
      const sub = await subscribe(d.socket);
      const first: number[] = [];
      const again: number[] = [];
      let scrapeBytes = 0;
      const afterRound = async (keep: boolean): Promise<void> => {
        await d.nextRound();
        if (!scrape) return;
        for (let j = 0; j < 2; j++) {
          const t = performance.now();
          const body = await (await fetch(url)).text();
          if (keep) (j === 0 ? first : again).push(performance.now() - t);
          scrapeBytes = Buffer.byteLength(body);
        }
      };
      for (let i = 0; i < 3; i++) await afterRound(false);
      const from = d.rounds.length;
      const frames0 = sub.frames();
      const cpu0 = cpuTicks(d.proc.pid!);
      for (let i = 0; i < n; i++) await afterRound(true);
      const cpuMs = (cpuTicks(d.proc.pid!) - cpu0) * 10;
      const messages = (sub.frames() - frames0) / n;
      const mem = rssMB(d.proc.pid!);
      sub.sock.destroy();
      const exit = await d.stop();
      return { ms: d.rounds.slice(from, from + n), formats: d.formats.slice(from, from + n), cpuMs, rssBefore, messages, mem, first, again, scrapeBytes, exit };
    };

    const plain = await measure("plain", false, 10, false);
    // the same with V8's young generation capped by Node's flag (see stats.bench.ts)
    const tuned = await measure("tuned", true, 20, true, [`--max-semi-space-size=${SEMI_SPACE_MB}`]);
    const m = await measure("metrics", true, 40, true);
    const withText = m.ms.map((x, i) => x + (m.formats[i] ?? 0));
    const result: WorkerResult = {
      unikernels: count,
      interfaces: count,
      rounds: m.ms.length,
      roundMs: { median: pct(m.ms, 0.5), p95: pct(m.ms, 0.95) },
      formatMs: { median: pct(m.formats, 0.5), p95: pct(m.formats, 0.95) },
      roundWithTextMs: { median: pct(withText, 0.5), p95: pct(withText, 0.95) },
      roundMsNoMetrics: { median: pct(plain.ms, 0.5) },
      cpuMsPerRound: m.cpuMs / m.ms.length,
      messagesPerRound: m.messages,
      rssMB: m.mem.rss,
      rssPeakMB: m.mem.peak,
      rssBeforeMB: m.rssBefore,
      tunedRssMB: tuned.mem.rss,
      tunedRssPeakMB: tuned.mem.peak,
      tunedRoundMs: { median: pct(tuned.ms, 0.5) },
      scrapeMs: { median: pct(m.first, 0.5), p95: pct(m.first, 0.95) },
      cachedScrapeMs: { median: pct(m.again, 0.5) },
      scrapeBytes: m.scrapeBytes,
      sigterm: [plain.exit, tuned.exit, m.exit],
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const p of tenders) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
