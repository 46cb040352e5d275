// Where hostd's child processes (tenders, `ip`, `mkfifo`) are created (not upstream).
//
// Node creates a child process with fork(2)+exec, and fork copies the page tables of the
// whole parent: hostd holds every stored image in memory (they are part of the configs),
// so with 200 unikernels of 3 MB a single spawn costs ~100 ms instead of ~10 ms, and a
// create runs up to six processes (tender, `ip` for the bridge check and each tap). So
// hostd starts a small helper process (launcher-child.ts) while it is still small, and has
// it create every process: a run (`execFile`) or a tender spawn with the console FIFO as
// its stdio (process.ts spawnWithFifo, in the helper). The tender is the helper's child;
// the helper reports its pid right away and its exit status when it ends.
//
// If the helper dies, processes are created in hostd itself again (logged), and the
// tenders the helper had started are watched through /proc: their exit status is lost, so
// an exit is reported as code 23 (upstream's status for a failed waitpid, daemon.md §2.8).
// If hostd dies, the helper notices the closed channel and exits; its tenders are reaped by
// the next hostd (runtime.ts) like any other.
import { execFile, fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { err, ok, type Result } from "../core/result.js";
import { spawnWithFifo, type Spawned } from "./spawn.js";
import { procStat } from "./runtime.js";
import type { ExitStatus } from "./types.js";

export interface ExecOptions {
  readonly timeoutMs?: number;
  readonly maxBuffer?: number;
  readonly env?: Readonly<Record<string, string>>;
}

/** The outcome of a run, as execFile's callback has it. */
export interface ExecResult {
  /** null: exit 0 */
  readonly error: null | {
    /** exit code; null when killed or not started */
    readonly code: number | null;
    readonly signal: string | null;
    /** errno name when the program could not be started (ENOENT, EACCES, ...) */
    readonly errno: string | null;
    readonly message: string;
  };
  readonly stdout: string;
  readonly stderr: string;
}

export interface Launcher {
  execFile(file: string, args: readonly string[], o?: ExecOptions): Promise<ExecResult>;
  spawnWithFifo(argv: readonly string[], fifo: string): Promise<Result<Spawned>>;
  close(): void;
}

/** execFile in this process. */
export function execHere(file: string, args: readonly string[], o: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      {
        encoding: "utf8",
        timeout: o.timeoutMs ?? 30_000,
        maxBuffer: o.maxBuffer ?? 16 * 1024 * 1024,
        killSignal: "SIGKILL",
        ...(o.env !== undefined ? { env: { ...process.env, ...o.env } } : {}),
      },
      (error, stdout, stderr) => {
        if (error === null) return resolve({ error: null, stdout, stderr });
        const e = error as NodeJS.ErrnoException & { code?: number | string; signal?: string | null };
        resolve({
          error: {
            code: typeof e.code === "number" ? e.code : null,
            signal: e.signal ?? null,
            errno: typeof e.code === "string" ? e.code : null,
            message: e.message,
          },
          stdout: stdout ?? "",
          stderr: stderr ?? "",
        });
      },
    );
  });
}

/** Processes created by this process itself (the CLI's tests, and the fallback). */
export const inProcess: Launcher = { execFile: execHere, spawnWithFifo, close: () => undefined };

let active: Launcher = inProcess;

/**
 * The launcher every process creation of hostd's shell goes through (tools.ts, net.ts,
 * the tender spawn). Process-wide on purpose: it exists because of this process's size.
 */
export const launcher = (): Launcher => active;

// --- the helper ---------------------------------------------------------------------------

export type ToHelper =
  | { readonly t: "run"; readonly id: number; readonly file: string; readonly args: readonly string[]; readonly o: ExecOptions }
  | { readonly t: "spawn"; readonly id: number; readonly argv: readonly string[]; readonly fifo: string };

export type FromHelper =
  | { readonly t: "ran"; readonly id: number; readonly r: ExecResult }
  | { readonly t: "spawned"; readonly id: number; readonly pid?: number; readonly error?: string }
  | { readonly t: "exit"; readonly pid: number; readonly status: ExitStatus };

