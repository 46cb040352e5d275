// The files a reply writes (cli.md §2 get and dump-block): `<name>.<client start>` in the
// temp dir, inflated within limits. replies.ts loads this module only when an image or a
// block dump arrives, so other commands do not load zlib and the file streams.

import { createWriteStream, type WriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PassThrough, pipeline, type Transform } from "node:stream";
import { createLimitedInflate, inflate } from "../commands/compress.js";
import type { Bytes } from "../commands/der.js";
import { rfc3339 } from "../commands/render.js";
import { nameToString, type Name } from "../core/name.js";

/** Limits on what a reply may make us allocate or write. */
export const DEFAULT_IMAGE_LIMIT = 1 << 30; // 1 GiB for an inflated unikernel image
export const DEFAULT_DUMP_LIMIT = 2 ** 40; // 1 TiB for an inflated block dump

/**
 * `<system temp dir>/<name-text>.<RFC3339 of client start>`. A name text has no `/`
 * (labels are [a-z0-9.-] joined by `:`), so the file stays inside the directory.
 */
export function dumpFileName(name: Name, startedAt: Date, outDir = os.tmpdir()): string {
  const base = `${nameToString(name)}.${rfc3339(startedAt)}`;
  if (base.includes("/") || base.includes("\0")) throw new Error(`unusable file name ${JSON.stringify(base)}`);
  return path.join(outDir, base);
}

/** Inflate (when compressed, within `limit`) and write a received image to `file`. */
export async function writeImageFile(
  file: string,
  compressed: boolean,
  image: Bytes,
  limit: number,
): Promise<{ ok: true; bytes: number } | { ok: false; stage: "uncompress" | "write"; message: string }> {
  let data = image;
  if (compressed) {
    try {
      data = inflate(image, { maxBytes: limit });
    } catch (e) {
      return { ok: false, stage: "uncompress", message: (e as Error).message };
    }
  }
  try {
    await writeFile(file, data, { mode: 0o644 });
  } catch (e) {
    return { ok: false, stage: "write", message: (e as Error).message };
  }
  return { ok: true, bytes: data.length };
}

/** An open block dump: data goes through an optional limited inflate into the file. */
export class DumpTarget {
  private readonly input = new PassThrough();
  private readonly file: WriteStream;
  private readonly done: Promise<Error | null>;
  private failure: Error | null = null;
  written = 0;

  constructor(
    readonly path: string,
    compressed: boolean,
    limit: number,
  ) {
    this.file = createWriteStream(path, { mode: 0o644 });
    this.file.on("open", () => undefined);
    const counter = new PassThrough();
    counter.on("data", (c: Buffer) => {
      this.written += c.length;
    });
    const stages: NodeJS.ReadWriteStream[] = compressed ? [createLimitedInflate(limit) as Transform] : [];
    this.done = new Promise((resolve) => {
      pipeline([this.input, ...stages, counter, this.file] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream], (err) => {
        if (err) this.failure = err;
        resolve(err ?? null);
      });
    });
  }

  get failed(): Error | null {
    return this.failure;
  }

  async push(b: Bytes): Promise<void> {
    if (this.failure) return;
    if (!this.input.write(b)) {
      await new Promise<void>((resolve) => {
        const ok = () => {
          this.input.off("close", ok);
          resolve();
        };
        this.input.once("drain", ok);
        this.input.once("close", ok);
      });
    }
  }

  async finish(): Promise<Error | null> {
    this.input.end();
    return this.done;
  }

  abort(): void {
    this.input.destroy();
  }
}
