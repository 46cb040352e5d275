// Console daemon throughput: lines/second from a FIFO writer through the daemon (line
// splitting, ring, wire encoding) to one subscriber over the Unix socket, compared with
// reading the same bytes raw from a FIFO. Target: >= 100k lines/s.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants as fsc, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { encodeFrame, encodeWire } from "../src/commands/index.js";
import type { Wire } from "../src/commands/index.js";
import { startConsoleDaemon } from "../src/console/daemon.js";
import { parseName } from "../src/core/name.js";

const LINES = 300_000;
const TARGET = 100_000;

function makeInput(dir: string): { file: string; bytes: number } {
  const parts: string[] = [];
  for (let i = 0; i < LINES; i++) parts.push(`[${String(i).padStart(7, "0")}] mirage: net: received packet of 1514 bytes, queue ${i % 7}\n`);
  const text = parts.join("");
  const file = join(dir, "input.txt");
  writeFileSync(file, text);
  return { file, bytes: Buffer.byteLength(text) };
}

/** `cat file > fifo` in a child process (the tender stand-in); resolves when it exits. */
function catInto(file: string, fifo: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn("sh", ["-c", 'cat "$1" > "$2"', "sh", file, fifo], { stdio: "ignore" });
    c.on("error", reject);
    c.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`cat exited ${code}`))));
  });
}

/** Raw baseline: the same bytes read from a FIFO with the same mechanism, just counted. */
async function rawRead(dir: string, file: string, bytes: number): Promise<number> {
  const fifo = join(dir, "raw.fifo");
  execFileSync("mkfifo", [fifo]);
  const fd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
  const s = new net.Socket({ fd, readable: true, writable: false });
  let got = 0;
  const t0 = process.hrtime.bigint();
  const done = new Promise<void>((resolve) => s.on("close", () => resolve()));
  s.on("data", (d: Buffer) => {
    got += d.length;
  });
  await catInto(file, fifo);
  await done;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (got !== bytes) throw new Error(`raw read ${got} of ${bytes} bytes`);
  return ms;
}

async function throughDaemon(dir: string, file: string): Promise<{ ms: number; count: number }> {
  const tmpdir = join(dir, "run");
  mkdirSync(join(tmpdir, "fifo"), { recursive: true });
  const d = await startConsoleDaemon({ tmpdir });
  try {
    const name = parseName("bench:vm");
    execFileSync("mkfifo", [join(tmpdir, "fifo", "bench:vm")]);
    const send = (s: net.Socket, w: Wire): void => void s.write(encodeFrame(encodeWire(w)));
    const hostd = net.connect(d.socketPath);
    await new Promise((r) => hostd.once("connect", r));
    send(hostd, { header: { version: 5, sequence: 1n, name }, payload: { kind: "command", command: { kind: "console-add", budget: 1n } } });
    await new Promise((r) => hostd.once("data", r));
    // The subscriber counts frames by their length prefix only (decoding is the client's cost).
    const sub = net.connect(d.socketPath);
    await new Promise((r) => sub.once("connect", r));
    let frames = -1; // the first frame is the "subscribed" reply
    let pending: Buffer<ArrayBufferLike> = Buffer.alloc(0);
    let t0 = 0n;
    const done = new Promise<void>((resolve) => {
      sub.on("data", (chunk: Buffer) => {
        const buf: Buffer<ArrayBufferLike> = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        let off = 0;
        while (buf.length - off >= 4) {
          const len = buf.readInt32BE(off);
          if (buf.length - off - 4 < len) break;
          off += 4 + len;
          frames++;
          if (frames === 0) t0 = process.hrtime.bigint();
        }
        pending = buf.subarray(off);
        if (frames >= LINES) resolve();
      });
    });
    send(sub, {
      header: { version: 5, sequence: 0n, name },
      payload: { kind: "command", command: { kind: "console-subscribe", sinceCount: { kind: "count", count: 0 } } },
    });
    await new Promise((r) => setTimeout(r, 50)); // let the reply arrive first
    if (frames < 0) throw new Error("no subscribe reply");
    t0 = process.hrtime.bigint();
    await Promise.all([catInto(file, join(tmpdir, "fifo", "bench:vm")), done]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    sub.destroy();
    hostd.destroy();
    return { ms, count: frames };
  } finally {
    await d.close();
  }
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), "dromedary-console-bench-"));
  try {
    const { file, bytes } = makeInput(dir);
    closeSync(openSync(file, "r"));
    const raw = await rawRead(dir, file, bytes);
    const { ms, count } = await throughDaemon(dir, file);
    const rate = (count / ms) * 1000;
    const rawRate = (LINES / raw) * 1000;
    console.log(`input: ${LINES} lines, ${(bytes / 1e6).toFixed(1)} MB`);
    console.log(`raw FIFO read:            ${raw.toFixed(0)} ms  (${(rawRate / 1000).toFixed(0)}k lines/s, ${(bytes / 1e3 / raw).toFixed(0)} MB/s)`);
    console.log(`FIFO -> ring -> subscriber: ${ms.toFixed(0)} ms  (${(rate / 1000).toFixed(0)}k lines/s)`);
    console.log(`ratio daemon/raw time: ${(ms / raw).toFixed(2)}x; target >= ${TARGET / 1000}k lines/s: ${rate >= TARGET ? "met" : "NOT met"}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Allow `node dist/bench/console.bench.js` directly.
if (import.meta.url === `file://${process.argv[1]}`) await run();
