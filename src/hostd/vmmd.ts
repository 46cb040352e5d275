// The pure core of hostd (albatrossd's Vmm_vmmd): the daemon state and every decision the
// daemon makes — checks, their order, reply texts, restart decisions, when to dump the
// state file — as functions "state + input -> new state + what to do". No I/O, no clock,
// no randomness: the shell (daemon.ts) supplies times, pids, tap names and effect results.
//
// A command either is answered right away (`reply` steps) or needs work from the shell,
// which it then drives through the phase functions below:
//
//   create:   a typed sequence of phases (see "Create as a sequence" below; the shell's
//             side is create.ts): beginCreate -> [shell: intent record, image file
//             (inflate, digest), its ELF notes] -> imageWritten -> [shell: tender lookup +
//             --version] -> tenderFound -> [shell: bridges, FIFO, taps] -> tapsMade ->
//             consoleAdd -> [shell: Console_add round trip] -> consoleAdded -> execPlan ->
//             [shell: exec, pid recorded] -> started -> [shell: journal record of its
//             stateToDump; only once that is durable it becomes the state, else the tender
//             is stopped and its resources freed]
//   exit:     handleExit -> (restart waiter woken) restartDecision
//   destroy / force-create / restart of a running unikernel: the step carries an exit
//             waiter id; the shell sends SIGTERM and waits until handleExit wakes that id.
import type {
  BlockInfo,
  Bytes,
  Command,
  FailBehaviour,
  Header,
  NetInfo,
  Policy,
  State,
  StateUnikernel,
  Success,
  UnikernelArguments,
  UnikernelConfig,
  UnikernelInfo,
  UnikernelInfoEntry,
  Wire,
} from "../commands/types.js";
import { WIRE_VERSION } from "../commands/types.js";
import { nameToString, pathName, rootPath, type Name, type Path } from "../core/name.js";
import { formatPolicy } from "../commands/render.js";
import { bridgeOf, policyEquals } from "../policy/policy.js";
import {
  blockName,
  checkBlock,
  checkUnikernel,
  consoleBudget,
  findBlock,
  findPolicy,
  insertBlock,
  insertPolicy,
  insertUnikernel,
  policyInfo,
  removeBlock,
  removePolicy,
  removeUnikernel,
  type Resources,
} from "../policy/resources.js";
import { err, ok, type Result } from "../core/result.js";
import { Trie } from "../core/trie.js";
import { checkManifest, type Solo5Abi, type Solo5Device } from "../solo5/elf.js";
import { formatMac } from "../solo5/mac.js";
import { deterministicMac, guestNameArg, tenderCandidates, tenderCommandLine, tenderTarget, unsupportedTarget, type TenderTarget } from "../solo5/tender.js";
import type { ExitStatus } from "./types.js";
import { blockFile, fifoPath, imagePath } from "./paths.js";

// ---------------------------------------------------------------------------------------
// State

/** One network device of a running unikernel. */
interface TapAssignment {
  /** unikernel-side name */
  readonly netif: string;
  /** host bridge (bridge field or netif) */
  readonly bridge: string;
  readonly tap: string;
  /** MAC in use (configured or deterministic) */
  readonly mac: Bytes;
}

/** A registered (running) unikernel. */
export interface RunningUnikernel {
  readonly name: Name;
  readonly config: UnikernelConfig;
  readonly pid: number;
  /** one per `config.bridges`, in config order */
  readonly taps: readonly TapAssignment[];
  /** SHA-256 of the uncompressed image */
  readonly digest: Bytes;
  readonly started: Date;
}

/**
 * Upstream keeps at most one waiter (an Lwt wakener) per name. A create registers a
 * restart waiter (carrying the config it was created with); destroy, force-create,
 * restart and shutdown replace it by an exit waiter, identified by numbers the shell maps
 * to its pending promises.
 *
 * Deviation: upstream's second exit waiter for one name (two destroys of one running
 * unikernel, or a destroy and the shutdown) replaces the first, whose client then waits
 * forever. Here a second exit waiter joins the first: the exit wakes every id. (The shell
 * also gives each name one owner at a time, daemon.ts NameOwners; joining is what is left
 * for the shutdown, which owns no name.)
 */
type Waiter = { readonly kind: "restart"; readonly config: UnikernelConfig } | { readonly kind: "exit"; readonly ids: readonly number[] };

export interface VmmdState {
  readonly resources: Resources;
  readonly running: Trie<RunningUnikernel>;
  /** keyed by name text */
  readonly waiters: ReadonlyMap<string, Waiter>;
  /** names whose waiter was woken and whose restart decision is pending (§2.8) */
  readonly restarting: ReadonlySet<string>;
  /** sequence of the next Console_add (starts at 1) */
  readonly consoleSeq: bigint;
  /** sequence of the next Stats_add/remove; null = no stats connection */
  readonly statsSeq: bigint | null;
  readonly shuttingDown: boolean;
  readonly nextWaiterId: number;
}

export interface VmmdOptions {
  readonly tmpdir: string;
  readonly dbdir: string;
  /** `--no-drop-path` inverts this: the `--name=` argument is the label (true) or the full name */
  readonly dropPath: boolean;
  /** upper bound for an inflated image (decompression bombs; --max-image-size) */
  readonly maxImageBytes: number;
}

export function initialState(resources: Resources): VmmdState {
  return {
    resources,
    running: Trie.empty<RunningUnikernel>(),
    waiters: new Map(),
    restarting: new Set(),
    consoleSeq: 1n,
    statsSeq: null,
    shuttingDown: false,
    nextWaiterId: 1,
  };
}

const key = (n: Name): string => nameToString(n);

function withWaiter(s: VmmdState, name: Name, w: Waiter | undefined): VmmdState {
  const waiters = new Map(s.waiters);
  if (w === undefined) waiters.delete(key(name));
  else waiters.set(key(name), w);
  return { ...s, waiters };
}

