// Spawning a unikernel's tender with its console FIFO as stdio (daemon.md §2.7), in hostd or
// in its process launcher (launcher.ts); a module of its own so the launcher needs nothing
// else of process.ts.
import { spawn } from "node:child_process";
import { closeSync, constants as FS, openSync } from "node:fs";
import { err, ok, type Result } from "../core/result.js";
import { strerror } from "./errno.js";
import type { ExitStatus } from "./types.js";

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
