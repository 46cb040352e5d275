// `dromedary stats-daemon` (albatross-stats, daemon.md §4) and `dromedary influx`
// (albatross-influx, §5).
import v8 from "node:v8";
import vm from "node:vm";
import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { parseName, rootName, type Name } from "../core/name.js";
import { existingDir, intInRange, parseMaxConnections, parseMaxFrame, runUntilSignal, systemdListenFd } from "./options.js";
import { CliError, EXIT } from "../core/exit.js";
import { addLogOptions, loggerFrom, type LogFlags } from "./logopts.js";
// only the bounds: the daemons themselves are loaded when run
import { MAX_INFLUX_QUEUED_BYTES, MAX_METRICS_CONNECTIONS, STATS_DEFAULTS } from "../stats/limits.js";

const DEFAULT_TMPDIR = "/run/albatross";

/**
 * Keep V8's young generation at its initial size in the stats daemon, however it is started.
 * With Node's default flags the young generation grows to 3 x 16 MiB under a round's
 * allocation burst at 200 unikernels and is kept: about half the daemon's RSS. The maximum
 * (--max-semi-space-size) is fixed when the heap is set up, so setting it here would do
 * nothing (measured); the growth factor is read at each growth, and 1 means "never grow".
 * An explicit choice (--max-semi-space-size or --semi-space-growth-factor in Node's
 * arguments or NODE_OPTIONS, as the systemd unit sets) is left alone.
 */
export function capYoungGeneration(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ""): boolean {
  const chosen = (s: string): boolean => /--(max-semi-space-size|semi-space-growth-factor|max_semi_space_size|semi_space_growth_factor)\b/.test(s);
  if (execArgv.some(chosen) || chosen(nodeOptions)) return false;
  v8.setFlagsFromString("--semi-space-growth-factor=1");
  return true;
}

/**
 * V8's gc() without --expose-gc on Node's command line (the unit's or the user's): the
 * daemon collects a round's garbage between rounds (stats/daemon.ts collectGarbage).
 */
export function fullCollector(): (() => void) | undefined {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    return typeof gc === "function" ? () => void gc() : undefined;
  } catch {
    return undefined;
  }
}

function parseInterval(v: string): number {
  const n = /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0.1 || n > 86400) throw new InvalidArgumentError(`invalid interval '${v}', expected seconds from 0.1 to 86400`);
  return n;
}

interface StatsDaemonFlags extends LogFlags {
  tmpdir: string;
  interval: number;
  systemdSocketActivation?: boolean;
  metricsListen?: string;
  maxUnikernels: number;
  maxSubscribers: number;
  maxConnections: number;
  maxFrame: number;
  procRoot?: string;
  sysRoot?: string;
  debugfsRoot: string;
}

