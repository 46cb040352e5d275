// Replies on a terminal: tables and plain names (`tenant:hello`) instead of albatross' OCaml
// printing. Only when stdout is a terminal and --json is not given (replies.ts); piped, the
// client prints albatross' text unchanged, since scripts may parse it. Statistics have their
// own view (stats-table.ts). Pure.
import type { Bytes } from "../commands/der.js";
import type { BlockDeviceEntry, Data, FailBehaviour, PolicyEntry, Success, UnikernelInfo, Wire } from "../commands/types.js";
import { nameToString, pathToString, type Name } from "../core/name.js";

/** The root policy's unikernel count, OCaml's max_int: no limit of its own. */
const UNLIMITED = (1n << 62n) - 1n;

const latin = new TextDecoder("utf-8", { fatal: false });
// eslint-disable-next-line no-control-regex
// biome-ignore lint/suspicious/noControlCharactersInRegex: the class names exactly the control characters to make visible
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** Text for a terminal: UTF-8 as it is, control characters (escape sequences!) made visible. */
export function printable(b: Bytes | string): string {
  const s = typeof b === "string" ? b : latin.decode(b);
  return s.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** `tenant:hello`; a unikernel at the root: `hello`; a path: `tenant:`; the root: `:`. */
export function plainName(n: Name): string {
  if (n.path.length === 0 && n.label !== null) return n.label;
  return nameToString(n);
}

const pathName = (n: Name): string => (n.path.length === 0 ? "(root)" : pathToString(n.path));

/** Columns padded to their widest cell, two spaces apart; `right` columns aligned right. */
function table(header: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map((r) =>
      r
        .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

const mb = (n: number): string => `${n} MB`;

/** `2025-06-01 10:00:00` (UTC, as albatross' times are) */
function when(d: Date): string {
  return Number.isFinite(d.getTime())
    ? d
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, " UTC")
    : "?";
}

function onExit(f: FailBehaviour): string {
  if (f.kind === "quit") return "stop";
  return f.exitCodes.length === 0 ? "restart (not on 1)" : `restart on ${f.exitCodes.join(",")}`;
}

const hexShort = (b: Bytes): string => Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, "0")).join("");

function devices(i: UnikernelInfo): string {
  const net = i.bridges.map((n) => `${n.unikernelDevice}=${n.hostDevice}`);
  const blk = i.blockDevices.map((b) => `${b.unikernelDevice}=${b.hostDevice} (${b.blockSize} MB)`);
  return [...net, ...blk].join(", ") || "-";
}

function unikernelTable(entries: readonly { name: Name; info: UnikernelInfo }[], verbose: boolean): string {
  if (entries.length === 0) return "no unikernels";
  const header = ["NAME", "STARTED", "CPU", "MEMORY", "ON EXIT", "DEVICES", "IMAGE"];
  if (verbose) header.push("ARGUMENTS");
  const rows = entries.map(({ name, info }) => {
    const r = [
      plainName(name),
      when(info.started),
      info.cpuids.join(","),
      mb(info.memory),
      onExit(info.failBehaviour),
      devices(info),
      info.typ === "solo5" ? `sha256 ${hexShort(info.digest)}…` : `bhyve ${printable(info.digest)}`,
    ];
    if (verbose) r.push(info.argv === undefined ? "-" : info.argv.map((a) => printable(a)).join(" "));
    return r;
  });
  return table(header, rows, new Set([3]));
}

function policyTable(entries: readonly PolicyEntry[]): string {
  if (entries.length === 0) return "no policies";
  const rows = entries.map(({ name, policy: p }) => [
    pathName(name),
    p.unikernels >= UNLIMITED ? "unlimited" : p.unikernels.toString(),
    p.cpuids.join(",") || "-",
    mb(p.memory),
    p.block === undefined ? "none" : mb(p.block),
    p.bridges.join(", ") || "-",
  ]);
  return table(["PATH", "UNIKERNELS", "CPUS", "MEMORY", "BLOCK", "BRIDGES"], rows, new Set([1, 3, 4]));
}

function blockTable(entries: readonly BlockDeviceEntry[]): string {
  if (entries.length === 0) return "no block devices";
  return table(
    ["NAME", "SIZE", "IN USE"],
    entries.map((d) => [plainName(d.name), mb(d.size), d.active ? "yes" : "no"]),
    new Set([1]),
  );
}

/** who a status line is about: `tenant:hello`, `hello`; a path without its trailing colon (`tenant`, `(root)`) */
const subject = (n: Name): string => (n.label === null ? pathName(n) : plainName(n));

function successView(name: Name, s: Success, verbose: boolean): string {
  switch (s.kind) {
    case "empty":
      return `${subject(name)}: done`;
    case "string":
      return `${subject(name)}: ${printable(s.text)}`;
    case "policies":
      return policyTable(s.policies);
    case "unikernel-info":
    case "old-unikernel-info4":
    case "old-unikernel-info5":
      return unikernelTable(s.unikernels, verbose);
    case "block-devices":
      return blockTable(s.devices);
    case "consoles":
      return s.names.length === 0 ? "no inactive consoles" : s.names.map(plainName).join("\n");
    case "unikernel-image":
      return `${subject(name)}: image of ${s.image.length} bytes${s.compressed ? " (compressed)" : ""}`;
    case "old-block-device-image":
      return `${subject(name)}: block device data of ${s.image.length} bytes${s.compressed ? " (compressed)" : ""}`;
    case "block-device-image":
      return `${subject(name)}: block device data follows${s.compressed ? " (compressed)" : ""}`;
  }
}

/** A console line: `10:00:00.123 tenant:hello  the line` (the date once it is not today's). */
export function consoleLine(name: Name, d: Extract<Data, { kind: "console" }>, today: Date = new Date()): string {
  const iso = Number.isFinite(d.timestamp.getTime()) ? d.timestamp.toISOString() : "????-??-??T??:??:??.???Z";
  const sameDay = iso.slice(0, 10) === today.toISOString().slice(0, 10);
  const t = sameDay ? iso.slice(11, 23) : `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  return `${t} ${plainName(name)}  ${printable(d.line)}`;
}

/**
 * A reply, data or failure as shown on a terminal; null where the albatross text stays
 * (statistics: stats-table.ts; block data: not shown).
 */
export function terminalText(w: Wire, verbose = false): string | null {
  const p = w.payload;
  switch (p.kind) {
    case "reply":
      return successView(w.header.name, p.reply, verbose);
    case "failure":
      return `${subject(w.header.name)}: ${printable(p.message)}`;
    case "data":
      return p.data.kind === "console" ? consoleLine(w.header.name, p.data) : null;
    case "command":
      return null;
  }
}
