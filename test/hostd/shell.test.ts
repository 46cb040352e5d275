// The I/O pieces of hostd's shell on their own: block files and streams, the state file,
// framing, FIFOs and tender lookup, bridge parsing, the runtime record.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { EventEmitter } from "node:events";
import type { ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { parseName } from "../../src/core/name.js";
import {
  blockBytes,
  createBlockFile,
  drainChunks,
  commitUpload,
  createUploadFile,
  receiveBlockStream,
  writeBlockData,
  scanBlockDir,
  streamBlockFile,
  type ChunkSource,
} from "../../src/hostd/blockstore.js";
import { linkStateStarted, readStateFile, writeStateFile } from "../../src/hostd/statefile.js";
import { nodeFileOps } from "../../src/hostd/fsio.js";
import { encodeState } from "../../src/commands/codec.js";
import type { State } from "../../src/commands/types.js";
import { encodeFrame as frame } from "../../src/commands/framing.js";
import { FrameError, FrameReader, MemoryBudget } from "../../src/transport/requests.js";
import { ensureFifo, FifoSpares } from "../../src/hostd/process.js";
import { spawnWithFifo } from "../../src/hostd/spawn.js";
import { findTender, tenderVersionCached } from "../../src/solo5/tender.js";
import { parseBridgeList } from "../../src/hostd/host.js";
import { Intents, procStartTime, readIntents, reapIntents } from "../../src/hostd/runtime.js";
import { Helper, inProcess, launcher, startLauncher, type FromHelper, type ToHelper } from "../../src/hostd/launcher.js";
import { execTool } from "../../src/hostd/tools.js";
import { connect } from "../support/hostd.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dromedary-hostd-shell-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MB = 1 << 20;
const source = (chunks: (Uint8Array | Error)[]): ChunkSource => {
  let i = 0;
  return {
    next: async () => {
      if (i >= chunks.length) return null;
      const c = chunks[i++]!;
      if (c instanceof Error) throw c;
      return c;
    },
  };
};

describe("block files", () => {
  it("sizes: MB to bytes, overflow for <= 0 and beyond 2^53", () => {
    assert.deepEqual(blockBytes(3), { ok: true, value: 3 * MB });
    for (const bad of [0, -1, 2 ** 40, 1.5]) assert.deepEqual(blockBytes(bad), { ok: false, error: "overflow while computing bytes" });
  });

  it("add creates a sized 0600 file in a 0700 directory; a second add: file already exists", async () => {
    const db = join(dir, "add");
    await mkdir(db);
    assert.deepEqual(await createBlockFile(db, parseName("foo:disk"), 2), { ok: true, value: undefined });
    const st = await stat(join(db, "block", "foo:disk"));
    assert.equal(st.size, 2 * MB);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal((await stat(join(db, "block"))).mode & 0o777, 0o700);
    assert.deepEqual(await createBlockFile(db, parseName("foo:disk"), 2), { ok: false, error: "file already exists" });
    assert.deepEqual(await createBlockFile(db, parseName("foo:zero"), 0), { ok: false, error: "overflow while computing bytes" });
    assert.deepEqual(await readdir(join(db, "block")), ["foo:disk"]);
  });

  it("start-up scan: regular, non-dot files of n MB with a parsable name", async () => {
    const db = join(dir, "scan");
    await mkdir(join(db, "block"), { recursive: true });
    await writeFile(join(db, "block", ":ok"), new Uint8Array(MB));
    await writeFile(join(db, "block", "foo:two"), new Uint8Array(2 * MB));
    await writeFile(join(db, "block", ".hidden"), new Uint8Array(MB));
    await writeFile(join(db, "block", ":odd"), new Uint8Array(MB + 1));
    await writeFile(join(db, "block", ":empty"), new Uint8Array(0));
    await writeFile(join(db, "block", "bad name"), new Uint8Array(MB));
    await mkdir(join(db, "block", ":dir"));
    const r = await scanBlockDir(db);
    assert.deepEqual(
      r.blocks.map((b) => [b.name.path.join(":") + ":" + b.name.label, b.sizeMB]),
      [
        [":ok", 1],
        ["foo:two", 2],
      ],
    );
    assert.equal(r.warnings.length, 4);
    assert.equal((await scanBlockDir(join(dir, "nothing-here"))).warnings.length, 1);
  });

  it("set stream: into an upload file that replaces the device's file once complete; the device keeps its full size", async () => {
    const db = join(dir, "set");
    await mkdir(db);
    const name = parseName(":d");
    await createBlockFile(db, name, 1);
    await writeFile(join(db, "block", ":d"), Buffer.alloc(MB, 0xee));
    const tmp = await createUploadFile(db, name);
    assert.ok(tmp.ok);
    if (!tmp.ok) return;
    assert.match(tmp.value, /\/block\/\.:d\.upload-\d+-\d+$/);
    assert.equal((await stat(tmp.value)).mode & 0o777, 0o600);
    const r = await receiveBlockStream(tmp.value, MB, false, source([Uint8Array.of(1, 2), Uint8Array.of(3)]));
    assert.equal(r, null);
    // the device is untouched until the commit
    assert.deepEqual((await readFile(join(db, "block", ":d"))).subarray(0, 2), Buffer.from([0xee, 0xee]));
    assert.deepEqual(await commitUpload(tmp.value, db, name, MB), { ok: true, value: undefined });
    const f = await readFile(join(db, "block", ":d"));
    assert.equal(f.length, MB);
    assert.deepEqual([...f.subarray(0, 4)], [1, 2, 3, 0]);
    assert.deepEqual(await readdir(join(db, "block")), [":d"]);
    // a stale upload of a dead hostd is removed by the start-up scan
    await writeFile(join(db, "block", ".:d.upload-1-1"), "x");
    const scan = await scanBlockDir(db);
    assert.deepEqual(await readdir(join(db, "block")), [":d"]);
    assert.ok(scan.warnings.some((w) => w.includes(".:d.upload-1-1")));
  });

  it("inline data (old forms): inflated as a stream, zeros left as holes, at most the device's size", async () => {
    const db = join(dir, "inline");
    await mkdir(db);
    await createBlockFile(db, parseName(":i"), 4);
    const f = join(db, "block", ":i");
    const data = Buffer.concat([Buffer.from("head"), Buffer.alloc(3 * MB), Buffer.from("tail")]);
    assert.deepEqual(await writeBlockData(f, { compressed: true, bytes: deflateSync(data) }, 4 * MB), { ok: true, value: undefined });
    const back = await readFile(f);
    assert.equal(back.length, 4 * MB);
    assert.deepEqual(back.subarray(0, data.length), data);
    // the 3 MiB of zeros were not written: the file holds few blocks
    assert.ok((await stat(f)).blocks * 512 < MB, `${(await stat(f)).blocks} blocks`);
    const bomb = deflateSync(Buffer.alloc(64 * MB));
    assert.deepEqual(await writeBlockData(f, { compressed: true, bytes: bomb }, 4 * MB), { ok: false, error: "data exceeds block size" });
    assert.deepEqual(await writeBlockData(f, { compressed: false, bytes: new Uint8Array(4 * MB + 1) }, 4 * MB), {
      ok: false,
      error: "data exceeds block size",
    });
    const bad = await writeBlockData(f, { compressed: true, bytes: Uint8Array.of(0x78, 0x9c, 0xff) }, 4 * MB);
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.match(bad.error, /^failed to uncompress: invalid zlib data: /);
  });

  it("set stream: compressed in odd pieces", async () => {
    const p = join(dir, "z.img");
    await writeFile(p, "");
    const data = Buffer.alloc(200_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const z = deflateSync(data);
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < z.length; i += 777) pieces.push(z.subarray(i, i + 777));
    assert.equal(await receiveBlockStream(p, MB, true, source(pieces)), null);
    assert.deepEqual((await readFile(p)).subarray(0, data.length), data);
  });

  it("set stream errors: exceeds size (also as a zlib bomb), bad zlib, read error, open error; the rest is consumed", async () => {
    const p = join(dir, "e.img");
    await writeFile(p, "");
    let consumed = 0;
    const counting = (chunks: Uint8Array[]): ChunkSource => {
      const s = source(chunks);
      return {
        next: async () => {
          const c = await s.next();
          if (c !== null) consumed++;
          return c;
        },
      };
    };
    assert.equal(
      await receiveBlockStream(p, MB, false, counting([new Uint8Array(MB), Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)])),
      "stream exceeds size",
    );
    assert.equal(consumed, 4);
    const bomb = deflateSync(Buffer.alloc(64 * MB));
    assert.equal(await receiveBlockStream(p, MB, true, source([bomb])), "stream exceeds size");
    assert.equal(
      await receiveBlockStream(p, MB, true, source([Uint8Array.of(0x78, 0x9c, 0xff, 0xff, 0xff), Uint8Array.of(9)])),
      "error writing to file descriptor",
    );
    assert.equal(await receiveBlockStream(p, MB, false, source([Uint8Array.of(1), new Error("boom")])), "error while reading stream");
    assert.equal(await receiveBlockStream(join(dir, "missing", "x"), MB, false, source([Uint8Array.of(1)])), "error opening block device");
    assert.equal(await drainChunks(source([Uint8Array.of(1), new Error("x")])), "error while reading stream");
  });

  it("dump stream: 4096-byte pieces, or one zlib stream; a gone client stops it", async () => {
    const p = join(dir, "dump.img");
    const data = Buffer.alloc(10_000);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    await writeFile(p, data);
    const plain: Uint8Array[] = [];
    assert.equal(await streamBlockFile(p, 0, async (x) => (plain.push(Uint8Array.from(x)), true)), "done");
    assert.deepEqual(
      plain.map((x) => x.length),
      [4096, 4096, 1808],
    );
    assert.deepEqual(Buffer.concat(plain), data);
    const z: Uint8Array[] = [];
    assert.equal(await streamBlockFile(p, 9, async (x) => (z.push(Uint8Array.from(x)), true)), "done");
    const { inflateSync } = await import("node:zlib");
    assert.deepEqual(inflateSync(Buffer.concat(z)), data);
    let calls = 0;
    assert.equal(await streamBlockFile(p, 0, async () => (++calls, false)), "client-gone");
    assert.equal(calls, 1);
    assert.equal(await streamBlockFile(join(dir, "nope"), 0, async () => true), "read-error");
  });
});