export function registerStatsDaemonCommands(program: Command): void {
  const D = STATS_DEFAULTS;
  const stats = program
    .command("stats-daemon")
    .description(
      "gather statistics of the running unikernels (albatross-stats): registered by hostd over " +
        "<tmpdir>/util/vmmd.sock, sampled every --interval seconds from /proc and /sys (and KVM's debugfs), " +
        "served to subscribers on <tmpdir>/util/stat.sock and, with --metrics-listen, as Prometheus metrics. " +
        `Bounds: the options below; at most ${D.maxNics} interfaces per unikernel; ` +
        `${D.maxPendingBytes / (1024 * 1024)} MiB of unread output per subscriber (then it is dropped); ` +
        `${MAX_METRICS_CONNECTIONS} concurrent /metrics connections; per unikernel 4 files kept open (3 without --metrics-listen) and 4 per interface.`,
    )
    .option("--tmpdir <DIR>", "runtime directory holding util/", existingDir, DEFAULT_TMPDIR)
    .option("--interval <SECONDS>", "seconds between sampling rounds", parseInterval, D.intervalSeconds)
    .option("--systemd-socket-activation", "use the listening socket passed by systemd (fd 3)")
    .option("--metrics-listen <HOST:PORT>", "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9125)")
    .option("--max-unikernels <N>", "registered unikernels at most (more are answered 'not added')", intInRange(1, 1 << 30), D.maxUnikernels)
    .option("--max-subscribers <N>", "statistics subscriptions at once", intInRange(1, 1 << 30), D.maxSubscribers)
    .option("--max-connections <N>", "client connections at once (hostd's not counted)", parseMaxConnections, D.maxConnections)
    .option("--max-frame <BYTES>", "largest accepted request frame", parseMaxFrame, D.maxFrame)
    .option("--proc-root <DIR>", "where procfs is mounted", existingDir)
    .option("--sys-root <DIR>", "where sysfs is mounted", existingDir)
    .option("--debugfs-root <DIR>", "where debugfs is mounted (KVM's per-VM counters are read from <DIR>/kvm)", "/sys/kernel/debug");
  addLogOptions(stats).action(async (flags: StatsDaemonFlags) => {
    capYoungGeneration();
    const { startStatsDaemon } = await import("../stats/daemon.js");
    const { parseListen } = await import("../stats/prometheus.js");
    const metricsListen = flags.metricsListen === undefined ? undefined : parseListen(flags.metricsListen);
    if (metricsListen === null)
      throw new CliError(`--metrics-listen: expected HOST:PORT with an IP address (e.g. 127.0.0.1:9125), got '${flags.metricsListen}'`);
    const listenFd = flags.systemdSocketActivation ? systemdListenFd() : undefined;
    const collectGarbage = fullCollector();
    const log = loggerFrom("stats-daemon", flags).log;
    process.on("SIGPIPE", () => undefined);
    await runUntilSignal(
      async () => {
        try {
          return await startStatsDaemon({
            tmpdir: flags.tmpdir,
            intervalSeconds: flags.interval,
            maxUnikernels: flags.maxUnikernels,
            maxSubscribers: flags.maxSubscribers,
            maxConnections: flags.maxConnections,
            maxFrame: flags.maxFrame,
            debugfsRoot: flags.debugfsRoot,
            ...(listenFd !== undefined ? { listenFd } : {}),
            ...(metricsListen !== undefined ? { metricsListen } : {}),
            ...(flags.procRoot !== undefined ? { procRoot: flags.procRoot } : {}),
            ...(collectGarbage !== undefined ? { collectGarbage } : {}),
            ...(flags.sysRoot !== undefined ? { sysRoot: flags.sysRoot } : {}),
            log,
          });
        } catch (e) {
          throw new CliError(`stats-daemon: ${e instanceof Error ? e.message : String(e)}`, EXIT.INTERNAL);
        }
      },
      (line) => log("info", line),
    );
  });

  const influx = program
    .command("influx")
    .description(
      "forward the statistics to Influx as line protocol over TCP (albatross-influx): subscribes on " +
        "<tmpdir>/util/stat.sock, reconnects both sides every 5 s; messages the TCP side cannot take " +
        `(not connected, or more than ${MAX_INFLUX_QUEUED_BYTES / (1024 * 1024)} MiB unread) are lost`,
    )
    .option("--influx <IP[:PORT]>", "address of the line protocol listener, e.g. 127.0.0.1:8094 or [::1]:8094 (port 8094 by default)")
    .option("-n, --name <NAME>", "name to subscribe to (default ':' = everything)")
    .option("--no-drop-path", "use the full name (alice:web) as vm tag instead of the label")
    .option("--tmpdir <DIR>", "runtime directory holding util/stat.sock", existingDir, DEFAULT_TMPDIR);
  addLogOptions(influx).action(async (flags: { influx?: string; name?: string; dropPath: boolean; tmpdir: string } & LogFlags) => {
    const { parseInfluxTarget, startInflux } = await import("../stats/influx-daemon.js");
    if (flags.influx === undefined) throw new CliError("influx host not provided");
    const target = parseInfluxTarget(flags.influx);
    if (target === null) throw new CliError(`--influx: expected an IP address literal with an optional port (IP[:PORT], [IPv6]:PORT), got '${flags.influx}'`);
    let name: Name = rootName;
    if (flags.name !== undefined) {
      try {
        name = parseName(flags.name);
      } catch (e) {
        throw new CliError(`--name: ${(e as Error).message}`);
      }
    }
    process.on("SIGPIPE", () => undefined);
    const f = startInflux({
      tmpdir: flags.tmpdir,
      influx: target,
      name,
      noDropPath: !flags.dropPath,
      log: loggerFrom("influx", flags).log,
    });
    process.once("SIGTERM", () => f.close());
    process.once("SIGINT", () => f.close());
    try {
      await f.done;
    } catch (e) {
      throw new CliError(`influx: ${(e as Error).message}`, EXIT.USAGE);
    }
  });
}
