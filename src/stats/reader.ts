// Reading the kernel's numbers about the registered tenders (the stats daemon's file I/O).
// No process is spawned: per unikernel the /proc and sysfs files are opened once, at the
// first sample after its registration, and re-read in place every round (pread at offset
// 0 regenerates procfs/sysfs/debugfs contents). A kept /proc/<pid> descriptor also pins
// the process: once it is reaped, reading fails with ESRCH instead of silently reading a
// new process that got the same pid. Interface counters come from one read of
// /proc/net/dev per round (the same dev_get_stats numbers as sysfs' statistics/ files, for
// every interface at once), flags and MTU from the tap's sysfs attributes (re-read every
// LINK_TTL_MS).
//
// Reads are synchronous: a round is a few thousand small reads (measured: ~5 µs each), far
// cheaper than a thread-pool round trip each; the event loop is held for the round only.
//
// The roots are options so tests can point them at directories they build.

import fs from "node:fs";
import { join } from "node:path";
import type { Timeval, VmmStat } from "../commands/types.js";
import type { Nic, Registration } from "./registry.js";
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
  type NetCounters,
} from "./proc.js";
import type { CpuMark, HostFacts, InterfaceReading, Readings } from "./sample.js";

export interface ReaderOptions {
  /** default /proc */
  readonly procRoot?: string;
  /** default /sys */
  readonly sysRoot?: string;
  /** where debugfs is mounted (KVM's per-VM counters are in <root>/kvm); default /sys/kernel/debug */
  readonly debugfsRoot?: string;
  /** read /proc/<pid>/io (block and console I/O: only Prometheus shows it); default true */
  readonly io?: boolean;
  readonly log: (level: "debug" | "info" | "warn", line: string) => void;
}

/**
 * The KVM counters reported (in this order) when present: the cumulative per-VM sums of
 * the vCPU exit and event counters (linux/arch/x86/kvm/x86.c kvm_vcpu_stats_desc).
 */
const KVM_COUNTERS = [
  "exits",
  "io_exits",
  "mmio_exits",
  "irq_exits",
  "halt_exits",
  "signal_exits",
  "irq_window_exits",
  "nmi_window_exits",
  "request_irq_exits",
  "halt_wakeup",
  "halt_successful_poll",
  "halt_attempted_poll",
  "insn_emulation",
  "insn_emulation_fail",
  "irq_injections",
  "nmi_injections",
  "hypercalls",
  "pf_fixed",
  "pf_guest",
  "tlb_flush",
  "remote_tlb_flush",
] as const;

/** Largest file read (status is ~1.5 KiB; net/dev grows with the interfaces). */
const MAX_FILE = 1 << 20;

type ReadResult = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly code: string };

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));

/** Interface names are at most 15 bytes and never `/`, `.` or `..` (hostile Stats_add input). */
const isIfName = (s: string): boolean => /^[^/\s:]{1,15}$/.test(s) && s !== "." && s !== "..";

class Reader {
  private buf = Buffer.allocUnsafe(16384);

  /**
   * pread the whole file at `fd` from offset 0. `records`: a file the kernel makes of many
   * records (a seq_file such as /proc/net/dev) hands out about one page per read, so a short
   * read is not its end: read until 0. The others (one record: /proc/<pid>/stat, statm,
   * status, io, sysfs and debugfs attributes) come whole in one read, and a short read is
   * the end, which saves the second read that would return 0.
   */
  read(fd: number, records = false): ReadResult {
    try {
      let len = 0;
      for (;;) {
        if (len === this.buf.length) {
          if (len >= MAX_FILE) break;
          const bigger = Buffer.allocUnsafe(this.buf.length * 2);
          this.buf.copy(bigger, 0, 0, len);
          this.buf = bigger;
        }
        const want = this.buf.length - len;
        const n = fs.readSync(fd, this.buf, len, want, len);
        len += n;
        if (records ? n === 0 : n < want) break;
      }
      return { ok: true, text: this.buf.toString("latin1", 0, len) };
    } catch (e) {
      return { ok: false, code: errCode(e) };
    }
  }
}

function openFd(path: string): { fd: number } | { code: string } {
  try {
    return { fd: fs.openSync(path, fs.constants.O_RDONLY) };
  } catch (e) {
    return { code: errCode(e) };
  }
}

const closeFd = (fd: number): void => {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
};

/**
 * How long an interface's flags and MTU are reused before they are read again. They change
 * only when someone changes the link; re-reading four sysfs files per tap every round would
 * be most of a round's reads. (The counters are read every round.)
 */
const LINK_TTL_MS = 30_000;

interface IfHandles {
  readonly nic: Nic;
  readonly bridge: string | null;
  /** flags and MTU as last read, and when (ms, the round's clock) */
  link: { readonly flags: number; readonly mtu: number; readonly atMs: number } | null;
  /** flags, mtu, operstate, carrier (a tap is never dormant: that flag is left out) */
  readonly fds: readonly number[];
}

