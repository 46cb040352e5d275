// Helpers for the console daemon integration tests: temp dirs, FIFOs, FIFO writers and a
// minimal framed-wire client.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { decodeWire, encodeFrame, encodeWire, END, FrameDecoder } from "../../src/commands/index.js";
import type { Command, Wire } from "../../src/commands/index.js";
import { parseName } from "../../src/core/name.js";

export function tempTmpdir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(os.tmpdir(), "dromedary-console-"));
  mkdirSync(join(dir, "util"));
  mkdirSync(join(dir, "fifo"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function mkfifo(path: string): void {
  execFileSync("mkfifo", ["-m", "0640", path]);
}

/**
 * A stand-in for a tender: opens the FIFO for writing (blocks until a reader exists, like
 * albatrossd's O_WRONLY open), then writes whatever `write()` is given, and closes on `end()`.
 * Driven over its stdin so tests need no sleeps: each `write` waits until the child wrote.
 */
export class FifoWriter {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<number | null>;
  private acks = 0;
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(fifo: string) {
    // Each input line is a hex string of bytes to write; the child acknowledges with "ok".
    const script = `
      const fs = require("fs");
      const fd = fs.openSync(process.argv[1], "w");
      let buf = "";
      process.stdin.setEncoding("utf8");
      process.stdin.on("data", (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf("\\n")) >= 0) {
          const hex = buf.slice(0, i); buf = buf.slice(i + 1);
          fs.writeSync(fd, Buffer.from(hex, "hex"));
          process.stdout.write("ok\\n");
        }
      });
      process.stdin.on("end", () => { fs.closeSync(fd); process.exit(0); });`;
    this.child = spawn(process.execPath, ["-e", script, fifo], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (d: string) => {
      this.acks += d.split("\n").filter((x) => x === "ok").length;
      this.waiters = this.waiters.filter((w) => (w.n <= this.acks ? (w.resolve(), false) : true));
    });
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  private sent = 0;

  /** Write these bytes (one write(2) call) and wait until they were written. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : Buffer.from(data);
    const n = ++this.sent;
    const done = new Promise<void>((resolve) => this.waiters.push({ n, resolve }));
    this.child.stdin.write(bytes.toString("hex") + "\n");
    await done;
  }

  /** Close the FIFO (EOF for the reader) and wait for the process to exit. */
  async end(): Promise<number | null> {
    this.child.stdin.end();
    return this.exited;
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}

export const wire = (name: string, command: Command, version = 5): Wire => ({
  header: { version, sequence: 0n, name: parseName(name) },
  payload: { kind: "command", command },
});

/** A framed-wire client that collects every message and notices EOF. */
export class WireClient {
  readonly messages: Wire[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];

  private constructor(readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => {
      this.decoder.push(d);
      for (;;) {
        const f = this.decoder.next();
        if (f === null || f === END) break;
        this.messages.push(decodeWire(f));
      }
      this.wake();
    });
    sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
    sock.on("error", () => undefined);
  }

  static connect(path: string): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once("connect", () => resolve(new WireClient(s)));
      s.once("error", reject);
    });
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  private until(pred: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pred()) return resolve();
        if (this.closed) return reject(new Error(`connection closed while waiting for ${what} (have ${this.messages.length} messages)`));
        this.waiters.push(check);
      };
      check();
    });
  }

  send(w: Wire): void {
    this.sock.write(encodeFrame(encodeWire(w)));
  }

  sendRaw(bytes: Uint8Array): void {
    this.sock.write(bytes);
  }

  /** Wait until at least n messages arrived; returns them all. */
  async waitFor(n: number): Promise<Wire[]> {
    await this.until(() => this.messages.length >= n, `${n} messages`);
    return this.messages;
  }

  /** Wait for the daemon to close the connection. */
  waitClosed(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.closed) resolve();
        else this.waiters.push(check);
      };
      check();
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Send one request on a fresh connection and collect replies until the daemon closes. */
export async function oneShot(socketPath: string, w: Wire): Promise<Wire[]> {
  const c = await WireClient.connect(socketPath);
  c.send(w);
  await c.waitClosed();
  return c.messages;
}

const td = new TextDecoder();
export const text = (b: Uint8Array): string => td.decode(b);

/** The console line of a data message, as latin1 text (byte-exact). */
export function consoleLine(w: Wire): string {
  if (w.payload.kind !== "data" || w.payload.data.kind !== "console") throw new Error(`not console data: ${w.payload.kind}`);
  return Buffer.from(w.payload.data.line).toString("latin1");
}

/** "success: <text>" / "failure: <text>" / "consoles: a,b" summary of a reply. */
export function replyText(w: Wire): string {
  const p = w.payload;
  if (p.kind === "failure") return `failure: ${text(p.message)}`;
  if (p.kind === "reply") {
    const r = p.reply;
    if (r.kind === "string") return `success: ${text(r.text)}`;
    if (r.kind === "empty") return "success";
    if (r.kind === "consoles") return `consoles: ${r.names.map((n) => `${n.path.join(":")}:${n.label ?? ""}`).join(",")}`;
    return `success ${r.kind}`;
  }
  return p.kind;
}
