// A harness for tests that need real taps and bridges: everything happens inside a
// freshly created, uniquely named network namespace, never in the host's own
// namespace. The namespace (and with it its bridges and taps) is deleted when the
// callback settles, and also on process exit or SIGINT/SIGTERM if the test dies early.
// Cleanup also kills whatever still runs inside the namespace (`ip netns pids`).
// Test support only. Needs root and iproute2 (see netnsAvailable()).

import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";

export interface ExecResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /** Resolve with a non-zero exit instead of rejecting. */
  readonly allowFail?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Kill the command after this many ms (default 30000). */
  readonly timeoutMs?: number;
}

export interface Netns {
  readonly name: string;
  /** Run `ip netns exec <ns> cmd args...` to completion. Rejects on non-zero exit unless allowFail. */
  exec(cmd: string, args?: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** `ip <args>` inside the namespace; returns stdout. */
  ip(...args: string[]): Promise<string>;
  /** Create a bridge (and set it up) inside the namespace. */
  addBridge(name: string): Promise<void>;
  /**
   * Start a long-running process inside the namespace. It is killed (SIGKILL) at
   * cleanup if still running, as is every other process left in the namespace. `ip netns exec` execs the command, so the child's pid
   * is the command's own pid.
   */
  spawn(cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
}

const IP = "ip";

function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      [...args],
      {
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 30_000,
        killSignal: "SIGKILL",
        env: opts.env ?? process.env,
        cwd: opts.cwd,
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, signal: null, stdout, stderr });
          return;
        }
        const e = error as NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null };
        if (typeof e.code !== "number" && (e.signal === undefined || e.signal === null)) {
          reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`));
          return;
        }
        const result: ExecResult = {
          code: typeof e.code === "number" ? e.code : null,
          signal: e.signal ?? null,
          stdout,
          stderr,
        };
        if (opts.allowFail) resolve(result);
        else reject(new Error(`${cmd} ${args.join(" ")}: ${result.code !== null ? `exit ${result.code}` : `signal ${result.signal}`}: ${stderr.trim()}`));
      },
    );
  });
}

// Namespaces and processes still alive, for the exit-time safety net.
const liveNamespaces = new Set<string>();
const liveChildren = new Set<ChildProcess>();
let handlersInstalled = false;

function syncCleanupAll(): void {
  for (const c of liveChildren) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const ns of liveNamespaces) {
    try {
      const pids = execFileSync(IP, ["netns", "pids", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      for (const pid of parsePids(pids)) killQuietly(pid);
    } catch {
      // namespace already gone
    }
    try {
      execFileSync(IP, ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // nothing more we can do at exit
    }
  }
  liveNamespaces.clear();
}

function parsePids(out: string): number[] {
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^\d+$/.test(l))
    .map(Number)
    .filter((p) => p !== process.pid);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * Kill every process still inside the namespace (e.g. tenders started by a daemon
 * that the test spawned there): they would keep the namespace, and its taps, alive
 * after `ip netns del`. Only processes in our own, uniquely named namespace are hit.
 */
async function killNamespacePids(name: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = parsePids((await run(IP, ["netns", "pids", name], { allowFail: true })).stdout);
    if (pids.length === 0) return;
    for (const pid of pids) killQuietly(pid);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", syncCleanupAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const handler = (): void => {
      syncCleanupAll();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig); // default action now
    };
    process.on(sig, handler);
  }
}

let availability: Promise<{ ok: true } | { ok: false; reason: string }> | null = null;

/**
 * Whether namespaces can be used here: root, and `ip netns add`/`del` of a probe
 * namespace work. `reason` says why not, for `t.skip(reason)`. Cached.
 */
export function netnsAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  availability ??= (async () => {
    if (process.platform !== "linux") return { ok: false, reason: "network namespaces need Linux" };
    if (typeof process.getuid !== "function" || process.getuid() !== 0) return { ok: false, reason: "network namespace tests need root" };
    const probe = `dromedary-probe-${randomBytes(4).toString("hex")}`;
    try {
      await run(IP, ["netns", "add", probe]);
    } catch (e) {
      return { ok: false, reason: `ip netns add does not work: ${(e as Error).message}` };
    }
    try {
      await run(IP, ["netns", "del", probe]);
    } catch (e) {
      return { ok: false, reason: `ip netns del does not work: ${(e as Error).message}` };
    }
    return { ok: true };
  })();
  return availability;
}

function waitExit(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => c.once("exit", () => resolve()));
}

/**
 * Run `fn` with a fresh namespace `dromedary-<random>` (loopback up). Cleanup always
 * runs: spawned processes are killed and awaited, then the namespace is deleted
 * (which removes its bridges and taps).
 */
export async function withNetns<T>(fn: (ns: Netns) => Promise<T>): Promise<T> {
  installHandlers();
  const name = `dromedary-${randomBytes(6).toString("hex")}`;
  liveNamespaces.add(name); // before creating it: an exit during `add` still deletes it
  try {
    await run(IP, ["netns", "add", name]);
  } catch (e) {
    liveNamespaces.delete(name);
    throw e;
  }
  const children = new Set<ChildProcess>();
  const ns: Netns = {
    name,
    exec: (cmd, args = [], opts = {}) => run(IP, ["netns", "exec", name, cmd, ...args], opts),
    ip: async (...args) => (await run(IP, ["-n", name, ...args])).stdout,
    addBridge: async (br) => {
      await run(IP, ["-n", name, "link", "add", "name", br, "type", "bridge"]);
      await run(IP, ["-n", name, "link", "set", "dev", br, "up"]);
    },
    spawn: (cmd, args = [], opts = {}) => {
      const c = spawn(IP, ["netns", "exec", name, cmd, ...args], opts);
      children.add(c);
      liveChildren.add(c);
      c.once("exit", () => {
        children.delete(c);
        liveChildren.delete(c);
      });
      return c;
    },
  };
  let failed = false;
  try {
    await run(IP, ["-n", name, "link", "set", "dev", "lo", "up"]);
    return await fn(ns);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    for (const c of [...children]) {
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      await waitExit(c);
    }
    try {
      await killNamespacePids(name);
      await run(IP, ["netns", "del", name]);
      liveNamespaces.delete(name);
    } catch (e) {
      // keep it in liveNamespaces for the exit-time retry; don't mask fn's own error
      // biome-ignore lint/correctness/noUnsafeFinally: a failed clean-up fails a body that passed
      if (!failed) throw e;
    }
  }
}