function withRestarting(s: VmmdState, name: Name, present: boolean): VmmdState {
  const restarting = new Set(s.restarting);
  if (present) restarting.add(key(name));
  else restarting.delete(key(name));
  return { ...s, restarting };
}

/** Register an exit waiter for `name`: it replaces a restart waiter, joins an exit waiter. */
export function registerExitWaiter(s: VmmdState, name: Name): { state: VmmdState; id: number } {
  const id = s.nextWaiterId;
  const old = s.waiters.get(key(name));
  const ids = old !== undefined && old.kind === "exit" ? [...old.ids, id] : [id];
  return { state: { ...withWaiter(s, name, { kind: "exit", ids }), nextWaiterId: id + 1 }, id };
}

const findRunning = (s: VmmdState, name: Name): RunningUnikernel | undefined => s.running.find(name);

// ---------------------------------------------------------------------------------------
// Files and names

// (paths.ts; re-exported: the core names the files a create makes and an exit frees)
export { imagePath, fifoPath };

// ---------------------------------------------------------------------------------------
// Replies

export type Outcome = { readonly kind: "success"; readonly success: Success } | { readonly kind: "failure"; readonly message: string };

const enc = new TextEncoder();
export const successString = (s: string): Outcome => ({ kind: "success", success: { kind: "string", text: enc.encode(s) } });
export const failure = (message: string): Outcome => ({ kind: "failure", message });
export const success = (sx: Success): Outcome => ({ kind: "success", success: sx });

/** The reply wire for a request header (replies echo the request header unchanged). */
export function replyWire(header: Header, o: Outcome): Wire {
  return o.kind === "success"
    ? { header, payload: { kind: "reply", reply: o.success } }
    : { header, payload: { kind: "failure", message: enc.encode(o.message) } };
}

export const TEXT = {
  alreadyRunning: "Unikernel with same name is already running",
  consoleFailed: "could not create unikernel: console failed",
  created: "created unikernel",
  destroyed: "destroyed unikernel",
  destroyNotFound: "destroy: not found",
  removedWaiter: "destroyed: removed waiter",
  removedRestarting: "destroyed: removed from restarting",
  getNotFound: "get: no unikernel found",
  addedPolicy: "added policy",
  noModification: "no modification of policy",
  removedPolicy: "removed policy",
  unknownCommand: "unknown command",
  blockExists: "block device with same name already exists",
  addedBlock: "added block device",
  removeNotFound: "remove block: not found",
  removeInUse: "remove block: is in use",
  removedBlock: "removed block",
  setNotFound: "set block: not found",
  setInUse: "set block: is in use",
  setBlock: "set block device",
  dumpNotFound: "dump block: not found",
  dumpInUse: "dump block: is in use",
  dataExceeds: "data exceeds block size",
  overflow: "overflow while computing bytes",
  fileExists: "file already exists",
  fileMissing: "file does not exist",
  streamExceeds: "stream exceeds size",
  writeError: "error writing to file descriptor",
  openError: "error opening block device",
  readStreamError: "error while reading stream",
  streamingError: "streaming block device",
} as const;

// ---------------------------------------------------------------------------------------
// Images
//
// The core never inflates, hashes or parses an image: that is I/O-sized work the shell does
// as a stream on the image file (src/hostd/image.ts), bounded by `maxImageBytes`. The core
// decides with what the shell read (the ABI note, the manifest, the digest).

// ---------------------------------------------------------------------------------------
// Create (§2.4)

/** §2.4 steps 1 and 2 (and the type: only Solo5 runs here). */
export function checkCreate(s: VmmdState, name: Name, config: UnikernelConfig): Result<void> {
  if (findRunning(s, name) !== undefined) return err(TEXT.alreadyRunning);
  const c = checkUnikernel(s.resources, name, config);
  if (!c.ok) return c;
  const m = macConflict(s, name, config);
  if (m !== null) return err(m);
  // A Linux implementation without BHyve: such configs cannot be run here.
  if (config.typ !== "solo5") return err(`unikernel type ${config.typ} is not supported on this host`);
  return ok(undefined);
}

export interface Target {
  readonly abi: Solo5Abi & { readonly target: TenderTarget };
  /** the four tender candidates, in lookup order */
  readonly candidates: readonly string[];
}

/** §2.4 step 3.3 (after the shell wrote the image and read its ABI note): the target and tender candidates. */
export function imageTarget(o: Pick<VmmdOptions, "dbdir">, abi: Result<Solo5Abi>): Result<Target> {
  if (!abi.ok) return abi;
  const { version } = abi.value;
  const target = tenderTarget(abi.value.target);
  if (target === null) return err(unsupportedTarget(abi.value.target));
  return ok({ abi: { target, version }, candidates: tenderCandidates(o.dbdir, target, version) });
}

/** §2.4 step 3.5: the configured devices against the image's manifest (as the shell read it). */
export function checkImageManifest(manifest: Result<readonly Solo5Device[]>, config: Pick<UnikernelArguments, "blockDevices" | "bridges">): Result<void> {
  if (!manifest.ok) return manifest;
  const m = checkManifest(
    manifest.value,
    config.blockDevices.map((b) => b.name),
    config.bridges.map((b) => b.netif),
  );
  return m === null ? ok(undefined) : err(m);
}

/** Host bridges that must exist (§2.4 step 7), in config order, without repetitions. */
export function requiredBridges(config: UnikernelConfig): string[] {
  return [...new Set(config.bridges.map(bridgeOf))];
}

/** The MAC a network device gets: the configured one, else the deterministic one. */
export function macFor(name: Name, netif: string, mac: Bytes | undefined): Bytes {
  return mac ?? deterministicMac(netif, nameToString(name));
}

