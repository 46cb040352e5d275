// Block device files in `<dbdir>/block` (daemon.md §2.2 step 2, §2.11): the I/O half of the
// block commands. Decisions (exists? in use? quota?) are made by the pure core (vmmd.ts);
// this module only touches files and returns upstream's error texts.
import { constants as FS, createReadStream, promises as fsp } from "node:fs";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDeflate, createInflate } from "node:zlib";
import { nameFileComponent, parseName, type Name } from "../core/name.js";
import { err, ok, type Result } from "../core/result.js";
import { blockDir, blockFile } from "./paths.js";
import { inflateInto, isZeros, putPieces, SparseSink, TooLarge, writeAll, WriteFailed, zlibError } from "./sparse.js";

const MB = 1 << 20;
/** Upstream reads and uploads block data in pieces of this size (daemon.md §7). */
const PIECE = 4096;

export { blockDir, blockFile } from "./paths.js";

/** size in MB -> bytes; `overflow while computing bytes` for size <= 0 or beyond 2^53. */
export function blockBytes(sizeMB: number): Result<number> {
  if (!Number.isSafeInteger(sizeMB) || sizeMB <= 0 || sizeMB * MB > Number.MAX_SAFE_INTEGER) return err("overflow while computing bytes");
  return ok(sizeMB * MB);
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

export interface ScannedBlock {
  readonly name: Name;
  readonly sizeMB: number;
}

/**
 * daemon.md §2.2 step 2: every regular, non-dot file whose size is a non-zero multiple of
 * 2^20 and whose file name parses as a name. A missing directory is only a warning.
 */
export async function scanBlockDir(dbdir: string): Promise<{ blocks: ScannedBlock[]; warnings: string[] }> {
  const dir = blockDir(dbdir);
  const blocks: ScannedBlock[] = [];
  const warnings: string[] = [];
  let entries: string[];
  try {
    entries = await fsp.readdir(dir);
  } catch (e) {
    warnings.push(`block device directory ${dir}: ${errno(e) ?? String(e)}`);
    return { blocks, warnings };
  }
  for (const f of entries.sort()) {
    if (UPLOAD_RE.test(f)) {
      // an upload a previous hostd did not finish (only one hostd uses a dbdir)
      await fsp.rm(join(dir, f), { force: true }).catch(() => undefined);
      warnings.push(`removed the unfinished block upload ${f}`);
      continue;
    }
    if (f.startsWith(".")) continue;
    let st;
    try {
      st = await fsp.lstat(join(dir, f));
    } catch (e) {
      warnings.push(`block device ${f}: ${errno(e) ?? String(e)}`);
      continue;
    }
    if (!st.isFile()) {
      warnings.push(`block device ${f}: not a regular file, skipped`);
      continue;
    }
    if (st.size === 0 || st.size % MB !== 0) {
      warnings.push(`block device ${f}: size ${st.size} is not a non-zero multiple of 1 MB, skipped`);
      continue;
    }
    let name: Name;
    try {
      name = parseName(f);
    } catch {
      warnings.push(`block device ${f}: file name is not a name, skipped`);
      continue;
    }
    if (name.label === null) {
      warnings.push(`block device ${f}: file name is a path, skipped`);
      continue;
    }
    blocks.push({ name, sizeMB: st.size / MB });
  }
  return { blocks, warnings };
}

async function ensureBlockDir(dbdir: string): Promise<void> {
  await fsp.mkdir(blockDir(dbdir), { mode: 0o700, recursive: true });
}

/** Block add (§2.11): a fresh file of size*2^20 bytes, mode 0600. */
export async function createBlockFile(dbdir: string, name: Name, sizeMB: number): Promise<Result<void>> {
  const bytes = blockBytes(sizeMB);
  if (!bytes.ok) return bytes; // checked before touching the disk (upstream leaves an empty file)
  const path = blockFile(dbdir, name);
  try {
    await ensureBlockDir(dbdir);
  } catch (e) {
    return err(`error creating block directory: ${errno(e) ?? String(e)}`);
  }
  let fh;
  try {
    fh = await fsp.open(path, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600);
  } catch (e) {
    return err(errno(e) === "EEXIST" ? "file already exists" : `error creating block device: ${errno(e) ?? String(e)}`);
  }
  try {
    await fh.truncate(bytes.value);
    return ok(undefined);
  } catch (e) {
    await fsp.rm(path, { force: true });
    return err(`error creating block device: ${errno(e) ?? String(e)}`);
  } finally {
    await fh.close();
  }
}

/**
 * Write inline data (old add/set forms) into the block file at `path`, which must be all
 * holes (just created): inflated as a stream if compressed (sparse.ts), at most `limit`
 * bytes (`data exceeds block size`); `failed to uncompress: ...` for bad zlib data,
 * `error writing to file descriptor` for a failed write (e.g. a full disk).
 */
export async function writeBlockData(path: string, data: { readonly compressed: boolean; readonly bytes: Uint8Array }, limit: number): Promise<Result<void>> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, FS.O_WRONLY | FS.O_NOFOLLOW);
  } catch {
    return err("error writing to file descriptor");
  }
  const sink = new SparseSink(fh, limit);
  try {
    if (data.compressed) await inflateInto(data.bytes, sink);
    else await putPieces(data.bytes, sink);
    await sink.flush();
    return ok(undefined);
  } catch (e) {
    if (e instanceof TooLarge) return err("data exceeds block size");
    if (e instanceof WriteFailed) return err("error writing to file descriptor");
    return err(`failed to uncompress: ${zlibError(e)}`);
  } finally {
    await sink.settle();
    await fh.close().catch(() => undefined);
  }
}

