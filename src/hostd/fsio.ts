// Checked, durable file writes for hostd's stored state (state file, journal, intent
// records): every write is looped until its full length is on the file (a short write is
// continued, a write that makes no progress is an error), files are fsynced and so is the
// directory after a create, rename or unlink. The system calls go through `FileOps`, so
// unit tests can inject short writes, ENOSPC and EIO (test/hostd/store.test.ts).
import * as fs from "node:fs";
import { promisify } from "node:util";
import { dirname } from "node:path";

/** The file system calls the stored state uses (Node's fs by default). */
export interface FileOps {
  open(path: string, flags: number, mode?: number): Promise<number>;
  /** bytes written; may be fewer than `length` */
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fstatSize(fd: number): Promise<number>;
  fsync(fd: number): Promise<void>;
  fdatasync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fchmod(fd: number, mode: number): Promise<void>;
  close(fd: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, mode: number): Promise<void>;
  /** bytes available to an unprivileged writer on the file system of `path` */
  freeBytes(path: string): Promise<number>;
  /** the bytes removing `path` would free: its size if it is the file's only link, else 0 */
  reclaimable(path: string): Promise<number>;
}

const p = {
  open: promisify(fs.open),
  write: (fd: number, b: Uint8Array, off: number, len: number, pos: number): Promise<number> =>
    new Promise((res, rej) => fs.write(fd, b, off, len, pos, (e, n) => (e === null ? res(n) : rej(e)))),
  read: (fd: number, b: Uint8Array, off: number, len: number, pos: number): Promise<number> =>
    new Promise((res, rej) => fs.read(fd, b, off, len, pos, (e, n) => (e === null ? res(n) : rej(e)))),
  fstat: promisify(fs.fstat),
  fsync: promisify(fs.fsync),
  fdatasync: promisify(fs.fdatasync),
  ftruncate: promisify(fs.ftruncate),
  fchmod: promisify(fs.fchmod),
  close: promisify(fs.close),
};

/** Node's fs (through the thread pool: never blocks the event loop on the disk). */
export const nodeFileOps: FileOps = {
  open: (path, flags, mode) => p.open(path, flags, mode),
  write: (fd, b, off, len, pos) => p.write(fd, b, off, len, pos),
  read: (fd, b, off, len, pos) => p.read(fd, b, off, len, pos),
  fstatSize: async (fd) => (await p.fstat(fd)).size,
  fsync: (fd) => p.fsync(fd),
  fdatasync: (fd) => p.fdatasync(fd),
  ftruncate: (fd, len) => p.ftruncate(fd, len),
  fchmod: (fd, mode) => p.fchmod(fd, mode),
  close: (fd) => p.close(fd),
  rename: (a, b) => fs.promises.rename(a, b),
  link: (a, b) => fs.promises.link(a, b),
  unlink: (path) => fs.promises.unlink(path),
  readdir: (path) => fs.promises.readdir(path),
  mkdir: async (path, mode) => {
    await fs.promises.mkdir(path, { mode, recursive: true });
  },
  freeBytes: async (path) => {
    const st = await fs.promises.statfs(path);
    return st.bavail * st.bsize;
  },
  reclaimable: async (path) => {
    try {
      const st = await fs.promises.stat(path);
      return st.nlink === 1 ? st.size : 0;
    } catch (e) {
      if (errnoOf(e) === "ENOENT") return 0;
      throw e;
    }
  },
};

export const F = fs.constants;

/** An errno-style error (`code`), as Node's own. */
export class IoError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "IoError";
  }
}

export const errnoOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;
export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Write all of `bytes` at `position`: short writes are continued; a write that returns
 * 0 bytes (no progress) is an error rather than a loop.
 */
export async function writeFully(ops: FileOps, fd: number, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = await ops.write(fd, bytes, done, bytes.length - done, position + done);
    if (!Number.isSafeInteger(n) || n <= 0 || n > bytes.length - done)
      throw new IoError(`write made no progress after ${done} of ${bytes.length} bytes`, "EIO");
    done += n;
  }
}

/** Read a whole file (null if it does not exist). */
export async function readWhole(ops: FileOps, path: string): Promise<Uint8Array | null> {
  let fd: number;
  try {
    fd = await ops.open(path, F.O_RDONLY);
  } catch (e) {
    if (errnoOf(e) === "ENOENT") return null;
    throw e;
  }
  try {
    const size = await ops.fstatSize(fd);
    const buf = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = await ops.read(fd, buf, done, size - done, done);
      if (n <= 0) break; // the file shrank under us: what is there
      done += n;
    }
    return done === size ? buf : buf.subarray(0, done);
  } finally {
    await ops.close(fd);
  }
}

/** fsync a directory (makes creates, renames and unlinks in it durable). */
export async function syncDir(ops: FileOps, dir: string): Promise<void> {
  const fd = await ops.open(dir, F.O_RDONLY | F.O_DIRECTORY);
  try {
    await ops.fsync(fd);
  } finally {
    await ops.close(fd);
  }
}

/** unlink, ignoring a missing file. */
export async function unlinkQuiet(ops: FileOps, path: string): Promise<void> {
  try {
    await ops.unlink(path);
  } catch (e) {
    if (errnoOf(e) !== "ENOENT") throw e;
  }
}

export interface ReplaceOptions {
  readonly mode: number;
  /**
   * fdatasync the file and fsync the directory. Without: the replacement is still atomic
   * and survives the death of the process (the page cache has it), but not a power loss.
   */
  readonly sync: boolean;
  /** between the synced temporary file and the rename */
  readonly beforeRename?: () => Promise<void>;
  /**
   * fdatasync after about this many bytes, so that a long write never leaves much dirty
   * data behind for some other file's fsync to wait for (the device flushes it all)
   */
  readonly syncEvery?: number;
  /** awaited before each piece is written (a long write gives way to urgent ones) */
  readonly pace?: () => Promise<void>;
}

/**
 * Replace `path` atomically with `pieces` (written in order, each in full): a temporary
 * file `tmp` in the same directory, written, fchmod'ed, (synced,) renamed over `path`,
 * then (with `sync`) the directory fsynced. On any failure the temporary file is removed
 * and `path` is untouched. Returns the bytes written.
 */
export async function replaceFile(
  ops: FileOps,
  path: string,
  tmp: string,
  pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  o: ReplaceOptions,
): Promise<number> {
  let fd: number | null = null;
  let size = 0;
  let unsynced = 0;
  try {
    fd = await ops.open(tmp, F.O_WRONLY | F.O_CREAT | F.O_TRUNC, o.mode);
    for await (const piece of pieces) {
      if (o.pace !== undefined) await o.pace();
      await writeFully(ops, fd, piece, size);
      size += piece.length;
      unsynced += piece.length;
      if (o.sync && o.syncEvery !== undefined && unsynced >= o.syncEvery) {
        await ops.fdatasync(fd);
        unsynced = 0;
      }
    }
    await ops.fchmod(fd, o.mode); // the umask must not narrow the mode
    if (o.sync) await ops.fdatasync(fd);
    const f = fd;
    fd = null;
    await ops.close(f);
    if (o.beforeRename !== undefined) await o.beforeRename();
    await ops.rename(tmp, path);
  } catch (e) {
    if (fd !== null) await ops.close(fd).catch(() => undefined);
    await unlinkQuiet(ops, tmp).catch(() => undefined);
    throw e;
  }
  if (o.sync) await syncDir(ops, dirname(path));
  return size;
}