/**
 * Not upstream: two network devices on one bridge must not share a MAC. The deterministic
 * MAC (wire.md §2) is 24 bits of MD5 over netif ++ name text, so two unikernels can get
 * the same one (by chance, or e.g. netif `ab` of `:c` and netif `a` of `b:c`), and a
 * configured MAC can repeat any other; upstream starts both and the bridge delivers each
 * one's traffic to either. Checked against every running unikernel (a left-over tender of
 * a killed hostd is reaped before anything is restored, runtime.ts). The failure names
 * the holder, or null if there is no conflict.
 */
function macConflict(s: VmmdState, name: Name, config: UnikernelConfig): string | null {
  const mine = config.bridges.map((nd) => ({ netif: nd.netif, bridge: bridgeOf(nd), mac: formatMac(macFor(name, nd.netif, nd.mac)) }));
  for (let i = 0; i < mine.length; i++) {
    const a = mine[i]!;
    const twin = mine.slice(0, i).find((b) => b.bridge === a.bridge && b.mac === a.mac);
    if (twin !== undefined)
      return `MAC address ${a.mac} of ${a.netif} is also the MAC of ${twin.netif} on bridge ${a.bridge}; configure another MAC for one of them`;
  }
  if (mine.length === 0) return null;
  for (const [other, u] of s.running.all()) {
    if (key(other) === key(name)) continue;
    for (const t of u.taps) {
      const hit = mine.find((m) => m.bridge === t.bridge && m.mac === formatMac(t.mac));
      if (hit !== undefined)
        return `MAC address ${hit.mac} of ${hit.netif} is already used on bridge ${hit.bridge} by ${nameToString(other)} (${t.netif}); configure another MAC for ${hit.netif}`;
    }
  }
  return null;
}

/** §2.4 step 4: the Console_add request (and the advanced counter). */
export function consoleAddRequest(s: VmmdState, name: Name): { state: VmmdState; request: Wire } {
  const request: Wire = {
    header: { version: WIRE_VERSION, sequence: s.consoleSeq, name },
    payload: { kind: "command", command: { kind: "console-add", budget: consoleBudget(s.resources, name) } },
  };
  return { state: { ...s, consoleSeq: s.consoleSeq + 1n }, request };
}

/** The console's reply must be a Success with the request's sequence number. */
export function consoleReplyOk(request: Wire, reply: Wire): boolean {
  return reply.header.sequence === request.header.sequence && reply.payload.kind === "reply";
}

/** §2.4 step 5: the re-check right before exec. */
export function recheckCreate(s: VmmdState, name: Name, config: UnikernelConfig): Result<void> {
  if (findRunning(s, name) !== undefined) return err(TEXT.alreadyRunning);
  const c = checkUnikernel(s.resources, name, config);
  if (!c.ok) return c;
  const m = macConflict(s, name, config);
  return m === null ? ok(undefined) : err(m);
}

/** The generic create failure of step 6, extended by a cleanup error if there was one. */
export function createFailureText(cleanupError?: string): string {
  return cleanupError === undefined ? TEXT.consoleFailed : `${TEXT.consoleFailed}, and also ${cleanupError} while cleaning resources`;
}

export interface Committed {
  readonly state: VmmdState;
  /** Stats_add to send (null: no stats connection) */
  readonly statsAdd: Wire | null;
  readonly dump: boolean;
  readonly log: readonly string[];
}

/**
 * §2.4 steps 5 (register) and 7 (restart waiter, Stats_add). `dump` is false for the
 * automatic restart-on-failure re-creation.
 */
export function commitCreate(s: VmmdState, u: RunningUnikernel, dump: boolean): Result<Committed> {
  const r = insertUnikernel(s.resources, u.name, u.config);
  if (!r.ok) return r;
  let state: VmmdState = { ...s, resources: r.value, running: s.running.insert(u.name, u).trie };
  const log: string[] = [];
  if (u.config.failBehaviour.kind === "restart" || u.config.addName) {
    if (state.waiters.has(key(u.name))) log.push(`restart attempted to overwrite waiter for ${nameToString(u.name)}`);
    else state = withWaiter(state, u.name, { kind: "restart", config: u.config });
  }
  const st = statsAddRequest(state, u);
  return ok({ state: st.state, statsAdd: st.request, dump, log });
}

/** Stats_add for a running unikernel (vmmdev "" on Linux), if a stats connection exists. */
function statsAddRequest(s: VmmdState, u: RunningUnikernel): { state: VmmdState; request: Wire | null } {
  if (s.statsSeq === null) return { state: s, request: null };
  const request: Wire = {
    header: { version: WIRE_VERSION, sequence: s.statsSeq, name: u.name },
    payload: {
      kind: "command",
      command: { kind: "stats-add", vmmdev: "", pid: u.pid, network: u.taps.map((t) => ({ bridge: t.netif, tap: t.tap })) },
    },
  };
  return { state: { ...s, statsSeq: s.statsSeq + 1n }, request };
}

// ---------------------------------------------------------------------------------------
// Create as a sequence (§2.4)
//
// The phases of a create, each a pure function that takes what the phase before returned:
// a value of a type only this module makes (Phase), so the shell cannot call them out of
// order, skip one, or hand one phase's input to another — the compiler checks the order the
// comment at the top describes. Each wraps the checks above (tested one by one) and carries
// forward what later phases need.

declare const PHASE: unique symbol;
/** A value of phase P of a create; only this module makes them. */
type Phase<P extends string, T> = T & { readonly [PHASE]: P };

interface CreateBase {
  readonly name: Name;
  readonly config: UnikernelConfig;
  /** the files the create makes (its intent record names them) */
  readonly image: string;
  readonly fifo: string;
}

/** A phase value from its fields (the one place they are made). */
const phase = <V>(v: Omit<V, typeof PHASE>): V => v as V;
const base = (c: CreateBase): CreateBase => ({ name: c.name, config: c.config, image: c.image, fifo: c.fifo });