/** Delete a block file; a file that is already gone is fine (Bos' File.delete, as upstream). */
export async function removeBlockFile(dbdir: string, name: Name): Promise<Result<void>> {
  try {
    await fsp.unlink(blockFile(dbdir, name));
    return ok(undefined);
  } catch (e) {
    if (errno(e) === "ENOENT") return ok(undefined);
    return err(`error removing block device: ${errno(e) ?? String(e)}`);
  }
}

// Block set writes the new content into a temporary file next to the device's (a dot file,
// never taken for a device), which replaces the device's file only once it is complete and
// on disk (fsync, rename, fsync of the directory). Upstream deletes and recreates the
// device's file first, so a failed upload (a full disk, a client gone) loses the old content
// and leaves a partial file registered as the device; here a failed set changes nothing.
// The cost: while an upload runs, the old content and the new one both take disk space.

let uploads = 0;
const UPLOAD_RE = /^\..+\.upload-\d+-\d+$/;

/** A fresh, empty 0600 upload file for the device `name`: its path. */
export async function createUploadFile(dbdir: string, name: Name): Promise<Result<string>> {
  const path = join(blockDir(dbdir), `.${nameFileComponent(name)}.upload-${process.pid}-${++uploads}`);
  try {
    await ensureBlockDir(dbdir);
    const fh = await fsp.open(path, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600);
    await fh.close();
    return ok(path);
  } catch {
    return err("error opening block device");
  }
}

/**
 * The finished upload `tmp` becomes the device's file: extended to `bytes`, fsynced,
 * renamed over the device's file, the directory fsynced. On failure `tmp` is removed.
 */