describe("state file", () => {
  it("atomic write keeps the previous version as state.bak, mode 0644; state.started is a link", async () => {
    const db = join(dir, "state");
    await mkdir(db);
    const one: State = { unikernels: [], policies: [{ name: parseName("a:"), policy: { unikernels: 1n, cpuids: [0], memory: 1, block: 0, bridges: [] } }] };
    const two: State = { unikernels: [], policies: [] };
    assert.equal(await readStateFile(nodeFileOps, db), null);
    assert.equal(await linkStateStarted(nodeFileOps, db), false);
    await writeStateFile(nodeFileOps, db, one, { backup: true });
    await writeStateFile(nodeFileOps, db, two, { backup: true });
    assert.deepEqual(await readStateFile(nodeFileOps, db), encodeState(two));
    assert.deepEqual(new Uint8Array(await readFile(join(db, "state.bak"))), encodeState(one));
    assert.equal((await stat(join(db, "state"))).mode & 0o777, 0o644);
    assert.equal(await linkStateStarted(nodeFileOps, db), true);
    // again while state.started already is this state (rename onto the same file does nothing)
    assert.equal(await linkStateStarted(nodeFileOps, db), true);
    assert.deepEqual(new Uint8Array(await readFile(join(db, "state.started"))), encodeState(two));
    assert.deepEqual((await readdir(db)).sort(), ["state", "state.bak", "state.started"]);
  });
});

