// Writing a stream of pieces into a fresh file, bounded: the pieces come from an inflate on
// the thread pool (or from a buffer already in memory), at most `limit` bytes in total, and
// pieces of zeros become holes instead of writes (a zlib bomb of zeros then costs neither
// memory nor disk; readers see holes as zeros). Used for unikernel images (image.ts) and
// the inline data of the old block commands (blockstore.ts).
import { createHash, type Hash } from "node:crypto";
import type { promises as fsp } from "node:fs";
import { createInflate } from "node:zlib";
import type { Bytes } from "../commands/der.js";

/** The unit of hole detection (a piece of zeros is not written) and of image file reads. */
export const PIECE = 64 * 1024;
/**
 * The inflate stream's output size, and the most one write takes: fewer thread-pool round
 * trips than a PIECE each (an 8 MiB image is 16 of them, not 256).
 */
const BATCH = 8 * PIECE;
/** Writes a sink keeps in flight (at different offsets) while the next batch is inflated. */
const IN_FLIGHT = 4;
const ZEROS = Buffer.alloc(PIECE);

/** More than `limit` bytes were offered. */
export class TooLarge extends Error {}

/** A write to the file failed (`reason`: the errno error, e.g. ENOSPC). */
export class WriteFailed extends Error {
  constructor(readonly reason: unknown) {
    super("write failed");
  }
}

export const isZeros = (piece: Uint8Array): boolean =>
  piece.length <= PIECE && Buffer.from(piece.buffer, piece.byteOffset, piece.length).equals(ZEROS.subarray(0, piece.length));

/** Write all of `data` at `at` (a short write is continued; one writing nothing is an error). */
export async function writeAll(fh: fsp.FileHandle, data: Uint8Array, at: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, at + done);
    if (bytesWritten <= 0) throw new Error("short write");
    done += bytesWritten;
  }
}

/**
 * Writes pieces at increasing offsets into a file that is all holes (new or truncated to
 * 0), skipping all-zero PIECEs, refusing to grow beyond `limit`; optionally hashes
 * (SHA-256) everything it is given. Up to IN_FLIGHT writes run at once (each at its own
 * offset; `put` waits when that many are under way), so the inflate and the writes overlap;
 * `finish` waits for them all, `settle` too without throwing (before the file is closed).
 * A piece handed to `put` must not change afterwards.
 */
export class SparseSink {
  private readonly hash: Hash | null;
  private readonly writes = new Set<Promise<void>>();
  private failed: { readonly reason: unknown } | null = null;
  size = 0;
  constructor(
    private readonly fh: fsp.FileHandle,
    private readonly limit: number,
    hash = false,
  ) {
    this.hash = hash ? createHash("sha256") : null;
  }

  async put(piece: Uint8Array): Promise<void> {
    if (this.failed !== null) throw new WriteFailed(this.failed.reason);
    if (this.size + piece.length > this.limit) throw new TooLarge();
    this.hash?.update(piece);
    const base = this.size;
    this.size += piece.length;
    // the runs of PIECEs that are not all zeros, each one write
    let run = -1;
    for (let at = 0; ; at = Math.min(at + PIECE, piece.length)) {
      const end = at === piece.length;
      const zeros = end || isZeros(piece.subarray(at, at + PIECE));
      if (!zeros && run < 0) run = at;
      else if (zeros && run >= 0) {
        await this.write(piece.subarray(run, at), base + run);
        run = -1;
      }
      if (end) break;
    }
  }

  private async write(data: Uint8Array, at: number): Promise<void> {
    while (this.writes.size >= IN_FLIGHT) await Promise.race(this.writes);
    if (this.failed !== null) throw new WriteFailed(this.failed.reason);
    const w: Promise<void> = writeAll(this.fh, data, at).then(
      () => void this.writes.delete(w),
      (e: unknown) => {
        this.writes.delete(w);
        this.failed ??= { reason: e };
      },
    );
    this.writes.add(w);
  }

  /** Wait for the writes under way (their errors are finish's). */
  async settle(): Promise<void> {
    while (this.writes.size > 0) await Promise.all(this.writes);
  }

  /** Wait for every write under way; throws WriteFailed if one failed. */
  async flush(): Promise<void> {
    await this.settle();
    if (this.failed !== null) throw new WriteFailed(this.failed.reason);
  }

  /** Set the file's length to what was put (trailing holes included), once every write is done. */
  async finish(): Promise<void> {
    await this.flush();
    try {
      await this.fh.truncate(this.size);
    } catch (e) {
      throw new WriteFailed(e);
    }
  }

  /** The SHA-256 of everything put (with `hash`). */
  digest(): Uint8Array {
    if (this.hash === null) throw new Error("not hashing");
    return new Uint8Array(this.hash.digest());
  }
}

/**
 * Inflate one zlib stream into `sink`, batch by batch: the inflate runs on the thread pool
 * and only as fast as the sink takes its output (async iteration pulls), so at most a few
 * batches are in memory. Throws the sink's errors, or zlib's for invalid or truncated data.
 */
export async function inflateInto(data: Bytes, sink: { put(piece: Uint8Array): Promise<void> }): Promise<void> {
  const z = createInflate({ chunkSize: BATCH });
  z.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  try {
    for await (const piece of z as AsyncIterable<Buffer>) await sink.put(piece);
  } finally {
    z.destroy();
  }
}

/** Hand an in-memory buffer to `sink` in pieces (the event loop turns between them). */
export async function putPieces(data: Bytes, sink: { put(piece: Uint8Array): Promise<void> }): Promise<void> {
  for (let at = 0; at < data.length; at += BATCH) await sink.put(data.subarray(at, at + BATCH));
}

/** zlib's error as one line: `invalid zlib data: <zlib's message>`. */
export function zlibError(e: unknown): string {
  return `invalid zlib data: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]!}`;
}
