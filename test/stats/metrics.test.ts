// Prometheus metrics (src/stats/metrics.ts, prometheus.ts): the exposition format parsed back
// with a real parser, linted by Prometheus' own promtool, and the shipped Grafana
// dashboard's queries checked against the families the daemon registers.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import parsePrometheus, { type ParsedFamily } from "parse-prometheus-text-format";
import { parseName } from "../../src/core/name.js";
import { createRequire } from "node:module";
import type * as Prom from "prom-client";
import { baseLabels, ifaceLabels, UNIKERNEL_METRICS, type Labels, type Shared, type UnikernelSnapshot } from "../../src/stats/metrics.js";
import { StatsMetrics, type Health } from "../../src/stats/prometheus.js";
import { statsData, type HostFacts, type Readings } from "../../src/stats/sample.js";
import { DASHBOARD, dashboardQueries, metricNames } from "./support.js";

const HOST: HostFacts = { clockTick: 100, pageSize: 4096, bootTime: 1_700_000_000 };

const counters = (over: Partial<Record<string, bigint>> = {}) => ({
  rxBytes: 1000n,
  rxPackets: 10n,
  rxErrors: 1n,
  rxDropped: 2n,
  multicast: 0n,
  txBytes: 2000n,
  txPackets: 20n,
  txErrors: 3n,
  txDropped: 4n,
  collisions: 0n,
  ...over,
});

function snapshot(name: string, over: Partial<Readings> = {}): UnikernelSnapshot {
  const readings: Readings = {
    stat: { minflt: 500n, majflt: 3n, utime: 1234n, stime: 56n, starttime: 1000n, vsize: 50_000_000n, rss: 300n, nswap: 0n },
    statm: { tsize: 10n, dsize: 20n },
    status: { nvcsw: 40n, nivcsw: 5n },
    procCtime: { seconds: 1_700_000_011n, microseconds: 0 },
    io: { rchar: 111n, wchar: 222n, syscr: 1n, syscw: 2n, readBytes: 4096n, writeBytes: 8192n, cancelledWriteBytes: 0n },
    interfaces: [{ netif: "service", tap: "vmmtap3", bridge: "br0", flags: 0x1043, mtu: 1500, counters: counters() }],
    vmm: [
      { key: "exits", value: 77n },
      { key: "io_exits", value: 7n },
    ],
    ...over,
  };
  return { name: parseName(name), stats: statsData(readings, 100), readings, cpuShare: 0.25, memoryLimitBytes: 64 * 1024 * 1024 };
}

const HEALTH: Health = {
  hostdConnected: true,
  lastSampleEndMs: 1000,
  lastSampleSeconds: 0.004,
  samples: 12,
  readErrors: 1,
  unikernels: 2,
  subscribers: 3,
  connections: 4,
};

async function scrape(snaps: UnikernelSnapshot[]): Promise<{ text: string; families: Map<string, ParsedFamily> }> {
  const m = new StatsMetrics(
    () => HEALTH,
    () => 3500,
  );
  m.update(snaps, HOST);
  const text = await m.render();
  return { text, families: new Map(parsePrometheus(text).map((f) => [f.name, f])) };
}

function value(f: Map<string, ParsedFamily>, name: string, labels: Record<string, string>): number {
  const fam = f.get(name);
  assert.ok(fam, `no family ${name}`);
  const hits = fam.metrics.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  assert.equal(hits.length, 1, `${name} ${JSON.stringify(labels)}: ${hits.length} samples`);
  return Number(hits[0]!.value);
}

