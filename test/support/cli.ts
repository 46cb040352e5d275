// Test support for the client CLI: run the built CLI as a child process, and a fake daemon
// speaking the framed wire protocol on a Unix socket in a temp dir.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { decodeWire, encodeWire } from "../../src/commands/codec.js";
import { END, FrameDecoder, encodeFrame } from "../../src/commands/framing.js";
import type { Payload, Wire } from "../../src/commands/types.js";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The installed command (bin/dromedary.cjs): the fast path bundled, the rest from dist/src. */
export const CLI = path.resolve(here, "../../../bin/dromedary.cjs");
export const VECTORS = path.resolve(here, "../../../fixtures/vectors");

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

export function runCli(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; input?: Uint8Array | string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? process.cwd(),
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout: stdoutBytes.toString("utf8"), stdoutBytes, stderr: Buffer.concat(err).toString("utf8") });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** A long-running child (a daemon, `up`): its stderr lines as they come, and its exit code. */
export interface Watched {
  readonly child: ChildProcess;
  /** stderr lines; stdout (if piped) as `stdout: <text>` */
  readonly lines: string[];
  readonly exit: Promise<number | null>;
}

export function watchLines(child: ChildProcess): Watched {
  const lines: string[] = [];
  let rest = "";
  child.stderr?.on("data", (d: Buffer) => {
    const parts = (rest + d.toString("utf8")).split("\n");
    rest = parts.pop()!;
    lines.push(...parts);
  });
  child.stdout?.on("data", (d: Buffer) => lines.push(`stdout: ${d.toString()}`));
  return { child, lines, exit: new Promise((res) => child.once("exit", (code) => res(code))) };
}

export function tempDir(prefix = "dromedary-cli-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One accepted connection of the fake daemon. */
export class FakeConn {
  private readonly decoder = new FrameDecoder({ maxFrame: 1 << 30 });
  private readonly queue: (Uint8Array | typeof END | null)[] = [];
  private waiter: ((f: Uint8Array | typeof END | null) => void) | null = null;

  constructor(readonly socket: net.Socket) {
    socket.on("data", (c: Buffer) => {
      this.decoder.push(new Uint8Array(c));
      for (;;) {
        const f = this.decoder.next();
        if (f === null) break;
        this.deliver(f);
      }
    });
    socket.on("end", () => this.deliver(null));
    socket.on("error", () => this.deliver(null));
  }

  private deliver(f: Uint8Array | typeof END | null): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(f);
    } else this.queue.push(f);
  }

  /** The next frame payload, END for a zero-length chunk, null at EOF. */
  nextFrame(): Promise<Uint8Array | typeof END | null> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift()!);
    return new Promise((r) => {
      this.waiter = r;
    });
  }

  async request(): Promise<Wire> {
    const f = await this.nextFrame();
    if (!(f instanceof Uint8Array)) throw new Error("no request");
    return decodeWire(f);
  }

  /** Raw upload chunks until the zero-length terminator. */
  async upload(): Promise<Uint8Array[]> {
    const chunks: Uint8Array[] = [];
    for (;;) {
      const f = await this.nextFrame();
      if (f === END || f === null) return chunks;
      chunks.push(f);
    }
  }

  send(req: Wire, payload: Payload): Promise<void> {
    return this.sendRaw(encodeFrame(encodeWire({ header: req.header, payload })));
  }

  sendRaw(b: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(b, (e) => (e ? reject(e) : resolve())));
  }

  end(): Promise<void> {
    return new Promise((resolve) => this.socket.end(resolve));
  }
}

/** A Unix socket server; each connection is handed to `handler`. */
export async function fakeDaemon(socketPath: string, handler: (c: FakeConn) => Promise<void>): Promise<{ close: () => Promise<void>; errors: unknown[] }> {
  const errors: unknown[] = [];
  const server = net.createServer((s) => {
    handler(new FakeConn(s)).catch((e) => {
      errors.push(e);
      s.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    errors,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