/** Steps 1 and 2 passed: write the image next. */
export type CreateBegun = Phase<"begun", CreateBase>;
/** The image is written: look up its tender among `candidates` (checked for ABI `abi.version`) next. */
export type CreateImaged = Phase<"imaged", CreateBase & { readonly digest: Bytes; readonly target: Target }>;
/** The tender is found and the manifest matches: check `bridges`, make the FIFO and one tap per `config.bridges` next. */
export type CreateTendered = Phase<"tendered", CreateBase & { readonly digest: Bytes; readonly tender: string; readonly bridges: readonly string[] }>;
/** The taps are made: Console_add next. */
export type CreateNetworked = Phase<"networked", Networked>;
interface Networked extends CreateBase {
  readonly digest: Bytes;
  readonly tender: string;
  readonly taps: readonly TapAssignment[];
}
/** Console_add is to be sent: `request`. */
export type CreateConsolePending = Phase<"console", Networked & { readonly request: Wire }>;
/** The console is ready: the re-check and the command line next. */
export type CreateConsoled = Phase<"consoled", Networked>;
/** Ready to exec `argv`, then register the pid. */
export type CreateReady = Phase<"ready", Networked & { readonly argv: readonly string[] }>;
const networked = (n: Networked): Networked => ({ ...base(n), digest: n.digest, tender: n.tender, taps: n.taps });

/** Steps 1 and 2: the create may go ahead (checkCreate). */
export function beginCreate(s: VmmdState, o: Pick<VmmdOptions, "tmpdir">, name: Name, config: UnikernelConfig): Result<CreateBegun> {
  const c = checkCreate(s, name, config);
  if (!c.ok) return c;
  return ok(phase<CreateBegun>({ name, config, image: imagePath(o, name), fifo: fifoPath(o, name) }));
}

/** Step 3.3, once the shell wrote the image and read its ABI note: the target and tender candidates (imageTarget). */
export function imageWritten(b: CreateBegun, o: Pick<VmmdOptions, "dbdir">, digest: Bytes, abi: Result<Solo5Abi>): Result<CreateImaged> {
  const t = imageTarget(o, abi);
  if (!t.ok) return t;
  return ok(phase<CreateImaged>({ ...base(b), digest, target: t.value }));
}

/** Steps 3.4–3.5, once the shell found and checked `tender`: the manifest against the config (checkImageManifest). */
export function tenderFound(i: CreateImaged, tender: string, manifest: Result<readonly Solo5Device[]>): Result<CreateTendered> {
  const m = checkImageManifest(manifest, i.config);
  if (!m.ok) return m;
  return ok(phase<CreateTendered>({ ...base(i), digest: i.digest, tender, bridges: requiredBridges(i.config) }));
}

/** Step 8's taps were made, one per `config.bridges` in order: each network device with its MAC (macFor). */
export function tapsMade(t: CreateTendered, taps: readonly string[]): CreateNetworked {
  if (taps.length !== t.config.bridges.length) throw new RangeError(`${taps.length} taps for ${t.config.bridges.length} network devices`);
  const assigned = t.config.bridges.map(
    (nd, i): TapAssignment => ({ netif: nd.netif, bridge: bridgeOf(nd), tap: taps[i]!, mac: macFor(t.name, nd.netif, nd.mac) }),
  );
  return phase<CreateNetworked>({ ...base(t), digest: t.digest, tender: t.tender, taps: assigned });
}

/** Step 4: the Console_add request (consoleAddRequest). */
export function consoleAdd(s: VmmdState, n: CreateNetworked): { state: VmmdState; pending: CreateConsolePending } {
  const ca = consoleAddRequest(s, n.name);
  return { state: ca.state, pending: phase<CreateConsolePending>({ ...networked(n), request: ca.request }) };
}

/** The console's reply (null: none came): go on, or `console failed` (consoleReplyOk). */
export function consoleAdded(p: CreateConsolePending, reply: Wire | null): Result<CreateConsoled> {
  if (reply === null || !consoleReplyOk(p.request, reply)) return err("console failed");
  return ok(phase<CreateConsoled>(networked(p)));
}

/** Step 5: the re-check right before exec (recheckCreate), and the command line to exec. */
export function execPlan(s: VmmdState, o: Pick<VmmdOptions, "dbdir" | "dropPath">, c: CreateConsoled): Result<CreateReady> {
  const rc = recheckCreate(s, c.name, c.config);
  if (!rc.ok) return rc;
  const { config, name } = c;
  const argv = tenderCommandLine({
    tender: c.tender,
    cpuids: config.cpuids,
    memory: config.memory,
    nets: c.taps.map((t) => ({ netif: t.netif, tap: t.tap, mac: t.mac })),
    blocks: config.blockDevices.map((b) => ({
      name: b.name,
      path: blockFile(o.dbdir, blockName(name, b.device ?? b.name)),
      ...(b.sectorSize !== undefined ? { sectorSize: b.sectorSize } : {}),
    })),
    image: c.image,
    ...(config.addName ? { nameArg: guestNameArg(name, o.dropPath) } : {}),
    argv: (config.argv ?? []).map((a) => Buffer.from(a).toString("utf8")),
  });
  return ok(phase<CreateReady>({ ...networked(c), argv }));
}

/** Steps 5 and 7, the tender running as `pid`: register it (commitCreate; again on the current state after the record). */
export function started(s: VmmdState, r: CreateReady, pid: number, at: Date, dump: boolean): Result<Committed> & { readonly unikernel: RunningUnikernel } {
  const unikernel: RunningUnikernel = { name: r.name, config: r.config, pid, taps: r.taps, digest: r.digest, started: at };
  return { ...commitCreate(s, unikernel, dump), unikernel };
}

// ---------------------------------------------------------------------------------------
// Exit, restart-on-failure (§2.8)

