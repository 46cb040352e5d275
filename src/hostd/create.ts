// A create (daemon.md §2.4), the shell's side, top to bottom: hostd's one owner of the
// sequence. Every decision is a phase of the pure core (vmmd.ts, "Create as a sequence"),
// each taking what the one before returned, so the order below is checked by the compiler;
// this module does the I/O in between — the image file, the tender (src/solo5/tender.ts),
// bridges, FIFO, taps, the console round trip, the exec, the intent record and the journal
// record — and cleans up after a failure. Runs under hostd's global lock (daemon.ts).
import { nameToString, type Name } from "../core/name.js";
import type { UnikernelConfig, Wire } from "../commands/types.js";
import { findCheckedTender } from "../solo5/tender.js";
import { performance } from "node:perf_hooks";
import { errText } from "./fsio.js";
import { writeImage, writtenImageNotes } from "./image.js";
import type { Launcher } from "./launcher.js";
import { bridgeExists, createTap, NetError } from "./net.js";
import { ensureFifo, signalProcess, type FifoSpares } from "./process.js";
import { procStartTime, type IntentRecord, type Intents } from "./runtime.js";
import type { Store } from "./store.js";
import { strerror } from "./errno.js";
import type { ExitStatus } from "./types.js";
import {
  beginCreate,
  consoleAdd,
  consoleAdded,
  createFailureText,
  execPlan,
  failure,
  imageWritten,
  started,
  successString,
  tapsMade,
  tenderFound,
  TEXT,
  type Cleanup,
  type Outcome,
  type VmmdOptions,
  type VmmdState,
} from "./vmmd.js";

/**
 * The steps of a create (and of a fold) where DROMEDARY_TEST_PAUSE_AT=<step>[,<name>]
 * stops hostd (SIGSTOP, after a `[TEST] paused at <step>` line on stderr), for the create
 * of <name> only if one is given. TEST ONLY: the crash-consistency tests kill hostd there
 * (test/hostd/crash.test.ts).
 */
export const PAUSE_STEPS = ["intent", "image", "fifo", "tap", "console", "spawn", "pid", "journal", "fold-written", "fold-renamed"] as const;
export type PauseStep = (typeof PAUSE_STEPS)[number];

/** The reply of a change that could not be made durable. */
export const recordFailure = (why: string): string => `could not record the change: ${why}`;

/** What a create needs of the daemon (daemon.ts). */
export interface CreateHost {
  /** the daemon's state: read and replaced as the phases go */
  state: VmmdState;
  readonly core: VmmdOptions;
  readonly store: Store;
  readonly intents: Intents;
  readonly spares: FifoSpares;
  readonly launcher: Launcher;
  readonly verbose: boolean;
  log(level: "debug" | "info" | "warn" | "error", msg: string): void;
  pauseAt(step: PauseStep, name?: Name): void;
  /** Console_add's round trip; null if the console daemon did not answer */
  consoleRequest(w: Wire): Promise<Wire | null>;
  statsRequest(w: Wire): Promise<void>;
  /** image, FIFO, taps, in this order; null or the first error */
  freeResources(c: Cleanup): Promise<string | null>;
  /** the journal record of `st` (stateToDump): null once durable, else why not */
  dump(st: VmmdState): Promise<string | null>;
  /** the create is done: `name` runs as `pid` (its intent record kept until its resources are freed) */
  running(name: Name, pid: number, intent: IntentRecord, exited: Promise<ExitStatus>): void;
}

/**
 * Create `name`; `dump` = record the change durably (the journal, store.ts) before the
 * reply — a create that cannot be recorded is stopped again and fails. Every resource is
 * written into the create's intent record (runtime.ts) before it is made, so a restarted
 * hostd reaps whatever a kill -9 at any point left behind.
 */
export async function createUnikernel(h: CreateHost, name: Name, config: UnikernelConfig, dump: boolean): Promise<Outcome> {
  // the fold of the state file gives way while a create runs (store.ts)
  const busy = h.store.busy();
  const begun = beginCreate(h.state, h.core, name, config);
  // a recorded create's large image is written to an image file of the journal meanwhile
  // (store.ts): its record then stays small
  const staged = dump && begun.ok ? h.store.stageImage(config) : null;
  try {
    if (!begun.ok) return failure(begun.error);
    return await createBegun(h, begun.value, dump);
  } finally {
    busy();
    await staged?.release();
  }
}

