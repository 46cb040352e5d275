// The console daemon over a real Unix socket with real FIFOs (daemon.md §1, §3).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { encodeFrame } from "../../src/commands/index.js";
import type { Command, Wire } from "../../src/commands/index.js";
import { startConsoleDaemon } from "../../src/console/daemon.js";
import type { ConsoleDaemon } from "../../src/console/daemon.js";
import { consoleLine, FifoWriter, mkfifo, oneShot, replyText, tempTmpdir, WireClient, wire } from "./support.js";

const add = (budget = 5n): Command => ({ kind: "console-add", budget });
const subCount = (count: number): Command => ({ kind: "console-subscribe", sinceCount: { kind: "count", count } });
const subSince = (since: Date): Command => ({ kind: "console-subscribe", sinceCount: { kind: "since", since } });
const listInactive: Command = { kind: "console-list-inactive" };

/** Poll (without asserting on time) until `f` holds; fails after a generous deadline. */
async function eventually(f: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await f()) return;
    await sleep(20);
  }
  throw new Error(`never happened: ${what}`);
}

describe("console daemon", () => {
  let tmp: ReturnType<typeof tempTmpdir>;
  let daemon: ConsoleDaemon;
  let hostd: WireClient; // plays albatrossd: one connection for every Console_add
  const logs: string[] = [];
  const writers: FifoWriter[] = [];
  let seq = 0n;

  /** Console_add over the shared hostd connection; returns the reply. */
  async function consoleAdd(name: string, budget = 5n): Promise<Wire> {
    const n = hostd.messages.length;
    const w = wire(name, add(budget));
    const req: Wire = { ...w, header: { ...w.header, sequence: ++seq } };
    hostd.send(req);
    const replies = await hostd.waitFor(n + 1);
    const r = replies[n]!;
    assert.equal(r.header.sequence, req.header.sequence, "reply echoes the request header");
    return r;
  }

  function fifoOf(name: string): string {
    return join(tmp.dir, "fifo", name);
  }

  function writer(name: string): FifoWriter {
    const w = new FifoWriter(fifoOf(name));
    writers.push(w);
    return w;
  }

  async function subscriber(name: string, cmd: Command): Promise<WireClient> {
    const c = await WireClient.connect(daemon.socketPath);
    c.send(wire(name, cmd));
    await c.waitFor(1);
    return c;
  }

  async function inactive(path: string): Promise<string> {
    return replyText((await oneShot(daemon.socketPath, wire(path, listInactive)))[0]!);
  }

  before(async () => {
    tmp = tempTmpdir();
    daemon = await startConsoleDaemon({ tmpdir: tmp.dir, log: (l) => logs.push(l) });
    hostd = await WireClient.connect(daemon.socketPath);
  });

  after(async () => {
    for (const w of writers) w.kill();
    hostd.close();
    await daemon.close();
    tmp.cleanup();
  });

  it("listens on <tmpdir>/util/console.sock", () => {
    assert.equal(daemon.socketPath, join(tmp.dir, "util", "console.sock"));
    assert.ok(statSync(daemon.socketPath).isSocket());
  });

  it("Console_add, a writer, subscribers: subscribed + history + live lines", async () => {
    mkfifo(fifoOf("foo:bar"));
    assert.equal(replyText(await consoleAdd("foo:bar")), "success");
    const t0 = Date.now();
    const live = await subscriber("foo:bar", subCount(10));
    assert.equal(replyText(live.messages[0]!), "success: subscribed");
    const w = writer("foo:bar");
    await w.write("one\ntwo\n");
    await live.waitFor(3);
    assert.deepEqual(live.messages.slice(1).map(consoleLine), ["one", "two"]);
    const d = live.messages[1]!;
    assert.equal(d.header.version, 5);
    assert.equal(d.header.sequence, 0n);
    assert.deepEqual(d.header.name, { path: ["foo"], label: "bar" });
    assert.ok(d.payload.kind === "data" && d.payload.data.kind === "console");
    const ts = d.payload.data.timestamp.getTime();
    assert.ok(ts >= t0 - 1000 && ts <= Date.now() + 1000, "timestamp is the time of reading");

    const late = await subscriber("foo:bar", subCount(10));
    await late.waitFor(3);
    assert.equal(replyText(late.messages[0]!), "success: subscribed");
    assert.deepEqual(late.messages.slice(1).map(consoleLine), ["one", "two"]);
    const last1 = await subscriber("foo:bar", subCount(1));
    await last1.waitFor(2);

    await w.write("three\n");
    await live.waitFor(4);
    await late.waitFor(4);
    await last1.waitFor(3);
    assert.equal(consoleLine(live.messages[3]!), "three");
    assert.equal(consoleLine(late.messages[3]!), "three");
    assert.deepEqual(last1.messages.slice(1).map(consoleLine), ["two", "three"]);
    const zero = await subscriber("foo:bar", subCount(0));
    await w.write("four\n");
    await zero.waitFor(2);
    assert.equal(consoleLine(zero.messages[1]!), "four", "count 0: no history, only live lines");
    for (const c of [live, late, last1, zero]) c.close();
    await w.end();
  });

  it("since: the history from a point in time on", async () => {
    mkfifo(fifoOf(":since"));
    await consoleAdd(":since");
    const live = await subscriber(":since", subCount(0));
    const w = writer(":since");
    await w.write("old\n");
    await live.waitFor(2);
    const d = live.messages[1]!;
    assert.ok(d.payload.kind === "data" && d.payload.data.kind === "console");
    const tOld = d.payload.data.timestamp.getTime();
    const future = await subscriber(":since", subSince(new Date(tOld + 3_600_000)));
    const all = await subscriber(":since", subSince(new Date(tOld)));
    await all.waitFor(2);
    assert.deepEqual(all.messages.slice(1).map(consoleLine), ["old"]);
    await w.write("new\n");
    await future.waitFor(2);
    assert.equal(consoleLine(future.messages[1]!), "new", "since in the future: no history");
    for (const c of [live, future, all]) c.close();
    await w.end();
  });

  it("tender restart: EOF makes the console inactive; a new Console_add and writer reach the same subscriber", async () => {
    const fifo = fifoOf("svc:web");
    mkfifo(fifo);
    await consoleAdd("svc:web");
    const sub = await subscriber("svc:web", subCount(0));
    const w1 = writer("svc:web");
    await w1.write("first\n");
    await sub.waitFor(2);
    assert.equal(await w1.end(), 0);
    await eventually(async () => (await inactive("svc:")) === "consoles: :web", "svc:web inactive");
    assert.equal(sub.closed, false, "subscribers are not disconnected when the VM stops");

    // albatrossd: FIFO removed at exit, created again by the restart, then Console_add
    unlinkSync(fifo);
    mkfifo(fifo);
    assert.equal(replyText(await consoleAdd("svc:web")), "success");
    assert.equal(await inactive("svc:"), "consoles: ");
    const w2 = writer("svc:web");
    await w2.write("second\n");
    await sub.waitFor(3);
    assert.equal(consoleLine(sub.messages[2]!), "second");
    const hist = await subscriber("svc:web", subCount(100));
    await hist.waitFor(3);
    assert.deepEqual(hist.messages.slice(1).map(consoleLine), ["first", "second"]);
    sub.close();
    hist.close();
    await w2.end();
  });

  it("two writers on one FIFO: EOF (inactive) only after the last one closed", async () => {
    mkfifo(fifoOf(":two"));
    await consoleAdd(":two");
    const sub = await subscriber(":two", subCount(0));
    const a = writer(":two");
    const b = writer(":two");
    await b.write("from b\n"); // b is attached now
    await a.write("from a\n");
    await a.end();
    await b.write("b again\n");
    await sub.waitFor(4);
    assert.deepEqual(sub.messages.slice(1).map(consoleLine), ["from b", "from a", "b again"]);
    assert.ok(!(await inactive(":")).split(/[ ,]/).includes(":two"), "still active while b is attached");
    sub.close();
    await b.end();
    await eventually(async () => (await inactive(":")).split(/[ ,]/).includes(":two"), ":two inactive");
  });

  it("subscribe before the VM exists: waiting for VM, then lines after Console_add", async () => {
    const early = await subscriber("late:vm", subCount(10));
    assert.equal(replyText(early.messages[0]!), "success: waiting for VM");
    mkfifo(fifoOf("late:vm"));
    await consoleAdd("late:vm");
    const w = writer("late:vm");
    await w.write("hello\n");
    await early.waitFor(2);
    assert.equal(consoleLine(early.messages[1]!), "hello");
    early.close();
    await w.end();
  });

  it("list-inactive: inactive consoles with a buffer, names relative to the path; a full name is refused", async () => {
    for (const n of ["grp:a", "grp:b", "grp:sub:c"]) {
      mkfifo(fifoOf(n));
      await consoleAdd(n);
      const w = writer(n);
      await w.write(`${n}\n`);
      await w.end();
    }
    await eventually(async () => (await inactive("grp:")) === "consoles: :b,:a,sub:c", "grp consoles inactive");
    assert.equal(await inactive("grp:sub:"), "consoles: :c");
    const withName = await oneShot(daemon.socketPath, wire("grp:a", listInactive));
    assert.deepEqual(withName.map(replyText), ["failure: name used"]);
    assert.equal(withName[0]!.header.name.label, "a", "reply echoes the header");
  });

  it("add and subscribe with a path-only name: path used instead of name, then closed", async () => {
    assert.deepEqual((await oneShot(daemon.socketPath, wire("foo:", add()))).map(replyText), ["failure: path used instead of name"]);
    assert.deepEqual((await oneShot(daemon.socketPath, wire(":", subCount(1)))).map(replyText), ["failure: path used instead of name"]);
  });

  it("Console_add without a FIFO: opening, and the connection keeps serving", async () => {
    assert.equal(replyText(await consoleAdd("no:fifo")), "failure: opening");
    writeFileSync(fifoOf(":plainfile"), "not a fifo\n");
    assert.equal(replyText(await consoleAdd(":plainfile")), "failure: opening");
    mkfifo(fifoOf("no:fifo2"));
    assert.equal(replyText(await consoleAdd("no:fifo2")), "success");
    assert.equal(hostd.closed, false);
  });

  it("garbage, oversize and foreign messages close the connection without a reply; the daemon keeps serving", async () => {
    const garbage = await WireClient.connect(daemon.socketPath);
    garbage.sendRaw(encodeFrame(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x05)));
    await garbage.waitClosed();
    assert.equal(garbage.messages.length, 0);

    const huge = await WireClient.connect(daemon.socketPath);
    huge.sendRaw(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 1, 2, 3));
    await huge.waitClosed();
    assert.equal(huge.messages.length, 0);

    const end = await WireClient.connect(daemon.socketPath);
    end.sendRaw(Uint8Array.of(0, 0, 0, 0));
    await end.waitClosed();

    const v4 = wire(":x", listInactive, 4);
    assert.deepEqual(await oneShot(daemon.socketPath, v4), []);
    assert.deepEqual(await oneShot(daemon.socketPath, wire(":x", { kind: "unikernel-info" })), []);
    const reply: Wire = { header: wire(":x", listInactive).header, payload: { kind: "reply", reply: { kind: "empty" } } };
    assert.deepEqual(await oneShot(daemon.socketPath, reply), []);

    assert.match(await inactive(":"), /^consoles: /);
  });

  it("after a subscribe any further input closes the connection; the subscription goes at the next line", async () => {
    mkfifo(fifoOf(":chatty"));
    await consoleAdd(":chatty");
    const a = await subscriber(":chatty", subCount(0));
    const b = await subscriber(":chatty", subCount(0));
    a.send(wire(":chatty", listInactive));
    await a.waitClosed();
    assert.equal(a.messages.length, 1, "no reply to the second message");
    const w = writer(":chatty");
    await w.write("x\n");
    await b.waitFor(2);
    assert.equal(consoleLine(b.messages[1]!), "x");
    b.close();
    await w.end();
  });

  it("bytes are forwarded raw; an over-long line is truncated at 512 bytes", async () => {
    mkfifo(fifoOf(":raw"));
    await consoleAdd(":raw");
    const sub = await subscriber(":raw", subCount(0));
    const w = writer(":raw");
    await w.write("a\0b\r\n\xff\xfe\n\n");
    await sub.waitFor(3);
    // a separate write, so the long line starts a read (its cut into reads decides truncation)
    await w.write("L".repeat(600) + "\nafter\n");
    await sub.waitFor(5);
    assert.deepEqual(sub.messages.slice(1).map(consoleLine), ["a\0b\r", "\xff\xfe", "L".repeat(512) + " [truncated]", "after"]);
    sub.close();
    await w.end();
  });

  it("subscriber limit: a seventh subscriber (default 5) closes the oldest one", async () => {
    mkfifo(fifoOf(":popular"));
    await consoleAdd(":popular");
    const subs: WireClient[] = [];
    for (let i = 0; i < 6; i++) subs.push(await subscriber(":popular", subCount(0)));
    const w = writer(":popular");
    await w.write("hi\n");
    for (const s of subs) await s.waitFor(2); // all six still connected (waitFor rejects on close)
    subs.push(await subscriber(":popular", subCount(0)));
    await subs[0]!.waitClosed();
    await w.write("again\n");
    for (const s of subs.slice(1)) await s.waitFor(s === subs[6] ? 2 : 3);
    assert.equal(consoleLine(subs[6]!.messages[1]!), "again");
    for (const s of subs) s.close();
    await w.end();
  });

  it("budget drop through the socket: adding beyond n+1 labels drops the smallest inactive console and its subscribers", async () => {
    for (const l of ["q", "p"]) {
      mkfifo(fifoOf(`bud:${l}`));
      assert.equal(replyText(await consoleAdd(`bud:${l}`, 2n)), "success");
      const w = writer(`bud:${l}`);
      await w.write("x\n");
      await w.end();
      await eventually(async () => (await inactive("bud:")).split(/[ ,]/).includes(`:${l}`), `bud:${l} inactive`);
    }
    assert.equal(await inactive("bud:"), "consoles: :q,:p");
    const watcher = await subscriber("bud:p", subCount(0));
    mkfifo(fifoOf("bud:r"));
    await consoleAdd("bud:r", 2n); // 3 labels > 2: drop p, the smallest inactive one
    await watcher.waitClosed();
    assert.equal(await inactive("bud:"), "consoles: :q");
  });
});

