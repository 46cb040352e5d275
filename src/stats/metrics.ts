// The Prometheus view of a sampling round: which metric families exist and which series a
// unikernel contributes to each. Pure (prometheus.ts feeds these to prom-client).
//
// Prometheus conventions, not albatross' quirks: base units (bytes, seconds), `_total` for
// counters, one metric with a label where albatross has several fields. Labels of every
// series: `unikernel` (the full name, e.g. `alice:web`) and `tenant` (its path, `alice`;
// empty for a unikernel at the root); interfaces add `netif` (the unikernel's name for it),
// `bridge` (the host bridge) and `tap`. Network directions are the unikernel's: it
// receives what the tap transmits.

import { nameToString, pathToString, type Name } from "../core/name.js";
import type { StatsData } from "../commands/types.js";
import type { HostFacts, InterfaceReading, Readings } from "./sample.js";

/** What the daemon knows about one unikernel after a round. */
export interface UnikernelSnapshot {
  readonly name: Name;
  /** the value sent on the wire */
  readonly stats: StatsData;
  readonly readings: Readings;
  /** share of one core since the previous round (null: first round) */
  readonly cpuShare: number | null;
  /** guest memory from the tender's `--mem=` (null: unknown) */
  readonly memoryLimitBytes: number | null;
}

export type Labels = Readonly<Record<string, string>>;
/**
 * One series: the labels of its own (e.g. `mode`), the labels it shares with every series
 * of its unikernel or interface (one object per unikernel/interface, see `Shared`), its value.
 */
type Series = readonly [own: Labels, shared: Labels, value: number];

/** The shared label objects of a unikernel: `unikernel`, `tenant`; an interface's add netif, bridge, tap. */
export interface Shared {
  readonly unikernel: Labels;
  iface(i: InterfaceReading): Labels;
}

export interface MetricDef {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge";
  readonly labelNames: readonly string[];
  readonly series: (u: UnikernelSnapshot, host: HostFacts, shared: Shared) => readonly Series[];
}

const BASE = ["unikernel", "tenant"] as const;
const IFACE = [...BASE, "netif", "bridge", "tap"] as const;

export const baseLabels = (name: Name): Labels => ({ unikernel: nameToString(name), tenant: pathToString(name.path) });
export const ifaceLabels = (base: Labels, i: InterfaceReading): Labels => ({ ...base, netif: i.netif, bridge: i.bridge ?? "", tap: i.tap });

const NONE: Labels = Object.freeze({});
const USER: Labels = Object.freeze({ mode: "user" });
const SYSTEM: Labels = Object.freeze({ mode: "system" });
const MINOR: Labels = Object.freeze({ type: "minor" });
const MAJOR: Labels = Object.freeze({ type: "major" });
const VOLUNTARY: Labels = Object.freeze({ type: "voluntary" });
const INVOLUNTARY: Labels = Object.freeze({ type: "involuntary" });

/** `{ event }` label objects, one per KVM counter name (a fixed list: reader.ts KVM_COUNTERS). */
const EVENTS = new Map<string, Labels>();
const eventLabels = (event: string): Labels => {
  let l = EVENTS.get(event);
  if (l === undefined) EVENTS.set(event, (l = Object.freeze({ event })));
  return l;
};

const n = (v: bigint): number => Number(v);
const seconds = (t: { seconds: bigint; microseconds: number }): number => Number(t.seconds) + t.microseconds / 1e6;

function perInterface(pick: (r: InterfaceReading) => bigint): MetricDef["series"] {
  return (u, _h, sh) => u.readings.interfaces.map((i) => [NONE, sh.iface(i), n(pick(i))] as const);
}

function network(dir: "receive" | "transmit", what: string, help: string, pick: (r: InterfaceReading) => bigint): MetricDef {
  return { name: `dromedary_unikernel_network_${dir}_${what}_total`, help, type: "counter", labelNames: IFACE, series: perInterface(pick) };
}

