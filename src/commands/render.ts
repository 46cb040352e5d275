// Human-readable text for wire messages, configurations, policies and statistics.
//
// Mirrors upstream's printers (Vmm_commands.pp_wire, Vmm_core.*.pp) so that people used to
// albatross-client see the same lines; cli.md §3 notes these strings are informative, not part
// of the protocol. Fmt break hints (`@ `) are rendered as single spaces. One deliberate
// difference: console subscribe by count reads `count N` (upstream: `number N`).
//
// Pure: no I/O.

import { text, type Bytes } from "./der.js";
import type {
  BlockDevice,
  Command,
  Data,
  FailBehaviour,
  Ifdata,
  NetDevice,
  Policy,
  StatsData,
  Success,
  Typ,
  UnikernelArguments,
  UnikernelConfig,
  UnikernelInfo,
  Wire,
} from "./types.js";
import { nameToString, type Name } from "../core/name.js";
import { hex } from "../core/hex.js";
import { sortedIds, sortedStrings } from "../core/sets.js";

// --- primitives ---

/** Upstream Name.pp: `[unikernel: <path-text>:<label>]`. */
export const nameText = (n: Name): string => `[unikernel: ${nameToString(n)}]`;

/**
 * OCaml's `String.escaped` (Bytes.escaped): `\\`, `\"`, `\n`, `\t`, `\r`, `\b`; other bytes
 * outside 0x20..0x7e as `\DDD` (decimal, three digits). Works on raw bytes, since console
 * lines are not necessarily UTF-8.
 */
export function escapeOcaml(b: Bytes): string {
  let out = "";
  for (const c of b) {
    switch (c) {
      case 0x5c:
        out += "\\\\";
        break;
      case 0x22:
        out += '\\"';
        break;
      case 0x0a:
        out += "\\n";
        break;
      case 0x09:
        out += "\\t";
        break;
      case 0x0d:
        out += "\\r";
        break;
      case 0x08:
        out += "\\b";
        break;
      default:
        out += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : `\\${String(c).padStart(3, "0")}`;
    }
  }
  return out;
}

/**
 * Daemon-provided text (success strings, failure messages): decoded as UTF-8 (lossy) with
 * control characters escaped so that a hostile peer cannot drive the terminal.
 */
export function safeText(b: Bytes | string): string {
  const s = typeof b === "string" ? b : text(b);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the class names exactly the control characters to escape
  return s.replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\${String(ch.charCodeAt(0)).padStart(3, "0")}`);
}

/** Ptime.pp_rfc3339 (): second precision, unknown local offset `-00:00`. */
export function rfc3339(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) return "invalid-time";
  return `${d.toISOString().slice(0, 19)}-00:00`;
}

/** 16 bytes a line, two groups of 8 separated by two spaces (the `--socket -` dump). */
export function hexdump(b: Bytes): string {
  const lines: string[] = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = Array.from(b.subarray(i, i + 16), (x) => x.toString(16).padStart(2, "0"));
    const left = row.slice(0, 8).join(" ");
    const right = row.slice(8).join(" ");
    lines.push(right ? `${left}  ${right}` : left);
  }
  return lines.join("\n");
}

const macText = (m: Bytes): string => Array.from(m, (x) => x.toString(16).padStart(2, "0")).join(":");

const bool = (b: boolean): string => (b ? "true" : "false");
const opt = <T>(v: T | undefined, f: (x: T) => string, none: string): string => (v === undefined ? none : f(v));

// --- configurations ---

const typText = (t: Typ): string => (t === "solo5" ? "solo5" : "BHyve");

function failBehaviourText(f: FailBehaviour): string {
  if (f.kind === "quit") return "quit";
  return `restart ${f.exitCodes.length === 0 ? "all except 1" : f.exitCodes.join(", ")}`;
}

const blockDeviceText = (b: BlockDevice): string => `${b.name} -> ${b.device ?? b.name}${b.sectorSize !== undefined ? `, sector-size: ${b.sectorSize}` : ""}`;

const netDeviceText = (n: NetDevice): string => `${n.netif} -> ${n.bridge ?? n.netif}${n.mac ? `@${macText(n.mac)}` : ""}`;

const argvText = (argv: readonly Bytes[] | undefined): string => (argv === undefined ? "no" : argv.map((a) => safeText(a)).join(" "));

/** Unikernel.pp_config (+ `argv ...` with `withArgv`, upstream's verbose form). */
export function configText(c: UnikernelConfig, withArgv = false): string {
  const s =
    `typ ${typText(c.typ)} compression ${bool(c.compressed)} image ${c.image.length} bytes` +
    ` fail behaviour ${failBehaviourText(c.failBehaviour)}` +
    ` startup at ${opt(c.startup, String, "not specified")} add_name ${bool(c.addName)}` +
    ` CPUids ${c.cpuids.join(", ")} ${c.memory} MB memory` +
    ` block devices ${c.blockDevices.map(blockDeviceText).join(", ")}` +
    ` bridge ${c.bridges.map(netDeviceText).join(", ")}` +
    ` #cpus ${c.numcpus} linux_boot ${opt(c.linuxBootPartition, safeText, "not specified")}`;
  return withArgv ? `${s} argv ${argvText(c.argv)}` : s;
}