export class Helper implements Launcher {
  private next = 1;
  private readonly calls = new Map<number, (m: FromHelper) => void>();
  private readonly exits = new Map<number, (s: ExitStatus) => void>();
  /** the exit of a tender just spawned, until its spawnWithFifo takes it */
  private readonly exited = new Map<number, Promise<ExitStatus>>();
  private dead = false;

  constructor(
    private readonly child: ChildProcess,
    private readonly log: (msg: string) => void,
  ) {
    child.on("message", (m: FromHelper) => {
      if (m.t === "exit") {
        const w = this.exits.get(m.pid);
        this.exits.delete(m.pid);
        w?.(m.status);
        return;
      }
      // A tender that ends at once: its "exit" can come in the same read of the channel as
      // its "spawned", and Node emits both in one go, before the caller of spawnWithFifo
      // (resumed in a microtask) could wait for it. So the wait starts here, synchronously.
      if (m.t === "spawned" && m.pid !== undefined) this.exited.set(m.pid, new Promise<ExitStatus>((resolve) => this.exits.set(m.pid!, resolve)));
      this.calls.get(m.id)?.(m);
    });
    child.on("exit", (code, signal) => this.died(`exited (${signal ?? code})`));
    child.on("error", (e) => this.died(e.message));
  }

  private died(why: string): void {
    if (this.dead) return;
    this.dead = true;
    if (active === this) active = inProcess;
    this.log(`process launcher ${why}; creating processes in hostd itself from now on`);
    for (const [, c] of this.calls) c({ t: "spawned", id: 0, error: `the process launcher ${why}` });
    this.calls.clear();
    // The tenders it started: watched through /proc (their exit status is lost).
    for (const [pid, w] of this.exits) void watchGone(pid).then(() => w({ kind: "exited", code: 23 }));
    this.exits.clear();
  }

  private call(m: ToHelper): Promise<FromHelper> | null {
    if (this.dead || !this.child.connected) return null;
    return new Promise((resolve) => {
      this.calls.set(m.id, (r) => {
        this.calls.delete(m.id);
        resolve(r);
      });
      this.child.send(m);
    });
  }

  async execFile(file: string, args: readonly string[], o: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.call({ t: "run", id: this.next++, file, args, o });
    if (r === null || r.t !== "ran") return execHere(file, args, o);
    return r.r;
  }

  async spawnWithFifo(argv: readonly string[], fifo: string): Promise<Result<Spawned>> {
    const id = this.next++;
    const r = await this.call({ t: "spawn", id, argv, fifo });
    if (r === null) return spawnWithFifo(argv, fifo);
    if (r.t !== "spawned" || r.pid === undefined) return err(r.t === "spawned" && r.error !== undefined ? r.error : "the process launcher failed");
    const pid = r.pid;
    const exited = this.exited.get(pid);
    this.exited.delete(pid);
    if (exited === undefined) return err("the process launcher failed");
    return ok({ pid, exited });
  }

  close(): void {
    this.dead = true;
    if (active === this) active = inProcess;
    if (this.child.connected) this.child.disconnect();
  }
}

async function watchGone(pid: number): Promise<void> {
  for (;;) {
    const st = await procStat(pid);
    if (st === null || st.state === "Z") return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Start the helper and make it the process-wide launcher. On failure processes are
 * created in hostd itself (logged). Call it early, while hostd is small.
 */
export async function startLauncher(log: (msg: string) => void): Promise<Launcher> {
  const entry = fileURLToPath(new URL("./launcher-child.js", import.meta.url));
  try {
    const child = fork(entry, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    await new Promise<void>((resolve, reject) => {
      child.once("message", (m: { t?: string }) => (m.t === "ready" ? resolve() : reject(new Error("unexpected first message"))));
      child.once("exit", (code) => reject(new Error(`exited with ${code}`)));
      child.once("error", reject);
    });
    child.removeAllListeners("exit");
    child.removeAllListeners("error");
    child.removeAllListeners("message");
    const h = new Helper(child, log);
    active = h;
    return h;
  } catch (e) {
    log(`cannot start the process launcher (${e instanceof Error ? e.message : String(e)}); creating processes in hostd itself`);
    return inProcess;
  }
}
