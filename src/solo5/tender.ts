// Everything about the Solo5 tender (daemon.md §2.4 steps 3-4, §2.7): the targets it runs,
// where it is looked for and the lookup itself, its `--version` check, and the command line
// albatross executes; and deterministic MAC addresses (wire.md §2). Pure but for the two
// marked I/O functions at the end (lookup: stat/access; `--version`: runs the tender).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants as FS, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { err, ok, type Result } from "../core/result.js";
import type { Name } from "../core/name.js";
import { nameToString } from "../core/name.js";
import { formatMac } from "./mac.js";
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

interface TenderNet {
  /** Unikernel-side device name (manifest name). */
  readonly netif: string;
  readonly tap: string;
  readonly mac: Uint8Array;
}

interface TenderBlock {
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
  const d = createHash("md5")
    .update(Buffer.from(netif + nameText, "utf8"))
    .digest();
  return Uint8Array.of(0x00, 0x80, 0x41, d[0]!, d[1]!, d[2]!);
}

// ---------------------------------------------------------------------------------------
// I/O: the lookup and `--version`

/** How an errno error reads in a message (hostd: its strerror texts). */
export type ErrnoText = (e: unknown) => string;
const errnoCode: ErrnoText = (e) => (e as NodeJS.ErrnoException | null)?.code ?? String(e);

/** An executable regular file? (synchronous: a stat and an access on local files, µs each) */
async function isExecutableFile(path: string): Promise<boolean> {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, FS.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `command` as execvp would find it in $PATH, or null. */
export async function whichInPath(command: string, pathEnv = process.env["PATH"] ?? ""): Promise<string | null> {
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, command);
    if (await isExecutableFile(p)) return p;
  }
  return null;
}

/**
 * The first usable tender among `candidates` (absolute paths are tested as files, bare
 * names are looked up in $PATH). The returned string is the candidate itself, so a
 * tender found in $PATH appears as a bare name on the command line, as upstream.
 */
export async function findTender(candidates: readonly string[]): Promise<string | null> {
  for (const c of candidates) {
    if (c.includes("/") ? await isExecutableFile(c) : (await whichInPath(c)) !== null) return c;
  }
  return null;
}

export type VersionOutput = { code: number | null; lines: string[]; error?: string };
const versionCache = new Map<string, { readonly id: string; readonly out: VersionOutput }>();

/**
 * `tenderVersionOutput`, remembered per tender file: upstream runs `--version` on every
 * create; the answer only changes when the file does, so a successful answer is reused
 * while the resolved file's identity (device, inode, size, mtime, ctime) is unchanged.
 * Saves a process execution (~2 ms) per create.
 */
export async function tenderVersionCached(tender: string, strerror: ErrnoText = errnoCode): Promise<VersionOutput> {
  const file = tender.includes("/") ? tender : await whichInPath(tender);
  let id: string | null = null;
  if (file !== null) {
    try {
      const st = statSync(file);
      id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch {
      id = null;
    }
  }
  const hit = file === null ? undefined : versionCache.get(file);
  if (hit !== undefined && id !== null && hit.id === id) return hit.out;
  const out = await tenderVersionOutput(tender, strerror);
  if (file !== null && id !== null && out.code === 0) versionCache.set(file, { id, out });
  return out;
}

/** Run `<tender> --version` with both output streams collected into one line list. */
async function tenderVersionOutput(tender: string, strerror: ErrnoText = errnoCode): Promise<VersionOutput> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let child;
    try {
      child = spawn(tender, ["--version"], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      resolve({ code: null, lines: [], error: strerror(e) });
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    // stderr is "merged into stdout" (the real tenders print the ABI line on stderr).
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.stderr.on("data", (d: Buffer) => chunks.push(d));
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: null, lines: [], error: strerror(e) });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      const lines = text.split("\n");
      if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
      resolve({ code, lines });
    });
  });
}

/**
 * §2.4 steps 3.4 and 4: the tender to run an image of ABI `abiVersion` — the first of
 * `candidates` found (tenderCandidates), whose `--version` exits 0 and names that ABI.
 * The failures are upstream's texts.
 */
export async function findCheckedTender(candidates: readonly string[], abiVersion: number, strerror?: ErrnoText): Promise<Result<string>> {
  const tender = await findTender(candidates);
  if (tender === null) return err(tenderNotFound(candidates));
  const v = await tenderVersionCached(tender, strerror);
  if (v.code !== 0) return err(`cmd ${tender} --version exits: ${v.error ?? (v.code === null ? "killed" : `exited with ${v.code}`)}`);
  const vr = parseTenderVersion(v.lines.join("\n"), abiVersion);
  return vr === null ? ok(tender) : err(vr);
}