describe("frames", () => {
  let server: Server;
  let sockPath: string;
  let serverSide: Promise<Socket>;
  const pair = async (): Promise<{ client: Socket; server: Socket }> => {
    let res!: (s: Socket) => void;
    serverSide = new Promise((r) => (res = r));
    server.removeAllListeners("connection");
    server.on("connection", (s) => res(s));
    const client = await connect(sockPath);
    return { client, server: await serverSide };
  };
  before(async () => {
    sockPath = join(dir, "frames.sock");
    server = createServer();
    await new Promise<void>((r) => server.listen(sockPath, () => r()));
  });
  after(() => server.close());

  it("reads frames split anywhere; a length <= 0 ends the stream", async () => {
    const { client, server: s } = await pair();
    const r = new FrameReader(s, 1000);
    const bytes = Buffer.concat([frame(Uint8Array.of(1, 2, 3)), frame(new Uint8Array(0)), frame(Uint8Array.of(9))]);
    for (let i = 0; i < bytes.length; i++) client.write(bytes.subarray(i, i + 1));
    assert.deepEqual(await r.next(), Uint8Array.of(1, 2, 3));
    assert.equal(await r.next(), null);
    assert.equal(await r.next(), null);
    client.destroy();
  });

  it("oversize frames and EOF inside a frame are errors; EOF at a boundary is the end", async () => {
    const a = await pair();
    const r1 = new FrameReader(a.server, 10);
    a.client.write(frame(new Uint8Array(11)));
    await assert.rejects(r1.next(), FrameError);
    a.client.destroy();
    const b = await pair();
    const r2 = new FrameReader(b.server, 100);
    b.client.end(Buffer.from([0, 0, 0, 5, 1]));
    await assert.rejects(r2.next(), FrameError);
    const c = await pair();
    const r3 = new FrameReader(c.server, 100);
    c.client.end(frame(Uint8Array.of(7)));
    assert.deepEqual(await r3.next(), Uint8Array.of(7));
    assert.equal(await r3.next(), null);
  });

  it("a memory budget: large frames are reserved from their header until the next read; one that does not fit is refused", async () => {
    const budget = new MemoryBudget(300_000);
    const a = await pair();
    const b = await pair();
    const ra = new FrameReader(a.server, 1 << 20, budget);
    const rb = new FrameReader(b.server, 1 << 20, budget);
    // small frames are free
    a.client.write(frame(new Uint8Array(1000)));
    assert.equal((await ra.next())?.length, 1000);
    assert.equal(budget.used, 0);
    // a's large frame is reserved as soon as its header is in, before its payload
    a.client.write(frame(new Uint8Array(200_000)).subarray(0, 10));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(budget.used, 200_000);
    // b's does not fit beside it: refused
    b.client.write(frame(new Uint8Array(150_000)));
    await assert.rejects(rb.next(), (e: unknown) => e instanceof FrameError && e.refused && /does not fit: 200000 of 300000 bytes/.test(e.message));
    rb.dispose();
    assert.equal(budget.used, 200_000);
    a.client.write(frame(new Uint8Array(200_000)).subarray(10));
    assert.equal((await ra.next())?.length, 200_000);
    assert.equal(budget.used, 200_000); // held while the consumer works on it
    a.client.write(frame(Uint8Array.of(1)));
    assert.equal((await ra.next())?.length, 1);
    assert.equal(budget.used, 0); // given back by the next read
    a.client.write(frame(new Uint8Array(100_000)));
    await ra.next();
    assert.equal(budget.used, 100_000);
    ra.dispose();
    assert.equal(budget.used, 0);
    a.client.destroy();
    b.client.destroy();
  });

  it("a negative length also ends the stream", async () => {
    const { client, server: s } = await pair();
    const r = new FrameReader(s, 100);
    const b = Buffer.alloc(4);
    b.writeInt32BE(-5, 0);
    client.write(b);
    assert.equal(await r.next(), null);
    client.destroy();
  });
});