async function createBegun(h: CreateHost, begun: Extract<ReturnType<typeof beginCreate>, { ok: true }>["value"], dump: boolean): Promise<Outcome> {
  const { name, config } = begun;
  // Step timings, logged at debug level (-v).
  const t0 = performance.now();
  const marks: string[] = [];
  const mark = (step: string): void => {
    if (h.verbose) marks.push(`${step} ${(performance.now() - t0).toFixed(2)}`);
  };
  const cleanup = { image: begun.image, fifo: begun.fifo, taps: [] as string[] };
  let intent: IntentRecord;
  try {
    intent = await h.intents.begin(nameToString(name), cleanup.image, cleanup.fifo);
  } catch (e) {
    return failure(`could not record the create's intent in ${h.intents.dir}: ${errText(e)}`);
  }
  h.pauseAt("intent", name);
  /** Free what was made; the intent record goes once that worked (else the next start reaps it). */
  const free = async (c: Cleanup): Promise<string | null> => {
    const ce = await h.freeResources(c);
    if (ce === null) await intent.remove().catch((e: unknown) => h.log("warn", `removing ${intent.path}: ${errText(e)}`));
    return ce;
  };
  // Step 8's FIFO is made in the background from here on (mkfifo is a process execution);
  // its result is only looked at in step 8, so errors keep upstream's order. If an earlier
  // step fails, a FIFO made here is removed again.
  const fifoJob = ensureFifo(cleanup.fifo, h.spares);
  const early = async (msg: string, image: boolean): Promise<Outcome> => {
    const f = await fifoJob;
    await free({ image: image ? cleanup.image : "", fifo: f.ok && f.value.created ? cleanup.fifo : "", taps: [] });
    return failure(msg);
  };

  // §2.4 steps 3.1, 3.2 and 3.6 at once: the image is inflated as a stream into its file
  // (bounded by --max-image-size, hashed on the way), then its notes are read from there
  // (image.ts). Upstream writes the file only after the manifest check; a failure in
  // between removes it again here. Upstream does not clean up what the following steps
  // created when one of them fails; we do (image file, FIFO, taps created so far).
  const written = await writeImage(cleanup.image, config, h.core.maxImageBytes);
  if (!written.ok) return early(written.error, false);
  const notes = await writtenImageNotes(written.value, cleanup.image);
  const imaged = imageWritten(begun, h.core, written.value.digest, notes.abi);
  if (!imaged.ok) return early(imaged.error, true);
  h.pauseAt("image", name);
  mark("image");

  // steps 3.4 and 4: the tender and its --version; then the manifest (3.5)
  const tender = await findCheckedTender(imaged.value.target.candidates, imaged.value.target.abi.version, strerror);
  if (!tender.ok) return early(tender.error, true);
  mark("tender");
  const tendered = tenderFound(imaged.value, tender.value, notes.manifest);
  if (!tendered.ok) return early(tendered.error, true);

  // steps 7 and 8: bridges, FIFO, taps
  for (const b of tendered.value.bridges) if (!(await bridgeExists(b))) return early(`interface ${b} does not exist`, true);
  mark("bridges");
  const fifo = await fifoJob;
  if (!fifo.ok) return early(fifo.error, true);
  h.pauseAt("fifo", name);
  const fail = (msg: string): Promise<Outcome> => free(cleanup).then(() => failure(msg));
  for (const nd of config.bridges) {
    try {
      const tap = await createTap(nd.bridge ?? nd.netif, "ip", (t) => intent.addTap(t));
      cleanup.taps.push(tap);
      h.pauseAt("tap", name);
    } catch (e) {
      return fail(e instanceof NetError ? e.upstream : errText(e));
    }
  }
  const networked = tapsMade(tendered.value, cleanup.taps);

  // step 4: console
  mark("taps");
  const ca = consoleAdd(h.state, networked);
  h.state = ca.state;
  const consoled = consoleAdded(ca.pending, await h.consoleRequest(ca.pending.request));
  const failCreate = async (why: string): Promise<Outcome> => {
    h.log("warn", `create ${nameToString(name)}: ${why}`);
    const ce = await free(cleanup);
    return failure(createFailureText(ce ?? undefined));
  };
  if (!consoled.ok) return failCreate(consoled.error);
  h.pauseAt("console", name);

  // step 5: re-check, exec
  mark("console");
  const ready = execPlan(h.state, h.core, consoled.value);
  if (!ready.ok) return failCreate(ready.error);
  const argv = ready.value.argv;
  const spawned = await h.launcher.spawnWithFifo(argv, cleanup.fifo);
  if (!spawned.ok) return failCreate(spawned.error);
  h.pauseAt("spawn", name);
  mark("exec");
  const { pid, exited } = spawned.value;
  const stop = async (why: string): Promise<void> => {
    signalProcess(pid, "SIGKILL");
    await exited;
    h.log("warn", `create ${nameToString(name)}: ${why}`);
    await free(cleanup);
  };
  try {
    await intent.setPid(pid, procStartTime(pid));
  } catch (e) {
    const why = `could not record the create's intent in ${h.intents.dir}: ${errText(e)}`;
    await stop(why);
    return failure(why);
  }
  h.pauseAt("pid", name);

  // steps 5 (register) and 7, recorded first
  const at = new Date();
  let c = started(h.state, ready.value, pid, at, dump);
  if (c.ok && c.value.dump) {
    // Recorded before it becomes the state: the queries (answered without the lock) never
    // see a create that is not durable. Not recorded, not acknowledged: nothing of it may
    // stay (store.ts).
    const why = await h.dump(c.value.state);
    if (why !== null) {
      await stop(recordFailure(why));
      return failure(recordFailure(why));
    }
    h.pauseAt("journal", name);
    // again on the current state (under the lock, only a lost stats connection can have
    // changed it meanwhile); the same checks, so the same result
    c = started(h.state, ready.value, pid, at, dump);
  }
  if (!c.ok) {
    signalProcess(pid, "SIGKILL");
    await exited;
    return failCreate(c.error);
  }
  h.state = c.value.state;
  mark("dump");
  for (const l of c.value.log) h.log("warn", l);
  h.log("info", `created ${nameToString(name)}: ${argv.join(" ")} (pid ${pid})`);
  if (c.value.statsAdd !== null) await h.statsRequest(c.value.statsAdd);
  h.running(name, pid, intent, exited);
  mark("stats");
  if (h.verbose) h.log("debug", `create ${nameToString(name)} timings (ms): ${marks.join(", ")}`);
  return successString(TEXT.created);
}
