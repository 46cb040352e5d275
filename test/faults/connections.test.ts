// Connection floods and stalled peers on the daemons' Unix sockets (issue 10): a cap on
// connections (one beyond it is answered "too many connections" and closed, not left
// hanging), an idle timeout for connections waiting for a request (never for one in
// progress, never for a console subscription), and the daemons keep serving.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readlink, rm, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "node:net";
import { decodeWire, encodeWire } from "../../src/commands/codec.js";
import type { Wire } from "../../src/commands/types.js";
import { startConsoleDaemon } from "../../src/console/daemon.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { argv, commandWire, config, connect, frameOf, request, show, sleep, waitFor, type Env } from "../support/hostd.js";
import { deadline, scenario } from "./support.js";

const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;

/** An open connection and what it received until now; `closed` once the daemon closed it. */
interface Conn {
  readonly sock: Socket;
  readonly replies: Wire[];
  closed: boolean;
}

async function open(path: string): Promise<Conn> {
  // Node's Unix-socket connect fails at once (EAGAIN) while the listen backlog is full,
  // e.g. when the daemon is descheduled on a loaded machine: try again shortly
  let sock: Socket | null = null;
  for (let i = 0; sock === null; i++) {
    try {
      sock = await connect(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || i >= 100) throw e;
      await sleep(20);
    }
  }
  const c: Conn = { sock, replies: [], closed: false };
  let buf = Buffer.alloc(0);
  sock.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      const len = buf.readInt32BE(0);
      c.replies.push(decodeWire(new Uint8Array(buf.subarray(4, 4 + len))));
      buf = buf.subarray(4 + len);
    }
  });
  sock.on("error", () => undefined);
  sock.on("close", () => (c.closed = true));
  return c;
}

const failureText = (w: Wire | undefined): string | null => (w?.payload.kind === "failure" ? new TextDecoder().decode(w.payload.message) : null);

/** hostd's open descriptors, but for its journal file (open from the first recorded change on, store.ts) */
async function fds(pid: number): Promise<number> {
  let n = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    if (!/\/state\.journal\.\d+$/.test(target)) n++;
  }
  return n;
}

