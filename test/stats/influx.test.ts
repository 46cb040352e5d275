// albatross-influx's line protocol (src/stats/influx.ts), byte for byte as daemon.md §5
// spells it, for a message built by hand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rusage } from "../support/rusage.js";
import type { StatsData } from "../../src/commands/types.js";
import { parseName } from "../../src/core/name.js";
import { influxLines, influxName } from "../../src/stats/influx.js";
import { parseInfluxTarget } from "../../src/stats/influx-daemon.js";

const STATS: StatsData = {
  rusage: rusage({
    utime: { seconds: 12n, microseconds: 34 },
    stime: { seconds: 0n, microseconds: 560000 },
    maxrss: 300n,
    minflt: 5n,
    majflt: 1n,
    nvcsw: 9n,
    nivcsw: -1n,
  }),
  ifdata: [
    {
      bridge: "service",
      flags: 0x11043,
      sendLength: 0,
      maxSendLength: 0,
      sendDrops: -1,
      mtu: 1500,
      baudrate: 0n,
      inputPackets: 2n,
      inputErrors: 3n,
      outputPackets: 7n,
      outputErrors: 8n,
      collisions: 10n,
      inputBytes: 1n,
      outputBytes: 6n,
      inputMcast: 5n,
      outputMcast: 0n,
      inputDropped: 4n,
      outputDropped: 9n,
    },
  ],
  vmm: [
    { key: "io exits,x=y", value: 17n },
    { key: "exits", value: 100n },
  ],
  kinfoMem: {
    vsize: 1000000n,
    rss: 300n,
    tsize: 7n,
    dsize: 42n,
    ssize: 42n,
    runtime: 12900000n,
    cow: 0,
    start: { seconds: 1700000000n, microseconds: 250000 },
  },
};

describe("Influx line protocol", () => {
  it("matches daemon.md §5 byte for byte", () => {
    const text = influxLines(parseName("alice:web"), STATS, 1700000100.5, false);
    assert.equal(
      text,
      "resource_usage,vm=web utime=12.000034,stime=0.560000,maxrss=300i,ixrss=0i,idrss=0i,isrss=0i,minflt=5i,maxflt=1i,nswap=0i,inblock=0i,outblock=0i,msgsnd=0i,msgrcv=0i,nsignals=0i,nvcsw=9i,nivcsw=18446744073709551615i\n" +
        "kinfo_mem,vm=web vsize=1000000i,rss=300i,tsize=7i,dsize=42i,ssize=42i,cow_faults=0i,runtime=12900000i,uptime=100.250000\n" +
        "vmm,vm=web io\\ exits\\,x\\=y=17i,exits=100i\n" +
        "interface,vm=web,bridge=service send_queue_length=0i,max_send_queue_length=0i,send_queue_drops=4294967295i,mtu=1500i,baudrate=0i,vm_to_host_packets=2i,vm_to_host_errors=3i,vm_to_host_bytes=1i,vm_to_host_mcast=5i,vm_to_host_dropped=4i,collisions=10i,host_to_vm_packets=7i,host_to_vm_errors=8i,host_to_vm_bytes=6i,host_to_vm_mcast=0i,host_to_vm_dropped=9i\n",
    );
  });

  it("leaves out kinfo_mem and vmm when absent; one interface line each", () => {
    const { vmm: _v, kinfoMem: _k, ...bare } = STATS;
    const lines = influxLines(parseName(":x"), { ...bare, ifdata: [STATS.ifdata[0]!, { ...STATS.ifdata[0]!, bridge: "b2" }] }, 0, false).split("\n");
    assert.deepEqual(
      lines.map((l) => l.split(" ")[0]),
      ["resource_usage,vm=x", "interface,vm=x,bridge=service", "interface,vm=x,bridge=b2", ""],
    );
  });

  it("vm: the label, or the full name with --no-drop-path; a path-only name as its text", () => {
    assert.equal(influxName(parseName("alice:web"), false), "web");
    assert.equal(influxName(parseName("alice:web"), true), "alice:web");
    assert.equal(influxName(parseName("alice:"), false), "alice:");
    assert.equal(influxName(parseName(":"), false), ":");
  });

  it("--influx takes IP literals with an optional port (8094 by default), no host names", () => {
    assert.deepEqual(parseInfluxTarget("127.0.0.1"), { host: "127.0.0.1", port: 8094 });
    assert.deepEqual(parseInfluxTarget("127.0.0.1:9000"), { host: "127.0.0.1", port: 9000 });
    assert.deepEqual(parseInfluxTarget("::1"), { host: "::1", port: 8094 });
    assert.deepEqual(parseInfluxTarget("[::1]:9000"), { host: "::1", port: 9000 });
    for (const bad of ["localhost", "influx.example:8094", "127.0.0.1:99999", "[::1", "1.2.3:80", ""]) assert.equal(parseInfluxTarget(bad), null, bad);
  });
});
