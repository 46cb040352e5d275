// The /proc, /sys and debugfs parsers (src/stats/proc.ts), on this machine's own files and
// on hand-made malformed ones.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  kvmVmDir,
  parseAuxv,
  parseBootTime,
  parseKvmCounter,
  parseLink,
  parseNetDev,
  parseProcIo,
  parseProcStat,
  parseStatm,
  parseStatus,
  tenderMemoryMB,
} from "../../src/stats/proc.js";

/** A /proc/<pid>/stat line with the given command name and fields 3.. (52 fields in all). */
function statLine(comm: string, over: Record<number, string> = {}): string {
  const rest = Array.from({ length: 50 }, (_, i) => over[i + 3] ?? String(i + 3));
  rest[0] = over[3] ?? "S";
  return `4242 (${comm}) ${rest.join(" ")}\n`;
}

describe("/proc/<pid>/stat", () => {
  it("reads this process' own file", () => {
    const r = parseProcStat(readFileSync("/proc/self/stat", "latin1"));
    assert.ok(r.ok, r.ok ? "" : r.error);
    assert.ok(
      r.value.rss > 0n && r.value.vsize > r.value.rss,
      JSON.stringify(r.value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)),
    );
    assert.ok(r.value.starttime > 0n);
  });

  it("takes the fields albatross takes, counted after the command name", () => {
    // fields (1-based): minflt 10, majflt 12, utime 14, stime 15, starttime 22, vsize 23, rss 24, nswap 36
    const r = parseProcStat(statLine("solo5-hvt", { 10: "111", 12: "2", 14: "345", 15: "67", 22: "9999", 23: "123456789", 24: "321", 36: "0" }));
    assert.ok(r.ok);
    assert.deepEqual(r.value, { minflt: 111n, majflt: 2n, utime: 345n, stime: 67n, starttime: 9999n, vsize: 123456789n, rss: 321n, nswap: 0n });
  });

  it("a command name with spaces and parentheses does not shift the fields", () => {
    const r = parseProcStat(statLine("a) (b c) d", { 14: "77" }));
    assert.ok(r.ok);
    assert.equal(r.value.utime, 77n);
  });

  it("refuses what does not parse, with a one-line reason", () => {
    const cases: Array<[string, RegExp]> = [
      ["", /no command name/],
      ["4242 solo5-hvt S 1 2 3\n", /no command name/],
      ["4242 (x) S 1 2 3\n", /6 fields, at least 52/],
      [statLine("x", { 14: "12a" }), /couldn't parse integer/],
      [statLine("x", { 24: "-" }), /couldn't parse integer/],
      [statLine("x", { 10: "99999999999999999999" }), /couldn't parse integer/],
    ];
    for (const [text, re] of cases) {
      const r = parseProcStat(text);
      assert.ok(!r.ok, text);
      assert.match(r.error, re);
      assert.ok(!r.error.includes("\n"));
    }
  });
});

describe("statm, status, io", () => {
  it("statm: text = field 4, data+stack = field 6", () => {
    assert.deepEqual(parseStatm("100 50 10 7 0 42 0\n"), { ok: true, value: { tsize: 7n, dsize: 42n } });
    assert.ok(parseStatm(readFileSync("/proc/self/statm", "latin1")).ok);
    assert.match((parseStatm("1 2 3\n") as { error: string }).error, /3 fields, at least 7/);
    assert.match((parseStatm("1 2 3 x 5 6 7\n") as { error: string }).error, /couldn't parse integer/);
  });

  it("status: the context switch counts", () => {
    const r = parseStatus(readFileSync("/proc/self/status", "latin1"));
    assert.ok(r.ok);
    assert.ok(r.value.nvcsw >= 0n);
    assert.deepEqual(parseStatus("Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:  \t 3\n"), {
      ok: true,
      value: { nvcsw: 12n, nivcsw: 3n },
    });
    assert.match((parseStatus("Name:\tx\n") as { error: string }).error, /no context switch counts/);
    assert.match((parseStatus("voluntary_ctxt_switches:\tmany\nnonvoluntary_ctxt_switches:\t3\n") as { error: string }).error, /not an integer/);
  });

  it("io: every counter, or a reason", () => {
    const r = parseProcIo(readFileSync("/proc/self/io", "latin1"));
    assert.ok(r.ok);
    assert.ok(r.value.rchar > 0n);
    const text = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 6\ncancelled_write_bytes: 7\n";
    assert.deepEqual(parseProcIo(text), {
      ok: true,
      value: { rchar: 1n, wchar: 2n, syscr: 3n, syscw: 4n, readBytes: 5n, writeBytes: 6n, cancelledWriteBytes: 7n },
    });
    assert.match((parseProcIo(text.replace("write_bytes: 6\n", "")) as { error: string }).error, /no writeBytes/);
    assert.match((parseProcIo(text.replace("syscr: 3", "syscr: x")) as { error: string }).error, /syscr not an integer/);
  });
});

describe("/proc/net/dev", () => {
  it("reads this namespace's interfaces", () => {
    const r = parseNetDev(readFileSync("/proc/net/dev", "latin1"));
    assert.deepEqual(r.errors, []);
    assert.ok(r.counters.has("lo"));
  });

  it("maps the columns and names a malformed line instead of failing the file", () => {
    const text =
      "Inter-|   Receive                                                |  Transmit\n" +
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
      "vmmtap0:  1000      10    1    2    0     0          0         3     2000      20    4    5    0     6       0          0\n" +
      "broken: 1 2 3\n" +
      "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
    const r = parseNetDev(text);
    assert.deepEqual(r.counters.get("vmmtap0"), {
      rxBytes: 1000n,
      rxPackets: 10n,
      rxErrors: 1n,
      rxDropped: 2n,
      multicast: 3n,
      txBytes: 2000n,
      txPackets: 20n,
      txErrors: 4n,
      txDropped: 5n,
      collisions: 6n,
    });
    assert.equal(r.counters.get("eth0")?.collisions, 14n);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!, /malformed \/proc\/net\/dev line 4: "broken: 1 2 3"/);
  });
});

describe("interface attributes, host facts, tender memory, KVM", () => {
  it("flags as netlink reports them: RUNNING/LOWER_UP/DORMANT from operstate/carrier/dormant", () => {
    assert.deepEqual(parseLink({ flags: "0x1003\n", mtu: "1500\n", operstate: "up\n", carrier: "1\n", dormant: "0\n" }), {
      ok: true,
      value: { flags: 0x11043, mtu: 1500 },
    });
    // down: no RUNNING, LOWER_UP, whatever sysfs says
    assert.deepEqual(parseLink({ flags: "0x1042", mtu: "1500", operstate: "down", carrier: null, dormant: null }), {
      ok: true,
      value: { flags: 0x1002, mtu: 1500 },
    });
    assert.match((parseLink({ flags: "1003", mtu: "1500", operstate: null, carrier: null, dormant: null }) as { error: string }).error, /not hexadecimal/);
    assert.match((parseLink({ flags: "0x1", mtu: "big", operstate: null, carrier: null, dormant: null }) as { error: string }).error, /mtu "big" not a number/);
  });

  it("page size and clock tick from this process' auxiliary vector, boot time from /proc/stat", () => {
    const a = parseAuxv(readFileSync("/proc/self/auxv"));
    assert.ok(a.ok);
    assert.ok([4096, 16384, 65536].includes(a.value.pageSize), String(a.value.pageSize));
    assert.equal(a.value.clockTick, 100);
    const b = parseBootTime(readFileSync("/proc/stat", "latin1"));
    assert.ok(b.ok && b.value > 1_000_000_000 && b.value < Date.now() / 1000);
    assert.ok(!parseAuxv(new Uint8Array(16)).ok);
    assert.ok(!parseBootTime("cpu 1 2 3\n").ok);
  });

  it("--mem= of a tender command line, up to --", () => {
    assert.equal(tenderMemoryMB(["solo5-hvt", "--mem=64", "--net:service=vmmtap0", "--", "x.hvt", "--mem=3"].join("\0")), 64);
    assert.equal(tenderMemoryMB(["solo5-hvt", "--", "x.hvt", "--mem=3"].join("\0")), null);
    assert.equal(tenderMemoryMB(["solo5-hvt", "--mem=6x4"].join("\0")), null);
  });

  it("KVM debugfs: <pid>-<fd> directories and counter files", () => {
    assert.deepEqual(kvmVmDir("4242-11"), { pid: 4242, fd: 11 });
    assert.equal(kvmVmDir("vcpu0"), null);
    assert.equal(parseKvmCounter("12345\n"), 12345n);
    assert.equal(parseKvmCounter("1 2 3 4\n"), null);
    assert.equal(parseKvmCounter(""), null);
  });
});
