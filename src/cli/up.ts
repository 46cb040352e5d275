// `dromedary up`: console-daemon, hostd, stats-daemon (and the endpoint when given its
// certificates) for one host, in order, with one merged log (src/up/).
import { mkdirSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError, type Command } from "commander";
import { intInRange } from "./options.js";
import { CliError, EXIT } from "../core/exit.js";
import { addLogOptions, type LogFlags } from "./logopts.js";
import { verbosityFrom } from "../core/log.js";
import type { RunAs } from "../up/user.js";

const DEFAULT_TMPDIR = "/run/albatross";
const DEFAULT_DBDIR = "/var/lib/albatross";

interface UpFlags extends LogFlags {
  tmpdir: string;
  dbdir: string;
  cacert?: string;
  cert?: string;
  key?: string;
  ip: string;
  port: number;
  stats: boolean;
  metricsListen?: string;
  statsInterval?: number;
  startTimeout: number;
  stopTimeout: number;
  user?: string;
}

/** The user the systemd units run the unprivileged daemons as (packaging/systemd/dromedary.sysusers). */
const UNITS_USER = "dromedary";

function parsePort(v: string): number {
  const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new InvalidArgumentError(`invalid port '${v}', expected 1 to 65535`);
  return n;
}

function parseIp(v: string): string {
  if (isIP(v) === 0) throw new InvalidArgumentError(`'${v}' is not an IPv4 or IPv6 address`);
  return v;
}

