// The stats daemon's shell (src/stats/daemon.ts) against real processes (the stand-in
// tender, started directly) and a hostd played by the test over a real Unix socket: the
// Stats_initial handshake and reconnection, registrations, subscriptions, the /proc
// readings, hostile input and the bounds. The whole stack with hostd and taps is in
// e2e.test.ts.
import assert from "node:assert/strict";
import { mkdir, readFile, truncate, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import parsePrometheus from "parse-prometheus-text-format";
import type { StatsData, Wire } from "../../src/commands/types.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { standinTender } from "../support/standin.js";
import { spawn } from "node:child_process";
import { fullCollector } from "../../src/cli/stats-daemon.js";
import { ask, sleep, startDaemon, startTender, waitFor, wire, withDir, WireConn } from "./support.js";

/** hostd played by the test: accepts the stats daemon's connection on vmmd.sock. */
class FakeHostd {
  readonly server: Server;
  readonly conns: WireConn[] = [];
  private constructor(server: Server) {
    this.server = server;
    server.on("connection", (s: Socket) => this.conns.push(new WireConn(s)));
  }
  static async start(path: string): Promise<FakeHostd> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(path, () => r()));
    return new FakeHostd(server);
  }
  /** The n-th connection (1-based), once its Stats_initial arrived; answered with Success empty. */
  async accept(n: number): Promise<WireConn> {
    const c = await waitFor(`stats daemon connection ${n}`, () => this.conns[n - 1]);
    const init = await c.nth(1);
    assert.equal(init.payload.kind === "command" && init.payload.command.kind, "stats-initial");
    assert.deepEqual(init.header, { version: 5, sequence: 0n, name: { path: [], label: null } });
    c.send({ header: init.header, payload: { kind: "reply", reply: { kind: "empty" } } });
    return c;
  }
  close(): Promise<void> {
    for (const c of this.conns) c.close();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const replyText = (w: Wire): string =>
  w.payload.kind === "reply" && w.payload.reply.kind === "string"
    ? `success: ${Buffer.from(w.payload.reply.text).toString()}`
    : w.payload.kind === "failure"
      ? `failure: ${Buffer.from(w.payload.message).toString()}`
      : w.payload.kind;

const sec = (t: { seconds: bigint; microseconds: number }): number => Number(t.seconds) + t.microseconds / 1e6;

describe("the stats daemon and hostd", () => {
  it("handshake, registrations over hostd's connection, data to a subscriber; hostd lost: unregistered, reconnected", async () => {
    await withDir(async (dir) => {
      const t1 = await startTender(dir, ["--standin-run"], 48);
      const { d, lines, tmp } = await startDaemon(dir, { reconnectMs: 100 });
      const hostd = await FakeHostd.start(join(tmp, "util", "vmmd.sock"));
      try {
        const h = await hostd.accept(1);
        await waitFor("connected", () => d.status().hostdConnected);
        h.send(
          wire(
            "foo:bar",
            {
              kind: "stats-add",
              vmmdev: "",
              pid: t1.pid,
              network: [
                { bridge: "service", tap: "lo" },
                { bridge: "gone", tap: "nosuchtap0" },
              ],
            },
            1n,
          ),
        );
        const r = await h.nth(2);
        assert.deepEqual(r.header.sequence, 1n);
        assert.equal(replyText(r), "success: added");
        assert.equal(d.status().unikernels, 1);

        const sub = await WireConn.open(d.socketPath);
        sub.send(wire(":", { kind: "stats-subscribe" }));
        assert.equal(replyText(await sub.nth(1)), "success: subscribed");
        d.sampleNow();
        const data = await sub.nth(2);
        assert.deepEqual(data.header, { version: 5, sequence: 0n, name: { path: ["foo"], label: "bar" } });
        const s = (data.payload as { data: { stats: StatsData } }).data.stats;
        // albatross' Linux values: rss in pages also as maxrss, kinfo_mem present, vmm absent
        const stat = (await readFile(`/proc/${t1.pid}/stat`, "latin1")).split(") ")[1]!.split(" ");
        assert.equal(s.kinfoMem?.rss, BigInt(stat[21]!));
        assert.equal(s.rusage.maxrss, s.kinfoMem?.rss);
        assert.equal(s.kinfoMem?.vsize, BigInt(stat[20]!));
        assert.equal(s.vmm, undefined);
        // the tap that does not exist was skipped at registration (as upstream)
        assert.deepEqual(
          s.ifdata.map((i) => i.bridge),
          ["service"],
        );
        assert.equal(s.ifdata[0]!.mtu, 65536);

        // hostd goes away: registrations end, subscribers stay, the daemon comes back
        h.close();
        await waitFor("unregistered", () => d.status().unikernels === 0 && !d.status().hostdConnected);
        const h2 = await hostd.accept(2);
        h2.send(wire("foo:bar", { kind: "stats-add", vmmdev: "", pid: t1.pid, network: [] }, 1n));
        assert.equal(replyText(await h2.nth(2)), "success: added");
        d.sampleNow();
        await sub.nth(3);
        assert.equal(d.status().subscribers, 1);
        assert.ok(
          lines.some((l) => /connection to hostd lost \(1 unikernels unregistered\)/.test(l)),
          lines.join("\n"),
        );
        sub.close();
      } finally {
        await d.close();
        await hostd.close();
        await t1.stop();
      }
    });
  });

  it("a duplicate Stats_add is answered (the registration replaced), and the daemon keeps serving", async () => {
    await withDir(async (dir) => {
      const a = await startTender(dir, ["--standin-run"]);
      const b = await startTender(dir, ["--standin-burn=300", "--standin-run"]);
      const { d } = await startDaemon(dir);
      try {
        assert.equal(await ask(d.socketPath, wire("x:y", { kind: "stats-add", vmmdev: "", pid: a.pid, network: [] })), "success: added");
        assert.equal(await ask(d.socketPath, wire("x:y", { kind: "stats-add", vmmdev: "", pid: b.pid, network: [] })), "success: added");
        assert.equal(d.status().unikernels, 1);
        const sub = await WireConn.open(d.socketPath);
        sub.send(wire("x:y", { kind: "stats-subscribe" }));
        await sub.nth(1);
        // b burns 0.3 s of CPU time, a none: the utime tells which one is sampled
        await sleep(700);
        d.sampleNow();
        const s = ((await sub.nth(2)).payload as { data: { stats: StatsData } }).data.stats;
        assert.ok(sec(s.rusage.utime) >= 0.25, `utime ${sec(s.rusage.utime)}`);
        assert.equal(d.status().openHandles, 1);
        sub.close();
      } finally {
        await d.close();
        await a.stop();
        await b.stop();
      }
    });
  });
});

describe("subscriptions and processes", () => {
  it("a `foo:` subscriber sees only foo:* (names relative), `:` everything", async () => {
    await withDir(async (dir) => {
      const ts = await Promise.all([0, 1, 2].map(() => startTender(dir, ["--standin-run"])));
      const { d } = await startDaemon(dir);
      try {
        const names = ["foo:a", "foo:b", "bar:c"];
        for (let i = 0; i < 3; i++)
          assert.equal(await ask(d.socketPath, wire(names[i]!, { kind: "stats-add", vmmdev: "", pid: ts[i]!.pid, network: [] })), "success: added");
        const foo = await WireConn.open(d.socketPath);
        foo.send(wire("foo:", { kind: "stats-subscribe" }));
        const all = await WireConn.open(d.socketPath);
        all.send(wire(":", { kind: "stats-subscribe" }));
        await foo.nth(1);
        await all.nth(1);
        d.sampleNow();
        d.sampleNow();
        await all.nth(7);
        await sleep(50);
        assert.deepEqual(
          foo
            .stats()
            .map(([n]) => n)
            .sort(),
          [":a", ":a", ":b", ":b"],
        );
        assert.deepEqual(
          all
            .stats()
            .map(([n]) => n)
            .sort(),
          ["bar:c", "bar:c", "foo:a", "foo:a", "foo:b", "foo:b"],
        );
        foo.close();
        all.close();
      } finally {
        await d.close();
        for (const t of ts) await t.stop();
      }
    });
  });

  it("CPU burnt by the stand-in shows in utime and the CPU share; a vanished pid is dropped quietly", async () => {
    await withDir(async (dir) => {
      const burner = await startTender(dir, ["--standin-burn=400", "--standin-run"]);
      const idle = await startTender(dir, ["--standin-run"]);
      const { d, lines } = await startDaemon(dir, { metricsListen: { host: "127.0.0.1", port: 0 } });
      try {
        await ask(d.socketPath, wire(":burn", { kind: "stats-add", vmmdev: "", pid: burner.pid, network: [] }));
        await ask(d.socketPath, wire(":idle", { kind: "stats-add", vmmdev: "", pid: idle.pid, network: [] }));
        const sub = await WireConn.open(d.socketPath);
        sub.send(wire(":", { kind: "stats-subscribe" }));
        await sub.nth(1);
        d.sampleNow();
        await sleep(300);
        d.sampleNow();
        await sub.nth(5);
        const last = new Map(sub.stats());
        const burn = last.get(":burn")!;
        const idleS = last.get(":idle")!;
        // the burn is over after 0.4 s of CPU time: wait for it before judging
        await waitFor("the burn", async () => {
          d.sampleNow();
          await sleep(20);
          const b = new Map(sub.stats()).get(":burn")!;
          return sec(b.rusage.utime) >= 0.35 ? b : null;
        });
        const b = new Map(sub.stats()).get(":burn")!;
        assert.ok(sec(b.rusage.utime) >= 0.35 && sec(b.rusage.utime) < 1.5, `utime ${sec(b.rusage.utime)}`);
        assert.ok(sec(idleS.rusage.utime) < 0.1, `idle utime ${sec(idleS.rusage.utime)}`);
        assert.ok(burn.kinfoMem!.runtime >= 0n);
        // the CPU share: the burner used most of a core between two of the first rounds
        const text = await (await fetch(`http://127.0.0.1:${d.metricsAddress!.port}/metrics`)).text();
        const fam = parsePrometheus(text).find((f) => f.name === "dromedary_unikernel_cpu_usage_ratio")!;
        assert.equal(fam.metrics.length, 2);

        // the idle one's process ends: it is unregistered at the next round, without a warning
        await idle.stop();
        const before = sub.stats().length;
        d.sampleNow();
        await waitFor("unregistered", () => d.status().unikernels === 1);
        assert.ok(
          lines.some((l) => /^info: :idle: process \d+ is gone/.test(l)),
          lines.join("\n"),
        );
        assert.ok(!lines.some((l) => /^(warn|error):/.test(l) && /idle/.test(l)), lines.join("\n"));
        await waitFor("the next sample", () => sub.stats().length > before);
        assert.deepEqual(
          sub
            .stats()
            .slice(before)
            .map(([n]) => n),
          [":burn"],
        );
        assert.equal(d.status().openHandles, 1);
        sub.close();
      } finally {
        await d.close();
        await burner.stop();
        await idle.stop();
      }
    });
  });
});

/** A /proc of our own: one good process (a copy of a real one's files) and a malformed one. */
async function fakeProc(root: string): Promise<void> {
  for (const f of ["stat", "statm", "status"]) {
    await mkdir(join(root, "1000"), { recursive: true });
    await mkdir(join(root, "1001"), { recursive: true });
    const real = await readFile(`/proc/self/${f}`, "latin1");
    await writeFile(join(root, "1000", f), real);
    await writeFile(join(root, "1001", f), real);
  }
  await writeFile(join(root, "1001", "stat"), "1001 (solo5-hvt) S 1 2 3 the rest is missing\n");
  await mkdir(join(root, "net"), { recursive: true });
  await writeFile(join(root, "net", "dev"), "header\nheader\n  tap9: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nthis line is broken\n");
}

describe("hostile and odd input", () => {
  it("a malformed /proc line is reported once, not a crash; the others keep flowing", async () => {
    await withDir(async (dir) => {
      const proc = join(dir, "proc");
      await fakeProc(proc);
      const { d, lines } = await startDaemon(dir, { procRoot: proc, sysRoot: join(dir, "nosys"), debugfsRoot: join(dir, "nodebugfs") });
      try {
        assert.equal(await ask(d.socketPath, wire(":good", { kind: "stats-add", vmmdev: "", pid: 1000, network: [] })), "success: added");
        assert.equal(await ask(d.socketPath, wire(":bad", { kind: "stats-add", vmmdev: "", pid: 1001, network: [] })), "success: added");
        const sub = await WireConn.open(d.socketPath);
        sub.send(wire(":", { kind: "stats-subscribe" }));
        await sub.nth(1);
        d.sampleNow();
        d.sampleNow();
        await sub.nth(3);
        await sleep(50);
        assert.deepEqual(
          sub.stats().map(([n]) => n),
          [":good", ":good"],
        );
        const reports = lines.filter((l) => l.includes("/1001/stat"));
        assert.equal(reports.length, 1, lines.join("\n"));
        assert.match(reports[0]!, /couldn't read \/proc\/<pid>\/stat \(\d+ fields, at least 52 expected\); skipping it/);
        assert.ok(
          lines.some((l) => /malformed \/proc\/net\/dev line 4: "this line is broken"/.test(l)),
          lines.join("\n"),
        );
        assert.ok(
          lines.some((l) => /no VMM counters: cannot read .*nodebugfs\/kvm \(ENOENT/.test(l)),
          lines.join("\n"),
        );
        assert.equal(lines.filter((l) => l.includes("no VMM counters")).length, 1);
        // fixed in place: the unikernel comes back
        await writeFile(join(proc, "1001", "stat"), await readFile(join(proc, "1000", "stat")));
        d.sampleNow();
        await sub.nth(5);
        assert.deepEqual(
          sub
            .stats()
            .slice(2)
            .map(([n]) => n)
            .sort(),
          [":bad", ":good"],
        );
        assert.equal(d.status().unikernels, 2);
        sub.close();
      } finally {
        await d.close();
      }
    });
  });

  it("KVM counters from a debugfs tree go into the vmm field", async () => {
    await withDir(async (dir) => {
      const t = await startTender(dir, ["--standin-run"]);
      const debugfs = join(dir, "debugfs");
      const vm = join(debugfs, "kvm", `${t.pid}-11`);
      await mkdir(join(vm, "vcpu0"), { recursive: true });
      await writeFile(join(vm, "exits"), "1234\n");
      await writeFile(join(vm, "io_exits"), "56\n");
      await writeFile(join(vm, "halt_exits"), "7\n");
      await writeFile(join(vm, "halt_poll_fail_hist"), "0 0 0 1\n");
      await writeFile(join(vm, "not_a_counter_we_read"), "1\n");
      await mkdir(join(debugfs, "kvm", "99999999-3"), { recursive: true });
      const { d } = await startDaemon(dir, { debugfsRoot: debugfs });
      try {
        await ask(d.socketPath, wire(":vm", { kind: "stats-add", vmmdev: "", pid: t.pid, network: [] }));
        const sub = await WireConn.open(d.socketPath);
        sub.send(wire(":vm", { kind: "stats-subscribe" }));
        await sub.nth(1);
        d.sampleNow();
        const s = ((await sub.nth(2)).payload as { data: { stats: StatsData } }).data.stats;
        assert.deepEqual(s.vmm, [
          { key: "exits", value: 1234n },
          { key: "io_exits", value: 56n },
          { key: "halt_exits", value: 7n },
        ]);
        // re-read every round
        await writeFile(join(vm, "exits"), "2000\n");
        d.sampleNow();
        const s2 = ((await sub.nth(3)).payload as { data: { stats: StatsData } }).data.stats;
        assert.equal(s2.vmm?.[0]?.value, 2000n);
        sub.close();
      } finally {
        await d.close();
        await t.stop();
      }
    });
  });

  it("initial from a client, other commands, undecodable and oversized frames, and the bounds", async () => {
    await withDir(async (dir) => {
      const { d } = await startDaemon(dir, { maxSubscribers: 2, maxConnections: 3, maxFrame: 1024 });
      try {
        assert.equal(await ask(d.socketPath, wire(":", { kind: "stats-initial" })), "failure: unexpected message initial");
        assert.equal(await ask(d.socketPath, wire(":", { kind: "unikernel-info" })), "failure: unexpected command");
        assert.equal(await ask(d.socketPath, wire(":x", { kind: "stats-add", vmmdev: "", pid: 0, network: [] })), "failure: invalid pid 0");
        const tooMany = Array.from({ length: 65 }, (_, i) => ({ bridge: `n${i}`, tap: "lo" }));
        assert.match(
          await ask(d.socketPath, wire(":x", { kind: "stats-add", vmmdev: "", pid: 1, network: tooMany })),
          /^failure: too many network interfaces \(65, at most 64\)/,
        );
        // a tap name that would leave /sys/class/net is not looked up
        assert.equal(
          await ask(d.socketPath, wire(":x", { kind: "stats-add", vmmdev: "", pid: process.pid, network: [{ bridge: "a", tap: "../../../etc" }] })),
          "success: added",
        );

        for (const bytes of [Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 5]), Buffer.from([0, 0, 0x10, 0, 1])]) {
          const c = await WireConn.open(d.socketPath);
          c.sock.write(bytes);
          await waitFor("closed", () => c.closed);
          assert.equal(c.messages.length, 0);
        }

        const subs = [] as WireConn[];
        for (const n of ["a:", "b:"]) {
          const c = await WireConn.open(d.socketPath);
          c.send(wire(n, { kind: "stats-subscribe" }));
          assert.equal(replyText(await c.nth(1)), "success: subscribed");
          subs.push(c);
        }
        const third = await WireConn.open(d.socketPath);
        third.send(wire("c:", { kind: "stats-subscribe" }));
        assert.equal(replyText(await third.nth(1)), "failure: too many subscribers (at most 2)");
        await waitFor("closed after a failure", () => third.closed);
        // connections: 2 subscribers + 1 more, the next is refused
        const extra = await WireConn.open(d.socketPath);
        const refused = await WireConn.open(d.socketPath);
        await waitFor("refused", () => refused.closed);
        extra.send(wire(":", { kind: "stats-remove" }));
        assert.equal(replyText(await extra.nth(1)), "success: removed");
        // a subscriber that closes frees its place at once
        subs[0]!.close();
        await waitFor("unsubscribed", () => d.status().subscribers === 1);
        for (const c of [...subs, extra]) c.close();
      } finally {
        await d.close();
      }
    });
  });
});

describe("block I/O and metrics of a real tender", () => {
  it("bytes the stand-in writes to its block device show as block_written_bytes; its --mem as the memory limit", async () => {
    await withDir(async (dir) => {
      const disk = join(dir, "disk.img");
      // sparse (no dirty pages of ours: the kernel counts write_bytes when a page turns dirty)
      await writeFile(disk, "");
      await truncate(disk, 1 << 20);
      const kernel = join(dir, "blk.hvt");
      await writeFile(kernel, buildSolo5Elf({ target: "hvt", devices: [{ name: "storage", type: "block" }] }).bytes);
      const p = spawn(await standinTender(), ["--mem=64", `--block:storage=${disk}`, kernel, "--standin-write-block=storage:262144", "--standin-run"], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      let out = "";
      p.stdout!.on("data", (b: Buffer) => (out += b.toString()));
      const { d } = await startDaemon(dir, { metricsListen: { host: "127.0.0.1", port: 0 } });
      try {
        await waitFor("the write", () => out.includes("wrote 262144 bytes"));
        await ask(d.socketPath, wire("t:blk", { kind: "stats-add", vmmdev: "", pid: p.pid!, network: [] }));
        d.sampleNow();
        const text = await (await fetch(`http://127.0.0.1:${d.metricsAddress!.port}/metrics`)).text();
        const fams = new Map(parsePrometheus(text).map((f) => [f.name, f]));
        const v = (n: string): number => Number(fams.get(n)?.metrics.find((m) => m.labels?.["unikernel"] === "t:blk")?.value);
        assert.ok(v("dromedary_unikernel_block_written_bytes_total") >= 262144, text);
        assert.ok(v("dromedary_unikernel_io_written_bytes_total") >= 262144);
        assert.equal(v("dromedary_unikernel_memory_limit_bytes"), 64 * 1024 * 1024);
        assert.equal(fams.get("dromedary_unikernel_block_written_bytes_total")!.metrics[0]!.labels!["tenant"], "t");
        assert.equal(Number(fams.get("dromedary_stats_unikernels")!.metrics[0]!.value), 1);
        assert.equal(Number(fams.get("dromedary_stats_hostd_connected")!.metrics[0]!.value), 0);
        // other paths and methods
        assert.equal((await fetch(`http://127.0.0.1:${d.metricsAddress!.port}/`)).status, 404);
        assert.equal((await fetch(`http://127.0.0.1:${d.metricsAddress!.port}/metrics`, { method: "POST" })).status, 405);
      } finally {
        await d.close();
        p.kill("SIGKILL");
      }
    });
  });
});

describe("memory between rounds", () => {
  it("a full collection runs half an interval after a round once the heap grew by 4 MiB, not before", async () => {
    assert.equal(typeof fullCollector(), "function");
    await withDir(async (dir) => {
      let collections = 0;
      const { d } = await startDaemon(dir, { intervalSeconds: 0.05, collectGarbage: () => collections++ });
      try {
        await waitFor("three rounds", () => d.status().samples >= 3);
        const quiet = collections;
        // 16 MiB of the heap held here (two arrays of 2^20 doubles): the daemon sees it grow
        let held: number[][] | null = [new Array<number>(1 << 20).fill(0.5), new Array<number>(1 << 20).fill(1.5)];
        await waitFor("a collection", () => collections > quiet);
        assert.ok(held.length > 0);
        held = null;
        assert.equal(quiet, 0, "no collection while the heap did not grow");
      } finally {
        await d.close();
      }
    });
  });
});
