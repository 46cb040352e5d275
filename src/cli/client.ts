// albatross-client's command subcommands (cli.md §1–§3): flags -> Command, sent by
// client/jump.ts (local socket, `--socket -` dump, CSR, or --destination).

import { statSync } from "node:fs";
import { Argument, Option, type Command as Cmd } from "commander";
import type { BlockDevice, Command, NetDevice, Policy, UnikernelArguments, UnikernelConfig } from "../commands/types.js";
// the key types' names only: the certificate libraries are loaded when a command needs them
import { KEY_TYPES } from "../ca/key-types.js";
import { pathName, rootName, rootPath, type Name, type Path } from "../core/name.js";
import {
  FlagError,
  hasDuplicates,
  intSet,
  parseBlockSpec,
  parseBridgeTap,
  parseCompressionLevel,
  parseDestination,
  parseIntStrict,
  parseNameArg,
  parseNetSpec,
  parsePathArg,
  parseTimestamp,
} from "./flags.js";
import { existingDir, repeatable, wrap } from "./options.js";
import { CliError, EXIT } from "../core/exit.js";
import { defaultLevel, destinationOf, jump, type DestinationOptions } from "../client/jump.js";
import { processSink } from "../client/replies.js";

// ---------------------------------------------------------------------------------------
// option plumbing

const intArg = (what: string) => wrap((s: string) => parseIntStrict(s, what));

const existingFile = (what: string) =>
  wrap((s: string) => {
    let ok = false;
    try {
      ok = statSync(s).isFile() || statSync(s).isFIFO();
    } catch {
      ok = false;
    }
    if (!ok) throw new FlagError(`${what}: no '${s}' file`);
    return s;
  });

export const DEFAULT_TMPDIR = "/run/albatross";

export function addDestinationOptions(c: Cmd): Cmd {
  return c
    .option("--socket <PATH>", "local Unix domain socket to connect to; '-' prints the encoded message and exits 121")
    .option("-d, --destination <HOST[:PORT]>", "remote albatross TLS endpoint (port 1025 by default)", wrap(parseDestination))
    .option("--csr", "write a key and a certificate signing request (<CN>.key, <CN>.req) instead of sending")
    .option("--ca <FILE>", "CA certificate (chain) issuing the leaf (remote mode)", "ca.pem")
    .option("--ca-key <FILE>", "private key of that CA (remote mode)", "ca.key")
    .option("--server-ca <FILE>", "CA(s) to validate the server (remote mode)", "cacert.pem")
    .addOption(new Option("--key-type <T>", "key type to generate").choices(KEY_TYPES as string[]).default("ed25519"))
    .option("--key-password-file <FILE>", "encrypt a newly generated key (CSR mode) with the password in FILE", existingFile("--key-password-file"))
    .option("--tmpdir <DIR>", "runtime directory holding util/*.sock", existingDir, DEFAULT_TMPDIR)
    .option("--json", "print one JSON object per message (JSON lines)")
    .option("-v, --verbose", "show arguments (argv) in configurations and infos");
}

// ---------------------------------------------------------------------------------------
// building commands from flags (pure apart from reading the image)

interface UnikernelFlags {
  startup?: number;
  noAddName?: boolean;
  cpu: readonly number[];
  mem: number;
  arg: readonly string[];
  block: readonly BlockDevice[];
  net: readonly NetDevice[];
  restart?: boolean;
  restartOnFail?: boolean;
  exitCode: readonly number[];
  cpus: number;
  linuxBoot?: string;
}

function checkSets(f: UnikernelFlags, cpuError: string): number[] {
  if (hasDuplicates(f.net.map((n) => n.netif))) throw new CliError("Bridge names must be a set");
  if (hasDuplicates(f.block.map((b) => b.name))) throw new CliError("Block devices must be a set");
  const cpuids = intSet(f.cpu);
  if (cpuids.length === 0) throw new CliError(cpuError);
  return cpuids;
}

/** Restart arguments from the create options (shared by create and restart --replace-arguments). */
function argumentsOf(f: UnikernelFlags, cpuids: number[]): UnikernelArguments {
  const enc = new TextEncoder();
  return {
    failBehaviour: f.restart || f.restartOnFail ? { kind: "restart", exitCodes: intSet(f.exitCode) } : { kind: "quit" },
    ...(f.startup !== undefined ? { startup: f.startup } : {}),
    addName: !f.noAddName,
    cpuids,
    memory: f.mem,
    blockDevices: f.block,
    bridges: f.net,
    ...(f.arg.length > 0 ? { argv: f.arg.map((a) => enc.encode(a)) } : {}),
    numcpus: f.cpus,
    ...(f.linuxBoot !== undefined ? { linuxBootPartition: f.linuxBoot } : {}),
  };
}

