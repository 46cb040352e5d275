// `dromedary console-daemon`: the albatross-console equivalent (daemon.md §0, §3).
import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { startConsoleDaemon } from "../console/daemon.js";
import { existingDir, parseIdleTimeout, parseMaxConnections, parseMaxFrame, runUntilSignal, systemdListenFd } from "./options.js";
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from "../transport/limits.js";
import { CliError, EXIT } from "../core/exit.js";
import { addLogOptions, loggerFrom, type LogFlags } from "./logopts.js";

const DEFAULT_TMPDIR = "/run/albatross";

function parseMaxSubscribers(v: string): number {
  const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`invalid value '${v}', expected an integer`);
  if (n < 1) throw new InvalidArgumentError("max subscribers must be greater than or equal to 1");
  return n;
}

interface ConsoleDaemonFlags extends LogFlags {
  tmpdir: string;
  maxSubscribers: number;
  systemdSocketActivation?: boolean;
  maxFrame?: number;
  maxConnections: number;
  idleTimeout: number;
}

export function registerConsoleDaemonCommand(program: Command): void {
  const cmd = program
    .command("console-daemon")
    .description("buffer the consoles of running unikernels and serve them on <tmpdir>/util/console.sock (albatross-console)")
    .option("--tmpdir <DIR>", "runtime directory holding util/ and fifo/", existingDir, DEFAULT_TMPDIR)
    .option("--max-subscribers <N>", "maximum subscribers per unikernel console (>= 1)", parseMaxSubscribers, 5)
    .option("--systemd-socket-activation", "use the listening socket passed by systemd (fd 3)")
    .option("--max-frame <BYTES>", "largest accepted request frame (default 1 MiB)", parseMaxFrame)
    .option(
      "--max-connections <N>",
      "concurrent connections on console.sock; one more is answered 'too many connections' and closed",
      parseMaxConnections,
      DEFAULT_MAX_CONNECTIONS,
    )
    .option(
      "--idle-timeout <SECONDS>",
      "close a connection that waits this long for its next request (a console subscription is never cut)",
      parseIdleTimeout,
      DEFAULT_IDLE_TIMEOUT_MS / 1000,
    );
  addLogOptions(cmd);
  cmd.action(async (flags: ConsoleDaemonFlags) => {
    const tmpdir = flags.tmpdir;
    const listenFd = flags.systemdSocketActivation ? systemdListenFd() : undefined;
    const logger = loggerFrom("console-daemon", flags);
    const log = (line: string, level: "debug" | "info" | "warn" | "error" = "info"): void => logger.log(level, line);
    process.on("SIGPIPE", () => undefined);
    // SIGTERM and SIGINT close the listening socket and remove the socket file (upstream
    // leaves it behind).
    await runUntilSignal(async () => {
      try {
        return await startConsoleDaemon({
          tmpdir,
          maxSubscribers: flags.maxSubscribers,
          ...(listenFd !== undefined ? { listenFd } : {}),
          ...(flags.maxFrame !== undefined ? { maxFrame: flags.maxFrame } : {}),
          maxConnections: flags.maxConnections,
          idleTimeoutMs: flags.idleTimeout * 1000,
          log,
        });
      } catch (e) {
        throw new CliError(`console-daemon: ${e instanceof Error ? e.message : String(e)}`, EXIT.INTERNAL);
      }
    }, log);
  });
}
