// hostd's start-up before it serves (daemon.md §2.2, steps 1–8): the directories, the
// block devices, the host's commands, the root policy, the stored state (journal replayed
// and folded), `state.started`, the policies, the reaping of what a hard-killed hostd left,
// and the console daemon's socket. Each step hands the next what it needs; the daemon
// (daemon.ts) takes the result, listens (step 9) and brings the stored unikernels back (11).
import { promises as fsp } from "node:fs";
import type { Socket } from "node:net";
import type { Policy, UnikernelConfig } from "../commands/types.js";
import { nameToString, type Name } from "../core/name.js";
import { emptyResources, insertBlock } from "../policy/resources.js";
import { connectUnixPatiently } from "../transport/frames.js";
import { socketDir } from "../transport/routes.js";
import { scanBlockDir } from "./blockstore.js";
import { errText, nodeFileOps } from "./fsio.js";
import { discoverRootPolicy, missingCommands } from "./host.js";
import { startLauncher, type Launcher } from "./launcher.js";
import { blockDir, FIFO_DIR_MODE, fifoDir } from "./paths.js";
import { destroyTap } from "./net.js";
import type { FifoSpares } from "./process.js";
import { type Intents, readIntents, reapIntents } from "./runtime.js";
import { linkStateStarted } from "./statefile.js";
import { openStore, StoreCorrupt, type FoldStep, type Store } from "./store.js";
import { initialState, restorePolicies, type VmmdState } from "./vmmd.js";

/**
 * A start-up failure and the process exit status it leads to: 125 (upstream), or 1 when
 * the stored state cannot be used (upstream logs "bailing out" and exits 0, which a
 * service manager takes for a clean stop; we do not).
 */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "StartupError";
  }
}

type Level = "debug" | "info" | "warn" | "error";

export interface StartupOptions {
  readonly tmpdir: string;
  readonly dbdir: string;
  readonly restoreBackup?: boolean;
  readonly foldDelayMs?: number;
  readonly log: (level: Level, msg: string) => void;
  /** the test hook for the fold's steps */
  readonly pause: (step: FoldStep) => void;
}

/** What the daemon starts from. */
export interface Opened {
  readonly launcher: Launcher;
  readonly store: Store;
  /** the policies restored; no unikernel yet */
  readonly state: VmmdState;
  /** the stored unikernels, to bring back once hostd listens (step 11) */
  readonly unikernels: ReadonlyArray<{ readonly name: Name; readonly config: UnikernelConfig }>;
  /** names whose tender from an earlier hostd could not be killed: not restored */
  readonly unkillable: readonly string[];
}

