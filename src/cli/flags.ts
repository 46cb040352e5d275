// Command line value parsers of albatross-client (cli.md §1, §2), with upstream's error texts.
//
// Pure: every function takes the argument text and returns a typed value or throws FlagError
// with the one-line message the user sees. The commander glue (options.ts wrap) wraps these into
// InvalidArgumentError, so a bad value is a usage error (exit 124) like cmdliner's.

import { isIP } from "node:net";
import type { BlockDevice, NetDevice } from "../commands/types.js";
import type { Destination as RemoteHost } from "../client/remote.js";
import { NameError, parseName, parsePath, type Name, type Path } from "../core/name.js";
import { parseMac as macOf } from "../solo5/mac.js";

export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/**
 * OCaml's `int_of_string` accepts `0x..`, `0o..`, `0b..` and `_` separators; albatross users
 * write decimal numbers, so we accept an optional sign and decimal digits (plus the `0x` form,
 * for parity) and insist on a safe integer.
 */
export function parseIntStrict(s: string, what = "integer"): number {
  const t = s.trim();
  let v: number;
  if (/^[+-]?\d+$/.test(t)) v = Number(t);
  else if (/^0x[0-9a-f]+$/i.test(t)) v = Number.parseInt(t.slice(2), 16);
  else throw new FlagError(`invalid ${what} ${JSON.stringify(s)}`);
  if (!Number.isSafeInteger(v)) throw new FlagError(`${what} ${s} is out of range`);
  return v;
}

export function parseNameArg(s: string): Name {
  try {
    return parseName(s);
  } catch (e) {
    if (e instanceof NameError) throw new FlagError(e.message);
    throw e;
  }
}

export function parsePathArg(s: string): Path {
  try {
    return parsePath(s);
  } catch (e) {
    if (e instanceof NameError) throw new FlagError(e.message);
    throw e;
  }
}

export function parseCompressionLevel(s: string): number {
  const v = parseIntStrict(s, "compression level");
  // Upstream does not range-check (zlib then raises); we refuse early with a clear text.
  if (v < 0 || v > 9) throw new FlagError("compression level must be between 0 and 9");
  return v;
}

function isPowerOfTwo(n: number): boolean {
  // Bitwise `&` is 32-bit in JS; sizes beyond 2^31 are still valid upstream ints.
  let x = n;
  while (x > 1 && x % 2 === 0) x /= 2;
  return x === 1;
}

/** `name` or `name:device` (upstream colon_separated_c). */
function colonSeparated(s: string): { first: string; second?: string } {
  const parts = s.split(":");
  if (parts.length === 1) return { first: s };
  if (parts.length === 2) return { first: parts[0]!, second: parts[1]! };
  throw new FlagError("format is 'name' or 'name:device-name'");
}

const SECTOR_SIZE_ERROR = "sector size must be a power of two greater than or equal 512";

/** `--block SPEC`: `name[@sector-size]` or `name:host-device[@sector-size]`. */
export function parseBlockSpec(s: string): BlockDevice {
  const at = s.split("@");
  if (at.length > 2) throw new FlagError("format is 'name[@sector-size]' or 'name:device-name[@sector-size]'");
  let sectorSize: number | undefined;
  if (at.length === 2) {
    // Upstream checks the sector size before the name part.
    let n: number;
    try {
      n = parseIntStrict(at[1]!, "sector size");
    } catch {
      throw new FlagError("sector size must be an integer");
    }
    if (n < 512 || !isPowerOfTwo(n)) throw new FlagError(SECTOR_SIZE_ERROR);
    sectorSize = n;
  }
  const { first, second } = colonSeparated(at[0]!);
  const dev: BlockDevice = { name: first };
  return {
    ...dev,
    ...(second !== undefined ? { device: second } : {}),
    ...(sectorSize !== undefined ? { sectorSize } : {}),
  };
}

/** MAC address `xx:xx:xx:xx:xx:xx` (also `-` separated, like Macaddr.of_string). */
export function parseMac(s: string): Uint8Array {
  const mac = macOf(s);
  if (!mac) throw new FlagError(`invalid MAC address ${JSON.stringify(s)} (expected xx:xx:xx:xx:xx:xx)`);
  return mac;
}