/** Unikernel.pp_arguments. */
function argumentsText(a: UnikernelArguments, withArgv = false): string {
  const s =
    `fail behaviour ${failBehaviourText(a.failBehaviour)}` +
    ` startup at ${opt(a.startup, String, "not specified")} add_name ${bool(a.addName)}` +
    ` CPUids ${a.cpuids.join(", ")} ${a.memory} MB memory` +
    ` block devices ${a.blockDevices.map(blockDeviceText).join(", ")}` +
    ` bridge ${a.bridges.map(netDeviceText).join(", ")}` +
    ` #cpus ${a.numcpus} linux_boot_partition ${opt(a.linuxBootPartition, safeText, "not specified")}`;
  return withArgv ? `${s} argv ${argvText(a.argv)}` : s;
}

/** Unikernel.pp_info. */
export function infoText(i: UnikernelInfo, withArgv = false): string {
  const digest = i.typ === "solo5" ? `digest ${hex(i.digest)}` : `bhyve-vmname ${safeText(i.digest)}`;
  const s =
    `typ ${typText(i.typ)} started ${rfc3339(i.started)} fail behaviour ${failBehaviourText(i.failBehaviour)}` +
    ` startup at ${opt(i.startup, String, "not specified")} CPUids ${i.cpuids.join(", ")} ${i.memory} MB memory` +
    ` block devices ${i.blockDevices
      .map((b) => `${b.unikernelDevice} -> ${b.hostDevice} (sector-size: ${b.sectorSize} bytes, size ${b.blockSize} MB)`)
      .join(", ")}` +
    ` bridge ${i.bridges.map((n) => `${n.unikernelDevice} -> ${n.hostDevice} (mac ${macText(n.mac)})`).join(", ")}` +
    ` ${digest} #cpus ${i.numcpus} linux_boot_partition ${opt(i.linuxBootPartition, safeText, "not specified")}`;
  return withArgv ? `${s} argv ${argvText(i.argv)}` : s;
}

/**
 * One-line rendering, upstream's `Policy.pp` verbatim (it appears in the daemon's
 * `policy restore error: couldn't insert policy <p> for <name>: ...`), e.g.
 * `policy: 1 unikernels 0 CPUids 10 MB memory 5 MB block, bridges: service` or
 * `policy: 2 unikernels 0,1 CPUids 512 MB memory no block` (CPU ids joined by `,`
 * without space, bridges by `, `).
 */