describe("hostd: connection cap and idle timeout", () => {
  scenario(
    "a flood of 60 idle connections against a cap of 40: the rest are refused with a reply, the idle ones closed after the timeout, hostd serves on",
    async (env: Env) => {
      const pid = env.hostd!.pid!;
      const before = await fds(pid);
      const flood: Conn[] = [];
      for (let i = 0; i < 60; i++) flood.push(await open(env.socket));
      // the 20 beyond the cap got "too many connections" and were closed
      await waitFor("refusals", async () => flood.filter((c) => c.closed).length === 20, 10_000);
      const refused = flood.filter((c) => c.closed);
      for (const c of refused) assert.equal(failureText(c.replies[0]), "too many connections");
      assert.ok(flood.slice(0, 40).every((c) => !c.closed));
      // at the cap, a request is refused the same way (it does not hang)
      assert.equal(show(await deadline(request(env.socket, ":", { kind: "unikernel-info" }), 5_000, "info at the cap")), "failure: too many connections");
      // after the idle timeout (2 s) hostd has closed the idle ones, and serves again
      await waitFor("idle connections closed", async () => flood.every((c) => c.closed), 10_000);
      assert.ok(flood.slice(0, 40).every((c) => c.replies.length === 0));
      assert.equal(show(await request(env.socket, ":", { kind: "unikernel-info" })), "success unikernel-info");
      assert.equal(
        show(await request(env.socket, ":a", { kind: "unikernel-create", config: config(HELLO, { argv: argv("--standin-run") }) })),
        "success: created unikernel",
      );
      assert.equal(show(await request(env.socket, ":a", { kind: "unikernel-destroy" })), "success: destroyed unikernel");
      // no descriptor leaked
      await waitFor("descriptors back", async () => (await fds(pid)) <= before, 5_000);
    },
    { hostdArgs: ["--max-connections", "40", "--idle-timeout", "2"] },
  );

  scenario(
    "below the cap, idle connections cost nothing: requests are served while 30 sit idle",
    async (env: Env) => {
      const idle: Conn[] = [];
      for (let i = 0; i < 30; i++) idle.push(await open(env.socket));
      for (let i = 0; i < 5; i++) assert.equal(show(await request(env.socket, ":", { kind: "unikernel-info" })), "success unikernel-info");
      assert.ok(idle.every((c) => !c.closed));
      for (const c of idle) c.sock.destroy();
    },
    { hostdArgs: ["--max-connections", "40"] },
  );

  scenario(
    "a block upload that keeps sending is not cut by the idle timeout; one that stalls is answered and closed",
    async (env: Env) => {
      assert.equal(show(await request(env.socket, ":disk", { kind: "block-add", size: 1 })), "success: added block device");
      // 6 chunks, one every 400 ms (2.4 s in all) with a 1 s idle timeout
      const slow = await open(env.socket);
      slow.sock.write(frameOf(encodeWire(commandWire(":disk", { kind: "block-set", compressed: false }))));
      for (let i = 0; i < 6; i++) {
        await sleep(400);
        assert.equal(slow.closed, false);
        slow.sock.write(frameOf(Uint8Array.of(i + 1)));
      }
      slow.sock.write(Buffer.alloc(4));
      await waitFor("the set's reply", async () => slow.closed, 10_000);
      assert.equal(show(slow.replies), "success: set block device");
      // stalls after one chunk: the upload ends with a failure reply after ~1 s
      const stalled = await open(env.socket);
      stalled.sock.write(frameOf(encodeWire(commandWire(":disk", { kind: "block-set", compressed: false }))));
      stalled.sock.write(frameOf(Uint8Array.of(9)));
      await waitFor("the stalled upload's reply", async () => stalled.closed, 10_000);
      assert.equal(show(stalled.replies), "failure: error while reading stream");
      // the failed set changed nothing: the device holds the first upload
      const dump = await request(env.socket, ":disk", { kind: "block-dump-old", level: 0 });
      const p = dump[0]?.payload;
      assert.ok(p?.kind === "reply" && p.reply.kind === "old-block-device-image");
      if (p?.kind === "reply" && p.reply.kind === "old-block-device-image") assert.deepEqual([...p.reply.image.subarray(0, 7)], [1, 2, 3, 4, 5, 6, 0]);
      const blockDir = await readdir(join(env.dbdir, "block"));
      assert.deepEqual(blockDir, [":disk"]);
    },
    { hostdArgs: ["--idle-timeout", "1"] },
  );

  scenario(
    "requests in memory are bounded (--max-request-memory): a large one that does not fit is answered 'hostd busy', and fits once the other is gone",
    async (env: Env) => {
      const image = new Uint8Array(700_000);
      image.set(HELLO);
      const create = encodeWire(commandWire(":big", { kind: "unikernel-create", config: config(image, { argv: argv("--standin-run") }) }));
      // a client sends most of a large create and stalls: its frame is reserved meanwhile
      const stalled = await open(env.socket);
      stalled.sock.write(frameOf(create).subarray(0, 500_000));
      await sleep(200);
      const r = await request(env.socket, ":big", { kind: "unikernel-create", config: config(image, { argv: argv("--standin-run") }) });
      assert.match(show(r), /^failure: hostd busy: a request of \d+ bytes does not fit: \d+ of 1048576 bytes are taken by requests in progress, try again$/);
      // small requests are not affected
      assert.equal(show(await request(env.socket, ":", { kind: "unikernel-info" })), "success unikernel-info");
      stalled.sock.destroy();
      await sleep(200);
      assert.equal(
        show(await request(env.socket, ":big", { kind: "unikernel-create", config: config(image, { argv: argv("--standin-run") }) })),
        "success: created unikernel",
      );
      assert.equal(show(await request(env.socket, ":big", { kind: "unikernel-destroy" })), "success: destroyed unikernel");
    },
    { hostdArgs: ["--max-request-memory", String(1 << 20)] },
  );

  scenario(
    "the console daemon closes hostd's idle connection: the next create reconnects and succeeds",
    async (env: Env) => {
      const c = config(HELLO, { argv: argv("--standin-run") });
      assert.equal(show(await request(env.socket, ":one", { kind: "unikernel-create", config: c })), "success: created unikernel");
      await sleep(2_500); // the console daemon's idle timeout is 1 s
      assert.equal(show(await request(env.socket, ":two", { kind: "unikernel-create", config: c })), "success: created unikernel");
      for (const n of [":one", ":two"]) assert.equal(show(await request(env.socket, n, { kind: "unikernel-destroy" })), "success: destroyed unikernel");
    },
    { consoleArgs: ["--idle-timeout", "1"] },
  );
});

describe("console daemon: connection cap and idle timeout", () => {
  it("a flood beyond the cap is refused with a reply; idle connections close, a subscription stays", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dromedary-console-flood-"));
    await mkdir(join(dir, "fifo"));
    const d = await startConsoleDaemon({ tmpdir: dir, maxConnections: 20, idleTimeoutMs: 1_000 });
    try {
      const sub = await open(d.socketPath);
      sub.sock.write(frameOf(encodeWire(commandWire(":vm", { kind: "console-subscribe", sinceCount: { kind: "count", count: 10 } }))));
      await waitFor("subscribed", async () => sub.replies.length === 1);
      assert.equal(show(sub.replies), "success: waiting for VM");
      const flood: Conn[] = [];
      for (let i = 0; i < 25; i++) flood.push(await open(d.socketPath));
      await waitFor("refusals", async () => flood.filter((c) => c.closed).length === 6, 5_000);
      for (const c of flood.filter((x) => x.closed)) assert.equal(failureText(c.replies[0]), "too many connections");
      // after the idle timeout the idle ones are gone, the subscription is not
      await waitFor("idle closed", async () => flood.every((c) => c.closed), 5_000);
      await sleep(1_500);
      assert.equal(sub.closed, false);
      assert.equal(d.stats().connections, 1);
      // and it serves
      const list = await open(d.socketPath);
      list.sock.write(frameOf(encodeWire(commandWire(":", { kind: "console-list-inactive" }))));
      await waitFor("list reply", async () => list.closed, 5_000);
      assert.equal(show(list.replies), "success consoles");
      sub.sock.destroy();
    } finally {
      await d.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