interface KvmHandles {
  readonly dir: string;
  readonly fds: ReadonlyArray<readonly [string, number]>;
}

/** What is held open for one registration. */
interface Handles {
  readonly reg: Registration;
  stat: number;
  statm: number;
  status: number;
  io: number | null;
  procCtime: Timeval;
  memoryMB: number | null;
  ifaces: (IfHandles | null)[];
  kvm: KvmHandles | null;
  malformedReported: boolean;
  lastCpu: CpuMark | undefined;
}

export type ReadOutcome =
  | { readonly kind: "ok"; readonly readings: Readings; readonly memoryMB: number | null; readonly cpu: CpuMark; readonly prevCpu: CpuMark | undefined }
  | { readonly kind: "gone"; readonly why: string }
  | { readonly kind: "malformed"; readonly error: string; readonly firstTime: boolean };

export class Sampler {
  readonly proc: string;
  readonly sys: string;
  readonly debugfs: string;
  readonly host: HostFacts;
  private readonly log: ReaderOptions["log"];
  private readonly withIo: boolean;
  private readonly reader = new Reader();
  private readonly handles = new Map<Registration, Handles>();
  private readonly reported = new Set<string>();
  private netDev = new Map<string, NetCounters>();
  private kvmDirs = new Map<number, string>();

  constructor(opts: ReaderOptions) {
    this.proc = opts.procRoot ?? "/proc";
    this.sys = opts.sysRoot ?? "/sys";
    this.debugfs = opts.debugfsRoot ?? "/sys/kernel/debug";
    this.log = opts.log;
    this.withIo = opts.io ?? true;
    this.host = this.hostFacts();
  }

  /** Log `line` only the first time `key` comes up. */
  private once(key: string, level: "info" | "warn", line: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.log(level, line);
  }

  private hostFacts(): HostFacts {
    let pageSize = 4096;
    let clockTick = 100;
    let bootTime = 0;
    try {
      const a = parseAuxv(fs.readFileSync(join(this.proc, "self", "auxv")));
      if (a.ok) ({ pageSize, clockTick } = a.value);
      else this.log("warn", `${join(this.proc, "self", "auxv")}: ${a.error}; assuming 4096-byte pages and 100 ticks per second`);
    } catch (e) {
      this.log("warn", `${join(this.proc, "self", "auxv")}: ${errCode(e)}; assuming 4096-byte pages and 100 ticks per second`);
    }
    try {
      const b = parseBootTime(fs.readFileSync(join(this.proc, "stat"), "latin1"));
      if (b.ok) bootTime = b.value;
      else this.log("warn", `${join(this.proc, "stat")}: ${b.error}; start times are relative to boot`);
    } catch (e) {
      this.log("warn", `${join(this.proc, "stat")}: ${errCode(e)}; start times are relative to boot`);
    }
    return { pageSize, clockTick, bootTime };
  }

  /** The taps of a Stats_add that exist (upstream skips those without an ifindex). */
  resolveNics(nics: readonly Nic[]): Nic[] {
    return nics.filter((n) => {
      if (!isIfName(n.tap)) {
        this.log("debug", `ignoring tap ${JSON.stringify(n.tap)}: not an interface name`);
        return false;
      }
      const ok = fs.existsSync(join(this.sys, "class", "net", n.tap, "ifindex"));
      if (!ok) this.log("debug", `failed to get ifindex for: ${n.tap}`);
      return ok;
    });
  }

  /** Once per round, before the reads: interface counters and the KVM directory. */
  beginRound(needKvm: boolean): void {
    const dev = openFd(join(this.proc, "net", "dev"));
    if ("code" in dev) {
      this.once(`netdev:${dev.code}`, "warn", `cannot read ${join(this.proc, "net", "dev")} (${dev.code}): interface statistics left out`);
      this.netDev = new Map();
    } else {
      const r = this.reader.read(dev.fd, true);
      closeFd(dev.fd);
      if (!r.ok) {
        this.once(`netdev:${r.code}`, "warn", `cannot read ${join(this.proc, "net", "dev")} (${r.code}): interface statistics left out`);
        this.netDev = new Map();
      } else {
        const p = parseNetDev(r.text);
        for (const e of p.errors) this.once(`netdev:${e}`, "warn", `${e} (skipped)`);
        this.netDev = p.counters;
      }
    }
    if (needKvm) this.scanKvm();
  }

