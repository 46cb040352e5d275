// The daemon's resource accounting (policy.md §5–§9, §11): upstream's Vmm_resources.
// Pure and immutable: every operation returns a new `Resources` (or an error text, worded
// exactly as albatross 2.7.2 words it) and leaves its argument untouched.
//
// Subtrees are label-list subtrees of the tries (see trie.ts), so — as upstream — a
// unikernel or block device `:foo` counts as inside the subtree of path `foo:`.
import type { Policy, PolicyEntry, UnikernelConfig } from "../commands/types.js";
import { nameDisplay, nameToString, pathEquals, pathName, type Name, type Path } from "../core/name.js";
import { sortedIds, sortedStrings } from "../core/sets.js";
import { configBridges, idsDiff, isSmaller, rootPolicyUnikernels } from "./policy.js";
import { err, ok, type Result } from "../core/result.js";
import { Trie } from "../core/trie.js";

/** A registered block device: declared size in MB and whether a unikernel uses it. */
export interface BlockState {
  readonly size: number;
  readonly active: boolean;
}

export interface Resources {
  /** running (registered) unikernels, keyed by full name */
  readonly unikernels: Trie<UnikernelConfig>;
  /** policies, keyed by path (path names) */
  readonly policies: Trie<Policy>;
  /** block devices, keyed by full name */
  readonly blockDevices: Trie<BlockState>;
  /**
   * BHyve `--allow-zvol-for <path>`: unikernels at exactly this path may reference block
   * devices whose label starts with `/dev/zvol`; those are neither checked nor marked.
   */
  readonly zvolPath?: Path;
}

/** Usage of a subtree. `cpuids`/`bridges` are the (sorted) unions over its unikernels. */
export interface Usage {
  readonly unikernels: number;
  /** MB, sum over running unikernels */
  readonly memory: number;
  /** MB, sum of the declared sizes of all block devices (active and inactive) */
  readonly block: number;
  readonly cpuids: number[];
  readonly bridges: string[];
}

/** Empty resources (no policies, unikernels or block devices). */
export function emptyResources(zvolPath?: Path): Resources {
  const r = { unikernels: Trie.empty<UnikernelConfig>(), policies: Trie.empty<Policy>(), blockDevices: Trie.empty<BlockState>() };
  return zvolPath === undefined ? r : { ...r, zvolPath };
}

/**
 * The block device a unikernel references under host device label `device` (the config's
 * `device`, else its `name`): the name (path of the unikernel, `device`) — wire.md §2.
 * Like upstream the label is NOT validated (it comes straight from the config): such a
 * name can only be looked up, never stored (block devices are only inserted under
 * validated names), and must not be used to build a file path unchecked.
 */
export function blockName(unikernelName: Name, deviceLabel: string): Name {
  return { path: unikernelName.path, label: deviceLabel };
}

/** The block names a config references, in config order. */
function configBlockNames(name: Name, config: UnikernelConfig): Name[] {
  return config.blockDevices.map((b) => blockName(name, b.device ?? b.name));
}

export const findPolicy = (r: Resources, path: Path): Policy | undefined => r.policies.find(pathName(path));
const findUnikernel = (r: Resources, name: Name): UnikernelConfig | undefined => r.unikernels.find(name);
export const findBlock = (r: Resources, name: Name): BlockState | undefined => r.blockDevices.find(name);

function zvolAllowed(zvolPath: Path | undefined, block: Name): boolean {
  return zvolPath !== undefined && (block.label ?? "").startsWith("/dev/zvol") && pathEquals(block.path, zvolPath);
}

function unikernelUsage(r: Resources, path: Path): { n: number; memory: number } {
  return r.unikernels.fold(path, (_n, c, acc) => ({ n: acc.n + 1, memory: acc.memory + c.memory }), { n: 0, memory: 0 });
}

function blockUsage(r: Resources, path: Path): number {
  return r.blockDevices.fold(path, (_n, b, acc) => acc + b.size, 0);
}

/** Usage of the subtree of `path` (label-list subtree, see the module comment). */
export function usage(r: Resources, path: Path): Usage {
  const { n, memory } = unikernelUsage(r, path);
  const cpuids = new Set<number>();
  const bridges = new Set<string>();
  r.unikernels.fold(
    path,
    (_n, c, acc) => {
      for (const id of c.cpuids) cpuids.add(id);
      for (const b of configBridges(c)) bridges.add(b);
      return acc;
    },
    undefined,
  );
  return { unikernels: n, memory, block: blockUsage(r, path), cpuids: sortedIds(cpuids), bridges: sortedStrings(bridges) };
}

