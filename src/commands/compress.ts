// zlib (RFC 1950) compression as albatross uses it (wire.md §12). Upstream uses the OCaml
// `decompress` library; its output need not be byte-identical with zlib's, any valid zlib
// stream is accepted both ways. node:zlib is a Node built-in: this module is still pure
// computation (no files, sockets or clocks).
//
// Inflation is always bounded: a decompression bomb is stopped once `maxBytes` of output
// were produced, without allocating the whole output.

import { constants as bufferConstants } from "node:buffer";
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import type { Bytes } from "./der.js";

export class InflateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InflateError";
  }
}

function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`compression level ${level} not in 0..9`);
}

function asU8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** zlib-format deflate (level 0..9; 0 still yields a valid zlib stream of stored blocks). */
export function deflate(data: Bytes, level: number): Bytes {
  checkLevel(level);
  return asU8(zlib.deflateSync(data, { level }));
}

function zlibMessage(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = err?.message ?? String(e);
  return msg.split("\n")[0]!;
}

/**
 * Inflate a complete zlib stream. Throws InflateError for invalid or truncated data and
 * as soon as the output would exceed `maxBytes` (zlib's maxOutputLength stops inflating
 * there, so a bomb never allocates more than ~maxBytes).
 */
export function inflate(data: Bytes, opts: { maxBytes: number }): Bytes {
  const max = opts.maxBytes;
  if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`invalid maxBytes ${max}`);
  // maxOutputLength must be >= 1; a limit of 0 is checked after the fact (output <= chunk).
  const limit = Math.max(1, Math.min(max, bufferConstants.MAX_LENGTH));
  let out: Buffer;
  try {
    out = zlib.inflateSync(data, { maxOutputLength: limit });
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new InflateError(`decompressed data exceeds the limit of ${max} bytes`);
    }
    throw new InflateError(`invalid zlib data: ${zlibMessage(e)}`);
  }
  if (out.length > max) throw new InflateError(`decompressed data exceeds the limit of ${max} bytes`);
  return asU8(out);
}

/**
 * A Transform that inflates one zlib stream written to it in arbitrary pieces (block
 * uploads, wire.md §3.1/§12) and fails with InflateError when the data is invalid, is
 * truncated at the end, or decompresses to more than `maxBytes`.
 */
export function createLimitedInflate(maxBytes: number): Transform {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`invalid maxBytes ${maxBytes}`);
  return new LimitedInflate(maxBytes);
}

class LimitedInflate extends Transform {
  private readonly inner = zlib.createInflate();
  private total = 0;
  private failed = false;

  constructor(private readonly maxBytes: number) {
    super();
    this.inner.on("data", (d: Buffer) => {
      if (this.failed) return;
      this.total += d.length;
      if (this.total > this.maxBytes) {
        this.fail(new InflateError(`decompressed data exceeds the limit of ${this.maxBytes} bytes`));
        return;
      }
      this.push(asU8(d));
    });
    this.inner.on("error", (e) => this.fail(new InflateError(`invalid zlib data: ${zlibMessage(e)}`)));
  }

  private fail(e: InflateError): void {
    if (this.failed) return;
    this.failed = true;
    this.inner.destroy();
    this.destroy(e);
  }

  override _transform(chunk: Buffer | Uint8Array, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failed) return cb();
    if (this.inner.write(chunk)) cb();
    else this.inner.once("drain", () => cb());
  }

  override _flush(cb: TransformCallback): void {
    if (this.failed) return cb();
    this.inner.once("end", () => cb());
    this.inner.end();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}