export interface Cleanup {
  readonly image: string;
  readonly fifo: string;
  readonly taps: readonly string[];
}

export interface ExitOutcome {
  readonly state: VmmdState;
  /** step 1, in this order: image, FIFO, taps (stop at the first error) */
  readonly cleanup: Cleanup;
  /** step 2 */
  readonly statsRemove: Wire | null;
  /** step 4: the waiter to wake once the lock is released */
  readonly wake: Waiter | null;
  readonly dump: boolean;
}

/** The unikernel `name` has exited. null if no such unikernel is registered. */
export function handleExit(s: VmmdState, o: Pick<VmmdOptions, "tmpdir">, name: Name): ExitOutcome | null {
  const u = findRunning(s, name);
  if (u === undefined) return null;
  const cleanup: Cleanup = { image: imagePath(o, name), fifo: fifoPath(o, name), taps: u.taps.map((t) => t.tap) };
  let state = s;
  let statsRemove: Wire | null = null;
  if (state.statsSeq !== null) {
    statsRemove = {
      header: { version: WIRE_VERSION, sequence: state.statsSeq, name },
      payload: { kind: "command", command: { kind: "stats-remove" } },
    };
    state = { ...state, statsSeq: state.statsSeq + 1n };
  }
  const r = removeUnikernel(state.resources, name);
  state = { ...state, resources: r.ok ? r.value : state.resources, running: state.running.remove(name) };
  const w = state.waiters.get(key(name));
  if (w !== undefined) {
    state = withRestarting(withWaiter(state, name, undefined), name, true);
    return { state, cleanup, statsRemove, wake: w, dump: false };
  }
  return { state, cleanup, statsRemove, wake: null, dump: !state.shuttingDown };
}

/** Exit codes that never cause a restart: 1 (solo5 error) and 60–64 (argument errors). */
const NEVER_RESTART = [1, 60, 61, 62, 63, 64] as const;

/** `should_restart` (§2.8). */
export function shouldRestart(fail: FailBehaviour, status: ExitStatus): boolean {
  if (status.kind !== "exited") return false;
  if ((NEVER_RESTART as readonly number[]).includes(status.code)) return false;
  if (fail.kind === "quit") return false;
  return fail.exitCodes.length === 0 || fail.exitCodes.includes(status.code);
}

export type RestartAction =
  | { readonly kind: "create"; readonly config: UnikernelConfig; readonly dump: boolean; readonly reason: "add-name-fallback" | "restart" }
  | { readonly kind: "dump" };

/** The restart waiter of `name` was woken with `status` (§2.8). */
export function restartDecision(s: VmmdState, name: Name, config: UnikernelConfig, status: ExitStatus): { state: VmmdState; action: RestartAction } {
  const inRestarting = s.restarting.has(key(name));
  const state = withRestarting(s, name, false);
  if (inRestarting && config.addName && status.kind === "exited" && status.code === 64)
    return { state, action: { kind: "create", config: { ...config, addName: false }, dump: true, reason: "add-name-fallback" } };
  if (inRestarting && config.failBehaviour.kind === "restart" && shouldRestart(config.failBehaviour, status))
    return { state, action: { kind: "create", config, dump: false, reason: "restart" } };
  return { state, action: { kind: "dump" } };
}

// ---------------------------------------------------------------------------------------
// Commands

/** What the shell has to do for a command. */
export type Step =
  /** answer now; `dump` = write the state file first; `keepOpen` = read another command */
  | { readonly kind: "reply"; readonly state: VmmdState; readonly outcome: Outcome; readonly dump: boolean; readonly keepOpen: boolean }
  /** run the create pipeline for `config` (with state dump), reply with its result */
  | { readonly kind: "create"; readonly state: VmmdState; readonly name: Name; readonly config: UnikernelConfig }
  /**
   * SIGTERM `pid`, release the lock, wait for exit waiter `waiterId`; then `destroy`:
   * dump and reply `destroyed unikernel`, or `create`: create `config` (with dump).
   */
  | {
      readonly kind: "replace";
      readonly state: VmmdState;
      readonly name: Name;
      readonly pid: number;
      readonly waiterId: number;
      readonly then: { readonly kind: "destroy" } | { readonly kind: "create"; readonly config: UnikernelConfig };
    }
  /**
   * restart with new arguments: read the manifest of the running image's file (`image`),
   * then continue with restartChecked (the lock stays held)
   */
  | { readonly kind: "restart-check"; readonly state: VmmdState; readonly name: Name; readonly config: UnikernelConfig; readonly image: string }
  /** get: reply `unikernel-image` with `image` inflated (bounded by maxImageBytes) or deflated at `level` */
  | { readonly kind: "get-convert"; readonly state: VmmdState; readonly image: Bytes; readonly convert: "inflate" | "deflate"; readonly level: number }
  | { readonly kind: "block-add"; readonly state: VmmdState; readonly name: Name; readonly size: number; readonly data?: InlineData }
  | { readonly kind: "block-remove"; readonly state: VmmdState; readonly name: Name }
  | { readonly kind: "block-set"; readonly state: VmmdState; readonly name: Name; readonly size: number; readonly compressed: boolean }
  | { readonly kind: "block-set-old"; readonly state: VmmdState; readonly name: Name; readonly size: number; readonly data: InlineData }
  | { readonly kind: "block-dump"; readonly state: VmmdState; readonly name: Name; readonly level: number; readonly old: boolean }
  /** this connection becomes the stats channel: reply, then send `adds` one by one */
  | { readonly kind: "stats-initial"; readonly state: VmmdState; readonly outcome: Outcome; readonly adds: readonly Wire[] };

const reply = (state: VmmdState, outcome: Outcome, dump = false, keepOpen = false): Step => ({ kind: "reply", state, outcome, dump, keepOpen });

