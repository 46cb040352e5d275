// The logging options every daemon takes (-v, -q, --verbosity, --syslog, --log-format) and
// the logger they make (src/core/log.ts).
import { Option, type Command } from "commander";
import { createLogger, LOG_FORMATS, VERBOSITIES, verbosityFrom, type LogFormat, type Logger, type Verbosity } from "../core/log.js";

export interface LogFlags {
  verbose?: number | boolean;
  quiet?: boolean;
  verbosity?: Verbosity;
  syslog?: boolean;
  logFormat?: LogFormat;
}

const count = (_v: string, prev: number): number => prev + 1;

/**
 * Add the logging options. "daemon": info by default, -v debug, -q warnings and errors;
 * "albatross" (the endpoint, as albatross-tls-endpoint): warning by default, -v info,
 * -vv debug, -q nothing.
 */
export function addLogOptions(cmd: Command, style: "daemon" | "albatross" = "daemon", opts: { syslog?: boolean } = {}): Command {
  if (style === "albatross") {
    cmd.option("-v, --verbose", "more log output (twice: debug; default: warnings and errors)", count, 0);
    cmd.option("-q, --quiet", "no log output");
  } else {
    cmd.option("-v, --verbose", "log debug messages too (default: info and above)", count, 0);
    cmd.option("-q, --quiet", "log only warnings and errors");
  }
  cmd.addOption(new Option("--verbosity <LEVEL>", "log this level and the more severe ones").choices(VERBOSITIES as string[]));
  if (opts.syslog !== false) cmd.option("--syslog", "log to syslog through logger(1) (facility daemon, tag dromedary-<daemon>) instead of stderr");
  cmd.addOption(
    new Option("--log-format <FORMAT>", "text: '<RFC 3339 time> <daemon>: [LEVEL] message'; json: one object per line {time, level, daemon, pid, msg}")
      .choices(LOG_FORMATS as string[])
      .default("text"),
  );
  return cmd;
}

export function loggerFrom(daemon: string, f: LogFlags, style: "daemon" | "albatross" = "daemon"): Logger {
  return createLogger({
    daemon,
    verbosity: verbosityFrom(f, style),
    format: f.logFormat ?? "text",
    syslog: f.syslog === true,
  });
}