export function formatPolicy(p: Policy): string {
  const block = p.block === undefined ? "no" : `${p.block} MB`;
  const bridges = sortedStrings(p.bridges);
  const sep = bridges.length === 0 ? "" : ", bridges: ";
  return `policy: ${p.unikernels} unikernels ${sortedIds(p.cpuids).join(",")} CPUids ${p.memory} MB memory ${block} block${sep}${bridges.join(", ")}`;
}

/** Policy.pp: `policy: 1 unikernels 0,1 CPUids 512 MB memory no block, bridges: br0`. */
export const policyText = (p: Policy): string => formatPolicy(p);

// --- statistics (Stats.pp) ---

const u64 = (v: bigint): string => BigInt.asUintN(64, v).toString();
const u32 = (v: number): string => String(v >>> 0);
const usec = (v: number): string => String(v).padStart(6, "0");

function ifdataText(i: Ifdata): string {
  return (
    `bridge ${i.bridge} flags ${(i.flags >>> 0).toString(16).toUpperCase()} send_length ${u32(i.sendLength)}` +
    ` max_send_length ${u32(i.maxSendLength)} send_drops ${u32(i.sendDrops)} mtu ${u32(i.mtu)}` +
    ` baudrate ${u64(i.baudrate)} input_packets ${u64(i.inputPackets)} input_errors ${u64(i.inputErrors)}` +
    ` output_packets ${u64(i.outputPackets)} output_errors ${u64(i.outputErrors)} collisions ${u64(i.collisions)}` +
    ` input_bytes ${u64(i.inputBytes)} output_bytes ${u64(i.outputBytes)} input_mcast ${u64(i.inputMcast)}` +
    ` output_mcast ${u64(i.outputMcast)} input_dropped ${u64(i.inputDropped)} output_dropped ${u64(i.outputDropped)}`
  );
}

export function statsText(s: StatsData): string {
  const r = s.rusage;
  const ru =
    `utime ${u64(r.utime.seconds)}.${usec(r.utime.microseconds)} stime ${u64(r.stime.seconds)}.${usec(r.stime.microseconds)}` +
    ` maxrss ${u64(r.maxrss)} ixrss ${u64(r.ixrss)} idrss ${u64(r.idrss)} isrss ${u64(r.isrss)}` +
    ` minflt ${u64(r.minflt)} majflt ${u64(r.majflt)} nswap ${u64(r.nswap)} inblock ${u64(r.inblock)}` +
    ` outblock ${u64(r.outblock)} msgsnd ${u64(r.msgsnd)} msgrcv ${u64(r.msgrcv)} signals ${u64(r.nsignals)}` +
    ` nvcsw ${u64(r.nvcsw)} nivcsw ${u64(r.nivcsw)}`;
  const k = s.kinfoMem;
  const mem = k
    ? `virtual-size ${u64(k.vsize)} rss ${u64(k.rss)} text-size ${u64(k.tsize)} data-size ${u64(k.dsize)}` +
      ` stack-size ${u64(k.ssize)} runtime ${u64(k.runtime)} cow ${u32(k.cow)} start ${u64(k.start.seconds)}.${usec(k.start.microseconds)}`
    : "no kinfo_mem stats";
  const vmm = s.vmm ? s.vmm.map((v) => `${safeText(v.key)}: ${v.value}`).join("\n") : "no vmm stats";
  return `${ru}\n${mem}\n${vmm}\n${s.ifdata.map(ifdataText).join("\n\n")}`;
}

// --- commands ---