/** Dispatch one command (§2.3), under the global lock. */
export function handleCommand(s: VmmdState, o: VmmdOptions, header: Header, cmd: Command): Step {
  const name = header.name;
  switch (cmd.kind) {
    case "unikernel-create":
      return createStep(s, name, cmd.config);
    case "unikernel-force-create":
      return forceCreate(s, name, cmd.config);
    case "unikernel-destroy":
      return destroy(s, name);
    case "unikernel-restart":
      return restart(s, o, name, cmd.args);
    case "unikernel-get":
      return get(s, name, cmd.level);
    case "unikernel-info":
    case "unikernel-info-v5":
    case "unikernel-info-v4":
      return reply(s, unikernelInfo(s, name, cmd.kind));
    case "policy-info":
      return reply(s, success({ kind: "policies", policies: policyInfo(s.resources, name) }));
    case "policy-add":
      return policyAdd(s, name.path, cmd.policy);
    case "policy-remove": {
      const r = removePolicy(s.resources, name.path);
      if (!r.ok) return reply(s, failure(r.error));
      return reply({ ...s, resources: r.value }, successString(TEXT.removedPolicy), true);
    }
    case "block-info":
      return reply(s, blockInfo(s, name));
    case "block-add":
      return blockAdd(s, name, cmd.size);
    case "block-add-old":
      return blockAdd(s, name, cmd.size, cmd.compressed, cmd.data);
    case "block-remove": {
      const b = findBlock(s.resources, name);
      if (b === undefined || name.label === null) return reply(s, failure(TEXT.removeNotFound));
      if (b.active) return reply(s, failure(TEXT.removeInUse));
      return { kind: "block-remove", state: s, name };
    }
    case "block-set": {
      const b = findBlock(s.resources, name);
      if (b === undefined || name.label === null) return reply(s, failure(TEXT.setNotFound));
      if (b.active) return reply(s, failure(TEXT.setInUse));
      return { kind: "block-set", state: s, name, size: b.size, compressed: cmd.compressed };
    }
    case "block-set-old": {
      const b = findBlock(s.resources, name);
      if (b === undefined || name.label === null) return reply(s, failure(TEXT.setNotFound));
      if (b.active) return reply(s, failure(TEXT.setInUse));
      const data = inlineBlockData(cmd.compressed, cmd.data, b.size);
      if (!data.ok) return reply(s, failure(data.error));
      return { kind: "block-set-old", state: s, name, size: b.size, data: data.value };
    }
    case "block-dump":
    case "block-dump-old": {
      const b = findBlock(s.resources, name);
      if (b === undefined || name.label === null) return reply(s, failure(TEXT.dumpNotFound));
      if (b.active) return reply(s, failure(TEXT.dumpInUse));
      return { kind: "block-dump", state: s, name, level: cmd.level, old: cmd.kind === "block-dump-old" };
    }
    case "stats-initial":
      return statsInitial(s, header);
    case "console-add":
    case "console-subscribe":
    case "console-list-inactive":
    case "stats-add":
    case "stats-remove":
    case "stats-subscribe":
      return reply(s, failure(TEXT.unknownCommand));
  }
}

function createStep(s: VmmdState, name: Name, config: UnikernelConfig): Step {
  // Step 1 is checked here already so that a duplicate is refused without touching anything;
  // prepareCreate repeats it (the lock is held throughout).
  if (name.label === null) return reply(s, failure("unikernel name must not be a path"));
  if (findRunning(s, name) !== undefined) return reply(s, failure(TEXT.alreadyRunning));
  return { kind: "create", state: s, name, config };
}

/** force-create (§2.9): tentatively remove the old instance and check the new config. */
function forceCreate(s: VmmdState, name: Name, config: UnikernelConfig): Step {
  if (name.label === null) return reply(s, failure("unikernel name must not be a path"));
  const u = findRunning(s, name);
  let tentative = s.resources;
  if (u !== undefined) {
    const r = removeUnikernel(s.resources, name);
    if (r.ok) tentative = r.value;
  }
  const c = checkUnikernel(tentative, name, config);
  if (!c.ok) return reply(s, failure(c.error));
  if (u === undefined) return { kind: "create", state: s, name, config };
  const w = registerExitWaiter(s, name);
  return { kind: "replace", state: w.state, name, pid: u.pid, waiterId: w.id, then: { kind: "create", config } };
}

/** The not-running branch shared by destroy and restart. */
function notRunning(s: VmmdState, name: Name, dump: boolean): Step {
  const w = s.waiters.get(key(name));
  if (w !== undefined && w.kind === "restart") return reply(withWaiter(s, name, undefined), successString(TEXT.removedWaiter), dump);
  if (s.restarting.has(key(name))) return reply(withRestarting(s, name, false), successString(TEXT.removedRestarting), dump);
  return reply(s, failure(TEXT.destroyNotFound));
}

function destroy(s: VmmdState, name: Name): Step {
  const u = findRunning(s, name);
  if (u === undefined) return notRunning(s, name, true);
  const w = registerExitWaiter(s, name);
  return { kind: "replace", state: w.state, name, pid: u.pid, waiterId: w.id, then: { kind: "destroy" } };
}

/** The configuration a restart with arguments runs: every argument field replaced (§2.9, wire.md §7.2). */
export function restartConfig(current: UnikernelConfig, args: UnikernelArguments | undefined): UnikernelConfig {
  if (args === undefined) return current;
  const c: { -readonly [K in keyof UnikernelConfig]: UnikernelConfig[K] } = {
    typ: current.typ,
    compressed: current.compressed,
    image: current.image,
    failBehaviour: args.failBehaviour,
    addName: args.addName,
    cpuids: args.cpuids,
    memory: args.memory,
    blockDevices: args.blockDevices,
    bridges: args.bridges,
    numcpus: args.numcpus,
  };
  if (args.startup !== undefined) c.startup = args.startup;
  if (args.argv !== undefined) c.argv = args.argv;
  if (args.linuxBootPartition !== undefined) c.linuxBootPartition = args.linuxBootPartition;
  return c;
}

