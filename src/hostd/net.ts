// Tap devices and bridges on Linux (daemon.md §2.4 step 7, §2.6). (The taps' statistics
// are the stats daemon's: src/stats/reader.ts.)
// Effectful: runs `ip` (never through a shell; launcher.ts) in the CURRENT network
// namespace. The `ip` binary is a parameter so tests and unusual hosts can substitute it.

import { launcher } from "./launcher.js";

const TAP_PREFIX = "vmmtap";

export class NetError extends Error {
  /**
   * What albatross (Bos) reports for the same failure, e.g.
   * `run ["ip"; "tuntap"; "add"; "vmmtap0"; "mode"; "tap"]: exited with 1`.
   * `message` is more useful for logs: the command and its stderr.
   */
  readonly upstream: string;
  constructor(message: string, upstream: string = message) {
    super(message);
    this.name = "NetError";
    this.upstream = upstream;
  }
}

/** OCaml's `%S` for an ASCII-ish argument (Bos's String.dump). */
function ocamlDump(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, "utf8")) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += "\\\\";
    else if (b === 0x0a) out += "\\n";
    else if (b === 0x09) out += "\\t";
    else if (b === 0x0d) out += "\\r";
    else if (b === 0x08) out += "\\b";
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += "\\" + String(b).padStart(3, "0");
  }
  return out + '"';
}

/** Bos's error text for a command that did not exit 0. */
export function bosRunError(argv: readonly string[], status: { code: number } | { signal: string }): string {
  const st = "code" in status ? `exited with ${status.code}` : `killed by signal ${status.signal}`;
  return `run [${argv.map(ocamlDump).join("; ")}]: ${st}`;
}

interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

const firstLine = (s: string): string => s.trim().split("\n")[0]?.trim() ?? "";

/** Run a command without a shell (through hostd's process launcher); non-zero exit -> NetError with its stderr. */
async function run(cmd: string, args: readonly string[]): Promise<RunResult> {
  const r = await launcher().execFile(cmd, args, { maxBuffer: 4 * 1024 * 1024, env: { LC_ALL: "C" } });
  if (r.error === null) return { stdout: r.stdout, stderr: r.stderr };
  const argv = [cmd, ...args];
  const e = r.error;
  if (e.code !== null || e.signal !== null) {
    const status = e.code !== null ? { code: e.code } : { signal: e.signal as string };
    const why = firstLine(r.stderr) || ("code" in status ? `exit code ${status.code}` : `signal ${status.signal}`);
    throw new NetError(`${argv.join(" ")}: ${why}`, bosRunError(argv, status));
  }
  // spawn failure (ENOENT, EACCES, ...)
  throw new NetError(`${argv.join(" ")}: ${e.message}`, `run [${argv.map(ocamlDump).join("; ")}]: ${e.message}`);
}

/**
 * A valid Linux interface name (the kernel's dev_valid_name): 1..15 bytes, not `.` or
 * `..`, no `/`, `:` or whitespace. Checked before a name reaches `ip`, so that a
 * hostile "bridge" such as `up` or `type` is never read as an `ip` keyword.
 */
export function isValidIfName(name: string): boolean {
  const len = Buffer.byteLength(name, "utf8");
  if (len === 0 || len > 15 || name === "." || name === "..") return false;
  return !/[/:\s\0]/.test(name);
}

/**
 * Numbers N of the `vmmtapN` devices listed by `ip tuntap show` (lines look like
 * `vmmtap0: tap persist`). Upstream parses the characters from position 7 up to the
 * first `:` of EVERY line longer than 6 characters with int_of_string; we only
 * consider lines starting with `vmmtap` and require a canonical decimal (daemon.md
 * §2.6 recommends the prefix check). Sorted ascending, without duplicates.
 */
export function parseTuntapShow(output: string): number[] {
  const nums = new Set<number>();
  for (const line of output.split("\n")) {
    if (!line.startsWith(TAP_PREFIX) || line.length <= TAP_PREFIX.length) continue;
    const rest = line.slice(TAP_PREFIX.length);
    const colon = rest.indexOf(":");
    const digits = colon < 0 ? rest : rest.slice(0, colon);
    if (!/^(0|[1-9][0-9]{0,8})$/.test(digits)) continue; // `vmmtap01` is not `vmmtap1`
    nums.add(Number(digits));
  }
  return [...nums].sort((a, b) => a - b);
}