/** Upstream `check_policy`: a new unikernel against the policy of its own path. */
function checkPolicy(p: Policy, used: { n: number; memory: number }, config: UnikernelConfig): Result<void> {
  if (BigInt(used.n + 1) > p.unikernels) return err(`maximum amount of unikernels (${p.unikernels}) reached`);
  if (config.memory > p.memory - used.memory)
    return err(`maximum allowed memory (${p.memory}, used ${used.memory}) would be exceeded (requesting ${config.memory})`);
  const allowedIds = new Set(p.cpuids);
  if (!config.cpuids.every((id) => allowedIds.has(id))) return err(`CPUids ${idsDiff(config.cpuids, p.cpuids).join(", ")} are not allowed by policy`);
  const allowed = new Set(p.bridges);
  const disallowed = configBridges(config).filter((b) => !allowed.has(b)); // config order, as upstream
  if (disallowed.length > 0) return err(`bridges ${disallowed.join(", ")} not allowed by policy`);
  return ok(undefined);
}

/**
 * `check_unikernel` (policy.md §5), first error wins:
 * 1. the policy at exactly path(name), if any (no ancestor is consulted): count, memory,
 *    CPU ids, bridges against the usage of that path's subtree;
 * 2. each referenced block device must exist and be inactive (zvol escape hatch skipped);
 * 3. no unikernel registered under `name`.
 * `opts.zvolPath` overrides `r.zvolPath`.
 */
export function checkUnikernel(r: Resources, name: Name, config: UnikernelConfig, opts?: { zvolPath?: Path }): Result<void> {
  const zvolPath = opts?.zvolPath ?? r.zvolPath;
  const path = name.path;
  const p = findPolicy(r, path);
  if (p !== undefined) {
    const res = checkPolicy(p, unikernelUsage(r, path), config);
    if (!res.ok) return res;
  }
  for (const bn of configBlockNames(name, config)) {
    if (zvolAllowed(zvolPath, bn)) continue;
    const b = findBlock(r, bn);
    if (b === undefined) return err(`block device ${nameToString(bn)} not found`);
    if (b.active) return err(`block device ${nameToString(bn)} already in use`);
  }
  if (findUnikernel(r, name) !== undefined) return err("unikernel with same name already exists");
  return ok(undefined);
}

/**
 * Upstream `set_block_usage`: mark one block device (in)active. Errors
 * `block device <n> not in trie` / `block device <n> already in state active|inactive`.
 * Zvol-escaped names (see `Resources.zvolPath`) are left alone.
 */
export function setBlockActive(r: Resources, name: Name, active: boolean, opts?: { zvolPath?: Path }): Result<Resources> {
  if (zvolAllowed(opts?.zvolPath ?? r.zvolPath, name)) return ok(r);
  const b = findBlock(r, name);
  if (b === undefined) return err(`block device ${nameToString(name)} not in trie`);
  if (b.active === active) return err(`block device ${nameToString(name)} already in state ${b.active ? "active" : "inactive"}`);
  return ok({ ...r, blockDevices: r.blockDevices.insert(name, { size: b.size, active }).trie });
}

function useBlocks(r: Resources, name: Name, config: UnikernelConfig, active: boolean, zvolPath: Path | undefined): Result<Resources> {
  let cur = r;
  for (const bn of configBlockNames(name, config)) {
    const res = setBlockActive(cur, bn, active, zvolPath === undefined ? undefined : { zvolPath });
    if (!res.ok) return res;
    cur = res.value;
  }
  return ok(cur);
}

/**
 * Register a running unikernel and mark its block devices active. Does NOT run
 * `checkUnikernel` (the daemon does that first). A name already registered is rejected
 * with `unikernel <name> already exists in trie` (upstream raises Invalid_argument).
 */
export function insertUnikernel(r: Resources, name: Name, config: UnikernelConfig, opts?: { zvolPath?: Path }): Result<Resources> {
  const { trie, previous } = r.unikernels.insert(name, config);
  if (previous !== undefined) return err(`unikernel ${nameToString(name)} already exists in trie`);
  return useBlocks({ ...r, unikernels: trie }, name, config, true, opts?.zvolPath ?? r.zvolPath);
}

/** Unregister a unikernel (`unknown unikernel` if absent) and mark its block devices inactive. */
export function removeUnikernel(r: Resources, name: Name, opts?: { zvolPath?: Path }): Result<Resources> {
  const config = findUnikernel(r, name);
  if (config === undefined) return err("unknown unikernel");
  const res = useBlocks(r, name, config, false, opts?.zvolPath ?? r.zvolPath);
  if (!res.ok) return res;
  return ok({ ...res.value, unikernels: res.value.unikernels.remove(name) });
}

/**
 * `check_block` (policy.md §6): the name must be free; then, if path(name) has a policy,
 * it must allow block devices and `sizeMB` must fit next to all block devices (active and
 * inactive) of that path's subtree.
 */
export function checkBlock(r: Resources, name: Name, sizeMB: number): Result<void> {
  if (findBlock(r, name) !== undefined) return err(`block device with name ${nameDisplay(name)} already exists`);
  const p = findPolicy(r, name.path);
  if (p === undefined) return ok(undefined);
  if (p.block === undefined) return err("no block devices are allowed by policy");
  const used = blockUsage(r, name.path);
  if (sizeMB <= p.block - used) return ok(undefined);
  return err(`block device policy limit of ${p.block} MB (used ${used} MB) would be exceeded by the request (${sizeMB} MB)`);
}