function restart(s: VmmdState, o: VmmdOptions, name: Name, args: UnikernelArguments | undefined): Step {
  const u = findRunning(s, name);
  if (u === undefined) return notRunning(s, name, false);
  const r = removeUnikernel(s.resources, name);
  const c = checkUnikernel(r.ok ? r.value : s.resources, name, u.config);
  if (!c.ok) return reply(s, failure(c.error));
  const config = restartConfig(u.config, args);
  // New arguments: the image's manifest against the new devices. The image is the running
  // one's, inflated on disk already (upstream inflates it again, in memory).
  if (args !== undefined) return { kind: "restart-check", state: s, name, config, image: imagePath(o, name) };
  const w = registerExitWaiter(s, name);
  return { kind: "replace", state: w.state, name, pid: u.pid, waiterId: w.id, then: { kind: "create", config } };
}

/** A restart with new arguments, once the shell has read the running image's manifest. */
export function restartChecked(s: VmmdState, name: Name, config: UnikernelConfig, manifest: Result<readonly Solo5Device[]>): Step {
  const m = checkImageManifest(manifest, config);
  if (!m.ok) return reply(s, failure(m.error));
  const u = findRunning(s, name);
  if (u === undefined) return notRunning(s, name, false); // (the lock is held: not expected)
  const w = registerExitWaiter(s, name);
  return { kind: "replace", state: w.state, name, pid: u.pid, waiterId: w.id, then: { kind: "create", config } };
}

function get(s: VmmdState, name: Name, level: number): Step {
  const u = findRunning(s, name);
  if (u === undefined) return reply(s, failure(TEXT.getNotFound));
  const c = u.config;
  // wire.md §12; the (de)compression is the shell's (on the thread pool), levels above 9 clamped
  if (c.compressed && level > 0) return reply(s, success({ kind: "unikernel-image", compressed: true, image: c.image }));
  if (c.compressed) return { kind: "get-convert", state: s, image: c.image, convert: "inflate", level: 0 };
  if (level === 0) return reply(s, success({ kind: "unikernel-image", compressed: false, image: c.image }));
  return { kind: "get-convert", state: s, image: c.image, convert: "deflate", level: Math.max(1, Math.min(9, level)) };
}

function infoOf(s: VmmdState, u: RunningUnikernel): UnikernelInfo {
  const c = u.config;
  const blockDevices: BlockInfo[] = c.blockDevices.map((b) => {
    const host = b.device ?? b.name;
    // Looked up with the absolute name (upstream uses the relative one for path queries).
    const dev = findBlock(s.resources, blockName(u.name, host));
    return { unikernelDevice: b.name, hostDevice: host, sectorSize: b.sectorSize ?? 512, blockSize: dev?.size ?? 0 };
  });
  const bridges: NetInfo[] = c.bridges.map((b, i) => ({
    unikernelDevice: b.netif,
    hostDevice: bridgeOf(b),
    mac: u.taps[i]?.mac ?? macFor(u.name, b.netif, b.mac),
  }));
  const info: { -readonly [K in keyof UnikernelInfo]: UnikernelInfo[K] } = {
    typ: c.typ,
    failBehaviour: c.failBehaviour,
    cpuids: c.cpuids,
    memory: c.memory,
    digest: u.digest,
    blockDevices,
    bridges,
    started: u.started,
    numcpus: c.numcpus,
  };
  if (c.startup !== undefined) info.startup = c.startup;
  if (c.argv !== undefined) info.argv = c.argv;
  if (c.linuxBootPartition !== undefined) info.linuxBootPartition = c.linuxBootPartition;
  return info;
}

/**
 * Unikernel info (§2.9): a label -> `[(requested name, info)]` or `[]`; a path -> the
 * subtree, names relative to the path, pre-order with children in descending order.
 */
function unikernelInfo(s: VmmdState, name: Name, variant: "unikernel-info" | "unikernel-info-v5" | "unikernel-info-v4"): Outcome {
  let entries: UnikernelInfoEntry[];
  if (name.label !== null) {
    const u = findRunning(s, name);
    entries = u === undefined ? [] : [{ name, info: infoOf(s, u) }];
  } else {
    entries = s.running.fold<UnikernelInfoEntry[]>(name.path, (rel, u, acc) => (acc.push({ name: rel, info: infoOf(s, u) }), acc), []).reverse();
  }
  if (variant === "unikernel-info") return success({ kind: "unikernel-info", unikernels: entries });
  // The old reply forms carry a single CPU id; upstream's encoder raises otherwise.
  if (entries.some((e) => e.info.cpuids.length !== 1)) return failure("old unikernel info requires exactly one CPU id per unikernel");
  return success({ kind: variant === "unikernel-info-v5" ? "old-unikernel-info5" : "old-unikernel-info4", unikernels: entries });
}

function policyAdd(s: VmmdState, path: Path, p: Policy): Step {
  const existing = findPolicy(s.resources, path);
  if (existing !== undefined && policyEquals(existing, p)) return reply(s, successString(TEXT.noModification), false, true);
  const r = insertPolicy(s.resources, path, p);
  if (!r.ok) return reply(s, failure(r.error));
  return reply({ ...s, resources: r.value }, successString(TEXT.addedPolicy), true, true);
}

/** Block info (§2.11): like unikernel info. */
function blockInfo(s: VmmdState, name: Name): Outcome {
  if (name.label !== null) {
    const b = findBlock(s.resources, name);
    return success({ kind: "block-devices", devices: b === undefined ? [] : [{ name, size: b.size, active: b.active }] });
  }
  const devices = s.resources.blockDevices
    .fold<{ name: Name; size: number; active: boolean }[]>(name.path, (rel, b, acc) => (acc.push({ name: rel, size: b.size, active: b.active }), acc), [])
    .reverse();
  return success({ kind: "block-devices", devices });
}

