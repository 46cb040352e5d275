// hostd benchmarks (needs root: runs inside a throw-away network namespace):
// 1. create -> exec latency: a `create` request to hostd until its reply (the tender has
//    been exec'd, the journal record written) against spawning the same command line
//    (`taskset -c 0 <stand-in> --mem=.. -- <image> ...`) directly until the child exists.
//    Target: at most 5 ms of overhead (median).
// 2. hostd's RSS with 200 running stand-in unikernels. Target: at most 150 MB.
// 3. A create with 200 running 3 MB unikernels against a create with none (the same 3 MB
//    image): a change is one journal record, the state file (600 MB here) is folded in the
//    background. Target: ratio of the medians <= 1.2. Also: the fold's duration and its
//    longest synchronous step, and how long `info` waits while a fold runs.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { netnsAvailable, withNetns } from "../test/support/netns.js";
import { buildSolo5Elf } from "../test/support/elf-builder.js";
import { argv, config, exists, request, show, waitFor, withHostd, type Env } from "../test/support/hostd.js";
import { upperMedian } from "./support.js";

const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
const ROUNDS = 30;

const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;

async function rssMB(pid: number): Promise<number> {
  const st = await readFile(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(st);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function directSpawn(env: Env, image: string): Promise<number> {
  const t0 = performance.now();
  const c = spawn("taskset", ["-c", "0", join(env.dbdir, "solo5-hvt"), "--mem=32", "--", image, "--standin-exit=0"], { stdio: "ignore" });
  await new Promise<void>((res, rej) => {
    c.once("spawn", () => res());
    c.once("error", rej);
  });
  const dt = performance.now() - t0;
  await new Promise((r) => c.once("exit", r));
  return dt;
}

async function latency(env: Env): Promise<void> {
  const image = join(env.tmpdir, "direct.img");
  await writeFile(image, HELLO);
  const direct: number[] = [];
  const viaHostd: number[] = [];
  const c = config(HELLO, { argv: argv("--standin-run") });
  for (let i = 0; i < ROUNDS + 3; i++) {
    const d = await directSpawn(env, image);
    const t0 = performance.now();
    const r = show(await request(env.socket, ":lat", { kind: "unikernel-create", config: c }));
    const h = performance.now() - t0;
    if (r !== "success: created unikernel") throw new Error(`create failed: ${r}`);
    const gone = show(await request(env.socket, ":lat", { kind: "unikernel-destroy" }));
    if (gone !== "success: destroyed unikernel") throw new Error(`destroy failed: ${gone}`);
    await request(env.socket, ":lat", { kind: "unikernel-destroy" }); // the restarting-set quirk
    if (i >= 3) {
      direct.push(d);
      viaHostd.push(h);
    }
  }
  const md = upperMedian(direct);
  const mh = upperMedian(viaHostd);
  console.log(`create -> exec (median of ${ROUNDS}): direct spawn ${fmt(md)}, hostd create ${fmt(mh)}`);
  console.log(`  overhead ${fmt(mh - md)} (target <= 5 ms), ratio hostd/direct ${(mh / md).toFixed(2)}`);
}

async function rss200(env: Env): Promise<void> {
  const pid = env.hostd?.pid;
  if (pid === undefined) throw new Error("no hostd pid");
  const before = await rssMB(pid);
  const c = config(HELLO, { argv: argv("--standin-run"), memory: 16 });
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) {
    const r = show(await request(env.socket, `:u${i}`, { kind: "unikernel-create", config: c }));
    if (r !== "success: created unikernel") throw new Error(`create ${i} failed: ${r}`);
  }
  const dt = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  const after = await rssMB(pid);
  console.log(`200 creates in ${fmt(dt)} (${fmt(dt / 200)} each)`);
  console.log(`hostd RSS: ${before.toFixed(1)} MB idle, ${after.toFixed(1)} MB with 200 running stand-ins (target <= 150 MB)`);
  // SIGTERM stops them all (hostd frees everything)
  const t1 = performance.now();
  await env.stopHostd("SIGTERM");
  console.log(`SIGTERM shutdown of 200 unikernels: ${fmt(performance.now() - t1)}`);
  await waitFor("images removed", async () => !(await exists(join(env.tmpdir, ":u0.img"))));
}

const MB3 = 3 << 20;
const STATE_ROUNDS = 20;

/** One create of `name` (timed), then its destroy (and the restarting-set quirk). */
async function probe(env: Env, c: ReturnType<typeof config>): Promise<number> {
  const t0 = performance.now();
  const r = show(await request(env.socket, ":probe", { kind: "unikernel-create", config: c }, 60_000));
  const dt = performance.now() - t0;
  if (r !== "success: created unikernel") throw new Error(`create failed: ${r}`);
  const gone = show(await request(env.socket, ":probe", { kind: "unikernel-destroy" }, 60_000));
  if (gone !== "success: destroyed unikernel") throw new Error(`destroy failed: ${gone}`);
  await request(env.socket, ":probe", { kind: "unikernel-destroy" }, 60_000);
  return dt;
}

const folds = (env: Env): { ms: number; bytes: number; step: number }[] =>
  env.hostdLog.flatMap((l) => {
    const m = /folded the journal: \d+ unikernels, (\d+) bytes in ([\d.]+) ms \(longest step ([\d.]+) ms\)/.exec(l);
    return m === null ? [] : [{ bytes: Number(m[1]), ms: Number(m[2]), step: Number(m[3]) }];
  });

/** Medians of the steps of the probe's creates logged since line `from` (hostd -v). */
function stepMedians(env: Env, from: number): Map<string, number> {
  const steps = new Map<string, number[]>();
  for (const l of env.hostdLog.slice(from)) {
    const m = /create :probe timings \(ms\): (.*)$/.exec(l);
    if (m === null) continue;
    let prev = 0;
    for (const part of m[1]!.split(", ")) {
      const [name, t] = part.split(" ");
      const at = Number(t);
      steps.set(name!, [...(steps.get(name!) ?? []), at - prev]);
      prev = at;
    }
  }
  return new Map([...steps].map(([k, v]) => [k, upperMedian(v)]));
}

async function stateScaling(env: Env): Promise<void> {
  const image = buildSolo5Elf({ target: "hvt", devices: [], text: randomBytes(MB3) }).bytes;
  const c = config(image, { argv: argv("--standin-run"), memory: 16 });
  const measure = async (): Promise<{ times: number[]; steps: Map<string, number> }> => {
    // every phase starts with the disk's write-back done (200 creates leave 600 MB of
    // journal to write): the steady state, not the aftermath of the set-up
    execFileSync("sync");
    const from = env.hostdLog.length;
    const times: number[] = [];
    for (let i = 0; i < STATE_ROUNDS + 3; i++) {
      const dt = await probe(env, c);
      if (i >= 3) times.push(dt);
    }
    return { times, steps: stepMedians(env, from) };
  };
  const create200 = async (): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const r = show(await request(env.socket, `:s${i}`, { kind: "unikernel-create", config: c }, 60_000));
      if (r !== "success: created unikernel") throw new Error(`create ${i} failed: ${r}`);
    }
    return performance.now() - t0;
  };
  const foldsSettled = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, 1500)); // a fold scheduled by the last change starts
    await waitFor("the folds to finish", async () => env.hostdLog.filter((l) => l.includes("folding the journal")).length === folds(env).length, 120_000);
  };
  // none, 200 running, none again (after destroying them): the baseline is both "none"
  // phases together, so that a drift of the machine's load does not decide the ratio
  const none1 = await measure();
  const setup = await create200();
  const foldsBefore = folds(env).length;
  const full = await measure();
  const during = folds(env).length - foldsBefore;
  // a fold of the 600 MB state on its own, with `info` asked every 10 ms meanwhile
  await foldsSettled();
  const n0 = folds(env).length;
  const r = show(await request(env.socket, ":probe", { kind: "unikernel-create", config: c }, 60_000));
  if (r !== "success: created unikernel") throw new Error(`create failed: ${r}`);
  await request(env.socket, ":probe", { kind: "unikernel-destroy" }, 60_000);
  await request(env.socket, ":probe", { kind: "unikernel-destroy" }, 60_000);
  const waits: number[] = [];
  while (folds(env).length === n0) {
    const t = performance.now();
    await request(env.socket, ":s0", { kind: "unikernel-info" });
    waits.push(performance.now() - t);
    await new Promise((res) => setTimeout(res, 10));
  }
  const f = folds(env)[n0]!;
  for (let i = 0; i < 200; i++) {
    const d = show(await request(env.socket, `:s${i}`, { kind: "unikernel-destroy" }, 60_000));
    if (d !== "success: destroyed unikernel") throw new Error(`destroy ${i} failed: ${d}`);
    await request(env.socket, `:s${i}`, { kind: "unikernel-destroy" }, 60_000);
  }
  await foldsSettled();
  const none2 = await measure();

  const none = [...none1.times, ...none2.times];
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const ratio = upperMedian(full.times) / upperMedian(none);
  console.log(
    `create with a 3 MB image: median ${fmt(upperMedian(none))} with none running (${STATE_ROUNDS} before and ${STATE_ROUNDS} after), ${fmt(upperMedian(full.times))} with 200 running (${STATE_ROUNDS})`,
  );
  console.log(
    `  ratio ${ratio.toFixed(2)} (target <= 1.2): ${ratio <= 1.2 ? "met" : "NOT met"}; means ${fmt(mean(none))} / ${fmt(mean(full.times))}, max ${fmt(Math.max(...none))} / ${fmt(Math.max(...full.times))}`,
  );
  const steps = [...full.steps.keys()].map((k) => `${k} ${(none1.steps.get(k) ?? NaN).toFixed(1)}/${(full.steps.get(k) ?? NaN).toFixed(1)}`);
  console.log(`  inside hostd, median ms per step (none/200): ${steps.join(", ")}`);
  console.log(`  (200 creates of 3 MB took ${fmt(setup)}; ${during} folds of the 600 MB state ran during the ${STATE_ROUNDS + 3} rounds with 200)`);
  const sorted = [...waits].sort((a, b) => a - b);
  console.log(
    `fold of ${(f.bytes / 2 ** 20).toFixed(0)} MiB: ${fmt(f.ms)}, longest synchronous step ${fmt(f.step)}; info during the fold: median ${fmt(upperMedian(waits))}, p99 ${fmt(sorted[Math.floor(sorted.length * 0.99)]!)}, max ${fmt(sorted[sorted.length - 1]!)} (${waits.length} requests)`,
  );
}

export async function run(): Promise<void> {
  const a = await netnsAvailable();
  if (!a.ok) {
    console.log(`skipped: ${a.reason}`);
    return;
  }
  const base = await mkdtemp(join(tmpdir(), "dromedary-hostd-bench-"));
  try {
    await mkdir(base, { recursive: true });
    await withNetns((ns) => withHostd(ns, latency, { hostdArgs: ["-q"] }));
    await withNetns((ns) => withHostd(ns, rss200, { hostdArgs: ["-q"] }));
    // tmpdir on a tmpfs, as /run/albatross is: the images hostd writes there never reach the
    // disk, which holds only the dbdir (state file and journal)
    await withNetns((ns) => withHostd(ns, stateScaling, { hostdArgs: ["-v"], privateMounts: [{ dir: "run", options: "size=2g" }] }));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
