// The stats daemon's decisions (src/stats/registry.ts) and albatross' mapping
// (src/stats/sample.ts): pure, no daemon.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { rusage } from "../support/rusage.js";
import type { Header, StatsData } from "../../src/commands/types.js";
import { nameToString, parseName, type Name } from "../../src/core/name.js";
import {
  finishRound,
  handle,
  hostdLost,
  initialStatsState,
  planRound,
  unsubscribe,
  type Input,
  type Limits,
  type StatsState,
} from "../../src/stats/registry.js";
import { cpuShare, statsData, ticksToTimeval, type Readings } from "../../src/stats/sample.js";

const LIMITS: Limits = { maxUnikernels: 4, maxSubscribers: 3, maxNics: 2 };
const hdr = (name: string, version = 5): Header => ({ version, sequence: 7n, name: parseName(name) });
const add = (pid: number, nics: Array<[string, string]> = []): Extract<Input, { kind: "add" }> => ({
  kind: "add",
  vmmdev: "",
  pid,
  nics: nics.map(([netif, tap]) => ({ netif, tap })),
  requested: nics.length,
});

type S = StatsState<string>;

function run(s: S, conn: string, name: string, input: Input, version = 5) {
  return handle(s, LIMITS, conn, hdr(name, version), input);
}

function registered(s: S, ...names: string[]): S {
  let pid = 100;
  for (const n of names) s = handle(s, { ...LIMITS, maxUnikernels: 100 }, "hostd", hdr(n), add(pid++)).state;
  return s;
}

const STATS: StatsData = {
  rusage: rusage({
    utime: { seconds: 1n, microseconds: 0 },
    stime: { seconds: 0n, microseconds: 500000 },
    maxrss: 10n,
    minflt: 1n,
    nvcsw: 1n,
    nivcsw: 1n,
  }),
  ifdata: [],
};

describe("requests", () => {
  it("add, remove, subscribe answer as upstream; initial and other commands fail", () => {
    let s = initialStatsState<string>();
    const a = run(s, "hostd", "foo:bar", add(42, [["service", "vmmtap0"]]));
    assert.deepEqual(a.reply, { kind: "success", text: "added" });
    assert.equal(a.added?.pid, 42);
    s = a.state;
    assert.deepEqual(s.units.find(parseName("foo:bar"))?.nics, [{ netif: "service", tap: "vmmtap0" }]);
    assert.deepEqual(run(s, "c", ":", { kind: "subscribe" }).reply, { kind: "success", text: "subscribed" });
    assert.deepEqual(run(s, "c", ":", { kind: "initial" }).reply, { kind: "failure", text: "unexpected message initial" });
    assert.deepEqual(run(s, "c", ":", { kind: "other", what: "unikernel-info" }).reply, { kind: "failure", text: "unexpected command" });
    const r = run(s, "hostd", "foo:bar", { kind: "remove" });
    assert.deepEqual(r.reply, { kind: "success", text: "removed" });
    assert.equal(r.removed.length, 1);
    assert.equal(r.state.units.size, 0);
    // an unknown name only logs
    const r2 = run(r.state, "hostd", "foo:bar", { kind: "remove" });
    assert.deepEqual(r2.reply, { kind: "success", text: "removed" });
    assert.match(r2.log.join(), /no pid found for foo:bar/);
  });

  it("a duplicate add replaces the registration (upstream dies on an assertion)", () => {
    let s = run(initialStatsState<string>(), "hostd", "foo:bar", add(42)).state;
    const d = run(s, "hostd", "foo:bar", add(43));
    assert.deepEqual(d.reply, { kind: "success", text: "added" });
    assert.equal(d.removed[0]?.pid, 42);
    s = d.state;
    assert.equal(s.units.size, 1);
    assert.equal(s.units.find(parseName("foo:bar"))?.pid, 43);
  });

  it("bounds: unikernels (answered, not failed: hostd would drop its channel), interfaces, subscribers, pids", () => {
    let s = registered(initialStatsState<string>(), ":a", ":b", ":c", ":d");
    assert.equal(s.units.size, 4);
    const over = run(s, "hostd", ":e", add(9));
    assert.equal(over.reply.kind, "success");
    assert.match(over.reply.text, /not added: already 4 unikernels registered/);
    assert.equal(over.state.units.size, 4);
    // replacing one at the limit is fine
    assert.equal(run(s, "hostd", ":a", add(9)).reply.text, "added");
    assert.deepEqual(run(s, "hostd", ":x", { ...add(9), requested: 3 }).reply, { kind: "failure", text: "too many network interfaces (3, at most 2)" });
    assert.equal(run(s, "hostd", ":x", add(0)).reply.kind, "failure");
    assert.equal(run(s, "hostd", ":x", add(-5)).reply.kind, "failure");
    for (const n of ["a:", "b:", "c:"]) s = run(s, `c-${n}`, n, { kind: "subscribe" }).state;
    assert.deepEqual(run(s, "c4", "d:", { kind: "subscribe" }).reply, { kind: "failure", text: "too many subscribers (at most 3)" });
    // re-subscribing an existing name replaces (and closes) the old subscriber, within the bound
    const re = run(s, "c5", "a:", { kind: "subscribe" });
    assert.deepEqual(re.reply, { kind: "success", text: "subscribed" });
    assert.deepEqual(re.close, ["c-a:"]);
  });
});