  private scanKvm(): void {
    const dir = join(this.debugfs, "kvm");
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (e) {
      const code = errCode(e);
      const why = code === "ENOENT" ? "debugfs is not mounted there or this host has no KVM" : code === "EACCES" ? "debugfs is only readable by root" : code;
      this.once(`kvm:${code}`, "info", `no VMM counters: cannot read ${dir} (${code}: ${why}); the vmm field stays absent`);
      this.kvmDirs = new Map();
      return;
    }
    const m = new Map<number, string>();
    for (const n of names) {
      const v = kvmVmDir(n);
      if (v !== null && !m.has(v.pid)) m.set(v.pid, join(dir, n));
    }
    this.kvmDirs = m;
  }

  /** Whether a registration still lacks KVM counters (so beginRound should look). */
  wantsKvm(reg: Registration): boolean {
    const h = this.handles.get(reg);
    return h === undefined || h.kvm === null;
  }

  private openHandles(reg: Registration): Handles | { gone: string } {
    const base = join(this.proc, String(reg.pid));
    const stat = openFd(join(base, "stat"));
    if ("code" in stat) return { gone: `${join(base, "stat")}: ${stat.code}` };
    const statm = openFd(join(base, "statm"));
    const status = openFd(join(base, "status"));
    if ("code" in statm || "code" in status) {
      closeFd(stat.fd);
      if ("fd" in statm) closeFd(statm.fd);
      if ("fd" in status) closeFd(status.fd);
      return { gone: `${base}: ${"code" in statm ? statm.code : (status as { code: string }).code}` };
    }
    let procCtime: Timeval = { seconds: 0n, microseconds: 0 };
    try {
      const ns = fs.statSync(base, { bigint: true }).ctimeNs;
      procCtime = { seconds: ns / 1_000_000_000n, microseconds: Number((ns % 1_000_000_000n) / 1000n) };
    } catch {
      /* the ctime stays 0, as a failed stat would have made upstream drop it: the next read tells */
    }
    const io = this.withIo ? openFd(join(base, "io")) : { code: "" };
    if ("code" in io && io.code !== "") {
      const hint = io.code === "EACCES" || io.code === "EPERM" ? " (run the stats daemon as the tenders' user, or give it CAP_SYS_PTRACE)" : "";
      this.once(`io:${io.code}`, "info", `no block I/O statistics: cannot read ${join(base, "io")}: ${io.code}${hint}`);
    }
    let memoryMB: number | null = null;
    try {
      memoryMB = tenderMemoryMB(fs.readFileSync(join(base, "cmdline"), "latin1"));
    } catch {
      /* unknown */
    }
    const h: Handles = {
      reg,
      stat: stat.fd,
      statm: statm.fd,
      status: status.fd,
      io: "fd" in io ? io.fd : null,
      procCtime,
      memoryMB,
      ifaces: reg.nics.map(() => null),
      kvm: null,
      malformedReported: false,
      lastCpu: undefined,
    };
    this.handles.set(reg, h);
    return h;
  }

  private openIface(nic: Nic): IfHandles | null {
    if (!isIfName(nic.tap)) return null;
    const dir = join(this.sys, "class", "net", nic.tap);
    const fds: number[] = [];
    for (const f of ["flags", "mtu", "operstate", "carrier"]) {
      const o = openFd(join(dir, f));
      if ("code" in o) {
        for (const fd of fds) closeFd(fd);
        return null;
      }
      fds.push(o.fd);
    }
    let bridge: string | null = null;
    try {
      const target = fs.readlinkSync(join(dir, "master"));
      bridge = target.slice(target.lastIndexOf("/") + 1);
    } catch {
      /* not a bridge port */
    }
    return { nic, bridge, fds, link: null };
  }

  private closeIface(i: IfHandles): void {
    for (const fd of i.fds) closeFd(fd);
  }

  private openKvm(pid: number): KvmHandles | null {
    const dir = this.kvmDirs.get(pid);
    if (dir === undefined) return null;
    const fds: Array<readonly [string, number]> = [];
    for (const key of KVM_COUNTERS) {
      const o = openFd(join(dir, key));
      if ("fd" in o) fds.push([key, o.fd]);
    }
    if (fds.length === 0) {
      this.once(`kvm-empty:${dir}`, "info", `no VMM counters in ${dir}`);
      return null;
    }
    return { dir, fds };
  }

  private closeKvm(k: KvmHandles): void {
    for (const [, fd] of k.fds) closeFd(fd);
  }

  /** Release what is held for a registration that ended. */
  release(reg: Registration): void {
    const h = this.handles.get(reg);
    if (h === undefined) return;
    this.handles.delete(reg);
    for (const fd of [h.stat, h.statm, h.status]) closeFd(fd);
    if (h.io !== null) closeFd(h.io);
    for (const i of h.ifaces) if (i !== null) this.closeIface(i);
    if (h.kvm !== null) this.closeKvm(h.kvm);
  }

  /** Registrations with open handles (tests, diagnostics). */
  get open(): number {
    return this.handles.size;
  }