describe("FIFOs, tenders, spawn", () => {
  it("ensureFifo: creates 0640, reuses a FIFO, refuses other files", async () => {
    const fdir = join(dir, "fifo");
    await mkdir(fdir);
    const p = join(fdir, ":a");
    assert.deepEqual(await ensureFifo(p), { ok: true, value: { created: true } });
    const st = await lstat(p);
    assert.ok(st.isFIFO());
    assert.equal(st.mode & 0o777, 0o640);
    assert.deepEqual(await ensureFifo(p), { ok: true, value: { created: false } });
    await writeFile(join(fdir, ":b"), "x");
    assert.deepEqual(await ensureFifo(join(fdir, ":b")), { ok: false, error: `file ${join(fdir, ":b")} exists and is not a fifo` });
    const notDir = await ensureFifo(join(fdir, ":b", ":c"));
    assert.deepEqual(notDir, { ok: false, error: `file ${join(fdir, ":b", ":c")} exists: Not a directory` });
    const bad = await ensureFifo(join(dir, "no", "such", ":c"));
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.match(bad.error, /^file .* error in mkfifo: /);
  });

  it("spare FIFOs are renamed into place", async () => {
    const fdir = join(dir, "spares");
    await mkdir(fdir);
    const spares = new FifoSpares(fdir, 1);
    spares.refill();
    const { waitFor } = await import("../support/hostd.js");
    await waitFor("a spare", async () => (await readdir(fdir)).length === 1);
    assert.deepEqual(await ensureFifo(join(fdir, ":x"), spares), { ok: true, value: { created: true } });
    assert.ok((await lstat(join(fdir, ":x"))).isFIFO());
    assert.equal((await lstat(join(fdir, ":x"))).mode & 0o777, 0o640);
    // take() tops the pool up again a little later: wait for that (nothing may still be
    // writing into the directory when the test's files are removed), then clear() removes
    // the spare and only the spare
    await waitFor("the pool topped up", async () => (await readdir(fdir)).some((f) => f.startsWith(".hostd-spare-")));
    await spares.clear();
    assert.deepEqual(await readdir(fdir), [":x"]);
    // closed: a refill under way or asked for later leaves nothing behind
    const other = new FifoSpares(fdir, 1);
    other.refill();
    await other.close();
    other.refill();
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await readdir(fdir), [":x"]);
  });

  it("findTender: the first executable candidate, absolute or in $PATH", async () => {
    const tdir = join(dir, "tenders");
    await mkdir(tdir);
    await writeFile(join(tdir, "solo5-hvt"), "#!/bin/sh\necho 'ABI version 2' >&2\n");
    await chmod(join(tdir, "solo5-hvt"), 0o755);
    await writeFile(join(tdir, "solo5-hvt.2"), "not executable");
    assert.equal(await findTender([join(tdir, "solo5-hvt.2"), "dromedary-no-such-tender", join(tdir, "solo5-hvt")]), join(tdir, "solo5-hvt"));
    assert.equal(await findTender(["sh"]), "sh");
    assert.equal(await findTender([join(tdir, "nope")]), null);
    const v = await tenderVersionCached(join(tdir, "solo5-hvt"));
    assert.deepEqual(v, { code: 0, lines: ["ABI version 2"] });
    // the cache notices a changed file
    await writeFile(join(tdir, "solo5-hvt"), "#!/bin/sh\necho 'ABI version 3'\n");
    assert.deepEqual(await tenderVersionCached(join(tdir, "solo5-hvt")), { code: 0, lines: ["ABI version 3"] });
  });

  it("spawn: a FIFO without reader is an error, not a hang", async () => {
    const p = join(dir, "fifo", ":noreader");
    await ensureFifo(p);
    const r = await spawnWithFifo(["true"], p);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, /^cmd true exits: .*No such device or address/);
  });

  it("spawn: the child writes into the FIFO; its exit status is reported", async () => {
    const p = join(dir, "fifo", ":reader");
    await ensureFifo(p);
    const { open } = await import("node:fs/promises");
    const { constants } = await import("node:fs");
    const rd = await open(p, constants.O_RDONLY | constants.O_NONBLOCK);
    const r = await spawnWithFifo(["sh", "-c", "echo hello; exit 3"], p);
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.deepEqual(await r.value.exited, { kind: "exited", code: 3 });
    const buf = Buffer.alloc(100);
    const { bytesRead } = await rd.read(buf, 0, 100, null);
    assert.equal(buf.subarray(0, bytesRead).toString(), "hello\n");
    await rd.close();
    const bad = await spawnWithFifo(["dromedary-no-such-program"], p).catch((e: Error) => ({ ok: false as const, error: e.message }));
    assert.equal(bad.ok, false);
  });
});

