// policy.md §13.3 (R1–R46) and §5–§9, §11 of the daemon's resource accounting.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Policy, UnikernelConfig } from "../../src/commands/types.js";
import { nameToString, parseName, parsePath, rootPath } from "../../src/core/name.js";
import { rootPolicyUnikernels } from "../../src/policy/policy.js";
import {
  blockName,
  checkBlock,
  checkUnikernel,
  consoleBudget,
  emptyResources,
  findBlock,
  findPolicy,
  insertBlock,
  insertPolicy,
  insertUnikernel,
  policyInfo,
  removeBlock,
  removePolicy,
  removeUnikernel,
  setBlockActive,
  usage,
  type Resources,
} from "../../src/policy/resources.js";
import type { Result } from "../../src/core/result.js";
import { p1, u, withoutBlock } from "./support.js";

const N = parseName;
const P = parsePath;

function get<T>(r: Result<T>): T {
  if (!r.ok) assert.fail(`unexpected error: ${r.error}`);
  return r.value;
}
function ok<T>(r: Result<T>): void {
  assert.deepEqual(r.ok ? null : r.error, null);
}
function fails<T>(r: Result<T>, text: string): void {
  assert.deepEqual(r.ok ? "<ok>" : r.error, text);
}

const r1: Resources = get(insertPolicy(emptyResources(), P("alpha"), p1));
/** r1 with a unikernel u registered as alpha:beta */
const r2: Resources = get(insertUnikernel(r1, N("alpha:beta"), u));
/** r1 plus block alpha:block (5 MB) */
const r2b: Resources = get(insertBlock(r1, N("alpha:block"), 5));
const withBlock = (name: string, device?: string): UnikernelConfig => ({
  ...u,
  blockDevices: [device === undefined ? { name } : { name, device }],
});
/** r2b plus unikernel alpha:bar using block */
const r3: Resources = get(insertUnikernel(r2b, N("alpha:bar"), withBlock("block")));

test("R1 check u as foo, bar, foo:bar in empty resources", () => {
  for (const n of ["foo", "bar", "foo:bar"]) ok(checkUnikernel(emptyResources(), N(n), u));
});

test("R2 check block foo:bar 10 MB in empty resources", () => {
  ok(checkBlock(emptyResources(), N("foo:bar"), 10));
});

test("R3 check u as alpha:bar in r1 (twice)", () => {
  ok(checkUnikernel(r1, N("alpha:bar"), u));
  ok(checkUnikernel(r1, N("alpha:bar"), u));
});

test("R4 u with cpuids {1} as alpha:bar in r1", () => {
  fails(checkUnikernel(r1, N("alpha:bar"), { ...u, cpuids: [1] }), "CPUids 1 are not allowed by policy");
});

test("R5 u with memory 11", () => {
  fails(checkUnikernel(r1, N("alpha:bar"), { ...u, memory: 11 }), "maximum allowed memory (10, used 0) would be exceeded (requesting 11)");
});

test("R6 u with netif service2", () => {
  fails(checkUnikernel(r1, N("alpha:bar"), { ...u, bridges: [{ netif: "service2" }] }), "bridges service2 not allowed by policy");
});

test("R7 check block alpha:bar 5 MB in r1", () => {
  ok(checkBlock(r1, N("alpha:bar"), 5));
});

test("R8 check block alpha:bar 10 MB in r1", () => {
  fails(checkBlock(r1, N("alpha:bar"), 10), "block device policy limit of 5 MB (used 0 MB) would be exceeded by the request (10 MB)");
});

test("R9 p1 with block absent at alpha; check block alpha:bar 5", () => {
  const r = get(insertPolicy(emptyResources(), P("alpha"), withoutBlock(p1)));
  fails(checkBlock(r, N("alpha:bar"), 5), "no block devices are allowed by policy");
});

test("R10 insert p1 at alpha:beta into r1 (equal is allowed)", () => {
  ok(insertPolicy(r1, P("alpha:beta"), p1));
});

test("R11 sub-policy alpha:beta with unikernels 2", () => {
  fails(insertPolicy(r1, P("alpha:beta"), { ...p1, unikernels: 2n }), "policy above allows 1 unikernels, which is fewer than 2");
});