/** `--net SPEC`: `netif[@mac]` or `netif:bridge[@mac]`. */
export function parseNetSpec(s: string): NetDevice {
  const at = s.split("@");
  if (at.length > 2) throw new FlagError("format is [name:]bridge[@mac]");
  const mac = at.length === 2 ? parseMac(at[1]!) : undefined;
  const { first, second } = colonSeparated(at[0]!);
  return {
    netif: first,
    ...(second !== undefined ? { bridge: second } : {}),
    ...(mac !== undefined ? { mac } : {}),
  };
}

/** `stats-add --bridge bridge:tap`. */
export function parseBridgeTap(s: string): { bridge: string; tap: string } {
  const parts = s.split(":");
  if (parts.length !== 2) throw new FlagError("broken, format is bridge:tap");
  return { bridge: parts[0]!, tap: parts[1]! };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * `console --since`: RFC 3339 (`2023-03-12T23:42:15Z`, any offset) or a bare date meaning
 * midnight UTC (upstream appends `T00:00:00-00:00`). Sub-millisecond digits are truncated,
 * as the wire's GeneralizedTime carries milliseconds at most.
 */
export function parseTimestamp(s: string): Date {
  const full = /^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00-00:00` : s;
  const m = RFC3339.exec(full);
  if (!m) throw new FlagError("couldn't parse timestamp");
  const [, Y, Mo, D, H, Mi, S, frac, , sign, oh, om] = m;
  const year = Number(Y),
    month = Number(Mo),
    day = Number(D);
  const hour = Number(H),
    minute = Number(Mi),
    second = Number(S);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw new FlagError("couldn't parse timestamp");
  }
  if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) throw new FlagError("couldn't parse timestamp");
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, "0")) : 0;
  let t = Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59), ms);
  if (sign) {
    const off = (Number(oh) * 60 + Number(om)) * 60_000;
    if (Number(oh) > 23 || Number(om) > 59) throw new FlagError("couldn't parse timestamp");
    t -= (sign === "+" ? 1 : -1) * off;
  }
  const d = new Date(t);
  if (!Number.isFinite(d.getTime())) throw new FlagError("couldn't parse timestamp");
  return d;
}

// --- destinations (cli.md §1) ---

const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A host name in the sense of Domain_name.host: LDH labels, at most 253 characters. */
function isHostName(s: string): boolean {
  const t = s.endsWith(".") ? s.slice(0, -1) : s;
  if (t.length === 0 || t.length > 253) return false;
  return t.split(".").every((l) => HOST_LABEL.test(l));
}

/**
 * `-d HOST[:PORT]`: split at the last `:`; with a colon the suffix must be a port
 * (`failed to parse port`), so IPv6 literals need an explicit port and no brackets.
 */
export function parseDestination(s: string, defaultPort = 1025): RemoteHost {
  if (s === "") throw new FlagError("empty host");
  const i = s.lastIndexOf(":");
  let host = s;
  let port = defaultPort;
  if (i >= 0) {
    host = s.slice(0, i);
    const p = s.slice(i + 1);
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) throw new FlagError("failed to parse port");
    port = Number(p);
  }
  if (host === "-" || isIP(host) !== 0 || isHostName(host)) return { host, port };
  throw new FlagError(`invalid host ${JSON.stringify(host)}: neither an IP address nor a host name`);
}

// --- http host for `update` (cli.md §5) ---

export function parseHttpHost(s: string): string {
  const parts = s.split("/");
  const schemeOk = parts[0] === "http:" || parts[0] === "https:";
  const hostOk = parts[1] === "" && parts[2] !== undefined && parts[2] !== "";
  if (schemeOk && hostOk && parts.length === 3) return s;
  if (schemeOk && hostOk && parts.length === 4 && parts[3] === "") return s.slice(0, -1);
  throw new FlagError("expected http[s]://hostname");
}

// --- helpers for sets (cli.md §2 create) ---

/** Ascending, de-duplicated copy of integer ids. */
export function intSet(xs: readonly number[]): number[] {
  return [...new Set(xs)].sort((a, b) => a - b);
}

export function hasDuplicates(xs: readonly string[]): boolean {
  return new Set(xs).size !== xs.length;
}
