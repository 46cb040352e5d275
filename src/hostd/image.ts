// A unikernel's image on disk (daemon.md §2.4 steps 3.1–3.3, 3.5, 3.6), bounded: a large image
// is inflated as a stream straight into <tmpdir>/<name>.img — zlib works on the thread pool,
// the event loop only sees 512 KiB batches (sparse.ts), a few of them being written at once —
// never held whole in memory; its size is checked
// against --max-image-size while it grows (a decompression bomb stops at the limit, costing
// no more than a few pieces of memory); its SHA-256 is computed on the way. Runs of zeros
// are not written but left as holes (a bomb of zeros costs no disk either; the tenders read
// holes as zeros). The ELF notes are then read back from the file in small pieces
// (solo5/elf.ts asks for the bytes it needs).
//
// An image of at most 1 MiB (SMALL_IMAGE; most unikernels are smaller) is still handled in
// memory, synchronously: that is cheaper than the stream for it, and bounded.
//
// Upstream inflates the whole image in memory, hashes and parses it there and writes it
// afterwards (at most its 1 GiB limit — costing hostd gigabytes, issue 10).
import { createHash } from "node:crypto";
import { closeSync, constants as FS, openSync, promises as fsp, writeSync } from "node:fs";
import { inflateSync } from "node:zlib";
import type { Bytes } from "../commands/der.js";
import { err, ok, type Result } from "../core/result.js";
import { inflateInto, PIECE, putPieces, SparseSink, TooLarge, WriteFailed, zlibError } from "./sparse.js";
import {
  ElfError,
  readSolo5Abi,
  readSolo5AbiFrom,
  readSolo5Manifest,
  readSolo5ManifestFrom,
  type ImageSource,
  type Solo5Abi,
  type Solo5Device,
} from "../solo5/elf.js";

export { DEFAULT_MAX_IMAGE_SIZE } from "./limits.js";

const MiB = 1024 * 1024;
/** `256 MiB`, or `1000 bytes` when not a whole number of MiB. */
export function formatLimit(bytes: number): string {
  return bytes % MiB === 0 && bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}

/** The reply text of an image over the limit (a bomb, or just too large). */
export const imageTooLarge = (limit: number): string => `image exceeds the limit of ${formatLimit(limit)}`;

const errno = (e: unknown): string => (e as NodeJS.ErrnoException | null)?.code ?? (e instanceof Error ? e.message : String(e));

export interface WrittenImage {
  /** SHA-256 of the (uncompressed) image */
  readonly digest: Bytes;
  readonly size: number;
  /** a small image (at most SMALL_IMAGE bytes) is also kept in memory: its notes are read from here */
  readonly small?: Bytes;
}

/**
 * Images up to this size (inflated) are handled in memory, synchronously, as before:
 * inflate, hash, write and parse take well under a millisecond or two for them, less than
 * the thread-pool round trips of the stream. A compressed image is inflated up to this
 * much; one that turns out larger goes the streaming way (the work on the first 1 MiB is
 * lost, nothing else).
 */
export const SMALL_IMAGE = 1024 * 1024;

/** The whole image if it is small, null if it is larger (or may be), or the zlib error. */
function smallImage(config: { readonly compressed: boolean; readonly image: Bytes }, limit: number): Result<Bytes | null> {
  const max = Math.min(limit, SMALL_IMAGE);
  if (!config.compressed) return ok(config.image.length <= max ? config.image : null);
  try {
    const b = inflateSync(config.image, { maxOutputLength: Math.max(1, max) });
    return ok(new Uint8Array(b.buffer, b.byteOffset, b.length));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") return ok(null);
    return err(`failed to uncompress: ${zlibError(e)}`);
  }
}

/**
 * §2.4 steps 3.1, 3.2 and 3.6: the uncompressed image of `config` into `path` (created or
 * truncated), at most `limit` bytes. Errors: `failed to uncompress: <why>` (invalid zlib
 * data, or `image exceeds the limit of 256 MiB`), `image exceeds the limit of ...` for
 * an uncompressed image, `error writing image <path>: <errno>`. A failed write leaves no
 * file behind.
 */