test("R12 sub-policy with cpuids {1}", () => {
  fails(insertPolicy(r1, P("alpha:beta"), { ...p1, cpuids: [1] }), "policy above does not allow CPUids 1");
});

test("R13 sub-policy with cpuids {0,1}", () => {
  fails(insertPolicy(r1, P("alpha:beta"), { ...p1, cpuids: [0, 1] }), "policy above does not allow CPUids 1");
});

test("R14 sub-policy with memory 11", () => {
  fails(insertPolicy(r1, P("alpha:beta"), { ...p1, memory: 11 }), "policy above allows 10 MB memory, which is fewer than 11 MB");
});

test("R15 sub-policy with block 10", () => {
  fails(insertPolicy(r1, P("alpha:beta"), { ...p1, block: 10 }), "policy above allows 5 MB block storage, which is fewer than 10 MB");
});

test("R16 sub-policy with block absent", () => {
  ok(insertPolicy(r1, P("alpha:beta"), withoutBlock(p1)));
});

test("R17 sub-policy with bridges {service2}", () => {
  fails(insertPolicy(r1, P("alpha:beta"), { ...p1, bridges: ["service2"] }), "policy above allows bridge(s) service, which is not a superset of service2");
});

test("R18 sub-policy with bridges {service, service2}", () => {
  fails(
    insertPolicy(r1, P("alpha:beta"), { ...p1, bridges: ["service", "service2"] }),
    "policy above allows bridge(s) service, which is not a superset of service, service2",
  );
});

test("R19 insert at root: p1 with unikernels 2", () => {
  ok(insertPolicy(r1, rootPath, { ...p1, unikernels: 2n }));
});

test("R20 root: unikernels 0", () => {
  fails(insertPolicy(r1, rootPath, { ...p1, unikernels: 0n }), "policy above allows 0 unikernels, which is fewer than 1");
});

test("R21 root: cpuids {0,1}", () => {
  ok(insertPolicy(r1, rootPath, { ...p1, cpuids: [0, 1] }));
});

test("R22 root: cpuids {1}", () => {
  fails(insertPolicy(r1, rootPath, { ...p1, cpuids: [1] }), "policy above does not allow CPUids 0");
});

test("R23 root: memory 11", () => {
  ok(insertPolicy(r1, rootPath, { ...p1, memory: 11 }));
});

test("R24 root: memory 5", () => {
  fails(insertPolicy(r1, rootPath, { ...p1, memory: 5 }), "policy above allows 5 MB memory, which is fewer than 10 MB");
});

test("R25 root: block 5", () => {
  ok(insertPolicy(r1, rootPath, { ...p1, block: 5 }));
});

test("R26 root: block 3", () => {
  fails(insertPolicy(r1, rootPath, { ...p1, block: 3 }), "policy above allows 3 MB block storage, which is fewer than 5 MB");
});

test("R27 root: block absent", () => {
  fails(insertPolicy(r1, rootPath, withoutBlock(p1)), "policy above allows 0 MB block storage, which is fewer than 5 MB");
});

test("R28 root: bridges {service, foo}", () => {
  ok(insertPolicy(r1, rootPath, { ...p1, bridges: ["foo", "service"] }));
});

test("R29 root: bridges {foo}", () => {
  fails(insertPolicy(r1, rootPath, { ...p1, bridges: ["foo"] }), "policy above allows bridge(s) foo, which is not a superset of service");
});

test("R30 overwrite alpha in r1 with p1 but unikernels 2", () => {
  const r = get(insertPolicy(r1, P("alpha"), { ...p1, unikernels: 2n }));
  assert.equal(findPolicy(r, P("alpha"))?.unikernels, 2n);
  assert.equal(r.policies.size, 1);
});

test("R31 insert block foo 10 into empty", () => {
  const r = get(insertBlock(emptyResources(), N("foo"), 10));
  assert.deepEqual(findBlock(r, N("foo")), { size: 10, active: false });
});

test("R32 insert block foo 10 twice", () => {
  const r = get(insertBlock(emptyResources(), N("foo"), 10));
  fails(insertBlock(r, N("foo"), 10), "block device with name [unikernel: :foo] already exists");
});

