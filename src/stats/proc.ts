// Parsers for the Linux files the stats daemon samples (daemon.md §4): /proc/<pid>/stat,
// statm, status, io and cmdline, /proc/net/dev, /proc/stat, /proc/self/auxv, the sysfs
// attributes of an interface and KVM's debugfs counters. Pure: text in, typed value or a
// one-line error out (the shell reports it and keeps going).
//
// Field positions follow albatross (albatross_stats_pure.ml `linux_rusage`): /proc/<pid>/stat
// is split around the parenthesised command name (which may contain spaces and parentheses)
// into [pid, comm, field3, ...], at least 52 entries; statm needs at least 7.

import { err, ok, type Result } from "../core/result.js";

/** The fields of /proc/<pid>/stat that are used (counts as the kernel keeps them). */
export interface ProcStat {
  readonly minflt: bigint;
  readonly majflt: bigint;
  /** clock ticks */
  readonly utime: bigint;
  /** clock ticks */
  readonly stime: bigint;
  /** clock ticks after boot (field 22) */
  readonly starttime: bigint;
  /** bytes */
  readonly vsize: bigint;
  /** pages */
  readonly rss: bigint;
  readonly nswap: bigint;
}

const INT = /^-?[0-9]{1,20}$/;

/** A decimal integer as albatross' Int64.of_string reads the kernel's fields (no junk). */
function int64(s: string | undefined): bigint | null {
  if (s === undefined || !INT.test(s)) return null;
  const v = BigInt(s);
  return v > 0x7fffffffffffffffn || v < -0x8000000000000000n ? null : v;
}

const firstLine = (text: string): string => {
  const nl = text.indexOf("\n");
  return nl < 0 ? text : text.slice(0, nl);
};

/** The fields of /proc/<pid>/stat that are read, by index in [pid, comm, field3, ...]. */
const STAT_FIELDS = [9, 11, 13, 14, 21, 22, 23, 35] as const;

/** /proc/<pid>/stat. The fields are scanned in place (no array of 50 strings per read). */
export function parseProcStat(text: string): Result<ProcStat> {
  const nl = text.indexOf("\n");
  const end = nl < 0 ? text.length : nl;
  const a = text.indexOf("(");
  const b = text.lastIndexOf(")", end - 1);
  if (a < 1 || a >= end || b < a || text.charAt(b + 1) !== " ") return err("unable to parse /proc/<pid>/stat (no command name in parentheses)");
  const v: Array<bigint | null> = [null, null, null, null, null, null, null, null];
  // fields as split(" ") of the text after ") " would give them, from index 2
  let idx = 2;
  let k = 0;
  let pos = b + 2;
  for (;;) {
    let sp = text.indexOf(" ", pos);
    if (sp < 0 || sp > end) sp = end;
    if (idx === STAT_FIELDS[k]) v[k++] = int64(text.slice(pos, sp));
    idx++;
    if (sp === end) break;
    pos = sp + 1;
  }
  if (idx < 52) return err(`couldn't read /proc/<pid>/stat (${idx} fields, at least 52 expected)`);
  const [minflt, majflt, utime, stime, starttime, vsize, rss, nswap] = v;
  if (minflt == null || majflt == null || utime == null || stime == null || starttime == null || vsize == null || rss == null || nswap == null)
    return err("couldn't parse integer in /proc/<pid>/stat");
  return ok({ minflt, majflt, utime, stime, starttime, vsize, rss, nswap });
}

export interface ProcStatm {
  /** pages of text (field 4) */
  readonly tsize: bigint;
  /** pages of data + stack (field 6) */
  readonly dsize: bigint;
}

/** /proc/<pid>/statm. */
export function parseStatm(text: string): Result<ProcStatm> {
  const f = firstLine(text).split(" ");
  if (f.length < 7) return err(`couldn't read /proc/<pid>/statm (${f.length} fields, at least 7 expected)`);
  const tsize = int64(f[3]);
  const dsize = int64(f[5]);
  if (tsize === null || dsize === null) return err("couldn't parse integer in /proc/<pid>/statm");
  return ok({ tsize, dsize });
}

export interface ProcStatus {
  readonly nvcsw: bigint;
  readonly nivcsw: bigint;
}

/** The context switch counts of /proc/<pid>/status (`Key:\tvalue` lines, near its end). */
export function parseStatus(text: string): Result<ProcStatus> {
  const field = (key: string): bigint | null | undefined => {
    const at = text.lastIndexOf(`\n${key}:`);
    if (at < 0 && !text.startsWith(`${key}:`)) return undefined;
    const from = at < 0 ? key.length + 1 : at + key.length + 2;
    const nl = text.indexOf("\n", from);
    return int64(text.slice(from, nl < 0 ? undefined : nl).trim());
  };
  const nvcsw = field("voluntary_ctxt_switches");
  const nivcsw = field("nonvoluntary_ctxt_switches");
  if (nvcsw === undefined || nivcsw === undefined) return err("error parsing /proc/<pid>/status (no context switch counts)");
  if (nvcsw === null || nivcsw === null) return err("error parsing /proc/<pid>/status (context switch count not an integer)");
  return ok({ nvcsw, nivcsw });
}

