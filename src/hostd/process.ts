// Processes of hostd's shell: console FIFOs, spawning the unikernel under taskset with the
// FIFO as stdio, and waiting for it (daemon.md §2.4, §2.7). The tender itself (lookup,
// `--version`, its command line) is src/solo5/tender.ts'.
import { spawn } from "node:child_process";
import { closeSync, constants as FS, linkSync, lstatSync, openSync, promises as fsp, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { err, ok, type Result } from "../core/result.js";
import type { ExitStatus } from "./types.js";
import { execTool, strerror } from "./tools.js";

const errno = (e: unknown): string => (e as NodeJS.ErrnoException | null)?.code ?? String(e);

/**
 * §2.4 step 8: reuse an existing FIFO, refuse anything else at that path, otherwise
 * `mkfifo -m 0640` (the mode given to mkfifo is not narrowed by the umask).
 */
export async function ensureFifo(path: string, spares?: FifoSpares): Promise<Result<{ created: boolean }>> {
  try {
    const st = lstatSync(path);
    if (st.isFIFO()) return ok({ created: false });
    return err(`file ${path} exists and is not a fifo`);
  } catch (e) {
    if (errno(e) !== "ENOENT") return err(`file ${path} exists: ${strerror(e)}`);
  }
  if (spares !== undefined && (await spares.take(path))) return ok({ created: true });
  // Node has no mkfifo(3); the coreutils tool gives the same mode handling (-m is not
  // narrowed by the umask).
  const r = await execTool("mkfifo", ["-m", "0640", path]);
  if (r.code !== 0) return err(`file ${path} error in mkfifo: ${r.stderr.trim().replace(/^mkfifo: /, "") || `exit ${r.code}`}`);
  return ok({ created: true });
}

/**
 * Spare FIFOs, made ahead of time in the FIFO directory (`.hostd-spare-<n>`, mode 0640,
 * inheriting the directory's group like any FIFO made there) and renamed into place when a
 * unikernel needs one: mkfifo costs a process execution (~2 ms), rename a system call. The
 * result is the same file a fresh mkfifo would give. Not upstream.
 */
export class FifoSpares {
  private readonly ready: string[] = [];
  private filling = false;
  private closed = false;
  private counter = 0;
  constructor(
    private readonly dir: string,
    private readonly keep = 2,
  ) {}

  /** Remove spares left by an earlier run. */
  async clear(): Promise<void> {
    try {
      for (const f of await fsp.readdir(this.dir)) if (f.startsWith(".hostd-spare-")) await fsp.rm(join(this.dir, f), { force: true });
    } catch {
      /* no directory: nothing to clear */
    }
  }

  /**
   * No more spares: a refill under way stops (what it made is removed), later ones do not
   * start, and the spares in the directory are removed (shutdown).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.ready.length = 0;
    await this.clear();
  }

  /** Rename a spare to `path` (true), or false if none is available. */
  async take(path: string): Promise<boolean> {
    const spare = this.ready.shift();
    // Later, not now: spawning mkfifo blocks the event loop for the fork (~1 ms), which
    // would land right inside the create that is taking the spare.
    setTimeout(() => this.refill(), 50).unref();
    if (spare === undefined) return false;
    try {
      // link + unlink instead of rename: never replaces a file that appeared at `path`
      linkSync(spare, path);
      unlinkSync(spare);
      return true;
    } catch {
      rmSync(spare, { force: true });
      return false;
    }
  }

  /** Top the pool up in the background. */
  refill(): void {
    if (this.closed || this.filling || this.ready.length >= this.keep) return;
    this.filling = true;
    void (async () => {
      try {
        while (this.ready.length < this.keep) {
          const p = join(this.dir, `.hostd-spare-${process.pid}-${this.counter++}`);
          const r = await execTool("mkfifo", ["-m", "0640", p]);
          if (r.code !== 0) break;
          if (this.closed) {
            rmSync(p, { force: true });
            break;
          }
          this.ready.push(p);
        }
      } finally {
        this.filling = false;
      }
    })();
  }
}

export interface Spawned {
  readonly pid: number;
  /** resolves once, when the process has ended */
  readonly exited: Promise<ExitStatus>;
}

/**
 * §2.7 process creation: open the FIFO O_WRONLY|O_APPEND as the child's stdin, stdout and
 * stderr, spawn argv[0] (looked up in $PATH) without a shell, close the parent's copy.
 * Opening a FIFO for writing blocks until a reader exists; albatross-console has opened the
 * read side while handling Console_add. Upstream simply blocks (with the global lock held,
 * forever if the console daemon is gone); here a missing reader is an error instead. The
 * child's descriptor must be a blocking one (O_NONBLOCK is shared by every copy).
 */
export async function spawnWithFifo(argv: readonly string[], fifo: string): Promise<Result<Spawned>> {
  const cmdline = argv.join(" ");
  // All opens are synchronous and never block: (1) a non-blocking write probe fails with
  // ENXIO when nobody reads the FIFO; (2) with our own non-blocking read end open, the
  // blocking write open returns at once even if the console daemon's reader vanished in
  // between. The probe and our reader are closed only after the child has its copy, so the
  // console daemon never sees all writers gone (which it would read as end of file).
  let probe: number | null = null;
  let reader: number | null = null;
  let fd: number | null = null;
  try {
    probe = openSync(fifo, FS.O_WRONLY | FS.O_NONBLOCK);
    reader = openSync(fifo, FS.O_RDONLY | FS.O_NONBLOCK);
    fd = openSync(fifo, FS.O_WRONLY | FS.O_APPEND);
  } catch (e) {
    for (const x of [fd, reader, probe]) if (x !== null) closeSync(x);
    return err(`cmd ${cmdline} exits: ${fifo}: ${strerror(e)}`);
  }
  try {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [fd, fd, fd] });
    const exited = new Promise<ExitStatus>((resolve) => {
      child.on("exit", (code, signal) => {
        if (code !== null) resolve({ kind: "exited", code });
        else resolve({ kind: "signaled", signal: signal ?? "SIGKILL" });
      });
    });
    const started = await new Promise<Result<number>>((resolve) => {
      child.once("spawn", () => resolve(ok(child.pid!)));
      child.once("error", (e) => resolve(err(`cmd ${cmdline} exits: ${strerror(e)}`)));
    });
    if (!started.ok) return started;
    return ok({ pid: started.value, exited });
  } catch (e) {
    return err(`cmd ${cmdline} exits: ${strerror(e)}`);
  } finally {
    closeSync(fd);
    closeSync(reader);
    closeSync(probe);
  }
}

/** SIGTERM (or another signal) to a pid; false if that failed (only logged upstream). */
export function signalProcess(pid: number, signal: NodeJS.Signals = "SIGTERM"): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