test("R33 then remove block foo and insert it again", () => {
  const r = get(insertBlock(emptyResources(), N("foo"), 10));
  const r0 = get(removeBlock(r, N("foo")));
  assert.equal(findBlock(r0, N("foo")), undefined);
  ok(insertBlock(r0, N("foo"), 10));
});

test("R34 remove block foo from empty", () => {
  fails(removeBlock(emptyResources(), N("foo")), "unknown block device :foo");
});

test("R35 remove policy foo from empty", () => {
  fails(removePolicy(emptyResources(), P("foo")), "unknown policy");
});

test("R36 remove policy alpha from r1", () => {
  const r = get(removePolicy(r1, P("alpha")));
  assert.equal(findPolicy(r, P("alpha")), undefined);
});

test("R37 remove unikernel alpha:beta from r1", () => {
  fails(removeUnikernel(r1, N("alpha:beta")), "unknown unikernel");
});

test("R38 insert running unikernel u as alpha:beta into r1", () => {
  assert.equal(r2.unikernels.find(N("alpha:beta")), u);
  assert.equal(r1.unikernels.size, 0, "r1 unchanged");
});

test("R39 check u as alpha:beta in r2", () => {
  fails(checkUnikernel(r2, N("alpha:beta"), u), "maximum amount of unikernels (1) reached");
  const big = get(insertPolicy(r2, P("alpha"), { ...p1, unikernels: 5n, memory: 100 }));
  fails(checkUnikernel(big, N("alpha:beta"), u), "unikernel with same name already exists");
});

test("R40 insert the same unikernel again into r2 is rejected", () => {
  fails(insertUnikernel(r2, N("alpha:beta"), u), "unikernel alpha:beta already exists in trie");
});

test("R41 remove alpha:beta from r2, insert again", () => {
  const r = get(removeUnikernel(r2, N("alpha:beta")));
  assert.equal(r.unikernels.size, 0);
  const again = get(insertUnikernel(r, N("alpha:beta"), u));
  assert.equal(again.unikernels.size, 1);
});

test("R42 u with block device `block` as alpha:bar in r1", () => {
  fails(checkUnikernel(r1, N("alpha:bar"), withBlock("block")), "block device alpha:block not found");
});

test("R43 r1 + block alpha:block 5 MB; same check", () => {
  ok(checkUnikernel(r2b, N("alpha:bar"), withBlock("block")));
});

test("R44 u with block (block, device b) as alpha:bar in r1", () => {
  fails(checkUnikernel(r1, N("alpha:bar"), withBlock("block", "b")), "block device alpha:b not found");
});

test("R45 unikernel alpha:bar using block inserted; check alpha:bar2 using block", () => {
  assert.deepEqual(findBlock(r3, N("alpha:block")), { size: 5, active: true });
  fails(checkUnikernel(r3, N("alpha:bar2"), withBlock("block")), "maximum amount of unikernels (1) reached");
  const big = get(insertPolicy(r3, P("alpha"), { ...p1, unikernels: 5n, memory: 100 }));
  fails(checkUnikernel(big, N("alpha:bar2"), withBlock("block")), "block device alpha:block already in use");
});

test("R46 remove block alpha:block in r3", () => {
  fails(removeBlock(r3, N("alpha:block")), "block device alpha:block in use");
});

// ---------------------------------------------------------------------------------------
// §5 further

test("removing a unikernel releases its block devices", () => {
  const r = get(removeUnikernel(r3, N("alpha:bar")));
  assert.deepEqual(findBlock(r, N("alpha:block")), { size: 5, active: false });
  assert.equal(r.unikernels.size, 0);
  ok(removeBlock(r, N("alpha:block")));
  assert.deepEqual(findBlock(r3, N("alpha:block")), { size: 5, active: true }, "r3 unchanged");
});

test("inserting a unikernel whose block device is missing fails and changes nothing", () => {
  fails(insertUnikernel(r1, N("alpha:x"), withBlock("nope")), "block device alpha:nope not in trie");
  // two references to the same device: the second finds it active
  fails(
    insertUnikernel(r2b, N("alpha:x"), { ...u, blockDevices: [{ name: "block" }, { name: "other", device: "block" }] }),
    "block device alpha:block already in state active",
  );
});