describe("the process launcher (a helper process creates hostd's children)", () => {
  it("runs tools and spawns tenders in the helper: the same results as in-process; its death falls back without losing exits", async () => {
    const logged: string[] = [];
    const l = await startLauncher((m) => logged.push(m));
    try {
      assert.equal(launcher(), l);
      assert.notEqual(l, inProcess);
      // runs: output, exit codes, a program that does not exist
      assert.deepEqual(await execTool("sh", ["-c", "echo out; echo err >&2; exit 0"]), { code: 0, stdout: "out\n", stderr: "err\n" });
      assert.deepEqual(await execTool("sh", ["-c", "echo no >&2; exit 4"]), { code: 4, stdout: "", stderr: "no\n" });
      assert.deepEqual(await execTool("dromedary-no-such-tool", []), { code: null, stdout: "", stderr: "No such file or directory" });
      // a tender: the helper is its parent, hostd gets its pid and exit status
      const p = join(dir, "fifo", ":launched");
      await mkdir(join(dir, "fifo"), { recursive: true });
      await ensureFifo(p);
      const { open } = await import("node:fs/promises");
      const { constants } = await import("node:fs");
      const rd = await open(p, constants.O_RDONLY | constants.O_NONBLOCK);
      const r = await l.spawnWithFifo(["sh", "-c", "echo hi; exit 5"], p);
      assert.equal(r.ok, true);
      if (!r.ok) return;
      assert.deepEqual(await r.value.exited, { kind: "exited", code: 5 });
      const st = await readFile(`/proc/${process.pid}/task/${process.pid}/children`, "utf8").catch(() => "");
      assert.ok(!st.split(" ").includes(String(r.value.pid)), "not hostd's own child");
      const buf = Buffer.alloc(100);
      const { bytesRead } = await rd.read(buf, 0, 100, null);
      assert.equal(buf.subarray(0, bytesRead).toString(), "hi\n");
      const bad = await l.spawnWithFifo(["true"], join(dir, "fifo", ":nobody"));
      assert.equal(bad.ok, false);
      // the helper dies while a tender runs: its end is still reported (status lost: 23)
      const long = await l.spawnWithFifo(["sleep", "1"], p);
      assert.equal(long.ok, true);
      if (!long.ok) return;
      const helperPid = Number((await readFile(`/proc/${long.value.pid}/stat`, "utf8")).split(") ")[1]!.split(" ")[1]);
      process.kill(helperPid, "SIGKILL");
      assert.deepEqual(await long.value.exited, { kind: "exited", code: 23 });
      assert.ok(
        logged.some((m) => /process launcher exited .*creating processes in hostd itself/.test(m)),
        logged.join(),
      );
      assert.equal(launcher(), inProcess);
      assert.deepEqual(await execTool("sh", ["-c", "exit 2"]), { code: 2, stdout: "", stderr: "" });
      await rd.close();
    } finally {
      l.close();
    }
  });
});