/** /proc/<pid>/io (proc(5)): every read/write system call, and what reached the storage layer. */
export interface ProcIo {
  /** bytes through read()-like calls: block devices, console, taps */
  readonly rchar: bigint;
  readonly wchar: bigint;
  readonly syscr: bigint;
  readonly syscw: bigint;
  /** bytes fetched from storage (page cache hits not counted) */
  readonly readBytes: bigint;
  /** bytes sent to storage (counted when pages are dirtied) */
  readonly writeBytes: bigint;
  readonly cancelledWriteBytes: bigint;
}

const IO_KEYS = {
  rchar: "rchar",
  wchar: "wchar",
  syscr: "syscr",
  syscw: "syscw",
  read_bytes: "readBytes",
  write_bytes: "writeBytes",
  cancelled_write_bytes: "cancelledWriteBytes",
} as const;

export function parseProcIo(text: string): Result<ProcIo> {
  const out: Partial<Record<keyof ProcIo, bigint>> = {};
  for (const line of text.split("\n")) {
    const c = line.indexOf(":");
    if (c < 0) continue;
    const key = IO_KEYS[line.slice(0, c) as keyof typeof IO_KEYS];
    if (key === undefined) continue;
    const v = int64(line.slice(c + 1).trim());
    if (v === null) return err(`error parsing /proc/<pid>/io (${line.slice(0, c)} not an integer)`);
    out[key] = v;
  }
  for (const k of Object.values(IO_KEYS)) if (out[k] === undefined) return err(`error parsing /proc/<pid>/io (no ${k})`);
  return ok(out as ProcIo);
}

/** One interface's counters from /proc/net/dev (the kernel's dev_get_stats, as sysfs' statistics/). */
export interface NetCounters {
  readonly rxBytes: bigint;
  readonly rxPackets: bigint;
  readonly rxErrors: bigint;
  readonly rxDropped: bigint;
  readonly multicast: bigint;
  readonly txBytes: bigint;
  readonly txPackets: bigint;
  readonly txErrors: bigint;
  readonly txDropped: bigint;
  readonly collisions: bigint;
}

/**
 * /proc/net/dev: two header lines, then `name: rx(bytes packets errs drop fifo frame
 * compressed multicast) tx(bytes packets errs drop fifo colls carrier compressed)`.
 * Malformed lines are skipped and named in `errors`.
 */
