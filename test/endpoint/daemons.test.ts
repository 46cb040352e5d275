// The endpoint's daemon connections (src/endpoint/daemons.ts): a spare opened ahead is what
// the next request gets; a spare the daemon closed, or that hears anything, is never handed
// out; nothing is written on a spare before its request passed every check.
import "reflect-metadata";
import assert from "node:assert/strict";
import net from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DaemonConnections } from "../../src/endpoint/daemons.js";
import { FakeDaemons, cmds, exchange, failureText, leaf, make, makePki, policy, startEndpoint, tempDir, type Pki } from "../support/endpoint.js";

/** A Unix socket server recording its accepted connections and what each received. */
async function listener(): Promise<{ file: string; conns: Array<{ sock: net.Socket; got: Buffer[]; ended: Promise<void> }>; close: () => Promise<void> }> {
  const file = join(tempDir(), "d.sock");
  const conns: Array<{ sock: net.Socket; got: Buffer[]; ended: Promise<void> }> = [];
  const srv = net.createServer((sock) => {
    const got: Buffer[] = [];
    sock.on("data", (b: Buffer) => got.push(b));
    sock.on("error", () => undefined);
    conns.push({ sock, got, ended: new Promise((r) => sock.once("close", () => r())) });
  });
  await new Promise<void>((r) => srv.listen(file, () => r()));
  return {
    file,
    conns,
    close: () => {
      for (const c of conns) c.sock.destroy();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

type Listener = Awaited<ReturnType<typeof listener>>;

/** A listener and a DaemonConnections for `body`, both closed afterwards. */
async function withListener(body: (l: Listener, dc: DaemonConnections) => Promise<void>): Promise<void> {
  const l = await listener();
  const dc = new DaemonConnections();
  try {
    await body(l, dc);
  } finally {
    dc.close();
    await l.close();
  }
}

/** prepare() and wait until the spare has connected and the server has accepted it. */
async function spareReady(dc: DaemonConnections, l: Listener): Promise<void> {
  const before = l.conns.length;
  dc.prepare(l.file);
  await until(() => l.conns.length > before, "the spare to be accepted");
  await new Promise((r) => setTimeout(r, 10)); // its connect callback
}

describe("DaemonConnections", () => {
  it("a spare unused for its maximum age is closed (the daemons close idle connections)", async () => {
    const l = await listener();
    const dc = new DaemonConnections(true, 200);
    try {
      await spareReady(dc, l);
      assert.equal(dc.spareCount, 1);
      await within(l.conns[0]!.ended, "the aged spare to be closed", 2000);
      assert.equal(dc.spareCount, 0);
      // a spare taken in time is not closed by its age later
      await spareReady(dc, l);
      const s = await dc.connect(l.file);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(s.destroyed, false);
      s.destroy();
    } finally {
      dc.close();
      await l.close();
    }
  });

  it("hands out the spare opened ahead, and connects afresh when there is none", () =>
    withListener(async (l, dc) => {
      const first = await dc.connect(l.file);
      assert.equal(dc.freshConnects, 1);
      await until(() => l.conns.length === 1, "the first connection");
      await spareReady(dc, l);
      assert.equal(dc.spareCount, 1);
      // the request's bytes go to the connection the server accepted ahead of the request
      const second = await dc.connect(l.file);
      assert.equal(dc.spareHits, 1);
      assert.equal(dc.spareCount, 0);
      assert.equal(l.conns.length, 2, "no further connection for the second request");
      second.write("command");
      await until(() => l.conns[1]!.got.length > 0, "the command on the spare");
      assert.equal(Buffer.concat(l.conns[1]!.got).toString(), "command");
      assert.deepEqual(l.conns[0]!.got, []);
      // and it is a working socket for the reply too
      const reply = new Promise<string>((r) => second.once("data", (b: Buffer) => r(b.toString())));
      l.conns[1]!.sock.write("reply");
      assert.equal(await reply, "reply");
      first.destroy();
      second.destroy();
    }));

  it("drops a spare the daemon closes (restart) and connects afresh", () =>
    withListener(async (l, dc) => {
      await spareReady(dc, l);
      l.conns[0]!.sock.destroy(); // the daemon goes away
      await until(() => dc.spareCount === 0, "the closed spare to be dropped");
      const s = await dc.connect(l.file);
      assert.equal(dc.spareHits, 0);
      assert.equal(dc.freshConnects, 1);
      await until(() => l.conns.length === 2, "the fresh connection");
      s.destroy();
    }));

  it("drops a spare on which the daemon speaks first", () =>
    withListener(async (l, dc) => {
      await spareReady(dc, l);
      l.conns[0]!.sock.write("unsolicited");
      await within(l.conns[0]!.ended, "the spare to be closed"); // dropped means closed by us
      assert.equal(dc.spareCount, 0);
      const s = await dc.connect(l.file);
      assert.equal(dc.spareHits, 0);
      s.destroy();
    }));

  it("a spare to a socket nobody listens on is dropped; the request gets the connect error", async () => {
    const dc = new DaemonConnections();
    const file = join(tempDir(), "none.sock");
    dc.prepare(file);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(dc.spareCount, 0);
    await assert.rejects(dc.connect(file), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
    dc.close();
  });

  it("close() closes the spare and opens no more; spares: false never opens one", () =>
    withListener(async (l, dc) => {
      const off = new DaemonConnections(false);
      await spareReady(dc, l);
      dc.close();
      await within(l.conns[0]!.ended, "the spare to be closed");
      dc.prepare(l.file);
      off.prepare(l.file);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(l.conns.length, 1);
      assert.equal(dc.spareCount + off.spareCount, 0);
      off.close();
    }));
});

describe("endpoint: daemon connections opened ahead", () => {
  let pki: Pki;

  it("serves the next request on the spare; a refused chain writes nothing on it; a daemon restart is survived", async () => {
    pki = await makePki();
    const tmp = tempDir();
    let fake = await FakeDaemons.start(tmp);
    const ep = await startEndpoint(pki, tmp);
    try {
      const r1 = await exchange({ port: ep.port, chain: [await leaf(pki.root, "foo", cmds.info)], ca: pki.root });
      assert.equal(r1.replies[0]!.payload.kind, "reply");
      await until(() => ep.ep.daemons.spareCount === 1, "the spare");
      const r2 = await exchange({ port: ep.port, chain: [await leaf(pki.root, "bar", cmds.info)], ca: pki.root });
      assert.equal(r2.replies[0]!.payload.kind, "reply");
      assert.equal(ep.ep.daemons.spareHits, 1);
      assert.deepEqual(
        fake.of("vmmd").map((w) => w.header.name.label),
        ["foo", "bar"],
      );

      // a chain whose policies widen is refused before any daemon is asked: the spare
      // stays as it was, unwritten
      await until(() => ep.ep.daemons.spareCount === 1, "the next spare");
      fake.received.length = 0;
      const wide = await make({
        profile: "intermediate",
        cn: "sub",
        issuer: pki.arc,
        policy: policy({ unikernels: 5n, cpuids: [0], memory: 64, bridges: ["service"] }),
        seconds: 300,
      });
      const refused = await exchange({ port: ep.port, chain: [await leaf(wide, "x", cmds.info), wide, pki.arc], ca: pki.root });
      assert.match(failureText(refused.replies[0]!) ?? "", /widen/);
      assert.equal(fake.received.length, 0);
      assert.equal(ep.ep.daemons.spareCount, 1);
      assert.equal(ep.ep.daemons.spareHits, 1);

      // the daemons restart: the spare dies with them, the next request connects afresh
      await fake.close();
      fake = await FakeDaemons.start(tmp);
      await until(() => ep.ep.daemons.spareCount === 0, "the dead spare to be dropped");
      const r3 = await exchange({ port: ep.port, chain: [await leaf(pki.root, "baz", cmds.info)], ca: pki.root });
      assert.equal(r3.replies[0]!.payload.kind, "reply", failureText(r3.replies[0]!) ?? "");
      assert.deepEqual(
        fake.of("vmmd").map((w) => w.header.name.label),
        ["baz"],
      );
    } finally {
      await ep.close();
      await fake.close();
    }
  });
});