describe("the process launcher's channel", () => {
  it("a tender that ends at once: its exit in the same read of the channel as its spawn is not lost", async () => {
    // A stand-in for the helper's end of the channel that answers a spawn with "spawned"
    // and "exit" emitted back to back, as Node does for two messages in one read.
    const child = Object.assign(new EventEmitter(), {
      connected: true,
      send(m: ToHelper): boolean {
        if (m.t === "spawn")
          setImmediate(() => {
            child.emit("message", { t: "spawned", id: m.id, pid: 4242 } satisfies FromHelper);
            child.emit("message", { t: "exit", pid: 4242, status: { kind: "exited", code: 7 } } satisfies FromHelper);
          });
        return true;
      },
      disconnect(): void {},
    });
    const h = new Helper(child as unknown as ChildProcess, () => undefined);
    const r = await h.spawnWithFifo(["true"], "/nonexistent");
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.equal(r.value.pid, 4242);
    let timer: NodeJS.Timeout | undefined;
    const lost = new Promise<"lost">((res) => (timer = setTimeout(() => res("lost"), 5000)));
    assert.deepEqual(await Promise.race([r.value.exited, lost]), { kind: "exited", code: 7 });
    clearTimeout(timer);
    h.close();
  });
});

describe("host and runtime record", () => {
  it("bridges from `ip -o link show type bridge`", () => {
    const out = "3: br0: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue\\    link/ether 1a:2b\n7: service: <NO-CARRIER> mtu 1500\n\n";
    assert.deepEqual(parseBridgeList(out), ["br0", "service"]);
  });

  it("intent records: written before each effect, read back; hostile and foreign files are dropped", async () => {
    const t = join(dir, "rt");
    await mkdir(t);
    assert.deepEqual(await readIntents(t, () => undefined), []);
    const intents = new Intents(t);
    await intents.init();
    const r = await intents.begin(":a", "/x/:a.img", "/x/fifo/:a");
    await r.addTap("vmmtap3");
    await r.setPid(process.pid, procStartTime(process.pid));
    const e = { name: ":a", image: "/x/:a.img", fifo: "/x/fifo/:a", taps: ["vmmtap3"], pid: process.pid, starttime: procStartTime(process.pid) };
    assert.deepEqual(
      (await readIntents(t, () => undefined)).map((f) => f.intent),
      [e],
    );
    await writeFile(join(t, "hostd.intent", "9-1.json"), JSON.stringify({ ...e, taps: ["eth0; rm -rf /"] }));
    await writeFile(join(t, "hostd.intent", "9-2.json"), JSON.stringify({ ...e, pid: 1 }));
    await writeFile(join(t, "hostd.intent", "9-3.json"), "{not json");
    await writeFile(join(t, "hostd.intent", ".9-4.json.tmp"), "{}");
    const logged: string[] = [];
    assert.deepEqual(
      (await readIntents(t, (m) => logged.push(m))).map((f) => f.intent),
      [e],
    );
    assert.equal(logged.length, 3);
    assert.deepEqual(await readdir(join(t, "hostd.intent")), [r.path.slice(r.path.lastIndexOf("/") + 1)]);
    await r.remove();
    assert.deepEqual(await readIntents(t, () => undefined), []);
    // the record of hostd versions before the intent records is still read
    await writeFile(join(t, "hostd.running"), JSON.stringify([{ name: ":b", pid: 4242, starttime: "1", taps: [], image: "/x/:b.img", fifo: "/x/fifo/:b" }]));
    assert.deepEqual(
      (await readIntents(t, () => undefined)).map((f) => f.intent.name),
      [":b"],
    );
    assert.match(procStartTime(process.pid) ?? "", /^\d+$/);
  });

  it("reaping: the tender is found by `-- <image>` (no pid recorded) or by pid + start time; taps, image, FIFO removed", async () => {
    const t = join(dir, "reap");
    await mkdir(join(t, "fifo"), { recursive: true });
    const image = join(t, ":a.img");
    const fifo = join(t, "fifo", ":a");
    await writeFile(image, "x");
    await writeFile(fifo, "x");
    const { spawn } = await import("node:child_process");
    const keep = "setInterval(() => {}, 1000)";
    const byArgv = spawn(process.execPath, ["-e", keep, "--", image], { stdio: "ignore" });
    const byPid = spawn(process.execPath, ["-e", keep], { stdio: "ignore" });
    const bystander = spawn(process.execPath, ["-e", keep], { stdio: "ignore" });
    const ended = (c: typeof byArgv) => new Promise<string | null>((res) => c.once("exit", (_code, sig) => res(sig)));
    const e1 = ended(byArgv);
    const e2 = ended(byPid);
    await new Promise((r) => setTimeout(r, 300));
    const intents = new Intents(t);
    await intents.init();
    const a = await intents.begin(":a", image, fifo);
    await a.addTap("vmmtap7");
    const b = await intents.begin(":b", join(t, ":b.img"), join(t, "fifo", ":b"));
    await b.setPid(byPid.pid!, procStartTime(byPid.pid!));
    // a recycled pid (start time differs) is never killed
    const c = await intents.begin(":c", join(t, ":c.img"), join(t, "fifo", ":c"));
    await c.setPid(bystander.pid!, "1");
    const destroyed: string[] = [];
    const found = await readIntents(t, () => undefined);
    const survivors = await reapIntents(
      found,
      async (tap) => void destroyed.push(tap),
      () => undefined,
    );
    assert.deepEqual(survivors, []);
    assert.equal(await e1, "SIGKILL");
    assert.equal(await e2, "SIGKILL");
    assert.equal(bystander.exitCode, null);
    assert.equal(bystander.signalCode, null);
    bystander.kill("SIGKILL");
    assert.deepEqual(destroyed, ["vmmtap7"]);
    assert.deepEqual(await readdir(join(t, "fifo")), []);
    assert.deepEqual((await readdir(t)).sort(), ["fifo", "hostd.intent"]);
    assert.deepEqual(await readdir(join(t, "hostd.intent")), []);
  });
});