/** Steps 1–7 (and the reaping, not upstream). Throws StartupError. */
export async function openHost(o: StartupOptions, spares: FifoSpares, intents: Intents): Promise<Opened> {
  const log = o.log;
  // Not upstream: the processes hostd creates are forked by a small helper, started now
  // while hostd is small (launcher.ts: a fork of hostd costs more the more images it holds).
  const launcher = await startLauncher((m) => log("error", m));
  // Upstream never creates these (its systemd units do); we create what is missing.
  await fsp.mkdir(socketDir(o.tmpdir), { recursive: true });
  const fifos = fifoDir(o.tmpdir);
  try {
    await fsp.access(fifos);
  } catch {
    await fsp.mkdir(fifos, { recursive: true });
    await fsp.chmod(fifos, FIFO_DIR_MODE);
    log("info", `created ${fifos}`);
  }

  await spares.clear();
  spares.refill();

  // step 2: block devices
  const scan = await scanBlockDir(o.dbdir);
  for (const w of scan.warnings) log("warn", w);
  let resources = emptyResources();
  for (const b of scan.blocks) {
    const r = insertBlock(resources, b.name, b.sizeMB);
    if (r.ok) resources = r.value;
    else log("warn", `block device ${nameToString(b.name)}: ${r.error}`);
  }

  // step 3
  const missing = await missingCommands();
  if (missing.length > 0) throw new StartupError(`required host commands not found: ${missing.join(", ")}`, 125);

  // step 4: root policy (the block directory must exist)
  await fsp.mkdir(blockDir(o.dbdir), { recursive: true, mode: 0o700 });
  let root: Policy;
  try {
    root = await discoverRootPolicy(o.dbdir);
  } catch (e) {
    throw new StartupError(errText(e), 125);
  }
  log(
    "info",
    `root policy: ${root.unikernels} unikernels, cpuids ${root.cpuids.join(",")}, ${root.memory} MB memory, ${root.block} MB block, bridges ${root.bridges.join(", ")}`,
  );

  // step 5: the state file, with the journal replayed (store.ts)
  let opened: Awaited<ReturnType<typeof openStore>>;
  try {
    opened = await openStore(
      {
        dbdir: o.dbdir,
        log,
        ...(o.foldDelayMs !== undefined ? { foldDelayMs: o.foldDelayMs } : {}),
        pause: async (step: FoldStep) => o.pause(step),
      },
      o.restoreBackup === true,
    );
  } catch (e) {
    if (e instanceof StoreCorrupt) throw new StartupError(`bailing out: ${e.message}`, 1);
    throw new StartupError(`bailing out: while reading state: ${errText(e)}`, 1);
  }
  for (const w of opened.warnings) log("warn", w);
  const { store, state: stored } = opened;
  if (stored.unikernels.length === 0 && stored.policies.length === 0) log("warn", "no stored state found, starting empty");
  // What albatross would read is brought up to date before anything else happens.
  if (store.unfolded) await store.fold();
  // step 6 (a hard link instead of upstream's copy: no space needed, never partial)
  try {
    await linkStateStarted(nodeFileOps, o.dbdir);
  } catch (e) {
    log("warn", `linking state to state.started: ${errText(e)}`);
  }

  // step 7: policies
  const rp = restorePolicies(resources, root, stored.policies);
  if (!rp.ok) throw new StartupError(`bailing out: ${rp.error}`, 1);
  for (const w of rp.value.warnings) log("warn", w);

  // Not upstream: reap what a hard-killed previous hostd left (runtime.ts).
  const found = await readIntents(o.tmpdir, (m) => log("warn", m));
  const unkillable = await reapIntents(
    found,
    (tap) => destroyTap(tap),
    (m) => log("warn", m),
  );
  try {
    await intents.init();
  } catch (e) {
    throw new StartupError(`cannot create ${intents.dir}: ${errText(e)}`, 125);
  }
  return { launcher, store, state: initialState(rp.value.resources), unikernels: stored.unikernels, unkillable };
}

/**
 * Step 8: the console daemon's socket. Not upstream: albatrossd gives up at once when
 * albatross-console is not listening yet; we retry for --console-timeout, so the two
 * daemons may be started in either order (one log line while waiting).
 */
export async function connectConsole(o: {
  readonly tmpdir: string;
  readonly consolePath: string;
  readonly consoleSocket?: string | undefined;
  readonly consoleTimeoutMs: number;
  readonly log: (level: Level, msg: string) => void;
}): Promise<Socket> {
  const seconds = `${o.consoleTimeoutMs / 1000} s`;
  // the command that makes the socket, for both messages
  const start = `dromedary console-daemon${o.consoleSocket === undefined ? ` --tmpdir ${o.tmpdir}` : ""}`;
  const began = Date.now();
  let waited = false;
  try {
    const sock = await connectUnixPatiently(o.consolePath, {
      timeoutMs: o.consoleTimeoutMs,
      onWait: (e) => {
        waited = true;
        o.log("warn", `waiting up to ${seconds} for the console daemon at ${o.consolePath} (${e.code ?? errText(e)}): start \`${start}\``);
      },
    });
    if (waited) o.log("info", `connected to the console daemon after ${((Date.now() - began) / 1000).toFixed(1)} s`);
    return sock;
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? errText(e);
    throw new StartupError(
      `Failed to connect to ${o.consolePath} (${why}${waited ? `, waited ${seconds}` : ""}), is albatross-console started? Start \`${start}\` first`,
      125,
    );
  }
}