  /** Read one registration; `nowMs` is a monotonic clock for the CPU share. */
  read(reg: Registration, nowMs: number): ReadOutcome {
    let h = this.handles.get(reg);
    if (h === undefined) {
      const o = this.openHandles(reg);
      if ("gone" in o) return { kind: "gone", why: o.gone };
      h = o;
    }
    const base = `${this.proc}/${reg.pid}`;
    const statText = this.reader.read(h.stat);
    if (!statText.ok) return { kind: "gone", why: `${base}/stat: ${statText.code}` };
    if (statText.text === "") return { kind: "gone", why: `${base}/stat is empty` };
    const statmText = this.reader.read(h.statm);
    if (!statmText.ok) return { kind: "gone", why: `${base}/statm: ${statmText.code}` };
    const statusText = this.reader.read(h.status);
    if (!statusText.ok) return { kind: "gone", why: `${base}/status: ${statusText.code}` };
    const stat = parseProcStat(statText.text);
    const statm = parseStatm(statmText.text);
    const status = parseStatus(statusText.text);
    const bad = !stat.ok ? `${base}/stat: ${stat.error}` : !statm.ok ? `${base}/statm: ${statm.error}` : !status.ok ? `${base}/status: ${status.error}` : null;
    if (bad !== null || !stat.ok || !statm.ok || !status.ok) {
      const firstTime = !h.malformedReported;
      h.malformedReported = true;
      return { kind: "malformed", error: bad ?? "unreadable", firstTime };
    }
    h.malformedReported = false;

    let io = null;
    if (h.io !== null) {
      const t = this.reader.read(h.io);
      const p = t.ok ? parseProcIo(t.text) : null;
      if (p?.ok) io = p.value;
      else this.once(`io-read:${reg.pid}`, "warn", `${base}/io: ${t.ok ? (p as { error: string }).error : t.code}`);
    }

    const interfaces: InterfaceReading[] = [];
    reg.nics.forEach((nic, idx) => {
      const r = this.readIface(h, idx, nic, nowMs);
      if (r !== null) interfaces.push(r);
    });

    let vmm: VmmStat[] | null = null;
    if (h.kvm === null) h.kvm = this.openKvm(reg.pid);
    if (h.kvm !== null) {
      vmm = [];
      for (const [key, fd] of h.kvm.fds) {
        const t = this.reader.read(fd);
        const v = t.ok ? parseKvmCounter(t.text) : null;
        if (v !== null) vmm.push({ key, value: BigInt.asIntN(64, v) });
      }
      if (vmm.length === 0) {
        // the VM went away (a tender that re-created its VM would get a new directory)
        this.closeKvm(h.kvm);
        h.kvm = null;
        vmm = null;
      }
    }

    const cpu: CpuMark = { ticks: stat.value.utime + stat.value.stime, atMs: nowMs };
    const prevCpu = h.lastCpu;
    h.lastCpu = cpu;
    return {
      kind: "ok",
      readings: { stat: stat.value, statm: statm.value, status: status.value, procCtime: h.procCtime, io, interfaces, vmm },
      memoryMB: h.memoryMB,
      cpu,
      prevCpu,
    };
  }

  private readIface(h: Handles, idx: number, nic: Nic, nowMs: number): InterfaceReading | null {
    let i = h.ifaces[idx] ?? null;
    if (i === null) {
      i = this.openIface(nic);
      h.ifaces[idx] = i;
      if (i === null) return null;
    }
    const counters = this.netDev.get(nic.tap);
    if (counters === undefined) {
      // gone (or renamed): reopened by name next round
      this.closeIface(i);
      h.ifaces[idx] = null;
      return null;
    }
    if (i.link === null || nowMs - i.link.atMs >= LINK_TTL_MS) {
      const [flags, mtu, operstate, carrier] = i.fds.map((fd) => this.reader.read(fd));
      if (!flags!.ok || !mtu!.ok) {
        this.closeIface(i);
        h.ifaces[idx] = null;
        return null;
      }
      const link = parseLink({
        flags: flags!.text,
        mtu: mtu!.text,
        operstate: operstate!.ok ? operstate!.text : null,
        carrier: carrier!.ok ? carrier!.text : null,
        dormant: null,
      });
      if (!link.ok) {
        this.once(`link:${nic.tap}:${link.error}`, "warn", `${nic.tap}: ${link.error} (interface left out)`);
        return null;
      }
      i.link = { ...link.value, atMs: nowMs };
    }
    return { netif: nic.netif, tap: nic.tap, bridge: i.bridge, flags: i.link.flags, mtu: i.link.mtu, counters };
  }

  /** Close everything (shutdown). */
  closeAll(): void {
    for (const reg of [...this.handles.keys()]) this.release(reg);
  }
}
