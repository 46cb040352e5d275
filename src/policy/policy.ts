// Resource policies (policy.md §1–§4): validity, the sub-policy order, a unikernel config
// against one policy, equality and printing. Pure. Error texts are upstream's
// (Vmm_core.Policy / Vmm_core.Unikernel.fine_with_policy in albatross 2.7.2), verbatim.
//
// Policy.cpuids / bridges are sets. The wire decoder already yields them ascending and
// unique, but every function here treats them as sets regardless of order/duplicates, and
// every list it prints is sorted (numerically for CPU ids, bytewise for bridges), as
// upstream prints `IS.elements` / `String_set.elements`.
import type { NetDevice, Policy, UnikernelConfig } from "../commands/types.js";
import { sortedIds, sortedStrings } from "../core/sets.js";

/** Upstream's root policy unikernel count and "no limit" console budget: OCaml max_int. */
export const rootPolicyUnikernels: bigint = (1n << 62n) - 1n;

/** The host bridge of a network device: the explicit bridge, else the netif name. */
export function bridgeOf(dev: NetDevice): string {
  return dev.bridge ?? dev.netif;
}

/** The host bridges of a config, in config order (duplicates kept), as `Unikernel.bridges`. */
export function configBridges(config: UnikernelConfig): string[] {
  return config.bridges.map(bridgeOf);
}

/** `a \ b`, ascending. */
export function idsDiff(a: Iterable<number>, b: Iterable<number>): number[] {
  const sb = new Set(b);
  return sortedIds([...a].filter((x) => !sb.has(x)));
}

function isSubset<T>(sub: Iterable<T>, sup: Iterable<T>): boolean {
  const s = new Set(sup);
  for (const x of sub) if (!s.has(x)) return false;
  return true;
}

const joinComma = (xs: readonly (string | number)[]): string => xs.join(", ");

/**
 * Client-side validity check (policy.md §2), as `albatross-client add-policy` and `sign`
 * run it (the daemon does not). Returns the error text, or null if usable.
 */
export function usable(p: Policy): string | null {
  if (p.unikernels <= 0n) return "Unusable policy with no unikernels";
  if (p.cpuids.length === 0) return "Unusable policy with no CPUids";
  if (p.memory <= 16) return `Unusable policy with memory ${p.memory} MB <= 16 MB`;
  if (p.block !== undefined && p.block < 0) return `Unusable policy with block ${p.block} MB < 0 MB`;
  return null;
}

/**
 * `Policy.is_smaller ~super ~sub` (policy.md §3): null if `sub` fits into `sup` (equal
 * values allowed), else the first failing check's text.
 */
export function isSmaller(sup: Policy, sub: Policy): string | null {
  if (sup.unikernels < sub.unikernels) return `policy above allows ${sup.unikernels} unikernels, which is fewer than ${sub.unikernels}`;
  if (sup.memory < sub.memory) return `policy above allows ${sup.memory} MB memory, which is fewer than ${sub.memory} MB`;
  if (!isSubset(sub.cpuids, sup.cpuids)) return `policy above does not allow CPUids ${joinComma(idsDiff(sub.cpuids, sup.cpuids))}`;
  if (!isSubset(sub.bridges, sup.bridges))
    return `policy above allows bridge(s) ${joinComma(sortedStrings(sup.bridges))}, which is not a superset of ${joinComma(sortedStrings(sub.bridges))}`;
  const blockOk = sub.block === undefined || (sup.block !== undefined && sup.block >= sub.block);
  if (!blockOk) return `policy above allows ${sup.block ?? 0} MB block storage, which is fewer than ${sub.block ?? 0} MB`;
  return null;
}

/**
 * `Unikernel.fine_with_policy` (policy.md §4): the client-side check of a config against
 * the signing CA's policy. Disallowed bridges are listed in config order (duplicates
 * kept, as upstream's List.partition), the available ones sorted.
 */
export function fineWithPolicy(p: Policy, config: UnikernelConfig): string | null {
  if (!isSubset(config.cpuids, p.cpuids))
    return `the CPUids ${joinComma(idsDiff(config.cpuids, p.cpuids))} requested by the unikernel are not allowed by policy`;
  if (config.memory > p.memory) return `${config.memory} MB memory assigned to unikernel exceeds policy (${p.memory}MB)`;
  const allowed = new Set(p.bridges);
  const disallowed = configBridges(config).filter((b) => !allowed.has(b));
  if (disallowed.length > 0) return `Bridge(s) ${joinComma(disallowed)} not allowed by policy (available: ${joinComma(sortedStrings(p.bridges))})`;
  return null;
}

function setEquals<T>(a: readonly T[], b: readonly T[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  if (sa.size !== sb.size) return false;
  for (const x of sa) if (!sb.has(x)) return false;
  return true;
}

/** `Policy.equal`: all five fields equal, sets compared as sets, absent block == absent. */
export function policyEquals(a: Policy, b: Policy): boolean {
  return a.unikernels === b.unikernels && a.memory === b.memory && a.block === b.block && setEquals(a.cpuids, b.cpuids) && setEquals(a.bridges, b.bridges);
}
