// From what the kernel says about a tender to what albatross-stats sends (daemon.md §4,
// wire.md §9), plus what Dromedary adds for Prometheus. Pure.
//
// On the wire the values are albatross' own, Linux quirks included: rss in pages (also as
// maxrss), utime/stime from clock ticks, the start time from the ctime of /proc/<pid>,
// zeros where Linux has no field (ixrss, idrss, isrss, inblock, outblock, msgsnd, msgrcv,
// nsignals, cow), the interface list in reverse order of registration with the netif name
// in `bridge`, and `vmm` absent unless KVM counters were read (albatross never sends them
// on Linux; Dromedary fills them from KVM's debugfs when it can).

import type { Ifdata, KinfoMem, Rusage, StatsData, Timeval, VmmStat } from "../commands/types.js";
import type { NetCounters, ProcIo, ProcStat, ProcStatm, ProcStatus } from "./proc.js";

/** One registered tap, as read this round. */
export interface InterfaceReading {
  /** the unikernel-side name (albatross puts it into `bridge`) */
  readonly netif: string;
  readonly tap: string;
  /** the bridge the tap is a port of (sysfs `master`), if any */
  readonly bridge: string | null;
  readonly flags: number;
  readonly mtu: number;
  readonly counters: NetCounters;
}

/** Everything read about one tender in one round. */
export interface Readings {
  readonly stat: ProcStat;
  readonly statm: ProcStatm;
  readonly status: ProcStatus;
  /** ctime of /proc/<pid> (albatross' "start") */
  readonly procCtime: Timeval;
  /** null: /proc/<pid>/io not readable */
  readonly io: ProcIo | null;
  /** in registration order; interfaces that could not be read are left out */
  readonly interfaces: readonly InterfaceReading[];
  /** null: no KVM counters */
  readonly vmm: readonly VmmStat[] | null;
}

/** Host facts needed for the conversions (sysconf values and the boot time). */
export interface HostFacts {
  readonly clockTick: number;
  readonly pageSize: number;
  /** seconds since the epoch (btime of /proc/stat) */
  readonly bootTime: number;
}

/** Clock ticks as albatross' `time_of_int64`: (seconds, microseconds). */
export function ticksToTimeval(t: bigint, clockTick: number): Timeval {
  const tick = BigInt(clockTick);
  return { seconds: t / tick, microseconds: Number(((t % tick) * 1_000_000n) / tick) };
}

/** The albatross `Data statistics` value. */
export function statsData(r: Readings, clockTick: number): StatsData {
  const { stat, statm, status } = r;
  const tick = BigInt(clockTick);
  const rusage: Rusage = {
    utime: ticksToTimeval(stat.utime, clockTick),
    stime: ticksToTimeval(stat.stime, clockTick),
    maxrss: stat.rss,
    ixrss: 0n,
    idrss: 0n,
    isrss: 0n,
    minflt: stat.minflt,
    majflt: stat.majflt,
    nswap: stat.nswap,
    inblock: 0n,
    outblock: 0n,
    msgsnd: 0n,
    msgrcv: 0n,
    nsignals: 0n,
    nvcsw: status.nvcsw,
    nivcsw: status.nivcsw,
  };
  const kinfoMem: KinfoMem = {
    vsize: stat.vsize,
    rss: stat.rss,
    tsize: statm.tsize,
    dsize: statm.dsize,
    ssize: statm.dsize,
    runtime: ((stat.utime + stat.stime) * 1_000_000n) / tick,
    cow: 0,
    start: r.procCtime,
  };
  // upstream folds the (netif, tap) list onto an empty list: the result is reversed
  const ifdata: Ifdata[] = [];
  for (let i = r.interfaces.length - 1; i >= 0; i--) ifdata.push(ifdataOf(r.interfaces[i]!));
  return { rusage, ifdata, ...(r.vmm !== null ? { vmm: r.vmm } : {}), kinfoMem };
}

/** albatross' netlink mapping; tap "input" (rx) is traffic from the unikernel to the host. */
function ifdataOf(i: InterfaceReading): Ifdata {
  const c = i.counters;
  return {
    bridge: i.netif,
    flags: i.flags,
    sendLength: 0,
    maxSendLength: 0,
    sendDrops: 0,
    mtu: i.mtu,
    baudrate: 0n,
    inputPackets: c.rxPackets,
    inputErrors: c.rxErrors,
    outputPackets: c.txPackets,
    outputErrors: c.txErrors,
    collisions: c.collisions,
    inputBytes: c.rxBytes,
    outputBytes: c.txBytes,
    inputMcast: c.multicast,
    outputMcast: 0n,
    inputDropped: c.rxDropped,
    outputDropped: c.txDropped,
  };
}

/** CPU time used so far, for the share per interval. */
export interface CpuMark {
  /** utime + stime, clock ticks */
  readonly ticks: bigint;
  /** when it was read, ms (monotonic) */
  readonly atMs: number;
}

/**
 * Share of one core used between two readings (1 = one core busy all the time); null for
 * the first reading, a clock that did not advance, or counts that went backwards.
 */
export function cpuShare(prev: CpuMark | undefined, cur: CpuMark, clockTick: number): number | null {
  if (prev === undefined || cur.atMs <= prev.atMs || cur.ticks < prev.ticks) return null;
  return Number(cur.ticks - prev.ticks) / clockTick / ((cur.atMs - prev.atMs) / 1000);
}
