// Start-up time of the command line (issue 13): `dromedary --version` and `dromedary info`
// against a running hostd, as ratios to `node -e 0` measured in the same run (rounds
// alternate the three, medians compared). Target: both within 1.5 x `node -e 0`.
// `info` needs root (hostd in a throw-away network namespace); without it, only --version.
// Run through bin/dromedary.cjs, as installed (the fast path bundled, scripts/bundle.ts): Node's compile cache is used where Node has
// one (22.1 and later); it is cleared first, and the first (cold) run is shown apart.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { netnsAvailable, withNetns } from "../test/support/netns.js";
import { withHostd } from "../test/support/hostd.js";
import { upperMedian } from "./support.js";

const BIN = fileURLToPath(new URL("../../bin/dromedary.cjs", import.meta.url));
const TARGET = 1.5;
const ROUNDS = 21;

function timeRun(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const dt = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")}: exit ${r.status}: ${r.stderr.toString()}`);
  return dt;
}

async function measure(cases: { name: string; args: string[] }[]): Promise<void> {
  const cache = mkdtempSync(join(tmpdir(), "dromedary-bench-cache-"));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_COMPILE_CACHE: cache };
    delete env.NODE_DISABLE_COMPILE_CACHE;
    const all = [{ name: "node -e 0", args: ["-e", "0"] }, ...cases];
    const cold = new Map(all.map((c) => [c.name, timeRun(c.args, env)]));
    const times = new Map<string, number[]>(all.map((c) => [c.name, []]));
    for (let i = 0; i < ROUNDS; i++) for (const c of all) times.get(c.name)!.push(timeRun(c.args, env));
    const base = upperMedian(times.get("node -e 0")!);
    const compileCache =
      Number(process.versions.node.split(".")[0]) > 22 || (process.versions.node.startsWith("22.") && Number(process.versions.node.split(".")[1]) >= 1);
    console.log(
      `Node ${process.versions.node}, compile cache ${compileCache ? "on" : "not available"}; medians of ${ROUNDS} runs each (first, cold, run apart)`,
    );
    console.log(`  node -e 0: ${base.toFixed(1)} ms`);
    for (const c of cases) {
      const m = upperMedian(times.get(c.name)!);
      const ratio = m / base;
      console.log(
        `  ${c.name}: ${m.toFixed(1)} ms (cold ${cold.get(c.name)!.toFixed(1)} ms) = ${ratio.toFixed(2)} x node -e 0, target <= ${TARGET}: ${ratio <= TARGET ? "met" : "NOT met"}`,
      );
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const version = { name: "dromedary --version", args: [BIN, "--version"] };
  const a = await netnsAvailable();
  if (!a.ok) {
    console.log(`info against hostd skipped: ${a.reason}`);
    await measure([version]);
    return;
  }
  await withNetns((ns) =>
    withHostd(ns, async (env) => {
      await measure([version, { name: "dromedary info (hostd running)", args: [BIN, "info", "--tmpdir", env.tmpdir] }]);
    }),
  );
}