/** `checkBlock`, then record the device as (sizeMB, inactive). */
export function insertBlock(r: Resources, name: Name, sizeMB: number): Result<Resources> {
  const c = checkBlock(r, name, sizeMB);
  if (!c.ok) return c;
  return ok({ ...r, blockDevices: r.blockDevices.insert(name, { size: sizeMB, active: false }).trie });
}

/** Forget a block device: `unknown block device <n>` if absent, `block device <n> in use` if active. */
export function removeBlock(r: Resources, name: Name): Result<Resources> {
  const b = findBlock(r, name);
  if (b === undefined) return err(`unknown block device ${nameToString(name)}`);
  if (b.active) return err(`block device ${nameToString(name)} in use`);
  return ok({ ...r, blockDevices: r.blockDevices.remove(name) });
}

/** Upstream `check_unikernels`: the current usage of the subtree of `path` must fit into p. */
function checkCurrentUsage(r: Resources, path: Path, p: Policy): Result<void> {
  const u = usage(r, path);
  const ids = new Set(p.cpuids);
  if (!u.cpuids.every((id) => ids.has(id))) return err(`policy does not allow CPUids ${idsDiff(u.cpuids, p.cpuids).join(", ")}`);
  const brs = new Set(p.bridges);
  if (!u.bridges.every((b) => brs.has(b)))
    return err(`policy allows bridges ${sortedStrings(p.bridges).join(", ")}, which is not a superset of ${u.bridges.join(", ")}`);
  if (BigInt(u.unikernels) > p.unikernels)
    return err(`unikernel would exceed running unikernel limit set by policy to ${p.unikernels}, running ${u.unikernels}`);
  if (u.memory > p.memory) return err(`unikernel would exceed running memory limit set by policy to ${p.memory} MB, used ${u.memory} MB`);
  const limit = p.block ?? 0;
  if (u.block > limit) return err(`unikernel would exceed running block storage limit set by policy to ${limit} MB, used ${u.block} MB`);
  return ok(undefined);
}

/**
 * `insert_policy` (policy.md §7): store `p` at `path` (replacing any policy there) if
 * 1. it fits into the policy of every strict ancestor that has one, from the parent
 *    upwards — EXCLUDING the root path (upstream quirk: the root policy is never
 *    consulted here, so a child of the root may exceed the root policy);
 * 2. every policy strictly below `path` fits into it (post-order, children ascending;
 *    the first misfit's error is reported; the replaced policy itself is skipped);
 * 3. the current usage of the subtree fits (CPU ids, bridges, count, memory, block).
 * It does not compare with the existing policy; the daemon's `Policy_add` handler does
 * ("no modification of policy").
 */
export function insertPolicy(r: Resources, path: Path, p: Policy): Result<Resources> {
  for (let depth = path.length - 1; depth > 0; depth--) {
    const sup = findPolicy(r, path.slice(0, depth));
    if (sup === undefined) continue;
    const e = isSmaller(sup, p);
    if (e !== null) return err(e);
  }
  const below = r.policies.fold<string | null>(
    path,
    (rel, sub, acc) => (acc !== null || (rel.path.length === 0 && rel.label === null) ? acc : isSmaller(p, sub)),
    null,
  );
  if (below !== null) return err(below);
  const cu = checkCurrentUsage(r, path, p);
  if (!cu.ok) return cu;
  return ok({ ...r, policies: r.policies.insert(pathName(path), p).trie });
}

/** Delete the policy at `path` with no further checks (`unknown policy` if none). */
export function removePolicy(r: Resources, path: Path): Result<Resources> {
  if (findPolicy(r, path) === undefined) return err("unknown policy");
  return ok({ ...r, policies: r.policies.remove(pathName(path)) });
}

/**
 * `Policy_info` (policy.md §9): every policy in the subtree of path(name) (the label is
 * ignored), named relative to that path (its own policy as `:`), in upstream's order:
 * the reverse of the post-order fold — the queried path first, then subtrees in
 * descending label order.
 */
export function policyInfo(r: Resources, name: Name): PolicyEntry[] {
  return r.policies.fold<PolicyEntry[]>(name.path, (n, policy, acc) => (acc.push({ name: n, policy }), acc), []).reverse();
}

/**
 * The `Console_add` budget albatrossd sends for a new unikernel (policy.md §11, upstream
 * `Vmm_resources.unikernels`): root path -> 2^62-1, else the unikernel count of the
 * policy at exactly path(name), 0 if there is none.
 */
export function consoleBudget(r: Resources, name: Name): bigint {
  if (name.path.length === 0) return rootPolicyUnikernels;
  return findPolicy(r, name.path)?.unikernels ?? 0n;
}