describe("who receives what (daemon.md §4)", () => {
  const units = ["foo:bar", "foo:baz", "foo:bar:deep", "other:x", ":top", "foo:sub:y"];
  const receivers = (sub: string): string[] => {
    let s = registered(initialStatsState<string>(), ...units);
    s = run(s, "c", sub, { kind: "subscribe" }).state;
    const targets = planRound(s, false);
    const f = finishRound(
      s,
      targets.map((target) => ({ target, outcome: { kind: "ok" as const, stats: STATS } })),
    );
    return f.deliveries.map((d) => `${nameToString(d.wire.header.name)}`).sort();
  };

  it("`:` everything, names in full", () => {
    assert.deepEqual(receivers(":"), [":top", "foo:bar", "foo:bar:deep", "foo:baz", "foo:sub:y", "other:x"]);
  });
  it("`foo:` everything under foo, names without foo", () => {
    assert.deepEqual(receivers("foo:"), [":bar", ":baz", "bar:deep", "sub:y"]);
  });
  it("`foo:bar` the unikernel — and, as upstream, everything under foo:bar:", () => {
    assert.deepEqual(receivers("foo:bar"), [":bar", "bar:deep"]);
  });
  it("`:foo` (a label at the root) also matches foo:*, names in full", () => {
    assert.deepEqual(receivers(":foo"), ["foo:bar", "foo:bar:deep", "foo:baz", "foo:sub:y"]);
  });
  it("nobody for an unrelated subscription; nothing sampled without subscribers unless asked", () => {
    assert.deepEqual(receivers("nope:"), []);
    const s = registered(initialStatsState<string>(), ...units);
    assert.equal(planRound(s, false).length, 0);
    assert.equal(planRound(s, true).length, units.length);
  });

  it("the data header carries the subscriber's version and sequence 0", () => {
    let s = registered(initialStatsState<string>(), "foo:bar");
    s = run(s, "c", "foo:", { kind: "subscribe" }, 4).state;
    const f = finishRound(
      s,
      planRound(s, false).map((target) => ({ target, outcome: { kind: "ok" as const, stats: STATS } })),
    );
    assert.equal(f.deliveries.length, 1);
    assert.deepEqual(f.deliveries[0]!.wire.header, { version: 4, sequence: 0n, name: { path: [], label: "bar" } });
    assert.deepEqual(f.deliveries[0]!.wire.payload, { kind: "data", data: { kind: "statistics", stats: STATS } });
  });

  it("property: a path subscription receives exactly the unikernels below it, its path dropped", () => {
    const label = fc.constantFrom("a", "b", "c");
    const name = fc.tuple(fc.array(label, { maxLength: 3 }), label).map(([path, l]) => ({ path, label: l }) as Name);
    fc.assert(
      fc.property(fc.uniqueArray(name, { selector: nameToString, maxLength: 4 }), fc.array(label, { maxLength: 2 }), (names, subPath) => {
        let s = initialStatsState<string>();
        const lim = { ...LIMITS, maxUnikernels: 100 };
        names.forEach((n, i) => {
          s = handle(s, lim, "h", { version: 5, sequence: 0n, name: n }, add(i + 1)).state;
        });
        s = handle(s, lim, "c", { version: 5, sequence: 0n, name: { path: subPath, label: null } }, { kind: "subscribe" }).state;
        const f = finishRound(
          s,
          planRound(s, false).map((target) => ({ target, outcome: { kind: "ok" as const, stats: STATS } })),
        );
        // the trie keys `x:` and `:x` alike: a unikernel whose labels are a prefix-extension of the path
        const expected = [...s.units.all()]
          .map(([, r]) => r.name)
          .filter(
            (n) => subPath.every((l, i) => [...n.path, n.label][i] === l) && [...n.path, n.label].length >= subPath.length && n.path.length >= subPath.length,
          )
          .map((n) => nameToString({ path: n.path.slice(subPath.length), label: n.label }))
          .sort();
        assert.deepEqual(f.deliveries.map((d) => nameToString(d.wire.header.name)).sort(), expected);
      }),
    );
  });
});

