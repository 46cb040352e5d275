// The persisted state file `<dbdir>/state` (daemon.md §2.10, wire.md §10): I/O only, the
// bytes come from the codec (encodeState/decodeState).
//
// Upstream renames `state` to `state.bak` and then writes `state` in place, so a crash in
// between leaves no `state` (and the next start comes up empty). We write a temporary file,
// sync it, hard-link the current `state` as `state.bak` and rename the temporary file over
// `state`: the result on disk is the same as upstream's (state.bak = previous state), but
// `state` always holds a complete file.
import { closeSync, constants as FS, fchmodSync, fdatasyncSync, linkSync, openSync, promises as fsp, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export const STATE_FILE = "state";
export const STATE_BACKUP = "state.bak";
export const STATE_STARTED = "state.started";

const isErrno = (e: unknown, code: string): boolean => (e as NodeJS.ErrnoException | null)?.code === code;

/**
 * Atomically replace `<dbdir>/state` with `bytes` (mode 0644), keeping the old one as
 * `state.bak`. Synchronous on purpose: it runs under the global lock on every create and
 * the file is small; going through the thread pool costs more than the calls themselves.
 * The data is fdatasync'ed before the rename (upstream does not sync at all).
 */
export async function writeStateFile(dbdir: string, bytes: Uint8Array): Promise<void> {
  const target = join(dbdir, STATE_FILE);
  const tmp = join(dbdir, `.${STATE_FILE}.tmp.${process.pid}`);
  const fd = openSync(tmp, FS.O_WRONLY | FS.O_CREAT | FS.O_TRUNC, 0o644);
  try {
    writeSync(fd, bytes);
    fchmodSync(fd, 0o644); // the umask must not narrow the mode
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    const bak = join(dbdir, STATE_BACKUP);
    rmSync(bak, { force: true });
    try {
      linkSync(target, bak);
    } catch (e) {
      if (!isErrno(e, "ENOENT")) throw e;
    }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** The bytes of `<dbdir>/state`, or null when there is none. */
export async function readStateFile(dbdir: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await fsp.readFile(join(dbdir, STATE_FILE)));
  } catch (e) {
    if (isErrno(e, "ENOENT")) return null;
    throw e;
  }
}

/** Copy `<dbdir>/state` to `<dbdir>/state.started` (daemon.md §2.2 step 6); false if there is no state. */
export async function copyStateStarted(dbdir: string): Promise<boolean> {
  try {
    await fsp.copyFile(join(dbdir, STATE_FILE), join(dbdir, STATE_STARTED));
    return true;
  } catch (e) {
    if (isErrno(e, "ENOENT")) return false;
    throw e;
  }
}