export async function writeImage(path: string, config: { readonly compressed: boolean; readonly image: Bytes }, limit: number): Promise<Result<WrittenImage>> {
  if (!config.compressed && config.image.length > limit) return err(imageTooLarge(limit));
  const small = smallImage(config, limit);
  if (!small.ok) return small;
  if (small.value !== null) {
    const image = small.value;
    try {
      const fd = openSync(path, FS.O_WRONLY | FS.O_CREAT | FS.O_TRUNC | FS.O_NOFOLLOW, 0o644);
      try {
        for (let done = 0; done < image.length; ) {
          const n = writeSync(fd, image, done, image.length - done, done);
          if (n <= 0) throw new Error("short write");
          done += n;
        }
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      await fsp.rm(path, { force: true }).catch(() => undefined);
      return err(`error writing image ${path}: ${errno(e)}`);
    }
    return ok({ digest: new Uint8Array(createHash("sha256").update(image).digest()), size: image.length, small: image });
  }
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, FS.O_WRONLY | FS.O_CREAT | FS.O_TRUNC | FS.O_NOFOLLOW, 0o644);
  } catch (e) {
    return err(`error writing image ${path}: ${errno(e)}`);
  }
  const sink = new SparseSink(fh, limit, true);
  let result: Result<WrittenImage>;
  try {
    if (config.compressed) await inflateInto(config.image, sink);
    else await putPieces(config.image, sink);
    await sink.finish();
    result = ok({ digest: sink.digest(), size: sink.size });
  } catch (e) {
    if (e instanceof TooLarge) result = err(config.compressed ? `failed to uncompress: ${imageTooLarge(limit)}` : imageTooLarge(limit));
    else if (e instanceof WriteFailed) result = err(`error writing image ${path}: ${errno(e.reason)}`);
    else result = err(`failed to uncompress: ${zlibError(e)}`);
  } finally {
    await sink.settle();
    await fh.close().catch(() => undefined);
  }
  if (!result.ok) await fsp.rm(path, { force: true }).catch(() => undefined);
  return result;
}

/** An image file read in cached 64 KiB pages (at most 16 of them: 1 MiB). */
export class FileImage implements ImageSource {
  private readonly pages = new Map<number, Uint8Array>();
  private static readonly MAX_PAGES = 16;

  private constructor(
    private readonly fh: fsp.FileHandle,
    readonly length: number,
  ) {}

  static async open(path: string): Promise<FileImage> {
    const fh = await fsp.open(path, FS.O_RDONLY | FS.O_NOFOLLOW);
    try {
      return new FileImage(fh, (await fh.stat()).size);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  private async page(i: number): Promise<Uint8Array> {
    const hit = this.pages.get(i);
    if (hit !== undefined) {
      this.pages.delete(i);
      this.pages.set(i, hit);
      return hit;
    }
    const buf = new Uint8Array(Math.min(PIECE, Math.max(0, this.length - i * PIECE)));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, i * PIECE + got);
      if (bytesRead === 0) throw new Error("the image file shrank while it was read");
      got += bytesRead;
    }
    this.pages.set(i, buf);
    if (this.pages.size > FileImage.MAX_PAGES) this.pages.delete(this.pages.keys().next().value as number);
    return buf;
  }

  async read(off: number, len: number): Promise<Uint8Array> {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const at = off + done;
      const p = await this.page(Math.floor(at / PIECE));
      const from = at % PIECE;
      const n = Math.min(len - done, p.length - from);
      if (n <= 0) throw new Error("read beyond the image");
      out.set(p.subarray(from, from + n), done);
      done += n;
    }
    return out;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

export interface ImageNotes {
  /** the ABI note, or upstream's error text */
  readonly abi: Result<Solo5Abi>;
  /** the manifest's devices, or upstream's error text (checked after the tender, §2.4) */
  readonly manifest: Result<readonly Solo5Device[]>;
}

async function note<T>(f: () => Promise<T>, path: string): Promise<Result<T>> {
  try {
    return ok(await f());
  } catch (e) {
    if (e instanceof ElfError) return err(e.upstream);
    return err(`error reading image ${path}: ${errno(e)}`);
  }
}

/** The notes of a written image: from memory for a small one, else from its file. */
export async function writtenImageNotes(written: WrittenImage, path: string): Promise<ImageNotes> {
  const img = written.small;
  if (img === undefined) return readImageNotes(path);
  const sync = <T>(f: () => T): Result<T> => {
    try {
      return ok(f());
    } catch (e) {
      return err(e instanceof ElfError ? e.upstream : String(e));
    }
  };
  return { abi: sync(() => readSolo5Abi(img)), manifest: sync(() => readSolo5Manifest(img)) };
}

/** §2.4 steps 3.3 and 3.5's input: the Solo5 notes of the image file at `path`. */
export async function readImageNotes(path: string): Promise<ImageNotes> {
  let img: FileImage;
  try {
    img = await FileImage.open(path);
  } catch (e) {
    const r = err(`error reading image ${path}: ${errno(e)}`);
    return { abi: r, manifest: r };
  }
  try {
    return { abi: await note(() => readSolo5AbiFrom(img), path), manifest: await note(() => readSolo5ManifestFrom(img), path) };
  } finally {
    await img.close().catch(() => undefined);
  }
}

/** Only the manifest (restart with new arguments checks the running image's file). */
export async function readImageManifest(path: string): Promise<Result<readonly Solo5Device[]>> {
  return (await readImageNotes(path)).manifest;
}
