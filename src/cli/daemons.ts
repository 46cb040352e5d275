// The daemon subcommands: `dromedary hostd` (albatrossd, daemon.md §2) and
// `dromedary console-daemon` (albatross-console, registered by console-daemon.ts),
// `dromedary stats-daemon` and `dromedary influx` (stats-daemon.ts).
import { InvalidArgumentError, type Command } from "commander";
import { registerConsoleDaemonCommand } from "./console-daemon.js";
import { registerStatsDaemonCommands } from "./stats-daemon.js";
import { existingDir, intInRange, parseIdleTimeout, parseMaxConnections, parseMaxFrame, systemdListenFd } from "./options.js";
import { EXIT } from "../core/exit.js";
import { DEFAULT_MAX_FRAME } from "../transport/requests.js";
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from "../transport/limits.js";
import { DEFAULT_MAX_IMAGE_SIZE, DEFAULT_MAX_REQUEST_MEMORY } from "../hostd/limits.js";
import { addLogOptions, loggerFrom, type LogFlags } from "./logopts.js";

const DEFAULT_HOSTD_TMPDIR = "/run/albatross";
const DEFAULT_DBDIR = "/var/lib/albatross";
/** `--console-timeout`: seconds hostd waits at start-up for the console daemon's socket */
const DEFAULT_CONSOLE_TIMEOUT = 30;
const MAX_CONSOLE_TIMEOUT = 3600;

function parseConsoleTimeout(v: string): number {
  const n = /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= MAX_CONSOLE_TIMEOUT)) throw new InvalidArgumentError(`invalid value '${v}', expected 0 to ${MAX_CONSOLE_TIMEOUT} seconds`);
  return n;
}

interface HostdFlags extends LogFlags {
  tmpdir: string;
  dbdir: string;
  dropPath: boolean;
  systemdSocketActivation?: boolean;
  maxFrame: number;
  consoleTimeout: number;
  maxImageSize: number;
  maxConnections: number;
  idleTimeout: number;
  maxRequestMemory: number;
  restoreBackup?: boolean;
  foldDelay?: number;
}

function parseFoldDelay(v: string): number {
  const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n > 60_000) throw new InvalidArgumentError(`invalid value '${v}', expected 0 to 60000 ms`);
  return n;
}

export function registerHostdCommand(program: Command): void {
  const cmd = program
    .command("hostd")
    .description("the privileged host daemon (albatrossd): runs unikernels, listens on <tmpdir>/util/vmmd.sock")
    .option("--tmpdir <DIR>", "runtime directory holding util/, fifo/ and images", existingDir, DEFAULT_HOSTD_TMPDIR)
    .option("--dbdir <DIR>", "directory of the state file, block devices and tenders", existingDir, DEFAULT_DBDIR)
    .option("--no-drop-path", "pass the full name (foo:bar) as --name= argument instead of the label")
    .option("--systemd-socket-activation", "use the listening socket passed by systemd (fd 3)")
    .option("--max-frame <BYTES>", "largest accepted frame (an image travels in one frame)", parseMaxFrame, DEFAULT_MAX_FRAME)
    .option(
      "--max-image-size <BYTES>",
      "largest unikernel image once inflated (checked while inflating it to its file, a few 64 KiB pieces at a time: a decompression bomb stops there)",
      intInRange(4096, Number.MAX_SAFE_INTEGER, " bytes"),
      DEFAULT_MAX_IMAGE_SIZE,
    )
    .option(
      "--max-connections <N>",
      "concurrent connections on vmmd.sock; one more is answered 'too many connections' and closed",
      parseMaxConnections,
      DEFAULT_MAX_CONNECTIONS,
    )
    .option(
      "--max-request-memory <BYTES>",
      "memory all requests larger than 64 KiB (images, inline block data) may take at once, from their arrival until done; one that does not fit is answered 'hostd busy'",
      intInRange(1 << 20, Number.MAX_SAFE_INTEGER, " bytes"),
      DEFAULT_MAX_REQUEST_MEMORY,
    )
    .option(
      "--idle-timeout <SECONDS>",
      "close a connection that waits this long for its next request, or for more data of a block upload (a request in progress is never cut)",
      parseIdleTimeout,
      DEFAULT_IDLE_TIMEOUT_MS / 1000,
    )
    .option(
      "--console-timeout <SECONDS>",
      `at start-up, wait this long (at most ${MAX_CONSOLE_TIMEOUT}) for the console daemon (dromedary console-daemon) to listen, retrying with pauses growing to 1 s; 0: fail at once, as albatrossd`,
      parseConsoleTimeout,
      DEFAULT_CONSOLE_TIMEOUT,
    )
    .option(
      "--restore-backup",
      "start from the newest intact stored state when <dbdir>/state or its journal is corrupt: state without the journal, else state.bak (the unusable files are moved to <dbdir>/set-aside.<time>/)",
    )
    .option("--fold-delay <MS>", "the longest a recorded change waits before it is folded into <dbdir>/state (default: 1000)", parseFoldDelay);
  addLogOptions(cmd);
  cmd
    .addHelpText(
      "after",
      `
Stored state: a change is acknowledged once it is recorded (synced) in
<dbdir>/state.journal.<n>; the journal is folded into <dbdir>/state (albatross's
format) within --fold-delay and at shutdown, and replayed at start. Exit status 1:
the stored state cannot be used (the message names the backup; see --restore-backup).`,
    )
    .action(async (flags: HostdFlags) => {
      const { tmpdir, dbdir } = flags;
      // Loaded lazily: the client commands should not pay for the daemon's modules.
      const { runHostd, StartupError } = await import("../hostd/daemon.js");
      process.on("SIGPIPE", () => undefined);
      const logger = loggerFrom("hostd", flags);
      try {
        await runHostd({
          tmpdir,
          dbdir,
          dropPath: flags.dropPath,
          ...(flags.systemdSocketActivation ? { listenFd: systemdListenFd() } : {}),
          maxFrame: flags.maxFrame,
          consoleTimeoutMs: flags.consoleTimeout * 1000,
          maxImageSize: flags.maxImageSize,
          maxConnections: flags.maxConnections,
          idleTimeoutMs: flags.idleTimeout * 1000,
          maxRequestMemory: flags.maxRequestMemory,
          verbose: logger.shows("debug"),
          log: logger.log,
          restoreBackup: flags.restoreBackup === true,
          ...(flags.foldDelay !== undefined ? { foldDelayMs: flags.foldDelay } : {}),
        });
      } catch (e) {
        if (e instanceof StartupError && e.exitCode !== EXIT.INTERNAL) {
          // "bailing out: ..." (stored state unusable). Upstream only logs it and ends with
          // status 0; we exit 1, so a service manager sees the failure.
          logger.log("error", e.message);
          process.exit(e.exitCode);
        }
        // Sockets opened before the failure would keep the process alive: exit right here.
        logger.log("error", e instanceof Error ? e.message : String(e));
        process.exit(EXIT.INTERNAL);
      }
      // The listening socket keeps the process alive until SIGTERM (§2.12).
    });
}

export function registerDaemonCommands(program: Command): void {
  registerHostdCommand(program);
  registerConsoleDaemonCommand(program);
  registerStatsDaemonCommands(program);
}