describe("console daemon: socket file", () => {
  it("replaces a stale socket file and keeps group bits despite the umask", async () => {
    const tmp = tempTmpdir();
    const sock = join(tmp.dir, "util", "console.sock");
    writeFileSync(sock, "stale");
    const old = process.umask(0o077);
    let d: ConsoleDaemon | undefined;
    try {
      d = await startConsoleDaemon({ tmpdir: tmp.dir });
    } finally {
      process.umask(old);
    }
    try {
      const st = statSync(sock);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o770, "umask 077 -> bind under 007");
      assert.equal(process.umask(old), old, "umask restored");
      assert.match(replyText((await oneShot(sock, wire(":", listInactive)))[0]!), /^consoles: $/);
    } finally {
      await d.close();
      tmp.cleanup();
    }
    assert.equal(existsSync(sock), false);
  });

  it("creates util/ when missing", async () => {
    const tmp = tempTmpdir();
    const { rmSync } = await import("node:fs");
    rmSync(join(tmp.dir, "util"), { recursive: true });
    const d = await startConsoleDaemon({ tmpdir: tmp.dir });
    try {
      assert.ok(statSync(join(tmp.dir, "util", "console.sock")).isSocket());
    } finally {
      await d.close();
      tmp.cleanup();
    }
  });
});