describe("after a round, and when peers go", () => {
  it("a vanished process is unregistered; a malformed file is reported once and skipped", () => {
    let s = registered(initialStatsState<string>(), ":a", ":b");
    s = run(s, "c", ":", { kind: "subscribe" }).state;
    const [ta, tb] = planRound(s, false);
    const f = finishRound(s, [
      { target: ta!, outcome: { kind: "gone", why: "ESRCH" } },
      { target: tb!, outcome: { kind: "malformed", error: "/proc/101/stat: bad", firstTime: true } },
    ]);
    assert.deepEqual(
      f.removed.map((r) => nameToString(r.name)),
      [":a"],
    );
    assert.equal(f.deliveries.length, 0);
    assert.equal(f.state.units.size, 1);
    assert.match(f.log.join("\n"), /:a: process 100 is gone \(ESRCH\), unregistered/);
    assert.match(f.log.join("\n"), /:b \(pid 101\): \/proc\/101\/stat: bad; skipping it/);
    const again = finishRound(f.state, [{ target: tb!, outcome: { kind: "malformed", error: "bad", firstTime: false } }]);
    assert.equal(again.log.length, 0);
  });

  it("a gone outcome for a registration replaced in between leaves the new one alone", () => {
    let s = registered(initialStatsState<string>(), ":a");
    const [t] = planRound(s, true);
    s = run(s, "hostd", ":a", add(555)).state;
    const f = finishRound(s, [{ target: t!, outcome: { kind: "gone", why: "x" } }]);
    assert.equal(f.state.units.find(parseName(":a"))?.pid, 555);
  });

  it("losing hostd drops the registrations and keeps the subscribers; unsubscribe only removes that connection's", () => {
    let s = registered(initialStatsState<string>(), ":a", "foo:b");
    s = run(s, "c1", "foo:", { kind: "subscribe" }).state;
    const l = hostdLost(s);
    assert.equal(l.state.units.size, 0);
    assert.equal(l.removed.length, 2);
    assert.equal(l.state.subs.size, 1);
    assert.equal(unsubscribe(l.state, parseName("foo:"), "other").subs.size, 1);
    assert.equal(unsubscribe(l.state, parseName("foo:"), "c1").subs.size, 0);
  });
});