const MB = 1 << 20;

/** size MB -> bytes, `overflow while computing bytes` when <= 0 or too large. */
function blockBytes(size: number): Result<number> {
  if (!Number.isSafeInteger(size) || size <= 0 || size * MB > Number.MAX_SAFE_INTEGER) return err(TEXT.overflow);
  return ok(size * MB);
}

/**
 * Inline data of the old add/set forms. The shell writes it (inflating a compressed one as
 * a stream) and refuses more than the device's size with `data exceeds block size`.
 */
export interface InlineData {
  readonly compressed: boolean;
  readonly bytes: Bytes;
}

/** The checks of inline data that need no inflating: the size, and plain data's length. */
export function inlineBlockData(compressed: boolean, data: Bytes, sizeMB: number): Result<InlineData> {
  const bytes = blockBytes(sizeMB);
  if (!bytes.ok) return bytes;
  if (!compressed && data.length > bytes.value) return err(TEXT.dataExceeds);
  return ok({ compressed, bytes: data });
}

function blockAdd(s: VmmdState, name: Name, size: number, compressed = false, data?: Bytes): Step {
  if (findBlock(s.resources, name) !== undefined) return reply(s, failure(TEXT.blockExists));
  // A block device is a file named after it; a path name has no label to name it by.
  if (name.label === null) return reply(s, failure("block device name must not be a path"));
  const c = checkBlock(s.resources, name, size);
  if (!c.ok) return reply(s, failure(c.error));
  // Upstream validates the size only when truncating (and leaves an empty file behind).
  const bytes = blockBytes(size);
  if (!bytes.ok) return reply(s, failure(bytes.error));
  if (data === undefined) return { kind: "block-add", state: s, name, size };
  const d = inlineBlockData(compressed, data, size);
  if (!d.ok) return reply(s, failure(d.error));
  return { kind: "block-add", state: s, name, size, data: d.value };
}

/** The block file has been created: register the device (inactive). */
export function blockAdded(s: VmmdState, name: Name, size: number): Result<VmmdState> {
  const r = insertBlock(s.resources, name, size);
  return r.ok ? ok({ ...s, resources: r.value }) : r;
}

/** The block file has been deleted: unregister the device. */
export function blockRemoved(s: VmmdState, name: Name): Result<VmmdState> {
  const r = removeBlock(s.resources, name);
  return r.ok ? ok({ ...s, resources: r.value }) : r;
}

/** Stats_initial (§2.3): the counter becomes request sequence + 1, then Stats_add for each. */
function statsInitial(s: VmmdState, header: Header): Step {
  let state: VmmdState = { ...s, statsSeq: header.sequence + 1n };
  const adds: Wire[] = [];
  for (const [, u] of state.running.all()) {
    const r = statsAddRequest(state, u);
    state = r.state;
    if (r.request !== null) adds.push(r.request);
  }
  return { kind: "stats-initial", state, outcome: success({ kind: "empty" }), adds };
}

/** The stats connection is gone. */
export const statsDisconnected = (s: VmmdState): VmmdState => ({ ...s, statsSeq: null });

// ---------------------------------------------------------------------------------------
// State file (§2.10) and start-up (§2.2)

/** What the state file holds: every registered unikernel and every policy. */
export function stateToDump(s: VmmdState): State {
  return {
    unikernels: s.running.all().map(([name, u]) => ({ name, config: u.config })),
    policies: s.resources.policies.all().map(([name, policy]) => ({ name, policy })),
  };
}

/**
 * §2.2 step 7: the discovered root policy replaces a stored one, then every stored
 * policy is inserted (root first, pre-order) with insert_policy's checks.
 */
export function restorePolicies(resources: Resources, root: Policy, stored: State["policies"]): Result<{ resources: Resources; warnings: string[] }> {
  const warnings: string[] = [];
  let trie = Trie.empty<Policy>();
  for (const p of stored) trie = trie.insert(p.name.label === null ? p.name : pathName([...p.name.path, p.name.label]), p.policy).trie;
  const storedRoot = trie.find(pathName(rootPath));
  if (storedRoot !== undefined && !policyEquals(storedRoot, root))
    warnings.push(`replacing stored root policy ${formatPolicy(storedRoot)} with ${formatPolicy(root)}`);
  trie = trie.insert(pathName(rootPath), root).trie;
  let r = resources;
  for (const [name, p] of trie.all()) {
    const res = insertPolicy(r, [...name.path, ...(name.label === null ? [] : [name.label])], p);
    if (!res.ok) return err(`policy restore error: couldn't insert policy ${formatPolicy(p)} for ${nameToString(name)}: ${res.error}`);
    r = res.value;
  }
  return ok({ resources: r, warnings });
}

/** §2.2 step 11: unikernels sorted by startup ascending (absent = 50), stable. */
export function restoreOrder(unikernels: readonly StateUnikernel[]): StateUnikernel[] {
  return unikernels
    .map((u, i) => ({ u, i }))
    .sort((a, b) => (a.u.config.startup ?? 50) - (b.u.config.startup ?? 50) || a.i - b.i)
    .map((x) => x.u);
}

/** §2.12: shut down — an exit waiter for every running unikernel; the shell SIGTERMs them. */
export function beginShutdown(s: VmmdState): { state: VmmdState; targets: { name: Name; pid: number; waiterId: number }[] } {
  let state: VmmdState = { ...s, shuttingDown: true };
  const targets: { name: Name; pid: number; waiterId: number }[] = [];
  for (const [name, u] of s.running.all()) {
    const w = registerExitWaiter(state, name);
    state = w.state;
    targets.push({ name, pid: u.pid, waiterId: w.id });
  }
  return { state, targets };
}