export function parseNetDev(text: string): { readonly counters: Map<string, NetCounters>; readonly errors: readonly string[] } {
  const counters = new Map<string, NetCounters>();
  const errors: string[] = [];
  const n: bigint[] = [];
  let lineNo = 0;
  let from = 0;
  // line by line and field by field in place: /proc/net/dev has a line per interface and
  // is read every round
  while (from < text.length) {
    const nl = text.indexOf("\n", from);
    const end = nl < 0 ? text.length : nl;
    const start = from;
    from = end + 1;
    if (++lineNo <= 2) continue;
    const c = text.indexOf(":", start);
    const colon = c >= 0 && c < end ? c : -1;
    const name = colon < 0 ? "" : text.slice(start, colon).trim();
    if (name === "" && text.slice(start, end).trim() === "") continue;
    // the first 16 whitespace-separated fields after the colon, each 1 to 20 digits
    n.length = 0;
    let fields = 0;
    let good = colon >= 0;
    let i = colon + 1;
    while (good && i < end) {
      const ch = text.charCodeAt(i);
      if (ch === 0x20 || ch === 0x09 || ch === 0x0d || ch === 0x0b || ch === 0x0c) {
        i++;
        continue;
      }
      let j = i;
      while (j < end && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
      const stop = j < end ? text.charCodeAt(j) : 0x20;
      if (stop !== 0x20 && stop !== 0x09 && stop !== 0x0d && stop !== 0x0b && stop !== 0x0c) {
        // a field that is not all digits: bad only among the first 16
        if (fields < 16) good = false;
        while (j < end && !/\s/.test(text.charAt(j))) j++;
      } else if (fields < 16) {
        if (j - i > 20) good = false;
        else n.push(j - i <= 15 ? BigInt(Number(text.slice(i, j))) : BigInt(text.slice(i, j)));
      }
      fields++;
      i = j;
    }
    if (name === "" || !good || fields < 16) {
      errors.push(`malformed /proc/net/dev line ${lineNo}: ${JSON.stringify(text.slice(start, Math.min(end, start + 80)))}`);
      continue;
    }
    counters.set(name, {
      rxBytes: n[0]!,
      rxPackets: n[1]!,
      rxErrors: n[2]!,
      rxDropped: n[3]!,
      multicast: n[7]!,
      txBytes: n[8]!,
      txPackets: n[9]!,
      txErrors: n[10]!,
      txDropped: n[11]!,
      collisions: n[13]!,
    });
  }
  return { counters, errors };
}

const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const IFF_LOWER_UP = 0x10000;
const IFF_DORMANT = 0x20000;

/** The sysfs attributes of an interface that albatross reports (via netlink) besides counters. */
export interface LinkAttributes {
  /** `flags`, e.g. "0x1003" */
  readonly flags: string;
  /** `mtu` */
  readonly mtu: string;
  /** `operstate`, `carrier`, `dormant` (carrier and dormant fail to read while down: null) */
  readonly operstate: string | null;
  readonly carrier: string | null;
  readonly dormant: string | null;
}

/**
 * Flags and MTU as netlink's ifi_flags (dev_get_flags) report them: sysfs' `flags` lacks
 * RUNNING/LOWER_UP/DORMANT, which are derived from operstate/carrier/dormant.
 */
export function parseLink(a: LinkAttributes): Result<{ readonly flags: number; readonly mtu: number }> {
  const flagsText = a.flags.trim();
  const mtuText = a.mtu.trim();
  if (!/^0x[0-9a-fA-F]{1,8}$/.test(flagsText)) return err(`interface flags ${JSON.stringify(flagsText.slice(0, 20))} not hexadecimal`);
  if (!/^[0-9]{1,10}$/.test(mtuText)) return err(`interface mtu ${JSON.stringify(mtuText.slice(0, 20))} not a number`);
  let flags = Number.parseInt(flagsText.slice(2), 16) & ~(IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT);
  if (flags & IFF_UP) {
    const oper = a.operstate?.trim();
    if (oper === "up" || oper === "unknown") flags |= IFF_RUNNING;
    if (a.carrier?.trim() === "1") flags |= IFF_LOWER_UP;
    if (a.dormant?.trim() === "1") flags |= IFF_DORMANT;
  }
  return ok({ flags: flags | 0, mtu: Number(mtuText) | 0 });
}

/** `btime` of /proc/stat: the boot time in seconds since the epoch. */
export function parseBootTime(text: string): Result<number> {
  const m = /^btime ([0-9]{1,15})$/m.exec(text);
  return m === null ? err("no btime line in /proc/stat") : ok(Number(m[1]));
}

const AT_PAGESZ = 6n;
const AT_CLKTCK = 17n;

/**
 * Page size and clock tick (sysconf's _SC_PAGESIZE and _SC_CLK_TCK) from the auxiliary
 * vector the kernel handed this process (/proc/self/auxv: pairs of native words, 64-bit
 * little or big endian as the host).
 */
export function parseAuxv(buf: Uint8Array, littleEndian = true): Result<{ readonly pageSize: number; readonly clockTick: number }> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pageSize: number | null = null;
  let clockTick: number | null = null;
  for (let off = 0; off + 16 <= buf.length; off += 16) {
    const type = dv.getBigUint64(off, littleEndian);
    const value = dv.getBigUint64(off + 8, littleEndian);
    if (type === 0n) break;
    if (type === AT_PAGESZ) pageSize = Number(value);
    else if (type === AT_CLKTCK) clockTick = Number(value);
  }
  if (pageSize === null || clockTick === null || pageSize <= 0 || clockTick <= 0) return err("no AT_PAGESZ/AT_CLKTCK in the auxiliary vector");
  return ok({ pageSize, clockTick });
}

/**
 * The guest memory in MB from a Solo5 tender's command line (/proc/<pid>/cmdline, NUL
 * separated): `--mem=N` before the kernel image (hostd always passes it). null if absent.
 */
export function tenderMemoryMB(cmdline: string): number | null {
  for (const a of cmdline.split("\0")) {
    if (a === "--") break;
    const m = /^--mem=([0-9]{1,9})$/.exec(a);
    if (m !== null) return Number(m[1]);
  }
  return null;
}

/** A KVM debugfs statistic file: one unsigned decimal (histograms and others: null). */
export function parseKvmCounter(text: string): bigint | null {
  const t = text.trim();
  if (!/^[0-9]{1,20}$/.test(t)) return null;
  const v = BigInt(t);
  return v > 0xffffffffffffffffn ? null : v;
}

/** `<pid>-<fd>`: the name of a VM's directory under <debugfs>/kvm. */
export function kvmVmDir(name: string): { readonly pid: number; readonly fd: number } | null {
  const m = /^([0-9]{1,10})-([0-9]{1,10})$/.exec(name);
  return m === null ? null : { pid: Number(m[1]), fd: Number(m[2]) };
}
