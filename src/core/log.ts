// One logging style for every daemon (hostd, console-daemon, stats-daemon, influx, endpoint,
// up). Imports nothing from the project: any layer may use it.
//
// Text (the default), one line per message on stderr:
//   2025-06-01T10:00:00.123Z hostd: [WARNING] message
// (RFC 3339 time in UTC, the daemon's name, the level as albatross's Logs prints it).
// `--log-format json`: one object per line for log shippers:
//   {"time":"2025-06-01T10:00:00.123Z","level":"warning","daemon":"hostd","pid":42,"msg":"message"}
// `--syslog`: every line goes to syslog through logger(1) (facility daemon, the level as its
// priority, tag dromedary-<daemon>); syslog adds its own time, so the text form there is
// `[WARNING] message`.
import { spawn, type ChildProcess } from "node:child_process";

/** what a daemon reports a message as */
export type Level = "debug" | "info" | "warn" | "error";
/** what is shown: this level and the more severe ones (quiet: nothing) */
export type Verbosity = "quiet" | "error" | "warning" | "info" | "debug";
export type LogFormat = "text" | "json";
type Log = (level: Level, msg: string) => void;

export const VERBOSITIES: readonly Verbosity[] = ["quiet", "error", "warning", "info", "debug"];
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

const RANK: Record<Level | Verbosity, number> = { quiet: 0, error: 1, warn: 2, warning: 2, info: 3, debug: 4 };
const TAG: Record<Level, string> = { debug: "DEBUG", info: "INFO", warn: "WARNING", error: "ERROR" };
const JSON_LEVEL: Record<Level, string> = { debug: "debug", info: "info", warn: "warning", error: "error" };
/** syslog severities (RFC 5424) */
const SEVERITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };
const FACILITY_DAEMON = 3;

/** Is a message of `level` shown at `verbosity`? */
export function shows(verbosity: Verbosity, level: Level): boolean {
  return RANK[level] <= RANK[verbosity];
}

/** One message as a line (no newline). */
export function formatLine(format: LogFormat, daemon: string, level: Level, msg: string, time: Date, pid: number, forSyslog = false): string {
  if (format === "json") return JSON.stringify({ time: time.toISOString(), level: JSON_LEVEL[level], daemon, pid, msg });
  // one message, one line: a stray newline (e.g. in an error's text) must not start a line
  // that looks like another message
  const text = msg.includes("\n") ? msg.replace(/\r?\n/g, "\\n") : msg;
  return forSyslog ? `[${TAG[level]}] ${text}` : `${time.toISOString()} ${daemon}: [${TAG[level]}] ${text}`;
}

export interface ParsedLine {
  readonly time: string;
  readonly daemon: string;
  readonly level: Level;
  readonly msg: string;
}

const TEXT_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ([A-Za-z0-9_.-]+): \[(DEBUG|INFO|WARNING|ERROR)\] (.*)$/;
const FROM_TAG: Record<string, Level> = { DEBUG: "debug", INFO: "info", WARNING: "warn", ERROR: "error" };
const FROM_JSON: Record<string, Level> = { debug: "debug", info: "info", warning: "warn", error: "error" };

/** A line in either format, or null (not one of ours: e.g. a crash's stack trace). */
export function parseLine(line: string): ParsedLine | null {
  const m = TEXT_LINE.exec(line);
  if (m) return { time: m[1]!, daemon: m[2]!, level: FROM_TAG[m[3]!]!, msg: m[4]! };
  if (line.startsWith("{")) {
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      const level = typeof o.level === "string" ? FROM_JSON[o.level] : undefined;
      if (typeof o.time === "string" && typeof o.daemon === "string" && typeof o.msg === "string" && level !== undefined) {
        return { time: o.time, daemon: o.daemon, level, msg: o.msg };
      }
    } catch {
      return null;
    }
  }
  return null;
}

export interface LoggerOptions {
  /** the name in every line: hostd, console-daemon, stats-daemon, influx, endpoint, up */
  readonly daemon: string;
  /** default info */
  readonly verbosity?: Verbosity;
  /** default text */
  readonly format?: LogFormat;
  /** to syslog through logger(1) instead of stderr */
  readonly syslog?: boolean;
  /** where lines go (tests); default stderr */
  readonly write?: (line: string) => void;
  readonly now?: () => Date;
  /** when logger(1) cannot be started (default: the message albatross prints, exit 2) */
  readonly onSyslogError?: (e: Error) => void;
}

export interface Logger {
  readonly log: Log;
  readonly verbosity: Verbosity;
  /** would a message of this level be shown (to skip building costly messages) */
  shows(level: Level): boolean;
}

function syslogFailed(e: Error): never {
  process.stderr.write(`ERROR: couldn't install syslog reporter: ${e.message}\n`);
  process.exit(2);
}

/** A sink writing lines to logger(1) (facility daemon, priority per line). */
function syslogSink(daemon: string, onError: (e: Error) => void): (level: Level, line: string) => void {
  let child: ChildProcess;
  try {
    child = spawn("logger", ["--prio-prefix", "-t", `dromedary-${daemon}`, `--id=${process.pid}`], { stdio: ["pipe", "ignore", "ignore"] });
  } catch (e) {
    onError(e as Error);
    return () => undefined;
  }
  child.on("error", (e) => onError(e));
  child.stdin!.on("error", () => undefined);
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return (level, line) => void child.stdin!.write(`<${FACILITY_DAEMON * 8 + SEVERITY[level]}>${line}\n`);
}

export function createLogger(o: LoggerOptions): Logger {
  const verbosity = o.verbosity ?? "info";
  const format = o.format ?? "text";
  const now = o.now ?? (() => new Date());
  const max = RANK[verbosity];
  let log: Log;
  if (o.syslog === true) {
    const sink = syslogSink(o.daemon, o.onSyslogError ?? syslogFailed);
    log = (level, msg) => {
      if (RANK[level] > max) return;
      sink(level, formatLine(format, o.daemon, level, msg, now(), process.pid, true));
    };
  } else {
    const write = o.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
    log = (level, msg) => {
      if (RANK[level] > max) return;
      write(formatLine(format, o.daemon, level, msg, now(), process.pid));
    };
  }
  return { log, verbosity, shows: (level) => RANK[level] <= max };
}

/**
 * The daemons' -v/-q: hostd, console-daemon, stats-daemon and influx show info by default,
 * -v adds debug, -q leaves warnings and errors. The endpoint keeps albatross's Logs_cli
 * (warning by default, -v info, -vv debug, -q nothing). --verbosity names the level.
 */
export function verbosityFrom(f: { verbose?: number | boolean; quiet?: boolean; verbosity?: Verbosity }, style: "daemon" | "albatross" = "daemon"): Verbosity {
  if (f.verbosity !== undefined) return f.verbosity;
  const v = f.verbose === true ? 1 : typeof f.verbose === "number" ? f.verbose : 0;
  if (style === "albatross") {
    if (f.quiet) return "quiet";
    return v >= 2 ? "debug" : v === 1 ? "info" : "warning";
  }
  if (f.quiet) return "warning";
  return v >= 1 ? "debug" : "info";
}