test("setBlockActive texts", () => {
  fails(setBlockActive(r2b, N("alpha:block"), false), "block device alpha:block already in state inactive");
  fails(setBlockActive(r2b, N("alpha:zz"), true), "block device alpha:zz not in trie");
  assert.deepEqual(findBlock(get(setBlockActive(r2b, N("alpha:block"), true)), N("alpha:block")), { size: 5, active: true });
});

test("a policy only limits unikernels at exactly its path (no ancestor consulted)", () => {
  // alpha allows 1 unikernel, but alpha:deep has no own policy -> unlimited
  ok(checkUnikernel(r2, N("alpha:deep:x"), { ...u, memory: 10000, cpuids: [5], bridges: [{ netif: "other" }] }));
});

test("usage of a path counts its whole subtree; siblings are not summed at creation", () => {
  let r = get(insertPolicy(emptyResources(), rootPath, { unikernels: 3n, cpuids: [0, 1], memory: 100, block: 10, bridges: ["service"] }));
  r = get(insertUnikernel(r, N("a:x"), { ...u, memory: 40 }));
  r = get(insertUnikernel(r, N("b:c:y"), { ...u, memory: 40 }));
  fails(checkUnikernel(r, N("z"), { ...u, memory: 30 }), "maximum allowed memory (100, used 80) would be exceeded (requesting 30)");
  ok(checkUnikernel(r, N("z"), { ...u, memory: 20 }));
  r = get(insertUnikernel(r, N("z"), { ...u, memory: 20 }));
  fails(checkUnikernel(r, N("zz"), { ...u, memory: 1 }), "maximum amount of unikernels (3) reached");
  assert.deepEqual(usage(r, rootPath), { unikernels: 3, memory: 100, block: 0, cpuids: [0], bridges: ["service"] });
  assert.deepEqual(usage(r, P("b")), { unikernels: 1, memory: 40, block: 0, cpuids: [0], bridges: ["service"] });
});

test("usage: unions of cpuids and (host) bridges, block totals active and inactive", () => {
  let r = emptyResources();
  r = get(insertBlock(r, N("a:d1"), 3));
  r = get(insertBlock(r, N("a:b:d2"), 4));
  r = get(insertBlock(r, N("other:d3"), 100));
  r = get(insertUnikernel(r, N("a:x"), { ...u, cpuids: [3, 1], bridges: [{ netif: "n", bridge: "zz" }], blockDevices: [{ name: "d1" }] }));
  r = get(insertUnikernel(r, N("a:b:y"), { ...u, cpuids: [2], bridges: [{ netif: "aa" }, { netif: "zz" }] }));
  assert.deepEqual(usage(r, P("a")), { unikernels: 2, memory: 20, block: 7, cpuids: [1, 2, 3], bridges: ["aa", "zz"] });
  assert.deepEqual(usage(r, P("nothing")), { unikernels: 0, memory: 0, block: 0, cpuids: [], bridges: [] });
});

test("quirk: unikernel `:foo` lies in the subtree of path `foo:`", () => {
  const r = get(insertUnikernel(emptyResources(), N(":foo"), u));
  assert.equal(usage(r, P("foo")).unikernels, 1);
  fails(insertPolicy(r, P("foo"), { ...p1, unikernels: 0n }), "unikernel would exceed running unikernel limit set by policy to 0, running 1");
});

test("zvol escape hatch: /dev/zvol devices at the configured path are not checked nor marked", () => {
  const cfg = withBlock("disk", "/dev/zvol/tank/vm");
  fails(checkUnikernel(r1, N("alpha:vm"), cfg), "block device alpha:/dev/zvol/tank/vm not found");
  ok(checkUnikernel(r1, N("alpha:vm"), cfg, { zvolPath: P("alpha") }));
  fails(checkUnikernel(r1, N("beta:vm"), cfg, { zvolPath: P("alpha") }), "block device beta:/dev/zvol/tank/vm not found");
  const z = get(insertPolicy(emptyResources(P("alpha")), P("alpha"), p1));
  ok(checkUnikernel(z, N("alpha:vm"), cfg));
  const z2 = get(insertUnikernel(z, N("alpha:vm"), cfg));
  assert.equal(z2.blockDevices.size, 0);
  ok(removeUnikernel(z2, N("alpha:vm")));
});