/** `vmmtap<N>` with the smallest N >= 0 not in `inUse`. */
export function nextTapName(inUse: readonly number[]): string {
  const used = new Set(inUse);
  let n = 0;
  while (used.has(n)) n++;
  return `${TAP_PREFIX}${n}`;
}

// Tap creation is a scan-then-add sequence; serialise it within this process so two
// concurrent creates cannot pick the same number (upstream is single-threaded).
let tapQueue: Promise<unknown> = Promise.resolve();

/**
 * Create a tap attached to `bridge` (daemon.md §2.6): `ip tuntap show` -> smallest
 * free vmmtapN -> `ip tuntap add vmmtapN mode tap`, `ip link set dev vmmtapN up`,
 * `ip link set dev vmmtapN master <bridge>`. Returns the tap's name.
 * Deviation: if a step after the `add` fails, the tap is removed again before the
 * NetError is thrown (upstream leaves it behind).
 */
export function createTap(bridge: string, ip = "ip", beforeAdd?: (tap: string) => Promise<void>): Promise<string> {
  const job = tapQueue.then(() => createTapNow(bridge, ip, beforeAdd));
  tapQueue = job.catch(() => undefined);
  return job;
}

async function createTapNow(bridge: string, ip: string, beforeAdd?: (tap: string) => Promise<void>): Promise<string> {
  if (!isValidIfName(bridge)) throw new NetError(`invalid interface name ${JSON.stringify(bridge)}`);
  const { stdout } = await run(ip, ["tuntap", "show"]);
  const tap = nextTapName(parseTuntapShow(stdout));
  // hostd records the name (its intent, runtime.ts) before the tap exists
  if (beforeAdd !== undefined) await beforeAdd(tap);
  await run(ip, ["tuntap", "add", tap, "mode", "tap"]);
  try {
    await run(ip, ["link", "set", "dev", tap, "up"]);
    await run(ip, ["link", "set", "dev", tap, "master", bridge]);
  } catch (e) {
    try {
      await destroyTap(tap, ip);
    } catch (cleanup) {
      const err = e as NetError;
      throw new NetError(`${err.message} (and removing ${tap} failed: ${(cleanup as Error).message})`, err.upstream);
    }
    throw e;
  }
  return tap;
}

/** `ip tuntap del dev <tap> mode tap`. */
export async function destroyTap(tap: string, ip = "ip"): Promise<void> {
  if (!isValidIfName(tap)) throw new NetError(`invalid interface name ${JSON.stringify(tap)}`);
  await run(ip, ["tuntap", "del", "dev", tap, "mode", "tap"]);
}

/**
 * Whether an interface of that name exists (upstream: `ip link show <b>` exits 0;
 * we pass `dev <b>` so the name is never taken for a keyword). The error albatross
 * reports otherwise is `interface <b> does not exist` (see bridgeMissing).
 */
export async function bridgeExists(name: string, ip = "ip"): Promise<boolean> {
  if (!isValidIfName(name)) return false;
  try {
    await run(ip, ["link", "show", "dev", name]);
    return true;
  } catch (e) {
    if (e instanceof NetError) return false;
    throw e;
  }
}

/**
 * Names of the bridges in this namespace, from `ip -o link show type bridge`
 * (lines `3: br0: <BROADCAST,...> ...`; a name may carry `@peer`, which is dropped).
 */
export async function listBridges(ip = "ip"): Promise<string[]> {
  const { stdout } = await run(ip, ["-o", "link", "show", "type", "bridge"]);
  return parseIpLinkNames(stdout);
}

/** Pure: interface names from `ip -o link show` output. */
export function parseIpLinkNames(output: string): string[] {
  const names: string[] = [];
  for (const line of output.split("\n")) {
    const m = /^\d+:\s+([^:\s]+?)(?:@[^:\s]*)?:\s/.exec(line);
    if (m !== null) names.push(m[1]!);
  }
  return names;
}