export function describeCommand(c: Command, verbose = false): string {
  switch (c.kind) {
    case "console-add":
      return `console add (max unikernels ${c.budget})`;
    case "console-subscribe":
      return c.sinceCount.kind === "since" ? `console subscribe since ${rfc3339(c.sinceCount.since)}` : `console subscribe count ${c.sinceCount.count}`;
    case "console-list-inactive":
      return "console list inactive available ringbuffers";
    case "stats-add":
      return `stats add: vmm device ${c.vmmdev} pid ${c.pid} taps ${c.network.map((n) => `${n.bridge}: ${n.tap}`).join(", ")}`;
    case "stats-remove":
      return "stat remove";
    case "stats-subscribe":
      return "stat subscribe";
    case "stats-initial":
      return "stat initial";
    case "unikernel-info":
      return "unikernel info";
    case "unikernel-info-v5":
      return "old unikernel info5";
    case "unikernel-info-v4":
      return "old unikernel info4";
    case "unikernel-create":
      return `unikernel create ${configText(c.config, verbose)}`;
    case "unikernel-force-create":
      return `unikernel force create ${configText(c.config, verbose)}`;
    case "unikernel-restart":
      return `unikernel restart${c.args ? ` ${argumentsText(c.args, verbose)}` : ""}`;
    case "unikernel-destroy":
      return "unikernel destroy";
    case "unikernel-get":
      return `unikernel get compress level ${c.level}`;
    case "policy-info":
      return "policy info";
    case "policy-add":
      return `policy add ${policyText(c.policy)}`;
    case "policy-remove":
      return "policy remove";
    case "block-info":
      return "block info";
    case "block-add":
      return `block add ${c.size}`;
    case "block-remove":
      return "block remove";
    case "block-add-old":
      return `old block add ${c.size} (compressed ${bool(c.compressed)} data ${c.data ? c.data.length : "no data"})`;
    case "block-set-old":
      return `old block set compressed ${bool(c.compressed)} ${c.data.length} bytes`;
    case "block-dump-old":
      return `old block dump, compress level ${c.level}`;
    case "block-dump":
      return `block dump, compress level ${c.level}`;
    case "block-set":
      return `block set compressed ${bool(c.compressed)}`;
  }
}

// --- replies and data ---

function listing<T>(empty: string, xs: readonly T[], f: (x: T) => string): string {
  return xs.length === 0 ? empty : xs.map(f).join("\n");
}

export function successText(s: Success, verbose = false): string {
  switch (s.kind) {
    case "empty":
      return "success";
    case "string":
      return `success: ${safeText(s.text)}`;
    case "policies":
      return listing("no policies", s.policies, (e) => `${nameText(e.name)}: ${policyText(e.policy)}`);
    case "unikernel-info":
    case "old-unikernel-info4":
    case "old-unikernel-info5":
      return listing("no unikernels", s.unikernels, (e) => `${nameText(e.name)}: ${infoText(e.info, verbose)}`);
    case "unikernel-image":
      return `image (compression ${bool(s.compressed)}) ${s.image.length} bytes`;
    case "block-devices":
      return listing("no block devices", s.devices, (d) => `block ${nameText(d.name)} size ${d.size} MB active ${bool(d.active)}`);
    case "old-block-device-image":
      return `old block device compressed ${bool(s.compressed)}, ${s.image.length} bytes`;
    case "block-device-image":
      return `block device compressed ${bool(s.compressed)}`;
    case "consoles":
      return listing("no consoles", s.names, nameText);
  }
}

export function dataText(d: Data): string {
  switch (d.kind) {
    case "console":
      return `console ${rfc3339(d.timestamp)}: ${escapeOcaml(d.line)}`;
    case "statistics":
      return `stats: ${statsText(d.stats)}`;
    case "block-data":
      return `block data ${d.data.length} bytes`;
    case "block-end":
      return "block data eof";
  }
}

/** Vmm_commands.pp_wire. */
export function wireText(w: Wire, verbose = false): string {
  const host = `host ${nameText(w.header.name)}`;
  const p = w.payload;
  switch (p.kind) {
    case "command":
      return `${host}: ${describeCommand(p.command, verbose)}`;
    case "failure":
      return `${host}: command failed ${safeText(p.message)}`;
    case "reply":
      return `${host}: ${successText(p.reply, verbose)}`;
    case "data":
      return dataText(p.data);
  }
}
