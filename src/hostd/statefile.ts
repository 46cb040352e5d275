// The persisted state file `<dbdir>/state` (daemon.md §2.10, wire.md §10): I/O only, the
// bytes come from the codec (encodeStatePieces/decodeState).
//
// Upstream renames `state` to `state.bak` and then writes `state` in place, so a crash in
// between leaves no `state` (and the next start comes up empty), and a short write leaves
// a truncated `state`. We write a temporary file in full (every write checked, fdatasync),
// make the current `state` the new `state.bak` (a hard link renamed into place: `state` is
// only ever replaced by rename, never written in place, so the link is a faithful copy)
// and rename the temporary file over `state`, then fsync the directory. The result on disk
// is upstream's (state.bak = the previous state), but `state` is always a complete file
// and `state.bak` only ever a file that parsed (hostd wrote it, or parsed it at start).
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { encodeStatePieces } from "../commands/codec.js";
import type { State } from "../commands/types.js";
import { errnoOf, readWhole, replaceFile, syncDir, unlinkQuiet, type FileOps } from "./fsio.js";

export const STATE_FILE = "state";
export const STATE_BACKUP = "state.bak";
const STATE_STARTED = "state.started";

/** Temporary files of this module (and of a dead hostd: removed at start). */
const TEMP = /^\.state(\.bak|\.started)?\.tmp\.[0-9]+$/;
export const isStateTemp = (file: string): boolean => TEMP.test(file);

export interface StateWriteOptions {
  /** keep the current `state` as `state.bak` (false when the current one did not parse) */
  readonly backup: boolean;
  /** called with the time (ms) each piece took to encode: the fold's synchronous steps */
  readonly onStep?: (ms: number) => void;
  /** between the synced temporary file and the rename (a test hook) */
  readonly beforeRename?: () => Promise<void>;
  /** awaited before each piece is written (store.ts: a fold gives way to journal records) */
  readonly pace?: () => Promise<void>;
}

/** How much of a state file is written before it is flushed (see ReplaceOptions.syncEvery). */
const SYNC_EVERY = 8 << 20;

/** Hard-link `from` as `to`, atomically replacing `to` (false if `from` does not exist). */
async function linkReplace(ops: FileOps, from: string, to: string, tmp: string): Promise<boolean> {
  await unlinkQuiet(ops, tmp);
  try {
    await ops.link(from, tmp);
  } catch (e) {
    if (errnoOf(e) === "ENOENT") return false;
    throw e;
  }
  try {
    await ops.rename(tmp, to);
  } finally {
    // rename(2) of a name onto another link of the same file does nothing: `tmp` stays
    // (e.g. state.started already being this very state)
    await unlinkQuiet(ops, tmp).catch(() => undefined);
  }
  return true;
}

/**
 * Atomically and durably replace `<dbdir>/state` with the encoding of `st` (mode 0644),
 * keeping the previous one as `state.bak`. Written in pieces (one per unikernel), so a
 * state of any size is never held in one buffer. Returns the bytes written.
 */
export async function writeStateFile(ops: FileOps, dbdir: string, st: State, o: StateWriteOptions): Promise<number> {
  const { size, pieces } = encodeStatePieces(st);
  const target = join(dbdir, STATE_FILE);
  // Each piece is encoded when the write loop asks for it, after the previous one was
  // written (through the thread pool): the event loop runs between pieces.
  function* timed(): Generator<Uint8Array> {
    const it = pieces[Symbol.iterator]();
    for (;;) {
      const t0 = performance.now();
      const r = it.next();
      o.onStep?.(performance.now() - t0);
      if (r.done === true) return;
      yield r.value;
    }
  }
  const written = await replaceFile(ops, target, join(dbdir, `.${STATE_FILE}.tmp.${process.pid}`), timed(), {
    mode: 0o644,
    sync: true,
    // a large state is flushed as it goes, not all at the end (SYNC_EVERY)
    syncEvery: SYNC_EVERY,
    ...(o.pace !== undefined ? { pace: o.pace } : {}),
    beforeRename: async () => {
      if (o.backup) {
        try {
          await linkReplace(ops, target, join(dbdir, STATE_BACKUP), join(dbdir, `.${STATE_BACKUP}.tmp.${process.pid}`));
        } catch (e) {
          // A file system without hard links keeps the older state.bak (still one that
          // parsed); anything else fails the write.
          if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK"].includes(errnoOf(e) ?? "")) throw e;
        }
      }
      if (o.beforeRename !== undefined) await o.beforeRename();
    },
  });
  if (written !== size) throw new Error(`state file: wrote ${written} bytes, expected ${size}`);
  return written;
}

/** The bytes of `<dbdir>/state` (or another file of dbdir), or null when there is none. */
export async function readStateFile(ops: FileOps, dbdir: string, file = STATE_FILE): Promise<Uint8Array | null> {
  return readWhole(ops, join(dbdir, file));
}

/**
 * `<dbdir>/state.started` = the state this start began from (daemon.md §2.2 step 6;
 * upstream copies the file): a hard link, so it costs no space on a full disk and is
 * never a partial copy. false if there is no state.
 */
export async function linkStateStarted(ops: FileOps, dbdir: string): Promise<boolean> {
  const ok = await linkReplace(ops, join(dbdir, STATE_FILE), join(dbdir, STATE_STARTED), join(dbdir, `.${STATE_STARTED}.tmp.${process.pid}`));
  if (ok) await syncDir(ops, dbdir);
  return ok;
}

/** Make `<dbdir>/state` a copy (hard link) of `<dbdir>/<from>` (--restore-backup). */
export async function installStateFrom(ops: FileOps, dbdir: string, from: string): Promise<void> {
  if (!(await linkReplace(ops, join(dbdir, from), join(dbdir, STATE_FILE), join(dbdir, `.${STATE_FILE}.tmp.${process.pid}`))))
    throw new Error(`${join(dbdir, from)} does not exist`);
  await syncDir(ops, dbdir);
}
