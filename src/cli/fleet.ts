// `update NAME`, `rollback NAME` and `fleet info|update`: flags, prompts, output and exit
// codes; the work is in src/fleet/.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import { Argument, InvalidArgumentError, Option, type Command as Cmd } from "commander";
import { encodeWire } from "../commands/codec.js";
import { hexdump } from "../commands/render.js";
import { WIRE_VERSION } from "../commands/types.js";
import { rootName, type Name } from "../core/name.js";
import { Builder, DEFAULT_HTTP_TIMEOUT_MS, HttpFailure } from "../fleet/builder.js";
import { FleetFileError, readFleet, selectHosts, type FleetHost } from "../fleet/file.js";
import { DEFAULT_CONCURRENCY, MAX_CONCURRENCY, fleetInfo, fleetUpdate, renderInfo, renderSummary, targetOf } from "../fleet/fleet.js";
import type { HealthSpec } from "../fleet/health.js";
import { RollbackStore, StoreError, defaultStateDir } from "../fleet/store.js";
import { TargetError, localTarget, remoteTarget, type Target } from "../fleet/target.js";
import { outcomeExit, rollbackNow, updateOne } from "../fleet/update.js";
import { defaultLevel, destinationOf, type DestinationOptions } from "../client/jump.js";
import { DEFAULT_TMPDIR, addDestinationOptions } from "./client.js";
import { wrap } from "./options.js";
import { FlagError, parseCompressionLevel, parseDestination, parseHttpHost, parseNameArg } from "./flags.js";
import { CliError, EXIT } from "../core/exit.js";

const DEFAULT_BUILDER = "https://builds.robur.coop";
const FLEET_PARSERS = { destination: (s: string) => parseDestination(s), httpHost: parseHttpHost };
const DEFAULT_HEALTH_SECONDS = 10;
const MAX_HEALTH_SECONDS = 3600;
const DEFAULT_WINDOW_HOURS = 168;

type Opts = DestinationOptions & Record<string, unknown>;

const act =
  <A extends unknown[]>(f: (...args: A) => Promise<number>) =>
  async (...args: A): Promise<void> => {
    try {
      process.exitCode = await f(...args);
    } catch (e) {
      if (e instanceof FleetFileError || e instanceof StoreError) throw new CliError(e.message, EXIT.USAGE);
      if (e instanceof HttpFailure) throw new CliError(`error in HTTP interaction: ${e.message}`, EXIT.HTTP);
      if (e instanceof TargetError) throw new CliError(e.message, e.exitCode);
      throw e;
    }
  };

const intIn =
  (what: string, lo: number, hi: number) =>
  (s: string): number => {
    const n = /^[0-9]+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`${what} must be an integer from ${lo} to ${hi}`);
    return n;
  };

function parseHealthUrl(s: string): string {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${s}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidArgumentError("expected an http:// or https:// URL");
  return s;
}

function parseHostPort(s: string): { host: string; port: number } {
  if (!/:[0-9]+$/.test(s)) throw new FlagError("expected HOST:PORT");
  return parseDestination(s);
}

