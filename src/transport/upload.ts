// Raw upload streams after a command (wire.md §3.1, cli.md §2 set-block): a file read in
// UPLOAD_PIECE-byte pieces, each piece (or each piece of zlib output) one chunk, then a
// zero-length chunk.

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type net from "node:net";
import { pipeline } from "node:stream";
import { createDeflate } from "node:zlib";
import { END_FRAME, encodeFrame } from "../commands/framing.js";
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

export const UPLOAD_PIECE = 4096;

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
  const out: NodeJS.ReadableStream =
    opts.level > 0 ? pipeline(src, createDeflate({ level: opts.level }), () => undefined) : src;
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
