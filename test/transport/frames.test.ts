import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { END_FRAME, encodeFrame } from "../../src/commands/framing.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReadTimeout, SocketFrames, connectUnixPatiently, retryDelay } from "../../src/transport/frames.js";

// A PassThrough stands in for the socket: writes arrive as "data" events.
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("SocketFrames", () => {
  it("pauses at highWater events and resumes once half were taken", async () => {
    const sock = new PassThrough();
    const f = new SocketFrames(sock, { highWater: 4 });
    for (let i = 0; i < 4; i++) sock.write(encodeFrame(Uint8Array.of(i)));
    await flush();
    assert.equal(sock.isPaused(), true);
    await f.next(); // 3 left
    assert.equal(sock.isPaused(), true);
    await f.next(); // 2 left: < 4 / 2 is not yet true
    assert.equal(sock.isPaused(), true);
    await f.next(); // 1 left
    assert.equal(sock.isPaused(), false);
    sock.destroy();
  });

  it("pauses above highBytes; a consumer waiting for a larger frame resumes it", async () => {
    const sock = new PassThrough();
    const f = new SocketFrames(sock, { highBytes: 6, lowBytes: 4 });
    const big = encodeFrame(new Uint8Array(20));
    sock.write(big.subarray(0, 12));
    await flush();
    assert.equal(sock.isPaused(), true);
    const p = f.next(); // nothing queued: waiting for the rest resumes the socket
    assert.equal(sock.isPaused(), false);
    sock.write(big.subarray(12));
    const e = await p;
    assert.ok(e.kind === "frame" && e.payload.length === 20);
    // and while it waits, more of a large frame does not pause it again
    const q = f.next();
    sock.write(big.subarray(0, 12));
    await flush();
    assert.equal(sock.isPaused(), false);
    sock.write(big.subarray(12));
    assert.ok((await q).kind === "frame");
    sock.destroy();
  });

  it("a pending next() gets the event that completes, in order", async () => {
    const sock = new PassThrough();
    const f = new SocketFrames(sock, {});
    const p = f.next();
    assert.equal(f.ready, false);
    sock.write(Buffer.concat([encodeFrame(Uint8Array.of(1)), END_FRAME]));
    assert.deepEqual(await p, { kind: "frame", payload: Uint8Array.of(1) });
    assert.equal(f.ready, true);
    assert.deepEqual(await f.next(), { kind: "end" });
    sock.destroy(new Error("gone"));
    const e = await f.next();
    assert.ok(e.kind === "error" && e.error.message === "gone");
    assert.deepEqual(await f.next(), { kind: "eof", buffered: 0, inFrame: false });
  });

  it("next(timeoutMs) rejects with ReadTimeout and the reader stays usable", async () => {
    const sock = new PassThrough();
    const f = new SocketFrames(sock, {});
    const alive = setInterval(() => undefined, 1000); // the read timer is unref'd: keep the loop alive as a socket would
    await assert.rejects(f.next(20), (e: unknown) => e instanceof ReadTimeout && e.message === "no data for 20 ms");
    sock.write(END_FRAME);
    assert.deepEqual(await f.next(20), { kind: "end" });
    sock.end();
    assert.deepEqual(await f.next(), { kind: "eof", buffered: 0, inFrame: false });
    clearInterval(alive);
  });

  it("destroyOnFrameError destroys the socket at an oversized frame", async () => {
    const sock = new PassThrough();
    const f = new SocketFrames(sock, { maxFrame: 2, destroyOnFrameError: true });
    sock.write(encodeFrame(new Uint8Array(3)));
    const e = await f.next();
    assert.ok(e.kind === "error" && e.error.message === "frame length 3 exceeds the limit of 2 bytes");
    assert.equal(sock.destroyed, true);
  });
});

describe("connectUnixPatiently", () => {
  const dir = (): string => mkdtempSync(join(tmpdir(), "dromedary-net-"));

  it("pauses grow from 50 ms, doubling, to at most 1 s", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 40].map((a) => retryDelay(a)),
      [50, 100, 200, 400, 800, 1000, 1000, 1000],
    );
    assert.deepEqual(
      [0, 1, 2].map((a) => retryDelay(a, 10, 25)),
      [10, 20, 25],
    );
  });

  it("waits for a socket that appears later: one onWait, then connected", async () => {
    const d = dir();
    const path = join(d, "late.sock");
    const waits: string[] = [];
    const server = net.createServer((c) => c.end());
    const later = setTimeout(() => server.listen(path), 300);
    try {
      const began = Date.now();
      const sock = await connectUnixPatiently(path, { timeoutMs: 5000, onWait: (e) => waits.push(e.code ?? "") });
      sock.destroy();
      assert.deepEqual(waits, ["ENOENT"]);
      // (pauses of 50, 100, 200, 400 ms: connected by the attempt at 750 ms at the latest)
      assert.ok(Date.now() - began < 1500, `took ${Date.now() - began} ms`);
    } finally {
      clearTimeout(later);
      server.close();
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("gives up after timeoutMs with the last error; other errors and a 0 timeout fail at once", async () => {
    const d = dir();
    try {
      let began = Date.now();
      let waits = 0;
      await assert.rejects(
        connectUnixPatiently(join(d, "none.sock"), { timeoutMs: 400, onWait: () => waits++ }),
        (e: NodeJS.ErrnoException) => e.code === "ENOENT",
      );
      assert.ok(Date.now() - began >= 400);
      assert.equal(waits, 1);
      began = Date.now();
      await assert.rejects(
        connectUnixPatiently(join(d, "none.sock"), { timeoutMs: 0, onWait: () => waits++ }),
        (e: NodeJS.ErrnoException) => e.code === "ENOENT",
      );
      assert.equal(waits, 1);
      // a path through a regular file will never become a socket
      writeFileSync(join(d, "file"), "");
      began = Date.now();
      await assert.rejects(
        connectUnixPatiently(join(d, "file", "x.sock"), { timeoutMs: 5000, onWait: () => waits++ }),
        (e: NodeJS.ErrnoException) => e.code === "ENOTDIR",
      );
      assert.ok(Date.now() - began < 1000);
      assert.equal(waits, 1);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
