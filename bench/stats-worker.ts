// The measuring half of stats.bench.ts, run inside a network namespace:
//   node stats-worker.js <stand-in tender binary> <count>
// Makes a bridge and <count> taps, starts a stand-in tender on each, runs `dromedary
// stats-daemon` as its own process (so its RSS and CPU time are its own), registers the
// tenders, subscribes to `:` and prints one JSON line (stats.bench.ts WorkerResult). Round
// durations come from the daemon's own debug log line per round. Not a bench module itself.
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
    const w = { header: { version: 5, sequence: BigInt(i + 1), name: parseName(`tenant${i % 10}:vm${i}`) }, payload: { kind: "command" as const, command: { kind: "stats-add" as const, vmmdev: "", pid: pids[i]!, network: [{ bridge: "service", tap: `vmmtap${i}` }] } } };
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
  readonly socket: string;
  private roundWaiters: Array<() => void> = [];
  constructor(dir: string, name: string, metrics: boolean, nodeFlags: readonly string[] = []) {
    const tmp = join(dir, name);
    mkdirSync(join(tmp, "util"), { recursive: true });
    this.socket = join(tmp, "util", "stat.sock");
    const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
    this.proc = spawn(process.execPath, [...nodeFlags, cli, "stats-daemon", "-v", "--tmpdir", tmp, "--interval", String(INTERVAL), ...(metrics ? ["--metrics-listen", "127.0.0.1:9125"] : [])], { stdio: ["ignore", "ignore", "pipe"] });
    let buf = "";
    this.proc.stderr!.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = / round \d+: (\d+) unikernels sampled, \d+ messages, ([\d.]+) ms/.exec(line);
        if (m !== null && Number(m[1]) > 0) {
          this.rounds.push(Number(m[2]));
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
  stop(): Promise<void> {
    return new Promise((r) => {
      if (this.proc.exitCode !== null) return r();
      this.proc.once("exit", () => r());
      this.proc.kill("SIGKILL");
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
  s.write(encodeFrame(encodeWire({ header: { version: 5, sequence: 0n, name: parseName(":") }, payload: { kind: "command", command: { kind: "stats-subscribe" } } })));
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

    const measure = async (name: string, metrics: boolean, n: number, nodeFlags: readonly string[] = []) => {
      const d = new DaemonProc(dir, name, metrics, nodeFlags);
      await d.ready();
      const rssBefore = rssMB(d.proc.pid!).rss;
      await register(d.socket, pids);
      const sub = await subscribe(d.socket);
      // warm-up: the files are opened in the first round
      for (let i = 0; i < 3; i++) await d.nextRound();
      const first = d.rounds.length;
      const frames0 = sub.frames();
      const cpu0 = cpuTicks(d.proc.pid!);
      while (d.rounds.length < first + n) await d.nextRound();
      const cpuMs = (cpuTicks(d.proc.pid!) - cpu0) * 10;
      const messages = (sub.frames() - frames0) / n;
      return { d, sub, ms: d.rounds.slice(first, first + n), cpuMs, rssBefore, messages };
    };

    const plain = await measure("plain", false, 10);
    plain.sub.sock.destroy();
    await plain.d.stop();

    // the same with V8's young generation capped (see stats.bench.ts): RSS only
    const tuned = await measure("tuned", true, 20, [`--max-semi-space-size=${SEMI_SPACE_MB}`]);
    for (let i = 0; i < 10; i++) {
      await tuned.d.nextRound();
      await (await fetch("http://127.0.0.1:9125/metrics")).text();
    }
    const tunedMem = rssMB(tuned.d.proc.pid!);
    tuned.sub.sock.destroy();
    await tuned.d.stop();

    const m = await measure("metrics", true, 30);
    const url = "http://127.0.0.1:9125/metrics";
    // the first scrape after a round formats it; the next ones of the same round are cached
    const fresh: number[] = [];
    const cached: number[] = [];
    let scrapeBytes = 0;
    for (let i = 0; i < 15; i++) {
      await m.d.nextRound();
      for (let j = 0; j < 2; j++) {
        const t = performance.now();
        const body = await (await fetch(url)).text();
        (j === 0 ? fresh : cached).push(performance.now() - t);
        scrapeBytes = Buffer.byteLength(body);
      }
    }
    const mem = rssMB(m.d.proc.pid!);
    const result: WorkerResult = {
      unikernels: count,
      interfaces: count,
      rounds: m.ms.length,
      roundMs: { median: pct(m.ms, 0.5), p95: pct(m.ms, 0.95) },
      roundMsNoMetrics: { median: pct(plain.ms, 0.5) },
      cpuMsPerRound: m.cpuMs / m.ms.length,
      messagesPerRound: m.messages,
      rssMB: mem.rss,
      rssPeakMB: mem.peak,
      rssBeforeMB: m.rssBefore,
      tunedRssMB: tunedMem.rss,
      tunedRssPeakMB: tunedMem.peak,
      tunedRoundMs: { median: pct(tuned.ms, 0.5) },
      scrapeMs: { median: pct(fresh, 0.5), p95: pct(fresh, 0.95) },
      cachedScrapeMs: { median: pct(cached, 0.5) },
      scrapeBytes,
    };
    m.sub.sock.destroy();
    await m.d.stop();
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const p of tenders) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
