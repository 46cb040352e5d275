// Processes of hostd's shell: console FIFOs and signals (daemon.md §2.4, §2.7); spawning the
// unikernel with the FIFO as stdio is spawn.ts, the tender itself (lookup, `--version`, its
// command line) src/solo5/tender.ts'.
import { linkSync, lstatSync, promises as fsp, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { err, ok, type Result } from "../core/result.js";
import { strerror } from "./errno.js";
import { execTool } from "./tools.js";

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

/** SIGTERM (or another signal) to a pid; false if that failed (only logged upstream). */
export function signalProcess(pid: number, signal: NodeJS.Signals = "SIGTERM"): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