test("blockName: same path as the unikernel, label not validated", () => {
  assert.equal(nameToString(blockName(N("foo:bar:vm"), "data")), "foo:bar:data");
  assert.equal(nameToString(blockName(N(":vm"), "data")), ":data");
  assert.deepEqual(blockName(N("a:vm"), "../x"), { path: ["a"], label: "../x" });
});

// ---------------------------------------------------------------------------------------
// §6 block devices

test("block policy accounts active and inactive devices of the subtree by declared size", () => {
  let r = get(insertPolicy(emptyResources(), P("a"), { ...p1, block: 10 }));
  r = get(insertBlock(r, N("a:x"), 4));
  r = get(insertBlock(r, N("a:b:y"), 3)); // a:b has no policy -> unlimited, but counts for a
  fails(insertBlock(r, N("a:z"), 4), "block device policy limit of 10 MB (used 7 MB) would be exceeded by the request (4 MB)");
  ok(insertBlock(r, N("a:z"), 3));
  fails(insertBlock(r, N("a:x"), 1), "block device with name [unikernel: a:x] already exists");
});

// ---------------------------------------------------------------------------------------
// §7 insertPolicy

test("insertPolicy current usage: CPU ids", () => {
  const r = get(insertUnikernel(emptyResources(), N("f:a"), { ...u, cpuids: [0, 3, 1] }));
  fails(insertPolicy(r, P("f"), { ...p1, unikernels: 5n, memory: 100 }), "policy does not allow CPUids 1, 3");
});

test("insertPolicy current usage: bridges", () => {
  const r = get(insertUnikernel(emptyResources(), N("f:a"), { ...u, bridges: [{ netif: "service" }, { netif: "o", bridge: "other" }] }));
  fails(insertPolicy(r, P("f"), { ...p1, unikernels: 5n, memory: 100 }), "policy allows bridges service, which is not a superset of other, service");
});

test("insertPolicy current usage: unikernel count", () => {
  let r = get(insertUnikernel(emptyResources(), N("f:a"), u));
  r = get(insertUnikernel(r, N("f:g:b"), u));
  fails(insertPolicy(r, P("f"), { ...p1, memory: 100 }), "unikernel would exceed running unikernel limit set by policy to 1, running 2");
});

test("insertPolicy current usage: memory", () => {
  let r = get(insertUnikernel(emptyResources(), N("f:a"), u));
  r = get(insertUnikernel(r, N("f:b"), { ...u, memory: 7 }));
  fails(insertPolicy(r, P("f"), { ...p1, unikernels: 2n, memory: 16 }), "unikernel would exceed running memory limit set by policy to 16 MB, used 17 MB");
  ok(insertPolicy(r, P("f"), { ...p1, unikernels: 2n, memory: 17 }));
});

test("insertPolicy current usage: block storage (absent limit counts as 0)", () => {
  const r = get(insertBlock(emptyResources(), N("f:disk"), 20));
  fails(insertPolicy(r, P("f"), { ...p1, block: 10 }), "unikernel would exceed running block storage limit set by policy to 10 MB, used 20 MB");
  fails(insertPolicy(r, P("f"), withoutBlock(p1)), "unikernel would exceed running block storage limit set by policy to 0 MB, used 20 MB");
  ok(insertPolicy(r, P("f"), { ...p1, block: 20 }));
});

test("insertPolicy quirk: the root policy is never consulted from below", () => {
  const small: Policy = { unikernels: 1n, cpuids: [0], memory: 20, block: 1, bridges: [] };
  const r = get(insertPolicy(emptyResources(), rootPath, small));
  const huge: Policy = { unikernels: 100n, cpuids: [0, 1, 2], memory: 9999, block: 9999, bridges: ["x"] };
  ok(insertPolicy(r, P("a"), huge));
  // but non-root ancestors are, from the parent upwards, skipping levels without policy
  const r2x = get(insertPolicy(r, P("a"), { ...huge, memory: 50 }));
  fails(insertPolicy(r2x, P("a:b:c"), huge), "policy above allows 50 MB memory, which is fewer than 9999 MB");
});