/** A directory, created (with its parents) when missing. */
function ensureDir(dir: string, mode: number, what: string): boolean {
  try {
    if (statSync(dir).isDirectory()) return false;
    throw new CliError(`${what} ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof CliError) throw e;
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new CliError(`${what} ${dir}: ${(e as Error).message}`);
  }
  try {
    mkdirSync(dir, { recursive: true, mode });
  } catch (e) {
    throw new CliError(`cannot create ${what} ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return true;
}

export function registerUpCommand(program: Command): void {
  const cmd = program
    .command("up")
    .summary("run a host's daemons in the foreground: console-daemon, hostd, stats-daemon (and the endpoint), one merged log")
    .description(
      "run the daemons of one host in the foreground, for trying Dromedary out or a host without systemd " +
        "(services: dromedary install-units): console-daemon, hostd (as root), stats-daemon and, given " +
        "--cacert, --cert and --key, the TLS endpoint. Run as root, up runs all but hostd as --user " +
        `(default: the ${UNITS_USER} user of install-units when it exists), as albatross and its systemd units do. ` +
        "Each starts once the one before it accepts connections; " +
        "their log lines are merged on stderr (each names its daemon). Ctrl-C or SIGTERM stops them in reverse " +
        "order, each waited for (a second one kills what is left), and removes their sockets. If a daemon ends " +
        "on its own, up says so, stops the others and exits 1.",
    )
    .option("--tmpdir <DIR>", "runtime directory (sockets in <DIR>/util, console FIFOs, images); created if missing", DEFAULT_TMPDIR)
    .option(
      "--dbdir <DIR>",
      "hostd's state file, block devices and tenders (solo5-hvt, solo5-spt: here or on PATH); created if missing (mode 0700)",
      DEFAULT_DBDIR,
    )
    .option("--cacert <FILE>", "endpoint: the CA client certificates must lead to")
    .option("--cert <FILE>", "endpoint: its certificate (chain)")
    .option("--key <FILE>", "endpoint: its private key")
    .option("--ip <ADDR>", "endpoint: listen address", parseIp, "::")
    .option("--port <N>", "endpoint: listen port", parsePort, 1025)
    .option(
      "--user <NAME>",
      `run console-daemon, stats-daemon and the endpoint as NAME, hostd as root in NAME's group; <DIR>/util and <DIR>/fifo become that group's (mode 2770). Default when run as root: ${UNITS_USER} if that user exists, else every daemon runs as root (up warns); 'root' runs every daemon as root`,
    )
    .option("--no-stats", "do not run the stats daemon")
    .option("--metrics-listen <HOST:PORT>", "stats daemon: serve Prometheus metrics at http://HOST:PORT/metrics")
    .option(
      "--stats-interval <SECONDS>",
      "stats daemon: seconds between samples (1 to 86400; default: the stats daemon's, 10)",
      intInRange(1, 86400, " seconds"),
    )
    .option("--start-timeout <SECONDS>", "how long each daemon may take to accept connections (1 to 3600)", intInRange(1, 3600, " seconds"), 60)
    .option(
      "--stop-timeout <SECONDS>",
      "how long each daemon may take to stop after SIGTERM before it is killed, with its processes (1 to 3600; hostd stops its unikernels first)",
      intInRange(1, 3600, " seconds"),
      30,
    );
  addLogOptions(cmd);
  cmd.addHelpText(
    "after",
    `
Example (as root; solo5-hvt or solo5-spt on PATH or in --dbdir):
  dromedary up --tmpdir /run/albatross --dbdir /var/lib/albatross
  dromedary up --cacert cacert.pem --cert server.pem --key server.key --port 1025`,
  );
  cmd.action(async (flags: UpFlags) => {
    const certs = [flags.cacert, flags.cert, flags.key];
    const given = certs.filter((c) => c !== undefined).length;
    if (given !== 0 && given !== 3) throw new CliError("the endpoint needs all three of --cacert, --cert and --key", EXIT.USAGE);
    if (given === 3) {
      for (const f of certs) {
        try {
          statSync(f!);
        } catch (e) {
          throw new CliError(`${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
    }
    const { resolve } = await import("node:path");
    const { lookupUser, prepareRuntimeDirs, searchable } = await import("../up/user.js");
    const root = process.getuid?.() === 0;
    let runAs: RunAs | undefined;
    let allRoot = false;
    if (flags.user !== undefined && flags.user !== "root") {
      if (!root) throw new CliError("--user needs up to run as root (only root can start daemons as another user)", EXIT.USAGE);
      runAs = lookupUser(flags.user) ?? undefined;
      if (runAs === undefined) throw new CliError(`--user ${flags.user}: no such user`, EXIT.USAGE);
    } else if (flags.user === undefined && root) {
      runAs = lookupUser(UNITS_USER) ?? undefined;
      allRoot = runAs === undefined;
    }
    const tmpdir = resolve(flags.tmpdir);
    const dbdir = resolve(flags.dbdir);
    const created = [ensureDir(tmpdir, 0o755, "--tmpdir") ? tmpdir : null, ensureDir(dbdir, 0o700, "--dbdir") ? dbdir : null].filter((d) => d !== null);
    if (runAs !== undefined && !searchable(tmpdir, runAs)) throw new CliError(`--tmpdir ${tmpdir}: the ${runAs.name} user cannot enter it (its mode or group)`);
    // the runtime directories become the user's group's only once no daemons of this
    // --tmpdir (albatross', say) are found running: their FIFOs are not taken from them
    const prepare =
      runAs === undefined
        ? undefined
        : (): readonly string[] => {
            try {
              return prepareRuntimeDirs(tmpdir, runAs);
            } catch (e) {
              throw new Error(`preparing ${tmpdir} for the ${runAs.name} user: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
            }
          };
    const { plan } = await import("../up/plan.js");
    const { Supervisor } = await import("../up/supervisor.js");
    const verbosity = verbosityFrom(flags);
    const format = flags.logFormat ?? "text";
    const children = plan({
      tmpdir,
      dbdir,
      stats: flags.stats,
      ...(flags.metricsListen !== undefined ? { metricsListen: flags.metricsListen } : {}),
      ...(flags.statsInterval !== undefined ? { statsInterval: flags.statsInterval } : {}),
      ...(given === 3
        ? { endpoint: { cacert: resolve(flags.cacert!), cert: resolve(flags.cert!), key: resolve(flags.key!), ip: flags.ip, port: flags.port } }
        : {}),
      verbosity,
      format,
    });
    const sup = new Supervisor({
      children,
      ...(runAs !== undefined ? { user: runAs } : {}),
      ...(prepare !== undefined ? { prepare } : {}),
      main: fileURLToPath(new URL("./main.js", import.meta.url)),
      verbosity,
      format,
      syslog: flags.syslog === true,
      startTimeoutMs: flags.startTimeout * 1000,
      stopTimeoutMs: flags.stopTimeout * 1000,
    });
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => sup.request(sig));
    process.on("SIGPIPE", () => undefined);
    // up going away by any other path: its daemons must not outlive it
    process.on("exit", () => sup.killAll());
    if (created.length > 0) sup.note(`created ${created.join(" and ")}`);
    if (runAs !== undefined) sup.note(`hostd runs as root in group ${runAs.gid}, the other daemons as ${runAs.name} (uid ${runAs.uid})`);
    if (allRoot) sup.warn(`every daemon runs as root: no ${UNITS_USER} user (dromedary install-units makes one), and no --user given`);
    process.exitCode = await sup.run();
  });
}
