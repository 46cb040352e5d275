// Raw upload streams after a command (wire.md §3.1, cli.md §2 set-block): a file read in
// UPLOAD_PIECE-byte pieces, each piece (or each piece of zlib output) one chunk, then a
// zero-length chunk.

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type net from "node:net";
import { pipeline, type Duplex } from "node:stream";
import { createDeflate } from "node:zlib";
import { END_FRAME, encodeFrame } from "../commands/framing.js";
import type { Bytes } from "../commands/der.js";
import { CliError, EXIT } from "../core/exit.js";
import { writeChunk, writeTerminator } from "./chunks.js";
import { writeAll } from "./local.js";

export interface UploadOptions {
  readonly file: string;
  /** 0 = raw; 1..9 = one zlib stream at that level, split into chunks */
  readonly level: number;
  /** called with bytes of the file sent so far and the file size */
  readonly progress?: (sent: number, total: number) => void;
  /** stop early (e.g. the daemon already answered) */
  readonly shouldStop?: () => boolean;
}

/** Outcome of an upload: the file was read completely, or why not. */
export type UploadResult = { ok: true; sent: number } | { ok: false; fileError?: string; writeError?: string };

const UPLOAD_PIECE = 4096;

/**
 * Block upload stream (cli.md §2 set-block): the file read in 4096-byte pieces, each piece
 * (or each piece of zlib output when level > 0) one raw chunk, then a zero-length chunk.
 */
export async function sendUpload(sock: net.Socket, opts: UploadOptions): Promise<UploadResult> {
  let total: number;
  try {
    total = (await stat(opts.file)).size;
  } catch (e) {
    return { ok: false, fileError: `${opts.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  const src = createReadStream(opts.file, { highWaterMark: UPLOAD_PIECE });
  const out: NodeJS.ReadableStream = opts.level > 0 ? pipeline(src, createDeflate({ level: opts.level }), () => undefined) : src;
  let fileError: string | undefined;
  src.on("error", (e: NodeJS.ErrnoException) => {
    fileError = `reading ${opts.file}: ${e.code ?? e.message}`;
  });
  try {
    for await (const chunk of out) {
      if (opts.shouldStop?.()) {
        src.destroy();
        return { ok: false, writeError: "the daemon answered before the upload ended" };
      }
      const b = chunk as Buffer;
      if (b.length > 0) await writeAll(sock, encodeFrame(new Uint8Array(b.buffer, b.byteOffset, b.length)));
      opts.progress?.(src.bytesRead, total);
    }
  } catch (e) {
    src.destroy();
    if (fileError !== undefined) return { ok: false, fileError };
    return { ok: false, writeError: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  }
  if (fileError !== undefined) return { ok: false, fileError };
  try {
    await writeAll(sock, END_FRAME);
  } catch (e) {
    return { ok: false, writeError: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  }
  return { ok: true, sent: src.bytesRead };
}

// ---------------------------------------------------------------------------------------
// the remote client: an upload as chunks after the TLS handshake

export interface ProgressSink {
  update(sent: number, total: number): void;
  done(): void;
}

/**
 * A file as an upload stream, as upstream's client sends it (wire.md §3.1): read in
 * 4096-byte pieces, each piece — or each piece of zlib output when `level` > 0 (one zlib
 * stream) — one chunk. `consumed` tells how much of the file was read (for progress).
 */
export interface FileUpload extends AsyncIterable<Bytes> {
  readonly size: number;
  readonly consumed: number;
}

export async function fileUpload(file: string, level: number): Promise<FileUpload> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new CliError(`${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.USAGE);
  }
  const src = createReadStream(file, { highWaterMark: UPLOAD_PIECE });
  // pipeline: a read error destroys the deflate stream too, so iterating it throws
  const out: AsyncIterable<Buffer> = level > 0 ? pipeline(src, createDeflate({ level }), () => undefined) : src;
  return {
    size,
    get consumed() {
      return src.bytesRead;
    },
    async *[Symbol.asyncIterator]() {
      for await (const b of out) yield new Uint8Array(b.buffer, b.byteOffset, b.length);
    },
  };
}

/** Send raw chunks over TLS (skipping empty ones, which would end the stream) and the terminator. */
export async function sendChunks(
  s: Duplex,
  chunks: AsyncIterable<Bytes> | Iterable<Bytes>,
  progress?: { sink: ProgressSink; total: number; consumed?: () => number },
): Promise<{ ok: true; sent: number } | { ok: false; error: string }> {
  let sent = 0;
  try {
    for await (const c of chunks) {
      if (c.length === 0) continue;
      await writeChunk(s, c);
      sent += c.length;
      progress?.sink.update(progress.consumed ? progress.consumed() : sent, progress.total);
    }
    await writeTerminator(s);
    return { ok: true, sent };
  } catch (e) {
    return { ok: false, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  } finally {
    progress?.sink.done();
  }
}