export async function commitUpload(tmp: string, dbdir: string, name: Name, bytes: number): Promise<Result<void>> {
  try {
    const fh = await fsp.open(tmp, FS.O_WRONLY | FS.O_NOFOLLOW);
    try {
      await fh.truncate(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, blockFile(dbdir, name));
    const dir = await fsp.open(blockDir(dbdir), FS.O_RDONLY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return ok(undefined);
  } catch {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    return err("error writing to file descriptor");
  }
}

/** A source of raw upload chunks: null at the end (zero-length chunk or EOF), throws on read errors. */
export interface ChunkSource {
  next(): Promise<Uint8Array | null>;
}

class SizeExceeded extends Error {}

/** Inflate output pieces of a compressed upload (fewer, larger pieces: less per-piece work). */
const PIECE_OUT = 64 * 1024;

/**
 * Block set, the stream part (§2.11): read raw chunks until the end, inflate incrementally
 * if `compressed`, write them to the (already recreated) file, refuse more than `limit`
 * decompressed bytes, then truncate to `limit`. After an error the rest of the upload is
 * still read and discarded (upstream stops reading after `stream exceeds size`, which leaves
 * a sending client stuck; daemon.md says to keep reading). Returns the failure text or null.
 */
export async function receiveBlockStream(path: string, limit: number, compressed: boolean, src: ChunkSource): Promise<string | null> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, FS.O_WRONLY);
  } catch {
    return drain(src, "error opening block device");
  }
  let written = 0;
  let wake: () => void = () => {};
  const input = new Readable({ highWaterMark: 64 * 1024, read: () => wake() });
  const sink = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      if (written + chunk.length > limit) return cb(new SizeExceeded());
      const at = written;
      written += chunk.length;
      // the file is new: zeros stay holes (the final truncate gives it its length)
      if (isZeros(chunk)) return cb();
      writeAll(fh, chunk, at).then(
        () => cb(),
        (e: Error) => cb(e),
      );
    },
  });
  let failed: string | null = null;
  let settled = false;
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = compressed ? [input, createInflate({ chunkSize: PIECE_OUT }), sink] : [input, sink];
  const done = pipeline(stages as [Readable, Writable]).then(
    () => null,
    (e: unknown) => (e instanceof SizeExceeded ? "stream exceeds size" : "error writing to file descriptor"),
  );
  void done.then((r) => {
    settled = true;
    failed = r;
    wake();
  });
  try {
    for (;;) {
      let chunk: Uint8Array | null;
      try {
        chunk = await src.next();
      } catch {
        input.destroy();
        await done;
        return "error while reading stream";
      }
      if (chunk === null) break;
      if (settled || chunk.length === 0) continue; // failed: discard the rest of the upload
      if (!input.push(chunk)) {
        await new Promise<void>((res) => {
          wake = res;
          if (settled) res();
        });
        wake = () => {};
      }
    }
    if (!settled) input.push(null);
    const r = await done;
    if (r !== null) return r;
    if (failed !== null) return failed;
    await fh.truncate(limit);
    return null;
  } catch {
    return "error writing to file descriptor";
  } finally {
    await fh.close();
  }
}

async function drain(src: ChunkSource, result: string): Promise<string> {
  return (await drainChunks(src)) ?? result;
}

/** Read and discard an upload until its end; `error while reading stream` or null. */
export async function drainChunks(src: ChunkSource): Promise<string | null> {
  try {
    while ((await src.next()) !== null) {
      /* discard */
    }
  } catch {
    return "error while reading stream";
  }
  return null;
}

export type DumpOutcome = "done" | "client-gone" | "read-error";

/**
 * Block dump, the stream part (§2.11): the file's st_size bytes in 4096-byte pieces, each one
 * `send` call when level = 0; with level > 0 the pieces are deflated into one zlib stream
 * whose output pieces are sent as they come. `send` resolves false when the client is gone
 * (streaming then stops silently).
 */
export async function streamBlockFile(path: string, level: number, send: (piece: Uint8Array) => Promise<boolean>): Promise<DumpOutcome> {
  let size: number;
  try {
    size = (await fsp.stat(path)).size;
  } catch {
    return "read-error";
  }
  let gone = false;
  let readError = false;
  const source =
    size === 0
      ? Readable.from([])
      : createReadStream(path, { highWaterMark: PIECE, start: 0, end: size - 1 }).on("error", () => {
          readError = true;
        });
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      send(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)).then(
        (alive) => {
          if (alive) cb();
          else {
            gone = true;
            cb(new Error("client gone"));
          }
        },
        () => {
          gone = true;
          cb(new Error("client gone"));
        },
      );
    },
  });
  try {
    if (level !== 0) await pipeline(source, createDeflate({ level: Math.max(1, Math.min(level, 9)) }), sink);
    else await pipeline(source, sink);
    return "done";
  } catch {
    if (gone) return "client-gone";
    if (readError) return "read-error";
    return "read-error";
  }
}

/** `file does not exist` check of block dump. */
export async function blockFileExists(dbdir: string, name: Name): Promise<boolean> {
  try {
    await fsp.stat(blockFile(dbdir, name));
    return true;
  } catch {
    return false;
  }
}

/** Inline read for the old dump form. */
export async function readBlockFile(dbdir: string, name: Name): Promise<Result<Uint8Array>> {
  try {
    return ok(new Uint8Array(await fsp.readFile(blockFile(dbdir, name))));
  } catch {
    return err("file does not exist");
  }
}