describe("console daemon: readers of FIFOs that never got a writer", () => {
  it("are closed when a new Console_add for the same name finds their FIFO removed", async () => {
    const tmp = tempTmpdir();
    const d = await startConsoleDaemon({ tmpdir: tmp.dir });
    const hostd = await WireClient.connect(d.socketPath);
    let w: FifoWriter | undefined;
    try {
      const fifo = join(tmp.dir, "fifo", ":ghost");
      const addGhost = async (): Promise<string> => {
        const n = hostd.messages.length;
        hostd.send(wire(":ghost", add()));
        return replyText((await hostd.waitFor(n + 1))[n]!);
      };
      mkfifo(fifo);
      assert.equal(await addGhost(), "success");
      assert.equal(await addGhost(), "success"); // same FIFO still there: both readers stay
      assert.equal(d.stats().readers, 2);
      unlinkSync(fifo); // albatrossd: exec failed, FIFO removed
      mkfifo(fifo);
      assert.equal(await addGhost(), "success");
      await eventually(async () => d.stats().readers === 1, "orphaned readers closed");
      const sub = await WireClient.connect(d.socketPath);
      sub.send(wire(":ghost", subCount(0)));
      w = new FifoWriter(fifo);
      await w.write("alive\n");
      await sub.waitFor(2);
      assert.equal(consoleLine(sub.messages[1]!), "alive");
      await w.end();
      await eventually(async () => d.stats().readers === 0, "reader ended at EOF");
      assert.equal(replyText((await oneShot(d.socketPath, wire(":", listInactive)))[0]!), "consoles: :ghost");
      sub.close();
    } finally {
      w?.kill();
      hostd.close();
      await d.close();
      tmp.cleanup();
    }
  });
});
