// Option value parsers shared by every command group (client, daemons, endpoint).
import { statSync } from "node:fs";
import { InvalidArgumentError } from "commander";
import { FlagError } from "./flags.js";
import { CliError, EXIT } from "../core/exit.js";

/**
 * `--tmpdir`/`--dbdir`: an explicitly given directory must exist (cmdliner's `dir`
 * converter: a usage error, exit 124); the built-in defaults are not checked (daemon.md §0).
 */
export function existingDir(value: string): string {
  let ok = false;
  try {
    ok = statSync(value).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new InvalidArgumentError(`no '${value}' directory`);
  return value;
}

/**
 * systemd socket activation (daemon.md §0): LISTEN_PID must be our pid and LISTEN_FDS
 * exactly 1; the listening socket is then fd 3. Anything else is a start-up failure (125).
 */
export function systemdListenFd(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number {
  if (env["LISTEN_PID"] !== String(pid) || env["LISTEN_FDS"] !== "1") throw new CliError("Systemd socket activation error", EXIT.INTERNAL);
  return 3;
}

/** `--max-frame BYTES`: the largest accepted frame, 1 .. 2^31-1 (the length prefix is an int32). */
export function parseMaxFrame(v: string): number {
  const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 0x7fffffff) throw new InvalidArgumentError(`invalid value '${v}', expected 1 to ${0x7fffffff} bytes`);
  return n;
}

/** A whole number in `min` .. `max` (a flag's value), else a usage error naming the range. */
export const intInRange =
  (min: number, max: number, unit = "") =>
  (v: string): number => {
    const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`invalid value '${v}', expected ${min} to ${max}${unit}`);
    return n;
  };

/** `--max-connections N` of the daemons' Unix sockets. */
export const parseMaxConnections = intInRange(1, 1_000_000);
/** `--idle-timeout SECONDS` of the daemons' Unix sockets. */
export const parseIdleTimeout = intInRange(1, 86_400, " seconds");

/** Wrap a FlagError-throwing parser for commander (bad values are usage errors, exit 124). */
export function wrap<T>(parse: (s: string) => T): (s: string) => T {
  return (s: string) => {
    try {
      return parse(s);
    } catch (e) {
      if (e instanceof FlagError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

/**
 * A repeatable option whose default list is replaced (not extended) by the first explicit
 * value, like cmdliner's `opt_all` with a default.
 */
export function repeatable<T>(parse: (s: string) => T, dflt: readonly T[]): (s: string, prev: readonly T[]) => readonly T[] {
  const p = wrap(parse);
  return (s, prev) => (prev === dflt ? [p(s)] : [...prev, p(s)]);
}

/**
 * Start a daemon that runs until SIGTERM or SIGINT, which close it and exit 0. The handlers
 * are in place before it starts: a signal that arrives during start-up (e.g. right after it
 * logged "listening on") stops it once it is up, instead of killing it with its socket left
 * behind. A second signal takes the default action.
 */
export async function runUntilSignal<D extends { close(): Promise<void> }>(start: () => Promise<D>, log: (line: string) => void): Promise<D> {
  let daemon: D | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    if (daemon !== undefined) void daemon.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  daemon = await start();
  if (stopping) void daemon.close().then(() => process.exit(0));
  return daemon;
}