function readPem(file: string): string {
  try {
    const t = readFileSync(file, "utf8");
    if (!t.includes("-----BEGIN CERTIFICATE-----")) throw new InvalidArgumentError(`${file}: no PEM certificate`);
    return t;
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw new InvalidArgumentError(`no '${file}' file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** --http-host, --builder-ca, --http-timeout */
function addBuilderOptions(c: Cmd, hostDefault: string | undefined): Cmd {
  const host = new Option(
    "--http-host <URL>",
    `builder-web base URL${hostDefault === undefined ? ` (default: the fleet file's "builder", else ${DEFAULT_BUILDER})` : ""}`,
  ).argParser(wrap(parseHttpHost));
  return c
    .addOption(hostDefault !== undefined ? host.default(hostDefault) : host)
    .addOption(new Option("--builder-ca <FILE>", "PEM CA certificate(s) trusted for an https builder besides the system's").argParser(readPem))
    .addOption(
      new Option("--http-timeout <SECONDS>", "give up on a builder request after this long without data (1-600)")
        .argParser(intIn("--http-timeout", 1, 600))
        .default(DEFAULT_HTTP_TIMEOUT_MS / 1000),
    );
}

/** --dryrun, --yes, the health check, --state-dir, --compression-level */
function addUpdateOptions(c: Cmd): Cmd {
  return c
    .option("--dryrun, --dry-run", "show what would change (builds, package diff), deploy nothing")
    .option("-y, --yes", "do not ask before deploying (on a terminal the default is to ask)")
    .addOption(
      new Option(
        "--health-timeout <SECONDS>",
        "after deploying, the unikernel must keep running this long (0-3600; 0 = no check); on failure the previous image is put back",
      )
        .argParser(intIn("--health-timeout", 0, MAX_HEALTH_SECONDS))
        .default(DEFAULT_HEALTH_SECONDS),
    )
    .addOption(new Option("--health-url <URL>", "also require this http(s) URL to answer 2xx within the health timeout").argParser(parseHealthUrl))
    .addOption(
      new Option("--health-tcp <HOST:PORT>", "also require this TCP port to accept a connection within the health timeout").argParser(wrap(parseHostPort)),
    )
    .option(
      "--state-dir <DIR>",
      "where the previous images are kept for rollbacks (default $DROMEDARY_STATE_DIR, else $XDG_STATE_HOME/dromedary/previous, else ~/.local/state/dromedary/previous)",
    )
    .addOption(new Option("--compression-level <0-9>", "zlib level of the deployed image (default 0 local, 9 remote)").argParser(wrap(parseCompressionLevel)));
}

function builderOf(o: Opts, fallback?: string): Builder {
  return new Builder({
    base: (o.httpHost as string | undefined) ?? fallback ?? DEFAULT_BUILDER,
    ...(o.builderCa !== undefined ? { extraCa: [o.builderCa as string] } : {}),
    timeoutMs: (o.httpTimeout as number) * 1000,
  });
}

function healthOf(o: Opts): HealthSpec {
  const seconds = o.healthTimeout as number;
  if (seconds === 0 && (o.healthUrl !== undefined || o.healthTcp !== undefined))
    throw new CliError("--health-url/--health-tcp need a --health-timeout above 0");
  return {
    seconds,
    ...(o.healthUrl !== undefined ? { url: o.healthUrl as string } : {}),
    ...(o.healthTcp !== undefined ? { tcp: o.healthTcp as { host: string; port: number } } : {}),
  };
}

const storeOf = (o: Opts): RollbackStore => new RollbackStore(path.resolve((o.stateDir as string | undefined) ?? defaultStateDir()));

/** On a terminal without --yes/--dryrun/--json: ask. */
function confirmer(o: Opts): ((q: string) => Promise<boolean>) | undefined {
  if (o.yes || o.dryRun || o.json || !process.stdin.isTTY || !process.stdout.isTTY) return undefined;
  return async (q) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const ac = new AbortController();
    rl.on("SIGINT", () => ac.abort()); // Ctrl-C at the question: no
    try {
      return /^y(es)?$/i.test((await rl.question(`${q} [y/N] `, { signal: ac.signal })).trim());
    } catch {
      return false;
    } finally {
      rl.close();
    }
  };
}

/**
 * The first SIGINT lets the running update (and its health check or rollback) finish and
 * stops there; a second one exits at once (hostd still replaces images atomically).
 */
function stopOnSigint(): { requested: () => boolean; done: () => void } {
  let requested = false;
  const onInt = (): void => {
    if (requested) process.exit(130);
    requested = true;
    process.stderr.write("dromedary: interrupted: finishing the update in progress, then stopping (again to quit at once)\n");
  };
  process.on("SIGINT", onInt);
  return { requested: () => requested, done: () => void process.off("SIGINT", onInt) };
}

const say = (json: boolean) => (text: string, ev: Record<string, unknown>) => void process.stdout.write(`${json ? JSON.stringify(ev) : text}\n`);
const warn = (text: string): void => void process.stderr.write(`dromedary: ${text}\n`);

/** The label of a local socket in the rollback store: `local`, or with the socket's hash. */
function localLabel(socket: string | undefined, tmpdir: string): string {
  const file = path.resolve(socket ?? path.join(tmpdir, "util", "vmmd.sock"));
  return file === path.join(DEFAULT_TMPDIR, "util", "vmmd.sock") ? "local" : `local-${createHash("sha256").update(file).digest("hex").slice(0, 12)}`;
}

async function targetFromOptions(o: Opts): Promise<Target> {
  const d = destinationOf(o);
  if (d.kind === "csr") throw new CliError("update with CSR not supported");
  if (d.kind === "local")
    return localTarget({ tmpdir: o.tmpdir, label: localLabel(d.socket, o.tmpdir), ...(d.socket !== undefined ? { socket: d.socket } : {}) });
  let caKeyPassword: string | undefined;
  if (o.keyPasswordFile !== undefined) caKeyPassword = readFileSync(o.keyPasswordFile, "utf8").replace(/\r?\n$/, "");
  return remoteTarget({
    host: d.host.host,
    port: d.host.port,
    ca: o.ca,
    caKey: o.caKey,
    serverCa: o.serverCa,
    keyType: o.keyType,
    ...(caKeyPassword !== undefined ? { caKeyPassword } : {}),
  });
}

function fleetHost(hosts: readonly FleetHost[], name: string): FleetHost {
  const h = hosts.find((x) => x.name === name);
  if (!h) throw new CliError(`no host "${name}" in the fleet file`);
  return h;
}

export function registerFleetCommands(program: Cmd): void {
  const nameArgument = () => new Argument("<NAME>", "name of the unikernel (path:label)").argParser(wrap(parseNameArg));

  addUpdateOptions(
    addBuilderOptions(
      addDestinationOptions(
        program
          .command("update")
          .description("update a unikernel to its job's latest build on a builder-web repository: package diff, then deploy, health check, rollback on failure")
          .addArgument(nameArgument()),
      ),
      DEFAULT_BUILDER,
    ),
  ).action(
    act(async (name: Name, o: Opts) => {
      const d = destinationOf(o);
      if (d.kind === "csr") throw new CliError("update with CSR not supported");
      if (d.kind === "local" && d.socket === "-") {
        // as upstream: the info request, encoded
        const wire = {
          header: { version: WIRE_VERSION, sequence: 0n, name },
          payload: { kind: "command" as const, command: { kind: "unikernel-info" as const } },
        };
        process.stdout.write(`out:\n${hexdump(encodeWire(wire))}\n`);
        return EXIT.COMMUNICATION;
      }
      const target = await targetFromOptions(o);
      const stop = stopOnSigint();
      const confirm = confirmer(o);
      try {
        const outcome = await updateOne({
          target,
          builder: builderOf(o),
          store: storeOf(o),
          name,
          level: defaultLevel(d, o.compressionLevel as number | undefined),
          dryRun: Boolean(o.dryRun),
          health: healthOf(o),
          ...(confirm ? { confirm } : {}),
          say: say(Boolean(o.json)),
          warn,
        });
        if (outcome.kind === "failed") warn(outcome.message);
        return outcomeExit(outcome);
      } finally {
        stop.done();
      }
    }),
  );

  addDestinationOptions(
    program
      .command("rollback")
      .description("put back the image a unikernel ran before its last update (kept by update in --state-dir), with the same configuration")
      .addArgument(nameArgument()),
  )
    .option("--state-dir <DIR>", "where update kept the previous images (as for update)")
    .addOption(
      new Option("--window <HOURS>", "refuse a previous image kept longer ago than this (1-8760)")
        .argParser(intIn("--window", 1, 8760))
        .default(DEFAULT_WINDOW_HOURS),
    )
    .option("--force", "roll back even if the unikernel no longer runs the image the update deployed, or the window has passed")
    .option("--fleet <FILE>", "fleet file (JSON) naming the host given with --host")
    .option("--host <HOST>", "the host of the fleet file to roll back on")
    .addOption(new Option("--compression-level <0-9>", "zlib level of the image sent (default 0 local, 9 remote)").argParser(wrap(parseCompressionLevel)))
    .action(
      act(async (name: Name, o: Opts) => {
        let target: Target;
        let level: number;
        if (o.fleet !== undefined || o.host !== undefined) {
          if (o.fleet === undefined || o.host === undefined) throw new CliError("--fleet and --host go together");
          const fleet = await readFleet(o.fleet as string, FLEET_PARSERS);
          target = targetOf(fleetHost(fleet.hosts, o.host as string));
          level = (o.compressionLevel as number | undefined) ?? 9;
        } else {
          target = await targetFromOptions(o);
          level = defaultLevel(destinationOf(o), o.compressionLevel as number | undefined);
        }
        return rollbackNow(
          { target, store: storeOf(o), name, level, say: say(Boolean(o.json)), health: { seconds: 0 } },
          { force: Boolean(o.force), windowHours: o.window as number },
        );
      }),
    );

  addUpdateOptions(
    addBuilderOptions(
      program
        .command("fleet")
        .description("the hosts of a fleet file: `fleet info` shows what runs where and whether it is outdated; `fleet update` updates host by host")
        .addArgument(new Argument("<ACTION>", "info or update").choices(["info", "update"]))
        .requiredOption("--fleet <FILE>", "fleet file (JSON: hosts with name, destination, server-ca, ca, ca-key, groups; paths relative to it)")
        .option("--group <GROUP>", "only the hosts of this group")
        .addOption(
          new Option("-n, --name <NAME>", "update: only this unikernel (default: every unikernel the host's certificate sees)").argParser(wrap(parseNameArg)),
        )
        .addOption(
          new Option("--concurrency <N>", `info: hosts asked at the same time (1-${MAX_CONCURRENCY})`)
            .argParser(intIn("--concurrency", 1, MAX_CONCURRENCY))
            .default(DEFAULT_CONCURRENCY),
        )
        .option("--keep-going", "update: go on after a failed or rolled back update (default: stop there)")
        .option("--no-builder", "info: do not ask the builder (outdated? stays unknown)")
        .option("--json", "info: one JSON document; update: JSON lines"),
      undefined,
    ),
  ).action(
    act(async (action: "info" | "update", o: Opts) => {
      const fleet = await readFleet(o.fleet as string, FLEET_PARSERS);
      const hosts = selectHosts(fleet, o.group as string | undefined);
      const builder = o.builder === false ? null : builderOf(o, fleet.builder);
      const json = Boolean(o.json);
      if (action === "info") {
        const reports = await fleetInfo({ hosts, builder, concurrency: o.concurrency as number });
        process.stdout.write(json ? `${JSON.stringify({ hosts: reports }, null, 1)}\n` : `${renderInfo(reports)}\n`);
        return reports.every((r) => r.reachable) ? EXIT.OK : EXIT.CONNECT;
      }
      if (builder === null) throw new CliError("fleet update needs the builder (no --no-builder)");
      const stop = stopOnSigint();
      const confirm = confirmer(o);
      try {
        const entries = await fleetUpdate({
          hosts,
          builder,
          store: storeOf(o),
          name: (o.name as Name | undefined) ?? rootName,
          level: (o.compressionLevel as number | undefined) ?? 9,
          dryRun: Boolean(o.dryRun),
          keepGoing: Boolean(o.keepGoing),
          health: healthOf(o),
          ...(confirm ? { confirm } : {}),
          say: (host, text, ev) => say(json)(`${host}: ${text.split("\n").join(`\n${host}: `)}`, ev),
          warn: (host, text) => warn(`${host}: ${text}`),
          stopRequested: stop.requested,
        });
        process.stdout.write(json ? `${JSON.stringify({ event: "summary", entries })}\n` : `${renderSummary(entries)}\n`);
        return entries.find((e) => e.exitCode !== 0)?.exitCode ?? EXIT.OK;
      } finally {
        stop.done();
      }
    }),
  );
}