/** Every per-unikernel metric family, in exposition order. */
export const UNIKERNEL_METRICS: readonly MetricDef[] = [
  {
    name: "dromedary_unikernel_cpu_seconds_total",
    help: "CPU time used by the unikernel's tender process, by mode (user, system)",
    type: "counter",
    labelNames: [...BASE, "mode"],
    series: (u, _h, sh) => [
      [USER, sh.unikernel, seconds(u.stats.rusage.utime)],
      [SYSTEM, sh.unikernel, seconds(u.stats.rusage.stime)],
    ],
  },
  {
    name: "dromedary_unikernel_cpu_usage_ratio",
    help: "Share of one CPU core used by the tender during the last sampling interval (1 = one core busy)",
    type: "gauge",
    labelNames: BASE,
    series: (u, _h, sh) => (u.cpuShare === null ? [] : [[NONE, sh.unikernel, u.cpuShare]]),
  },
  {
    name: "dromedary_unikernel_resident_memory_bytes",
    help: "Resident memory of the tender process (guest memory touched so far plus the tender)",
    type: "gauge",
    labelNames: BASE,
    series: (u, h, sh) => [[NONE, sh.unikernel, n(u.readings.stat.rss) * h.pageSize]],
  },
  {
    name: "dromedary_unikernel_virtual_memory_bytes",
    help: "Virtual memory size of the tender process",
    type: "gauge",
    labelNames: BASE,
    series: (u, _h, sh) => [[NONE, sh.unikernel, n(u.readings.stat.vsize)]],
  },
  {
    name: "dromedary_unikernel_memory_limit_bytes",
    help: "Guest memory the unikernel was given (--mem of its tender)",
    type: "gauge",
    labelNames: BASE,
    series: (u, _h, sh) => (u.memoryLimitBytes === null ? [] : [[NONE, sh.unikernel, u.memoryLimitBytes]]),
  },
  {
    name: "dromedary_unikernel_page_faults_total",
    help: "Page faults of the tender process, by type (minor, major)",
    type: "counter",
    labelNames: [...BASE, "type"],
    series: (u, _h, sh) => [
      [MINOR, sh.unikernel, n(u.readings.stat.minflt)],
      [MAJOR, sh.unikernel, n(u.readings.stat.majflt)],
    ],
  },
  {
    name: "dromedary_unikernel_context_switches_total",
    help: "Context switches of the tender process, by type (voluntary, involuntary)",
    type: "counter",
    labelNames: [...BASE, "type"],
    series: (u, _h, sh) => [
      [VOLUNTARY, sh.unikernel, n(u.readings.status.nvcsw)],
      [INVOLUNTARY, sh.unikernel, n(u.readings.status.nivcsw)],
    ],
  },
  {
    name: "dromedary_unikernel_start_time_seconds",
    help: "Start time of the tender process, seconds since the Unix epoch",
    type: "gauge",
    labelNames: BASE,
    series: (u, h, sh) => [[NONE, sh.unikernel, h.bootTime + n(u.readings.stat.starttime) / h.clockTick]],
  },
  {
    name: "dromedary_unikernel_block_read_bytes_total",
    help: "Bytes the tender caused to be read from storage (its block devices; page cache hits not counted)",
    type: "counter",
    labelNames: BASE,
    series: (u, _h, sh) => (u.readings.io === null ? [] : [[NONE, sh.unikernel, n(u.readings.io.readBytes)]]),
  },
  {
    name: "dromedary_unikernel_block_written_bytes_total",
    help: "Bytes the tender caused to be written to storage (its block devices)",
    type: "counter",
    labelNames: BASE,
    series: (u, _h, sh) => (u.readings.io === null ? [] : [[NONE, sh.unikernel, n(u.readings.io.writeBytes)]]),
  },
  {
    name: "dromedary_unikernel_io_read_bytes_total",
    help: "Bytes the tender read with system calls (block devices, taps, console)",
    type: "counter",
    labelNames: BASE,
    series: (u, _h, sh) => (u.readings.io === null ? [] : [[NONE, sh.unikernel, n(u.readings.io.rchar)]]),
  },
  {
    name: "dromedary_unikernel_io_written_bytes_total",
    help: "Bytes the tender wrote with system calls (block devices, taps, console output)",
    type: "counter",
    labelNames: BASE,
    series: (u, _h, sh) => (u.readings.io === null ? [] : [[NONE, sh.unikernel, n(u.readings.io.wchar)]]),
  },
  network("receive", "bytes", "Bytes received by the unikernel on this interface (its tap's transmit counter)", (i) => i.counters.txBytes),
  network("receive", "packets", "Packets received by the unikernel on this interface", (i) => i.counters.txPackets),
  network("receive", "errors", "Errors on the way to the unikernel on this interface", (i) => i.counters.txErrors),
  network("receive", "drops", "Packets for the unikernel dropped on this interface", (i) => i.counters.txDropped),
  network("transmit", "bytes", "Bytes sent by the unikernel on this interface (its tap's receive counter)", (i) => i.counters.rxBytes),
  network("transmit", "packets", "Packets sent by the unikernel on this interface", (i) => i.counters.rxPackets),
  network("transmit", "errors", "Errors in what the unikernel sent on this interface", (i) => i.counters.rxErrors),
  network("transmit", "drops", "Packets from the unikernel dropped on this interface", (i) => i.counters.rxDropped),
  {
    name: "dromedary_unikernel_vmm_events_total",
    help: "KVM counters of the unikernel's virtual machine (hvt tenders; from debugfs), by event",
    type: "counter",
    labelNames: [...BASE, "event"],
    series: (u, _h, sh) => (u.readings.vmm ?? []).map((v) => [eventLabels(v.key), sh.unikernel, n(v.value)] as const),
  },
];

/** The daemon's own health. */
export const HEALTH_METRICS = {
  hostdConnected: { name: "dromedary_stats_hostd_connected", help: "1 while the stats daemon is connected to hostd" },
  lastSampleAge: { name: "dromedary_stats_last_sample_age_seconds", help: "Seconds since the last sampling round ended" },
  sampleDuration: { name: "dromedary_stats_sample_duration_seconds", help: "Duration of the last sampling round" },
  samples: { name: "dromedary_stats_samples_total", help: "Sampling rounds done" },
  readErrors: { name: "dromedary_stats_read_errors_total", help: "Unikernel samples skipped because a /proc or /sys file did not parse" },
  unikernels: { name: "dromedary_stats_unikernels", help: "Unikernels registered by hostd" },
  subscribers: { name: "dromedary_stats_subscribers", help: "Statistics subscriptions (stats clients, influx exporters)" },
  connections: { name: "dromedary_stats_connections", help: "Open connections on the stats socket (hostd's included)" },
} as const;
