import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { END_FRAME, encodeFrame } from "../../src/commands/framing.js";
import { ReadTimeout, SocketFrames } from "../../src/net/frames.js";

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
