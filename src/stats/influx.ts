// albatross-influx's Influx line protocol (daemon.md §5), byte for byte: one block per
// `Data statistics` message, lines joined by "\n" plus a final "\n", no timestamps.
// Pure; the process around it is influx-daemon.ts.

import type { Ifdata, KinfoMem, Rusage, StatsData, Timeval, VmmStat } from "../commands/types.js";
import { nameToString, type Name } from "../core/name.js";

const u64 = (v: bigint): string => `${BigInt.asUintN(64, v)}i`;
const u32 = (v: number): string => `${BigInt.asUintN(32, BigInt(v))}i`;
/** OCaml's `%ui` of a native int (63-bit, printed as the unsigned machine word) */
const uint = (v: number): string => `${BigInt.asUintN(64, BigInt(v))}i`;
const tv = (t: Timeval): string => `${BigInt.asUintN(64, t.seconds)}.${String(t.microseconds).padStart(6, "0")}`;

/** `<N>`: the label (default) or the full name text (--no-drop-path); a path-only name as its text. */
export function influxName(name: Name, noDropPath: boolean): string {
  if (noDropPath || name.label === null) return nameToString(name);
  return name.label;
}

function resourceUsage(vm: string, r: Rusage): string {
  return (
    `resource_usage,vm=${vm} utime=${tv(r.utime)},stime=${tv(r.stime)},maxrss=${u64(r.maxrss)},ixrss=${u64(r.ixrss)},` +
    `idrss=${u64(r.idrss)},isrss=${u64(r.isrss)},minflt=${u64(r.minflt)},maxflt=${u64(r.majflt)},nswap=${u64(r.nswap)},` +
    `inblock=${u64(r.inblock)},outblock=${u64(r.outblock)},msgsnd=${u64(r.msgsnd)},msgrcv=${u64(r.msgrcv)},` +
    `nsignals=${u64(r.nsignals)},nvcsw=${u64(r.nvcsw)},nivcsw=${u64(r.nivcsw)}`
  );
}

/** C's `%f`: six decimals (a negative uptime — start in the future — keeps its sign). */
const fixed6 = (x: number): string => (Number.isFinite(x) ? x.toFixed(6) : String(x));

function kinfoMem(vm: string, m: KinfoMem, nowSeconds: number): string {
  const started = Number(m.start.seconds) + m.start.microseconds / 1_000_000;
  return (
    `kinfo_mem,vm=${vm} vsize=${u64(m.vsize)},rss=${u64(m.rss)},tsize=${u64(m.tsize)},dsize=${u64(m.dsize)},` +
    `ssize=${u64(m.ssize)},cow_faults=${uint(m.cow)},runtime=${u64(m.runtime)},uptime=${fixed6(nowSeconds - started)}`
  );
}

/** vmm keys: `,` ` ` `=` escaped with a backslash (in this order, as upstream). */
const escapeKey = (k: string): string => k.split(",").join("\\,").split(" ").join("\\ ").split("=").join("\\=");

const vmm = (vm: string, xs: readonly VmmStat[]): string => `vmm,vm=${vm} ${xs.map((x) => `${escapeKey(x.key)}=${u64(x.value)}`).join(",")}`;

function iface(vm: string, i: Ifdata): string {
  return (
    `interface,vm=${vm},bridge=${i.bridge} send_queue_length=${u32(i.sendLength)},max_send_queue_length=${u32(i.maxSendLength)},` +
    `send_queue_drops=${u32(i.sendDrops)},mtu=${u32(i.mtu)},baudrate=${u64(i.baudrate)},vm_to_host_packets=${u64(i.inputPackets)},` +
    `vm_to_host_errors=${u64(i.inputErrors)},vm_to_host_bytes=${u64(i.inputBytes)},vm_to_host_mcast=${u64(i.inputMcast)},` +
    `vm_to_host_dropped=${u64(i.inputDropped)},collisions=${u64(i.collisions)},host_to_vm_packets=${u64(i.outputPackets)},` +
    `host_to_vm_errors=${u64(i.outputErrors)},host_to_vm_bytes=${u64(i.outputBytes)},host_to_vm_mcast=${u64(i.outputMcast)},` +
    `host_to_vm_dropped=${u64(i.outputDropped)}`
  );
}

/**
 * The block written for one message. `nowSeconds` is the current time (seconds since the
 * epoch, fractional) for `uptime`. `vm` and `bridge` are not escaped (as upstream; labels
 * cannot hold the characters that would need it).
 */
export function influxLines(name: Name, stats: StatsData, nowSeconds: number, noDropPath: boolean): string {
  const vm = influxName(name, noDropPath);
  const lines = [resourceUsage(vm, stats.rusage)];
  if (stats.kinfoMem !== undefined) lines.push(kinfoMem(vm, stats.kinfoMem, nowSeconds));
  if (stats.vmm !== undefined) lines.push(vmm(vm, stats.vmm));
  for (const i of stats.ifdata) lines.push(iface(vm, i));
  return `${lines.join("\n")}\n`;
}
