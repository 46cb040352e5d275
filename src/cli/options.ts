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
