// Reading replies and choosing the exit status (cli.md §3), following upstream's
// `output_result`: modes single/read/dump, files written for images and block dumps.

import { decodeWire } from "../commands/codec.js";
import type { Bytes } from "../commands/der.js";
import type { Wire } from "../commands/types.js";
import { EXIT } from "../core/exit.js";
import { describeCommand, nameText, wireText } from "../commands/render.js";
import type { FrameEvent } from "../transport/local.js";
import type { ReplyMode } from "../transport/routes.js";
import type { DumpTarget } from "./dump.js";

// Start-up time (issue 13): what only some replies need is loaded when they come, not with
// every command: the JSON view (crypto) with --json, the terminal tables on a terminal,
// the file writers (zlib, streams) with an image or a block dump (dump.ts).

/** Where output goes; injectable for tests. */
export interface Sink {
  readonly json: boolean;
  /** stdout is a terminal: replies as tables with plain names (tables.ts), statistics as stats-table.ts */
  readonly tty?: boolean;
  /** one line (or several joined by \n) on stdout */
  out(text: string): void;
  /** one line on stderr, prefixed with `dromedary: ` */
  err(text: string): void;
}

export const processSink = (json: boolean): Sink => ({
  json,
  tty: process.stdout.isTTY === true,
  out: (t) => void process.stdout.write(`${t}\n`),
  err: (t) => void process.stderr.write(`dromedary: ${t}\n`),
});

/** The client's start time: output files are named `<name>.<this time>` (cli.md §2 get). */
export const STARTED_AT = new Date();

/** The largest reply frame we read. */
export const DEFAULT_REPLY_FRAME_LIMIT = 1 << 30;

export interface ReplyOptions {
  readonly sink: Sink;
  /** the RFC 3339 time of the client's start, used in output file names */
  readonly startedAt: Date;
  /** directory for dumped images/block devices (default: the system temp dir) */
  readonly outDir?: string;
  readonly imageLimit?: number;
  readonly dumpLimit?: number;
  readonly verbose?: boolean;
}

async function writeImage(w: Wire, compressed: boolean, image: Bytes, opts: ReplyOptions): Promise<number> {
  const { sink } = opts;
  const { DEFAULT_IMAGE_LIMIT, dumpFileName, writeImageFile } = await import("./dump.js");
  const file = dumpFileName(w.header.name, opts.startedAt, opts.outDir);
  const r = await writeImageFile(file, compressed, image, opts.imageLimit ?? DEFAULT_IMAGE_LIMIT);
  if (!r.ok) {
    sink.err(`failed to ${r.stage} image: ${r.message}`);
    return r.stage === "uncompress" ? EXIT.COMMUNICATION : EXIT.INTERNAL;
  }
  if (sink.json) sink.out(JSON.stringify({ event: "dumped", file, bytes: r.bytes }));
  else sink.out(`dumped image to ${file}`);
  return EXIT.OK;
}

/**
 * Process reply frames until the exchange is over; returns the exit status.
 * `next` yields frame events (transport/local.ts ReplyReader), so tests can feed frames directly.
 */
export async function processReplies(next: () => Promise<FrameEvent>, mode: ReplyMode, opts: ReplyOptions): Promise<number> {
  const { sink } = opts;
  const verbose = opts.verbose ?? false;
  let state: "single" | "read" | "dump" = mode;
  let dump: DumpTarget | null = null;

  // on a terminal, tables and plain names; piped, albatross' text exactly
  const tty = sink.tty === true && !sink.json;
  const terminalText = tty ? (await import("./tables.js")).terminalText : null;
  const text = (w: Wire): string => terminalText?.(w, verbose) ?? wireText(w, verbose);
  const wireJson = sink.json ? (await import("./jsonview.js")).wireJson : null;
  /** JSON lines: one wire message per line (images summarised, see jsonview.ts). */
  const jsonLine = (w: Wire): string => JSON.stringify(wireJson!(w));
  const show = (w: Wire) => sink.out(sink.json ? jsonLine(w) : text(w));
  const table = tty && mode === "read" ? new (await import("./stats-table.js")).StatsTable() : null;

  const finishDump = async (): Promise<number> => {
    const d = dump!;
    dump = null;
    const err = await d.finish();
    if (err) {
      sink.err(`${err.message} while dumping ${d.path}`);
      return EXIT.COMMUNICATION;
    }
    if (sink.json) sink.out(JSON.stringify({ event: "dumped", file: d.path, bytes: d.written }));
    else sink.out(`dumped to ${d.path}`);
    return EXIT.OK;
  };

  try {
    for (;;) {
      const ev = await next();
      if (ev.kind === "end") {
        // End of stream is success upstream, also inside a block dump (then we say so).
        if (dump) {
          const d = dump as DumpTarget;
          sink.err(`connection closed before the end of the block dump, ${d.path} is incomplete`);
          await finishDump();
        }
        return EXIT.OK;
      }
      if (ev.kind === "error") {
        sink.err(`communication failure: ${ev.message}`);
        return EXIT.COMMUNICATION;
      }
      let w: Wire;
      try {
        w = decodeWire(ev.payload);
      } catch (e) {
        sink.err(`communication failure: undecodable reply: ${(e as Error).message}`);
        return EXIT.COMMUNICATION;
      }
      const p = w.payload;
      switch (p.kind) {
        case "failure":
          // Upstream logs this as a warning: `host <name>: command failed <msg>`.
          if (sink.json) sink.out(jsonLine(w));
          sink.err(text(w));
          return EXIT.REMOTE_FAILURE;
        case "command":
          sink.err(`received unexpected command ${nameText(w.header.name)}: ${describeCommand(p.command)}`);
          return EXIT.INTERNAL;
        case "reply": {
          const s = p.reply;
          if (s.kind === "unikernel-image" || s.kind === "old-block-device-image") {
            show(w);
            return await writeImage(w, s.compressed, s.image, opts);
          }
          show(w);
          if (s.kind === "block-device-image") {
            if (dump) (dump as DumpTarget).abort();
            const { DEFAULT_DUMP_LIMIT, DumpTarget, dumpFileName } = await import("./dump.js");
            const file = dumpFileName(w.header.name, opts.startedAt, opts.outDir);
            dump = new DumpTarget(file, s.compressed, opts.dumpLimit ?? DEFAULT_DUMP_LIMIT);
            state = "dump";
            continue;
          }
          if (state === "single") return EXIT.OK;
          continue;
        }
        case "data": {
          const d = p.data;
          if (d.kind === "block-data" || d.kind === "block-end") {
            if (!dump) {
              sink.err(d.kind === "block-end" ? "unexpected block dump EOF received" : "unexpected block dump data received");
              return EXIT.COMMUNICATION;
            }
            if (d.kind === "block-end") return await finishDump();
            const target = dump as DumpTarget;
            await target.push(d.data);
            if (target.failed) return await finishDump();
            continue;
          }
          if (state !== "read") {
            sink.err(`unexpected ${d.kind === "console" ? "console" : "statistics"} data received`);
            return EXIT.COMMUNICATION;
          }
          if (sink.json) sink.out(jsonLine(w));
          else if (table !== null && d.kind === "statistics") sink.out(table.render(w));
          else sink.out(text(w));
          continue;
        }
      }
    }
  } finally {
    if (dump) (dump as DumpTarget).abort();
  }
}