describe("the /metrics exposition", () => {
  it("parses back into the values read, in base units, with the unikernel and tenant labels", async () => {
    const { families: f } = await scrape([snapshot("alice:web"), snapshot(":top", { interfaces: [], io: null, vmm: null })]);
    const web = { unikernel: "alice:web", tenant: "alice" };
    assert.equal(value(f, "dromedary_unikernel_cpu_seconds_total", { ...web, mode: "user" }), 12.34);
    assert.equal(value(f, "dromedary_unikernel_cpu_seconds_total", { ...web, mode: "system" }), 0.56);
    assert.equal(value(f, "dromedary_unikernel_cpu_usage_ratio", web), 0.25);
    assert.equal(value(f, "dromedary_unikernel_resident_memory_bytes", web), 300 * 4096);
    assert.equal(value(f, "dromedary_unikernel_virtual_memory_bytes", web), 50_000_000);
    assert.equal(value(f, "dromedary_unikernel_memory_limit_bytes", web), 64 * 1024 * 1024);
    assert.equal(value(f, "dromedary_unikernel_page_faults_total", { ...web, type: "minor" }), 500);
    assert.equal(value(f, "dromedary_unikernel_context_switches_total", { ...web, type: "involuntary" }), 5);
    assert.equal(value(f, "dromedary_unikernel_start_time_seconds", web), 1_700_000_010);
    assert.equal(value(f, "dromedary_unikernel_block_read_bytes_total", web), 4096);
    assert.equal(value(f, "dromedary_unikernel_block_written_bytes_total", web), 8192);
    assert.equal(value(f, "dromedary_unikernel_io_written_bytes_total", web), 222);
    // the unikernel's direction: it receives what its tap transmits
    const nic = { ...web, netif: "service", bridge: "br0", tap: "vmmtap3" };
    assert.equal(value(f, "dromedary_unikernel_network_receive_bytes_total", nic), 2000);
    assert.equal(value(f, "dromedary_unikernel_network_transmit_bytes_total", nic), 1000);
    assert.equal(value(f, "dromedary_unikernel_network_receive_drops_total", nic), 4);
    assert.equal(value(f, "dromedary_unikernel_network_transmit_errors_total", nic), 1);
    assert.equal(value(f, "dromedary_unikernel_vmm_events_total", { ...web, event: "io_exits" }), 7);
    // a unikernel at the root has an empty tenant; what it lacks is left out, not zero
    assert.equal(value(f, "dromedary_unikernel_resident_memory_bytes", { unikernel: ":top" }), 1_228_800);
    assert.equal(f.get("dromedary_unikernel_block_read_bytes_total")!.metrics.length, 1);
    assert.equal(f.get("dromedary_unikernel_network_receive_bytes_total")!.metrics.length, 1);
    // the daemon's health
    assert.equal(value(f, "dromedary_stats_hostd_connected", {}), 1);
    assert.equal(value(f, "dromedary_stats_last_sample_age_seconds", {}), 2.5);
    assert.equal(value(f, "dromedary_stats_sample_duration_seconds", {}), 0.004);
    assert.equal(value(f, "dromedary_stats_subscribers", {}), 3);
    assert.equal(value(f, "dromedary_stats_samples_total", {}), 12);
  });

  it("counters are typed counter and end in _total; nothing else does", async () => {
    const { families } = await scrape([snapshot("alice:web")]);
    assert.ok(families.size >= 25);
    for (const [name, fam] of families) {
      assert.ok(name.startsWith("dromedary_"), name);
      assert.equal(fam.type === "COUNTER", name.endsWith("_total"), `${name} is ${fam.type}`);
      assert.notEqual(fam.help, "", name);
    }
  });

  it("a round replaces the series: a unikernel that left is gone from the next scrape", async () => {
    const m = new StatsMetrics(() => HEALTH);
    m.update([snapshot("alice:web"), snapshot("bob:db")], HOST);
    assert.match(await m.render(), /unikernel="bob:db"/);
    m.update([snapshot("alice:web")], HOST);
    assert.doesNotMatch(await m.render(), /unikernel="bob:db"/);
  });

  it("is prom-client's exposition text byte for byte (the registry formatting the same series)", async () => {
    const odd = snapshot("bob:db", {
      interfaces: [
        { netif: 'we"ird\\net\nif', tap: "tap-ü", bridge: null, flags: 0, mtu: 1500, counters: counters({ txBytes: 2n ** 60n }) },
        { netif: "second", tap: "vmmtap9", bridge: "br1", flags: 0x1043, mtu: 9000, counters: counters() },
      ],
      io: null,
    });
    const snaps = [snapshot("alice:web"), { ...odd, cpuShare: null, memoryLimitBytes: null }, snapshot(":top", { vmm: null })];
    const ours = await scrape(snaps);
    // the reference: each family as a prom-client collector of the same series
    const load = createRequire(import.meta.url);
    const Registry = load("prom-client/lib/registry") as typeof Prom.Registry;
    const reg = new Registry();
    for (const d of UNIKERNEL_METRICS) {
      const values: Array<{ value: number; labels: Labels; sharedLabels: Labels }> = [];
      for (const u of snaps) {
        const base = baseLabels(u.name);
        const sh: Shared = { unikernel: base, iface: (i) => ifaceLabels(base, i) };
        for (const [labels, sharedLabels, value] of d.series(u, HOST, sh)) if (Number.isFinite(value)) values.push({ value, labels, sharedLabels });
      }
      reg.registerMetric({
        name: d.name,
        help: d.help,
        type: d.type,
        get: async () => ({ name: d.name, help: d.help, type: d.type, values, aggregator: "sum" }),
        reset: () => undefined,
      } as unknown as Prom.Metric);
    }
    const reference = await reg.metrics();
    assert.equal(ours.text.slice(0, reference.length), reference);
    assert.match(ours.text.slice(reference.length), /^\n# HELP dromedary_stats_hostd_connected /);
    // the same again from the reused buffer, and after a round with fewer unikernels
    const m = new StatsMetrics(
      () => HEALTH,
      () => 3500,
    );
    m.update(snaps, HOST);
    const first = await m.render();
    m.update(snaps, HOST);
    assert.equal(await m.render(), first);
    m.update([snaps[0]!], HOST);
    assert.doesNotMatch(await m.render(), /bob:db/);
  });

  const promtool = spawnSync("promtool", ["--version"]).status === 0;
  it("passes `promtool check metrics` (Prometheus' own lint)", { skip: promtool ? false : "promtool not installed (Debian: prometheus)" }, async () => {
    const { text } = await scrape([snapshot("alice:web"), snapshot("bob:db")]);
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = execFile("promtool", ["check", "metrics"], (e, stdout, stderr) =>
        resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
      p.stdin!.end(text);
    });
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.trim(), "", r.out);
  });
});