test("insertPolicy checks ancestors nearest first", () => {
  let r = get(insertPolicy(emptyResources(), P("a"), { ...p1, unikernels: 10n, memory: 100 }));
  r = get(insertPolicy(r, P("a:b"), { ...p1, unikernels: 5n, memory: 50 }));
  fails(insertPolicy(r, P("a:b:c"), { ...p1, unikernels: 20n, memory: 200 }), "policy above allows 5 unikernels, which is fewer than 20");
});

test("insertPolicy checks policies below in post-order, children ascending", () => {
  let r = emptyResources();
  r = get(insertPolicy(r, P("x:a"), { ...p1, memory: 20 }));
  r = get(insertPolicy(r, P("x:a:c"), { ...p1, memory: 15 }));
  r = get(insertPolicy(r, P("x:b"), { ...p1, memory: 30 }));
  fails(insertPolicy(r, P("x"), { ...p1, memory: 10 }), "policy above allows 10 MB memory, which is fewer than 15 MB");
  fails(insertPolicy(r, P("x"), { ...p1, memory: 25 }), "policy above allows 25 MB memory, which is fewer than 30 MB");
  // the replaced policy itself is skipped
  const r4 = get(insertPolicy(r, P("x"), { ...p1, unikernels: 5n, memory: 100 }));
  ok(insertPolicy(r4, P("x"), { ...p1, memory: 30 })); // smaller than the one it replaces
});

// ---------------------------------------------------------------------------------------
// §8, §9, §11

test("removePolicy deletes without checks; sub-policies and unikernels stay", () => {
  let r = get(insertPolicy(r2, P("alpha:beta"), p1));
  r = get(removePolicy(r, P("alpha")));
  assert.equal(findPolicy(r, P("alpha")), undefined);
  assert.ok(findPolicy(r, P("alpha:beta")));
  assert.equal(r.unikernels.size, 1);
  fails(removePolicy(r, P("alpha")), "unknown policy");
  // without alpha's policy, a unikernel at alpha is no longer limited
  ok(checkUnikernel(r, N("alpha:other"), { ...u, memory: 1000 }));
  // the root path can hold (and lose) a policy too
  const root = get(insertPolicy(emptyResources(), rootPath, p1));
  assert.equal(get(removePolicy(root, rootPath)).policies.size, 0);
});

test("policyInfo: queried path first as `:`, then subtrees in descending label order", () => {
  let r = emptyResources();
  const big: Policy = { unikernels: 10n, cpuids: [0, 1], memory: 1000, block: 100, bridges: ["service"] };
  for (const path of ["a", "a:b", "a:c", "a:b:d", "z"]) r = get(insertPolicy(r, P(path), { ...big, memory: 1000 - path.length }));
  const names = (n: string) => policyInfo(r, N(n)).map((e) => nameToString(e.name));
  assert.deepEqual(names("a:"), [":", "c:", "b:", "b:d:"]);
  assert.deepEqual(names("a:whatever"), [":", "c:", "b:", "b:d:"], "label ignored");
  assert.deepEqual(names(":"), ["z:", "a:", "a:c:", "a:b:", "a:b:d:"]);
  assert.deepEqual(names("a:b:"), [":", "d:"]);
  assert.deepEqual(names("q:"), []);
  assert.equal(policyInfo(r, N("a:c:")).at(0)?.policy.memory, 997);
});

test("consoleBudget: root path is 2^62-1, else the path's policy count, 0 without policy", () => {
  assert.equal(consoleBudget(emptyResources(), N(":foo")), rootPolicyUnikernels);
  assert.equal(consoleBudget(emptyResources(), N(":")), rootPolicyUnikernels);
  assert.equal(consoleBudget(r1, N("alpha:x")), 1n);
  assert.equal(consoleBudget(r1, N("beta:x")), 0n);
  assert.equal(consoleBudget(r1, N("alpha:deeper:x")), 0n, "ancestors are not consulted");
});

test("operations never mutate their argument", () => {
  const before = JSON.stringify([r1.policies.all(), r1.unikernels.size, r1.blockDevices.size], (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  get(insertUnikernel(r1, N("alpha:q"), u));
  get(insertBlock(r1, N("alpha:q"), 1));
  get(insertPolicy(r1, P("alpha:q"), p1));
  get(removePolicy(r1, P("alpha")));
  const after = JSON.stringify([r1.policies.all(), r1.unikernels.size, r1.blockDevices.size], (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  assert.equal(after, before);
});
