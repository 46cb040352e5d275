// The Solo5 tender: lookup candidates, `--version` check, the command line albatross
// executes (daemon.md §2.4 step 4, §2.7) and deterministic MAC addresses (wire.md §2).
// Pure: no I/O (MD5 from node:crypto is plain computation).

import { createHash } from "node:crypto";
import type { Name } from "../core/name.js";
import { nameToString } from "../core/name.js";
import type { Solo5Target } from "./elf.js";

export type TenderTarget = "hvt" | "spt";

/** The targets albatross can run on Linux (hvt, spt); null for the others. */
export function tenderTarget(target: Solo5Target): TenderTarget | null {
  return target === "hvt" || target === "spt" ? target : null;
}

/** daemon.md §2.4 step 3: `unsupported solo5 target <t>`. */
export const unsupportedTarget = (target: Solo5Target): string => `unsupported solo5 target ${target}`;

/** Fpath's `dir / seg`: a trailing `/` of dir is not doubled; nothing is normalised. */
function fpathAdd(dir: string, seg: string): string {
  return dir.endsWith("/") ? dir + seg : `${dir}/${seg}`;
}

/**
 * The four places upstream looks for a tender, in order:
 * `<dbdir>/solo5-<t>.<N>`, `solo5-<t>.<N>` (in $PATH), `<dbdir>/solo5-<t>`, `solo5-<t>`.
 * A candidate containing `/` is used only if it is an executable file; the others are
 * looked up in $PATH. The first hit is what tenderCommandLine() gets as `tender`
 * (a bare name stays bare: `taskset` resolves it through $PATH).
 */
export function tenderCandidates(dbdir: string, target: TenderTarget, abiVersion: number): string[] {
  const base = `solo5-${target}`;
  const versioned = `${base}.${abiVersion}`;
  return [fpathAdd(dbdir, versioned), versioned, fpathAdd(dbdir, base), base];
}

/** OCaml's Filename.quote (Unix), used by Bos.Cmd.to_string: '...' with ' as '\''. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** `tender does not exist, looked for '<c1>', '<c2>', '<c3>', '<c4>'` */
export function tenderNotFound(candidates: readonly string[]): string {
  return `tender does not exist, looked for ${candidates.map(shellQuote).join(", ")}`;
}

/** Bos's output trimming: OCaml String.trim (space, \t, \n, \f, \r). */
function ocamlTrim(s: string): string {
  return s.replace(/^[ \t\n\f\r]+/, "").replace(/[ \t\n\f\r]+$/, "");
}

/**
 * OCaml's int_of_string on a 63-bit int: optional sign, optional 0x/0o/0b/0u prefix,
 * digits with `_` allowed after the first digit. Decimal must fit in [-2^62, 2^62-1];
 * prefixed literals may go up to 2^63-1 and wrap into negatives. null on failure.
 */
export function ocamlIntOfString(s: string): number | bigint | null {
  const m = /^([+-]?)(0[xX]|0[oO]|0[bB]|0[uU])?(.*)$/s.exec(s);
  if (m === null) return null;
  const [, sign, prefix, digits] = m;
  const p = (prefix ?? "").toLowerCase();
  const base = p === "0x" ? 16 : p === "0o" ? 8 : p === "0b" ? 2 : 10;
  const digitRe = base === 16 ? /^[0-9a-fA-F][0-9a-fA-F_]*$/ : base === 8 ? /^[0-7][0-7_]*$/ : base === 2 ? /^[01][01_]*$/ : /^[0-9][0-9_]*$/;
  if (digits === undefined || !digitRe.test(digits)) return null;
  let v = 0n;
  for (const c of digits) if (c !== "_") v = v * BigInt(base) + BigInt(parseInt(c, 16));
  const maxInt = (1n << 62n) - 1n;
  if (base === 10 && p === "") {
    if (sign === "-" ? v > maxInt + 1n : v > maxInt) return null;
  } else {
    // 0u is decimal but "unsigned", like the other prefixes
    if (v > (1n << 63n) - 1n) return null;
    if (v > maxInt) v -= 1n << 63n;
  }
  if (sign === "-") v = -v;
  return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v;
}

/** Printf `%u` of an OCaml int on 64-bit: negative values print as 2^64 + v. */
function ocamlUnsigned(n: number): string {
  return n < 0 ? ((1n << 64n) + BigInt(n)).toString() : String(n);
}

