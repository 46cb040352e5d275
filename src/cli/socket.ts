// The local client transport: one Unix socket connection carrying one framed wire message
// (daemon.md §1, wire.md §3.1), an optional raw upload stream (set-block), and the replies.

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { pipeline } from "node:stream";
import { createDeflate } from "node:zlib";
import { encodeWire } from "../commands/codec.js";
import type { Bytes } from "../commands/der.js";
import { END_FRAME, FrameError, encodeFrame } from "../commands/framing.js";
import type { Command, Wire } from "../commands/types.js";
import { SocketFrames, connectUnix as connectSocket } from "../net/frames.js";

export type SocketKind = "vmmd" | "console" | "stat";
/** How many replies a command gets (cli.md §3). */
export type ReplyMode = "single" | "read" | "dump";

/** Vmm_commands.endpoint: which daemon serves a command and how it answers. */
export function endpointOf(cmd: Command): { socket: SocketKind; mode: ReplyMode } {
  switch (cmd.kind) {
    case "block-dump":
      return { socket: "vmmd", mode: "dump" };
    case "stats-subscribe":
      return { socket: "stat", mode: "read" };
    case "stats-add":
    case "stats-remove":
    case "stats-initial":
      return { socket: "stat", mode: "single" };
    case "console-list-inactive":
      return { socket: "console", mode: "single" };
    case "console-add":
    case "console-subscribe":
      return { socket: "console", mode: "read" };
    default:
      // every unikernel, policy and (other) block command
      return { socket: "vmmd", mode: "single" };
  }
}

const SOCKET_FILE: Record<SocketKind, string> = { vmmd: "vmmd.sock", console: "console.sock", stat: "stat.sock" };

/** `<tmpdir>/util/{vmmd,console,stat}.sock` (note: `stat`, not `stats`). */
export const socketPath = (tmpdir: string, kind: SocketKind): string => path.join(tmpdir, "util", SOCKET_FILE[kind]);

export type FrameEvent =
  | { readonly kind: "frame"; readonly payload: Bytes }
  /** socket EOF (also inside a frame), a length <= 0, or the connection closing */
  | { readonly kind: "end" }
  | { readonly kind: "error"; readonly message: string };

/** The local client's view of the replies; pauses the socket when 64 wait unread. */
export class FrameReader {
  private readonly frames: SocketFrames;

  constructor(sock: net.Socket, maxFrame: number) {
    this.frames = new SocketFrames(sock, { maxFrame, stopAtEnd: true, highWater: 64 });
  }

  /** Whether anything (a reply, EOF, an error) has arrived yet. */
  get hasInput(): boolean {
    return this.frames.ready;
  }

  /** The next event; after an `end`/`error` event, further calls report `end`. */
  async next(): Promise<FrameEvent> {
    const e = await this.frames.next();
    if (e.kind === "frame") return e;
    if (e.kind !== "error") return { kind: "end" };
    const err: NodeJS.ErrnoException = e.error;
    return { kind: "error", message: err instanceof FrameError ? err.message : `read error: ${err.code ?? err.message}` };
  }
}

/** Connect to a Unix socket; rejects with a one-line message. */
export function connectUnix(socketFile: string): Promise<net.Socket> {
  return connectSocket(socketFile).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`couldn't connect to ${socketFile} (${e.code ?? e.message})`);
  });
}

/** Write bytes, waiting for the kernel to take them (backpressure). */
export function writeAll(sock: net.Socket, data: Bytes): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed || !sock.writable) {
      reject(new Error("connection closed"));
      return;
    }
    sock.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

export const wireFrame = (w: Wire): Bytes => encodeFrame(encodeWire(w));

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

/** A progress line on stderr, redrawn at most every 100 ms; nothing when stderr is no TTY. */
export function ttyProgress(label: string): { update: (sent: number, total: number) => void; done: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, done: () => undefined };
  let last = 0;
  let shown = false;
  const mib = (n: number) => (n / 1048576).toFixed(1);
  const draw = (sent: number, total: number) => {
    const pct = total > 0 ? Math.min(100, Math.floor((sent * 100) / total)) : 100;
    process.stderr.write(`\r${label}: ${mib(sent)} / ${mib(total)} MiB (${pct}%)`);
    shown = true;
  };
  return {
    update: (sent, total) => {
      const now = Date.now();
      if (now - last >= 100 || sent === total) {
        last = now;
        draw(sent, total);
      }
    },
    done: () => {
      if (shown) process.stderr.write("\n");
    },
  };
}