describe("albatross' values (sample.ts)", () => {
  const readings: Readings = {
    stat: { minflt: 5n, majflt: 1n, utime: 1234n, stime: 56n, starttime: 777n, vsize: 1_000_000n, rss: 300n, nswap: 0n },
    statm: { tsize: 7n, dsize: 42n },
    status: { nvcsw: 9n, nivcsw: 2n },
    procCtime: { seconds: 1700000000n, microseconds: 250000 },
    io: null,
    interfaces: [
      {
        netif: "service",
        tap: "vmmtap0",
        bridge: "br0",
        flags: 0x11043,
        mtu: 1500,
        counters: {
          rxBytes: 1n,
          rxPackets: 2n,
          rxErrors: 3n,
          rxDropped: 4n,
          multicast: 5n,
          txBytes: 6n,
          txPackets: 7n,
          txErrors: 8n,
          txDropped: 9n,
          collisions: 10n,
        },
      },
      {
        netif: "other",
        tap: "vmmtap1",
        bridge: null,
        flags: 1,
        mtu: 9000,
        counters: {
          rxBytes: 0n,
          rxPackets: 0n,
          rxErrors: 0n,
          rxDropped: 0n,
          multicast: 0n,
          txBytes: 0n,
          txPackets: 0n,
          txErrors: 0n,
          txDropped: 0n,
          collisions: 0n,
        },
      },
    ],
    vmm: null,
  };

  it("rusage and kinfo_mem: ticks to (s, µs), rss in pages, zeros where Linux has none", () => {
    const d = statsData(readings, 100);
    assert.deepEqual(d.rusage.utime, { seconds: 12n, microseconds: 340000 });
    assert.deepEqual(d.rusage.stime, { seconds: 0n, microseconds: 560000 });
    assert.equal(d.rusage.maxrss, 300n);
    for (const k of ["ixrss", "idrss", "isrss", "inblock", "outblock", "msgsnd", "msgrcv", "nsignals"] as const) assert.equal(d.rusage[k], 0n, k);
    assert.deepEqual(
      { ...d.kinfoMem },
      { vsize: 1_000_000n, rss: 300n, tsize: 7n, dsize: 42n, ssize: 42n, runtime: 12_900_000n, cow: 0, start: { seconds: 1700000000n, microseconds: 250000 } },
    );
    assert.equal("vmm" in d, false);
    assert.deepEqual(ticksToTimeval(1n, 3), { seconds: 0n, microseconds: 333333 });
  });

  it("interfaces in reverse order, netif in bridge, rx as input", () => {
    const d = statsData(readings, 100);
    assert.deepEqual(
      d.ifdata.map((i) => i.bridge),
      ["other", "service"],
    );
    const s = d.ifdata[1]!;
    assert.deepEqual(
      [
        s.inputBytes,
        s.inputPackets,
        s.inputErrors,
        s.inputDropped,
        s.inputMcast,
        s.outputBytes,
        s.outputPackets,
        s.outputErrors,
        s.outputDropped,
        s.collisions,
        s.outputMcast,
        s.baudrate,
      ],
      [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n, 0n, 0n],
    );
    assert.deepEqual([s.flags, s.mtu, s.sendLength, s.maxSendLength, s.sendDrops], [0x11043, 1500, 0, 0, 0]);
  });

  it("vmm present when KVM counters were read", () => {
    const d = statsData({ ...readings, vmm: [{ key: "exits", value: 12n }] }, 100);
    assert.deepEqual(d.vmm, [{ key: "exits", value: 12n }]);
  });

  it("CPU share per interval", () => {
    assert.equal(cpuShare(undefined, { ticks: 10n, atMs: 0 }, 100), null);
    assert.equal(cpuShare({ ticks: 0n, atMs: 0 }, { ticks: 50n, atMs: 1000 }, 100), 0.5);
    assert.equal(cpuShare({ ticks: 0n, atMs: 0 }, { ticks: 200n, atMs: 1000 }, 100), 2);
    assert.equal(cpuShare({ ticks: 10n, atMs: 0 }, { ticks: 5n, atMs: 1000 }, 100), null);
  });
});