/**
 * Check the output of `<tender> --version` (stdout and stderr merged, the tender exited
 * 0). Returns null when one line is exactly `ABI version <expected>` (split on single
 * spaces into three words, the third read with int_of_string), else the exact upstream
 * error text. Lines are those of Bos.OS.Cmd.out_lines: the output trimmed, split on \n.
 */
export function parseTenderVersion(output: string, expected: number): string | null {
  const trimmed = ocamlTrim(output);
  const lines = trimmed === "" ? [] : trimmed.split("\n");
  const ok = lines.some((line) => {
    const w = line.split(" ");
    if (w.length !== 3 || w[0] !== "ABI" || w[1] !== "version") return false;
    const n = ocamlIntOfString(w[2]!);
    return n !== null && n === expected;
  });
  if (ok) return null;
  return `unexpected solo5 tender --version output, expected one line with 'ABI version ${ocamlUnsigned(expected)}', got ${lines.join("\n")}`;
}

export interface TenderNet {
  /** Unikernel-side device name (manifest name). */
  readonly netif: string;
  readonly tap: string;
  readonly mac: Uint8Array;
}

export interface TenderBlock {
  /** Unikernel-side device name (manifest name). */
  readonly name: string;
  /** Host file, `<dbdir>/block/<block-name-text>`. */
  readonly path: string;
  readonly sectorSize?: number;
}

export interface TenderCommand {
  /** Tender as found by the lookup (absolute path or bare name). */
  readonly tender: string;
  readonly cpuids: readonly number[];
  /** MB */
  readonly memory: number;
  readonly nets: readonly TenderNet[];
  readonly blocks: readonly TenderBlock[];
  /** `<tmpdir>/<name>.img` */
  readonly image: string;
  /** Value of the `--name=` guest argument; absent when add_name is false. */
  readonly nameArg?: string;
  readonly argv: readonly string[];
}

/**
 * The argv albatross executes (program = argv[0] = `taskset`, looked up in $PATH):
 * `taskset -c <cpus> <tender> --mem=<M> --net:* --net-mac:* --block:*
 * --block-sector-size:* -- <image> [--name=<n>] <argv...>` — each group in config
 * order. cpuids are a set upstream: ascending, duplicates dropped; an empty set gives
 * an empty `-c` argument, as upstream.
 */
export function tenderCommandLine(opts: TenderCommand): string[] {
  const cpus = [...new Set(opts.cpuids)].sort((a, b) => a - b).join(",");
  const line = ["taskset", "-c", cpus, opts.tender, `--mem=${opts.memory}`];
  for (const n of opts.nets) line.push(`--net:${n.netif}=${n.tap}`);
  for (const n of opts.nets) line.push(`--net-mac:${n.netif}=${formatMac(n.mac)}`);
  for (const b of opts.blocks) line.push(`--block:${b.name}=${b.path}`);
  for (const b of opts.blocks) if (b.sectorSize !== undefined) line.push(`--block-sector-size:${b.name}=${b.sectorSize}`);
  line.push("--", opts.image);
  if (opts.nameArg !== undefined) line.push(`--name=${opts.nameArg}`);
  line.push(...opts.argv);
  return line;
}

/**
 * The `--name=` value upstream passes: the unikernel's label (default, `dropPath`),
 * or the full name text (`foo:bar`, `:hello`) with `--no-drop-path`. A name without
 * label (not expected for unikernels) gives its text in both cases.
 */
export function guestNameArg(name: Name, dropPath = true): string {
  return dropPath && name.label !== null ? name.label : nameToString(name);
}

/**
 * Deterministic MAC (wire.md §2): 00:80:41 followed by the first three bytes of
 * MD5(netif ++ name-text), no separator. Example: `default`, `foo:bar` -> 00:80:41:9a:6f:39.
 */
export function deterministicMac(netif: string, nameText: string): Uint8Array {
  const d = createHash("md5").update(Buffer.from(netif + nameText, "utf8")).digest();
  return Uint8Array.of(0x00, 0x80, 0x41, d[0]!, d[1]!, d[2]!);
}

/** Lower-case `xx:xx:xx:xx:xx:xx` (Macaddr.to_string). */
export function formatMac(mac: Uint8Array): string {
  if (mac.length !== 6) throw new RangeError(`bad mac address (${mac.length} bytes)`);
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Parse `xx:xx:xx:xx:xx:xx` (or with `-` separators, as Macaddr.of_string accepts;
 * the separator must be the same throughout). Hex digits in either case. null if invalid.
 */
export function parseMac(s: string): Uint8Array | null {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(s);
  if (m === null) return null;
  return Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]], (h) => parseInt(h!, 16));
}