/** Largest image we read into memory and send in one frame. */
const MAX_IMAGE_BYTES = 1 << 30;

/** cli.md §2 create: set checks, image + manifest (solo5), compression, then cpuids. */
async function createCommand(f: UnikernelFlags & { typ: "solo5" | "bhyve"; force?: boolean }, imageFile: string, level: number): Promise<Command> {
  // Upstream order: bridge set, block set, image/manifest/compression, cpuids.
  if (hasDuplicates(f.net.map((n) => n.netif))) throw new CliError("Bridge names must be a set");
  if (hasDuplicates(f.block.map((b) => b.name))) throw new CliError("Block devices must be a set");
  let image: Uint8Array = new Uint8Array(0);
  let compressed = false;
  if (f.typ === "solo5") {
    // loaded for create only (start-up time of the other commands, issue 13)
    const { readFile, stat } = await import("node:fs/promises");
    const { checkManifest, readSolo5Manifest } = await import("../solo5/elf.js");
    const { deflate } = await import("../commands/compress.js");
    const st = await stat(imageFile);
    if (st.size > MAX_IMAGE_BYTES) throw new CliError(`image ${imageFile} is larger than ${MAX_IMAGE_BYTES} bytes`);
    image = new Uint8Array(await readFile(imageFile));
    let devices;
    try {
      devices = readSolo5Manifest(image);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    const mismatch = checkManifest(
      devices,
      f.block.map((b) => b.name),
      f.net.map((n) => n.netif),
    );
    if (mismatch !== null) throw new CliError(mismatch);
    if (level > 0) {
      image = deflate(image, level);
      compressed = true;
    }
  }
  const cpuids = checkSets(f, "CPUids may not be empty");
  const config: UnikernelConfig = { typ: f.typ, compressed, image, ...argumentsOf(f, cpuids) };
  return f.force ? { kind: "unikernel-force-create", config } : { kind: "unikernel-create", config };
}

function policyOf(
  unikernels: number,
  f: { mem: number; cpu: readonly number[]; size?: number | undefined; bridge: readonly string[] },
  warn: (s: string) => void,
): Policy {
  const cpuids = intSet(f.cpu);
  const bridges = [...new Set(f.bridge)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (bridges.length !== f.bridge.length) warn("Bridges is not a set");
  if (cpuids.length !== f.cpu.length) warn("CPUids is not a set");
  return {
    unikernels: BigInt(unikernels),
    cpuids,
    memory: f.mem,
    ...(f.size !== undefined ? { block: f.size } : {}),
    bridges,
  };
}

// ---------------------------------------------------------------------------------------
// registration

type Opts = DestinationOptions & Record<string, unknown>;

/** Run an action and keep its exit status (CliError propagates to runMain). */
function act<A extends unknown[]>(f: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await f(...args);
  };
}

const nameArgument = (n = "NAME", desc = "name of the unikernel (path:label)") => new Argument(`<${n}>`, desc).argParser(wrap(parseNameArg));
const pathOpt = () => new Option("-p, --path <PATH>", "administrative path (default: the root)").argParser(wrap(parsePathArg)).default(rootPath, ":");
const nameOpt = (short = true) =>
  new Option(`${short ? "-n, " : ""}--name <NAME>`, "name (default ':' = everything)").argParser(wrap(parseNameArg)).default(rootName, ":");
const levelOpt = () =>
  new Option("--compression-level <0-9>", "zlib level (default 0 local, 9 with --csr/--destination)").argParser(wrap(parseCompressionLevel));

const CPU_DEFAULT: readonly number[] = [0];
const EMPTY: readonly never[] = [];

/** The create options (shared with restart). */
function addUnikernelOptions(c: Cmd): Cmd {
  return c
    .addOption(new Option("--startup <INT>", "startup priority (0 is first, default 50)").argParser(intArg("startup")))
    .option("--no-add-name", "do not add --name=<NAME> to the unikernel arguments")
    .addOption(
      new Option("--cpu <INT>", "CPU id to pin to (repeatable)").argParser(repeatable((s) => parseIntStrict(s, "cpu"), CPU_DEFAULT)).default(CPU_DEFAULT, "0"),
    )
    .addOption(new Option("--mem <MB>", "memory in MB").argParser(intArg("memory")).default(32))
    .addOption(new Option("--arg <STR>", "unikernel boot argument (repeatable)").argParser(repeatable((s) => s, EMPTY as readonly string[])).default(EMPTY))
    .addOption(
      new Option("--block <SPEC>", "block device name[@sector-size] or name:host-device[@sector-size] (repeatable)")
        .argParser(repeatable(parseBlockSpec, EMPTY as readonly BlockDevice[]))
        .default(EMPTY),
    )
    .addOption(
      new Option("--net <SPEC>", "network device netif[@mac] or netif:bridge[@mac] (repeatable)")
        .argParser(repeatable(parseNetSpec, EMPTY as readonly NetDevice[]))
        .default(EMPTY),
    )
    .option("--restart, --restart-on-fail", "restart the unikernel when it exits")
    .addOption(
      new Option("--exit-code <INT>", "exit code to restart on (repeatable; default: all except 1, 60-64)")
        .argParser(repeatable((s) => parseIntStrict(s, "exit code"), EMPTY as readonly number[]))
        .default(EMPTY),
    )
    .addOption(new Option("--cpus <INT>", "number of CPUs (BHyve)").argParser(intArg("cpus")).default(1))
    .option("--linux-boot <STR>", "boot partition when booting Linux (BHyve)");
}

function unikernelFlags(o: Opts): UnikernelFlags {
  return {
    ...(o.startup !== undefined ? { startup: o.startup as number } : {}),
    // commander's --no-add-name yields addName = false
    noAddName: o.addName === false,
    cpu: o.cpu as number[],
    mem: o.mem as number,
    arg: o.arg as string[],
    block: o.block as BlockDevice[],
    net: o.net as NetDevice[],
    restartOnFail: Boolean(o.restartOnFail),
    exitCode: o.exitCode as number[],
    cpus: o.cpus as number,
    ...(o.linuxBoot !== undefined ? { linuxBoot: o.linuxBoot as string } : {}),
  };
}

function requireFile(f: string, what: string): void {
  let ok = false;
  try {
    ok = statSync(f).isFile();
  } catch {
    ok = false;
  }
  if (!ok) throw new CliError(`${what} argument: no '${f}' file`);
}

/** Adds a subcommand to the program: `sub(name, description)`, with the destination options. */
type Sub = (name: string, description: string) => Cmd;

/** add-policy and its alias replace-policy. */
function addPolicyCommand(sub: Sub, cmdName: string, desc: string): void {
  sub(cmdName, desc)
    .addArgument(new Argument("<PATH>", "administrative path").argParser(wrap(parsePathArg)))
    .addArgument(new Argument("<UNIKERNELS>", "number of unikernels allowed at the same time").argParser(intArg("unikernels")))
    .addOption(new Option("--mem <MB>", "memory to allow (MB)").argParser(intArg("memory")).default(512))
    .addOption(
      new Option("--cpu <INT>", "CPU id to allow (repeatable)").argParser(repeatable((s) => parseIntStrict(s, "cpu"), CPU_DEFAULT)).default(CPU_DEFAULT, "0"),
    )
    .addOption(new Option("--block, --size <MB>", "block storage to allow (MB)").argParser(intArg("block size")))
    .addOption(
      new Option("--network, --bridge <BR>", "bridge to allow (repeatable)").argParser(repeatable((s) => s, EMPTY as readonly string[])).default(EMPTY),
    )
    .action(
      act(async (path: Path, unikernels: number, o: Opts) => {
        destinationOf(o);
        const sink = processSink(Boolean(o.json));
        const p = policyOf(
          unikernels,
          { mem: o.mem as number, cpu: o.cpu as number[], size: o.size as number | undefined, bridge: o.bridge as string[] },
          (w) => sink.err(`warning: ${w}`),
        );
        const { usable } = await import("../policy/policy.js");
        const bad = usable(p);
        if (bad !== null) throw new CliError(bad);
        if (p.bridges.length === 0) sink.err("warning: policy without any network access");
        return jump({ kind: "policy-add", policy: p }, pathName(path), o);
      }),
    );
}

/**
 * The subcommands, each registered by its own function, in the order of the help text.
 * `dromedary info` registers `info` alone (main.ts): building every subcommand with its
 * options is a measurable part of the start-up time (issue 13).
 */
const SUBCOMMANDS: Readonly<Record<string, (sub: Sub) => void>> = {
  // unikernels
  create: (sub) => {
    addUnikernelOptions(
      sub("create", "create a unikernel")
        .addArgument(nameArgument())
        .argument("<IMAGE>", "unikernel image file")
        .addOption(new Option("--typ <TYP>", "virtual machine type").choices(["solo5", "bhyve"]).default("solo5"))
        .option("-f, --force", "destroy a unikernel of the same name first"),
    )
      .addOption(levelOpt())
      .action(
        act(async (name: Name, image: string, o: Opts) => {
          requireFile(image, "IMAGE");
          const d = destinationOf(o);
          const level = defaultLevel(d, o.compressionLevel as number | undefined);
          const cmd = await createCommand({ ...unikernelFlags(o), typ: o.typ as "solo5" | "bhyve", force: Boolean(o.force) }, image, level);
          return jump(cmd, name, o);
        }),
      );
  },
  restart: (sub) => {
    addUnikernelOptions(
      sub("restart", "restart a unikernel").addArgument(nameArgument()).option("--replace-arguments", "replace the arguments with the given options"),
    ).action(
      act(async (name: Name, o: Opts) => {
        destinationOf(o);
        let args: UnikernelArguments | undefined;
        if (o.replaceArguments) {
          const f = unikernelFlags(o);
          // Same set checks as create, different empty-cpu text; no manifest check.
          args = argumentsOf(f, checkSets(f, "CPUids cannot be empty"));
        }
        return jump(args ? { kind: "unikernel-restart", args } : { kind: "unikernel-restart" }, name, o);
      }),
    );
  },
  destroy: (sub) => {
    sub("destroy", "destroy a unikernel")
      .addArgument(nameArgument())
      .action(act(async (name: Name, o: Opts) => jump({ kind: "unikernel-destroy" }, name, o)));
  },
  info: (sub) => {
    sub("info", "information about unikernels")
      .addOption(nameOpt())
      .action(act(async (o: Opts) => jump({ kind: "unikernel-info" }, o.name as Name, o)));
  },
  get: (sub) => {
    sub("get", "download the image of a running unikernel")
      .addArgument(nameArgument())
      .addOption(levelOpt())
      .action(
        act(async (name: Name, o: Opts) => {
          const level = defaultLevel(destinationOf(o), o.compressionLevel as number | undefined);
          return jump({ kind: "unikernel-get", level }, name, o);
        }),
      );
  },
  // `update` is registered by fleet.ts (with rollback and fleet)
  // policies
  policy: (sub) => {
    sub("policy", "show policies")
      .addOption(pathOpt())
      .action(act(async (o: Opts) => jump({ kind: "policy-info" }, pathName(o.path as Path), o)));
  },
  "add-policy": (sub) => addPolicyCommand(sub, "add-policy", "add or replace a policy"),
  "replace-policy": (sub) => addPolicyCommand(sub, "replace-policy", "alias of add-policy"),
  "remove-policy": (sub) => {
    sub("remove-policy", "remove a policy")
      .addOption(pathOpt())
      .action(act(async (o: Opts) => jump({ kind: "policy-remove" }, pathName(o.path as Path), o)));
  },
  // block devices
  block: (sub) => {
    sub("block", "information about block devices")
      .addOption(nameOpt(false))
      .action(act(async (o: Opts) => jump({ kind: "block-info" }, o.name as Name, o)));
  },
  "create-block": (sub) => {
    sub("create-block", "create a block device")
      .addArgument(nameArgument("NAME", "name of the block device"))
      .addArgument(new Argument("<SIZE>", "size in MB").argParser(intArg("size")))
      .addOption(new Option("--data <FILE>", "initial content").argParser(existingFile("--data")))
      .addOption(levelOpt())
      .action(
        act(async (name: Name, size: number, o: Opts) => {
          const d = destinationOf(o);
          const data = o.data as string | undefined;
          if (data !== undefined) {
            // Checked before anything is sent (upstream Vmm_unix.bytes_of_mb).
            if (size <= 0 || size > Number.MAX_SAFE_INTEGER / 1048576) throw new CliError("overflow while computing bytes");
            const { stat } = await import("node:fs/promises");
            if ((await stat(data)).size > size * 1048576) throw new CliError("data exceeds size");
          }
          // The add's outcome is printed, not checked: set-block runs regardless (upstream).
          const added = await jump({ kind: "block-add", size }, name, o);
          if (data === undefined) return added;
          const level = defaultLevel(d, o.compressionLevel as number | undefined);
          const set = await jump({ kind: "block-set", compressed: level > 0 }, name, o, { file: data, level });
          // Not upstream: a device this command added, whose data the daemon then refused
          // (e.g. a full disk), is removed again: create-block succeeds as a whole or leaves
          // nothing. (A device that existed before is left alone; so is the outcome of a
          // set that may not have reached the daemon.)
          if (added === EXIT.OK && set === EXIT.REMOTE_FAILURE && d.kind !== "csr") {
            process.stderr.write("dromedary: writing the data failed, removing the block device again\n");
            await jump({ kind: "block-remove" }, name, o);
          }
          return set;
        }),
      );
  },
  "destroy-block": (sub) => {
    sub("destroy-block", "destroy a block device")
      .addArgument(nameArgument("NAME", "name of the block device"))
      .action(act(async (name: Name, o: Opts) => jump({ kind: "block-remove" }, name, o)));
  },
  "set-block": (sub) => {
    sub("set-block", "overwrite a block device with the content of FILE")
      .addArgument(nameArgument("NAME", "name of the block device"))
      .addArgument(new Argument("<FILE>", "data to write").argParser(existingFile("FILE")))
      .addOption(levelOpt())
      .action(
        act(async (name: Name, file: string, o: Opts) => {
          const level = defaultLevel(destinationOf(o), o.compressionLevel as number | undefined);
          return jump({ kind: "block-set", compressed: level > 0 }, name, o, { file, level });
        }),
      );
  },
  "dump-block": (sub) => {
    sub("dump-block", "download the content of a block device")
      .addArgument(nameArgument("NAME", "name of the block device"))
      .addOption(levelOpt())
      .action(
        act(async (name: Name, o: Opts) => {
          const level = defaultLevel(destinationOf(o), o.compressionLevel as number | undefined);
          return jump({ kind: "block-dump", level }, name, o);
        }),
      );
  },
  // console and statistics
  console: (sub) => {
    sub("console", "show the console output of a unikernel")
      .addArgument(nameArgument())
      .addOption(new Option("--since <TIMESTAMP>", "lines since an RFC 3339 time or a date (UTC midnight)").argParser(wrap(parseTimestamp)))
      .addOption(new Option("--count <N>", "the last N lines").argParser(intArg("count")).default(20))
      .action(
        act(async (name: Name, o: Opts) => {
          const since = o.since as Date | undefined;
          const sinceCount = since ? ({ kind: "since", since } as const) : ({ kind: "count", count: o.count as number } as const);
          return jump({ kind: "console-subscribe", sinceCount }, name, o);
        }),
      );
  },
  "inactive-consoles": (sub) => {
    sub("inactive-consoles", "list consoles of unikernels that are not running")
      .addOption(pathOpt())
      .action(act(async (o: Opts) => jump({ kind: "console-list-inactive" }, pathName(o.path as Path), o)));
  },
  stats: (sub) => {
    sub("stats", "statistics of unikernels: every sample as a table on a terminal, albatross' text when piped, --json lines")
      .addArgument(new Argument("[NAME]", "unikernel or path (foo: = everything under foo); the same as -n").argParser(wrap(parseNameArg)))
      .addOption(nameOpt())
      .action(
        act(async (name: Name | undefined, o: Opts) => {
          if (name !== undefined && o.name !== rootName) throw new CliError("give the name either as NAME or with -n, not both");
          return jump({ kind: "stats-subscribe" }, name ?? (o.name as Name), o);
        }),
      );
  },
  "stats-add": (sub) => {
    sub("stats-add", "add a process to statistics gathering")
      .addArgument(new Argument("<PID>", "process id").argParser(intArg("pid")))
      .option("--vmmdev <DEV>", "BHyve VMM device name", "")
      .addOption(
        new Option("--bridge <BRIDGE:TAP>", "bridge and tap device (repeatable)")
          .argParser(repeatable(parseBridgeTap, EMPTY as readonly { bridge: string; tap: string }[]))
          .default(EMPTY),
      )
      .addOption(nameOpt())
      .action(
        act(async (pid: number, o: Opts) =>
          jump({ kind: "stats-add", vmmdev: o.vmmdev as string, pid, network: o.bridge as { bridge: string; tap: string }[] }, o.name as Name, o),
        ),
      );
  },
  "stats-remove": (sub) => {
    sub("stats-remove", "remove a unikernel from statistics gathering")
      .addOption(nameOpt())
      .action(act(async (o: Opts) => jump({ kind: "stats-remove" }, o.name as Name, o)));
  },
};

/** Registers the command subcommands, or only `only` when it is one of them. */
export function registerClientCommands(program: Cmd, only?: string): void {
  const sub: Sub = (name, desc) => addDestinationOptions(program.command(name).description(desc));
  const one = only !== undefined && Object.hasOwn(SUBCOMMANDS, only) ? SUBCOMMANDS[only] : undefined;
  if (one !== undefined) one(sub);
  else for (const register of Object.values(SUBCOMMANDS)) register(sub);
}
