// Test harness for hostd integration tests: a network namespace with bridges, temporary
// tmpdir/dbdir, the stand-in tender installed in dbdir, the console daemon and hostd
// (`node bin/dromedary.cjs ...`) running inside the namespace, and a small client
// speaking the framed wire protocol to vmmd.sock. Test support only.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeState, decodeWire, encodeState, encodeWire } from "../../src/commands/codec.js";
import type { Command, State, StateVersion, Success, UnikernelConfig, Wire } from "../../src/commands/types.js";
import { readStored } from "../../src/hostd/store.js";
import { parseName } from "../../src/core/name.js";
import { installStandin } from "./standin.js";
import type { Netns } from "./netns.js";

/** The CLI entry (HOSTD_TEST_ENTRY may point at another script with the same subcommands). */
export const MAIN = process.env["HOSTD_TEST_ENTRY"] ?? fileURLToPath(new URL("../../../bin/dromedary.cjs", import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, f: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

export interface Env {
  readonly ns: Netns;
  readonly tmpdir: string;
  readonly dbdir: string;
  readonly socket: string;
  console: ChildProcess | null;
  hostd: ChildProcess | null;
  hostdLog: string[];
  /**
   * Where the test sees `path` (a path as the daemons see it): itself, or below
   * /proc/<pid>/root of the process holding the private mounts (`mounts`).
   */
  view(path: string): string;
  /** (re)start hostd and wait until it accepts commands; `env`: extra environment */
  startHostd(extra?: string[], env?: NodeJS.ProcessEnv): Promise<ChildProcess>;
  /** SIGKILL or SIGTERM hostd and wait for it to end */
  stopHostd(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * A tmpfs mounted over one of the test's directories (`db` = dbdir, `run` = tmpdir,
 * `fifo` = <tmpdir>/fifo) with these mount options (e.g. `size=3m`, `nr_inodes=8`), in a
 * private mount namespace held by a process inside the network namespace: nothing is ever
 * mounted in the host's namespace, and the mounts vanish with the namespace's processes.
 */
export interface TestMount {
  readonly dir: "db" | "run" | "fifo";
  readonly options: string;
}

export interface HostdTestOptions {
  bridges?: string[];
  hostdArgs?: string[];
  /** start hostd first and the console daemon this many ms later (default: the console daemon first) */
  consoleAfterMs?: number;
  /** further arguments of the console daemon */
  consoleArgs?: string[];
  /** small file systems (disk-full tests): a tmpfs of this size (e.g. "4m") as tmpdir / dbdir, unmounted at the end */
  mounts?: { tmpdir?: string; dbdir?: string };
  /**
   * tmpfs mounts in a private mount namespace (TestMount): nothing mounted in the host's
   * namespace even if the test dies; the daemons run in that namespace
   */
  privateMounts?: readonly TestMount[];
}

/** Everything for one test; all removed afterwards, also when the test fails. */
export async function withHostd<T>(ns: Netns, fn: (env: Env) => Promise<T>, opts: HostdTestOptions = {}): Promise<T> {
  const base = await mkdtemp(join(tmpdir(), "dromedary-hostd-"));
  const tmp = join(base, "run");
  const db = join(base, "db");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(tmp);
  await mkdir(db);
  const mounted: string[] = [];
  const tmpfs = async (dir: string, size: string): Promise<void> => {
    await execFileP("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
    mounted.push(dir);
  };
  let keeper: ChildProcess | null = null;
  if (opts.privateMounts !== undefined && opts.privateMounts.length > 0) {
    const dirOf = { db, run: tmp, fifo: join(tmp, "fifo") } as const;
    await mkdir(dirOf.fifo, { recursive: true });
    const script = [
      ...opts.privateMounts.map((m) => `mount -t tmpfs -o ${m.options} dromedary-test ${dirOf[m.dir]} || exit 1`),
      "echo ready",
      "exec sleep 100000",
    ].join("\n");
    const k = ns.spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], { stdio: ["ignore", "pipe", "inherit"] });
    keeper = k;
    await new Promise<void>((resolve, reject) => {
      k.stdout?.once("data", () => resolve());
      k.once("exit", (code) => reject(new Error(`mounting the test's tmpfs failed (exit ${code})`)));
    });
    if (opts.privateMounts.some((m) => m.dir === "run")) await mkdir(`/proc/${k.pid}/root${dirOf.fifo}`, { recursive: true });
  }
  const view = (p: string): string => (keeper === null ? p : `/proc/${keeper.pid}/root${p}`);
  const spawnIn = (args: string[], options: Parameters<typeof spawn>[2]): ChildProcess =>
    keeper === null ? ns.spawn("node", args, options) : spawn("nsenter", ["-t", String(keeper.pid), "-m", "-n", "--", "node", ...args], options);
  const env: Env = {
    ns,
    tmpdir: tmp,
    dbdir: db,
    socket: view(join(tmp, "util", "vmmd.sock")),
    console: null,
    hostd: null,
    hostdLog: [],
    view,
    async startHostd(extra: string[] = opts.hostdArgs ?? [], extraEnv?: NodeJS.ProcessEnv) {
      const c = spawnIn([MAIN, "hostd", "--tmpdir", tmp, "--dbdir", db, ...extra], {
        stdio: ["ignore", "ignore", "pipe"],
        ...(extraEnv !== undefined ? { env: { ...process.env, ...extraEnv } } : {}),
      });
      c.stderr?.on("data", (d: Buffer) =>
        env.hostdLog.push(
          ...d
            .toString("utf8")
            .split("\n")
            .filter((l) => l !== ""),
        ),
      );
      env.hostd = c;
      // ready when an info request is answered (connections wait for the restore)
      await waitFor(
        "hostd to answer",
        async () => {
          if (c.exitCode !== null || c.signalCode !== null) throw new Error(`hostd exited: ${env.hostdLog.join("\n")}`);
          try {
            const r = await request(env.socket, ":", { kind: "unikernel-info" }, 20_000);
            return r.length > 0;
          } catch {
            return false;
          }
        },
        30_000,
      );
      return c;
    },
    async stopHostd(signal: NodeJS.Signals = "SIGTERM") {
      const c = env.hostd;
      if (c === null) return { code: null, signal: null };
      const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
        if (c.exitCode !== null || c.signalCode !== null) res({ code: c.exitCode, signal: c.signalCode });
        else c.once("exit", (code, sig) => res({ code, signal: sig }));
      });
      c.kill(signal);
      // a hostd that does not stop within 20 s is killed (the test then fails on its result)
      const timer = setTimeout(() => c.kill("SIGKILL"), 20_000);
      const r = await done;
      clearTimeout(timer);
      env.hostd = null;
      return r;
    },
  };
  const startConsole = (): void => {
    env.console = spawnIn([MAIN, "console-daemon", "--tmpdir", tmp, ...(opts.consoleArgs ?? [])], { stdio: ["ignore", "ignore", "ignore"] });
  };
  try {
    if (opts.mounts?.tmpdir !== undefined) await tmpfs(tmp, opts.mounts.tmpdir);
    if (opts.mounts?.dbdir !== undefined) await tmpfs(db, opts.mounts.dbdir);
    for (const b of opts.bridges ?? ["br0"]) await ns.addBridge(b);
    await installStandin(view(db), ["solo5-hvt", "solo5-spt"]);
    if (opts.consoleAfterMs === undefined) {
      startConsole();
      await mkdir(view(join(tmp, "util")), { recursive: true });
      await waitFor("console socket", () => exists(view(join(tmp, "util", "console.sock"))));
      await env.startHostd();
    } else {
      const up = env.startHostd();
      up.catch(() => undefined); // awaited below
      await sleep(opts.consoleAfterMs);
      startConsole();
      await up;
    }
    return await fn(env);
  } finally {
    if (env.hostd !== null) await env.stopHostd("SIGTERM").catch(() => undefined);
    if (env.console !== null && env.console.exitCode === null) env.console.kill("SIGKILL");
    keeper?.kill("SIGKILL");
    // safety net: no tender of this test may survive it (e.g. after a SIGKILLed hostd)
    for (const pid of await pidsWith(base)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    for (const d of mounted) await execFileP("umount", [d]).catch(() => execFileP("umount", ["-l", d]));
    await rm(base, { recursive: true, force: true });
  }
}

const execFileP = (file: string, args: string[]): Promise<unknown> =>
  new Promise((resolve, reject) => execFile(file, args, (e, out) => (e ? reject(e) : resolve(out))));

/**
 * The state file once the journal is folded into it (hostd folds within about a second
 * of a change): what albatross would read, decoded.
 */
export async function foldedState(dbdir: string, timeoutMs = 15_000): Promise<{ state: State; version: StateVersion }> {
  return waitFor(
    "the journal to be folded into the state file",
    async () => {
      const { readFile } = await import("node:fs/promises");
      let file;
      try {
        file = decodeState(new Uint8Array(await readFile(join(dbdir, "state"))));
      } catch {
        return null;
      }
      const stored = await readStored(dbdir);
      return Buffer.compare(encodeState(file.state), encodeState(stored)) === 0 ? file : null;
    },
    timeoutMs,
  );
}

/** Connect, send `frames` (raw payloads, each framed), collect all reply wires until the daemon closes. */
export async function exchange(
  socket: string,
  frames: readonly Uint8Array[],
  timeoutMs = 20_000,
  rawTail?: Uint8Array,
  /** stop (and close) after this many replies */
  expect?: number,
): Promise<Wire[]> {
  const sock = await connect(socket);
  return new Promise((resolve, reject) => {
    const out: Wire[] = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no end of reply stream within ${timeoutMs} ms (got ${out.length} messages)`));
    }, timeoutMs);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4) {
        const len = buf.readInt32BE(0);
        if (len <= 0 || buf.length < 4 + len) break;
        out.push(decodeWire(new Uint8Array(buf.subarray(4, 4 + len))));
        buf = buf.subarray(4 + len);
        if (expect !== undefined && out.length >= expect) sock.destroy();
      }
    });
    sock.on("error", () => undefined);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    for (const f of frames) sock.write(frameOf(f));
    if (rawTail !== undefined) sock.write(rawTail);
  });
}

export function frameOf(payload: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + payload.length);
  b.writeInt32BE(payload.length, 0);
  b.set(payload, 4);
  return b;
}

export function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export const commandWire = (name: string, command: Command, sequence = 0n): Wire => ({
  header: { version: 5, sequence, name: parseName(name) },
  payload: { kind: "command", command },
});

/** One command, its replies (one, except for a block dump, which streams until the daemon closes). */
export function request(socket: string, name: string, command: Command, timeoutMs = 20_000): Promise<Wire[]> {
  return exchange(socket, [encodeWire(commandWire(name, command))], timeoutMs, undefined, command.kind === "block-dump" ? undefined : 1);
}

const dec = new TextDecoder();

/** `success: <text>` / `failure: <text>` / `success <kind>` of a single reply. */
export function show(replies: readonly Wire[]): string {
  if (replies.length !== 1) return `${replies.length} replies`;
  const p = replies[0]!.payload;
  if (p.kind === "failure") return `failure: ${dec.decode(p.message)}`;
  if (p.kind === "reply") return p.reply.kind === "string" ? `success: ${dec.decode(p.reply.text)}` : `success ${p.reply.kind}`;
  return p.kind;
}

export function successOf<K extends Success["kind"]>(replies: readonly Wire[], kind: K): Extract<Success, { kind: K }> {
  const p = replies[0]?.payload;
  if (p?.kind !== "reply" || p.reply.kind !== kind) throw new Error(`expected success ${kind}, got ${show(replies)}`);
  return p.reply as Extract<Success, { kind: K }>;
}

export function config(image: Uint8Array, over: Partial<UnikernelConfig> = {}): UnikernelConfig {
  return {
    typ: "solo5",
    compressed: false,
    image,
    failBehaviour: { kind: "quit" },
    addName: false,
    cpuids: [0],
    memory: 32,
    blockDevices: [],
    bridges: [],
    numcpus: 1,
    ...over,
  };
}

export const argv = (...args: string[]): Uint8Array[] => args.map((a) => new TextEncoder().encode(a));

/** The vmmtap devices in the namespace. */
export async function taps(ns: Netns): Promise<string[]> {
  const out = await ns.ip("-o", "link", "show");
  return [...out.matchAll(/^\d+:\s+(vmmtap\d+)[:@]/gm)].map((m) => m[1]!).sort();
}

/** pids of processes whose command line contains `needle`. */
export async function pidsWith(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const { readFile } = await import("node:fs/promises");
      const cmd = (await readFile(`/proc/${d}/cmdline`, "utf8")).split("\0").join(" ");
      const st = await readFile(`/proc/${d}/stat`, "utf8");
      if (st.slice(st.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (cmd.includes(needle)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

export { spawn };