describe("the Grafana dashboard (packaging/grafana/dromedary.json)", () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { templating: { list: Array<{ name: string; type: string }> }; panels: unknown[] };

  it("every query names only metrics the daemon exports (from its registry)", () => {
    const exported = new Set(new StatsMetrics(() => HEALTH).registry.getMetricsAsArray().map((m) => m.name));
    const queries = dashboardQueries(dash);
    assert.ok(queries.length >= 15, `${queries.length} queries`);
    const used = new Set<string>();
    for (const q of queries) {
      const names = metricNames(q);
      assert.ok(names.length > 0, `no metric in ${q}`);
      for (const n of names) {
        assert.ok(exported.has(n), `${n} (in ${q}) is not exported by the stats daemon`);
        used.add(n);
      }
    }
    // CPU, memory, network and block per unikernel
    for (const n of [
      "dromedary_unikernel_cpu_seconds_total",
      "dromedary_unikernel_resident_memory_bytes",
      "dromedary_unikernel_network_receive_bytes_total",
      "dromedary_unikernel_network_transmit_bytes_total",
      "dromedary_unikernel_block_read_bytes_total",
      "dromedary_unikernel_block_written_bytes_total",
    ])
      assert.ok(used.has(n), `the dashboard does not show ${n}`);
  });

  it("the check would notice a metric the daemon does not export", () => {
    assert.deepEqual(metricNames('sum by (unikernel) (rate(dromedary_unikernel_cpu_secs_total{tenant=~"$tenant"}[5m]))'), [
      "dromedary_unikernel_cpu_secs_total",
    ]);
    assert.deepEqual(metricNames('time() - dromedary_unikernel_start_time_seconds{a="b"}'), ["dromedary_unikernel_start_time_seconds"]);
    assert.deepEqual(metricNames('label_values(dromedary_unikernel_start_time_seconds{tenant=~"$tenant"}, unikernel)'), [
      "dromedary_unikernel_start_time_seconds",
    ]);
    assert.deepEqual(metricNames("label_values(node_uname_info, tenant)"), ["node_uname_info"]);
  });

  it("has a tenant variable (and a unikernel one) that the panel queries filter on", () => {
    const vars = dash.templating.list.map((v) => v.name);
    assert.ok(vars.includes("tenant") && vars.includes("unikernel"), vars.join());
    const panelQueries = dashboardQueries(dash.panels).filter((q) => q.includes("dromedary_unikernel_"));
    for (const q of panelQueries) assert.match(q, /tenant=~"\$tenant"/, q);
  });
});
