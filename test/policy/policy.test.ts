// policy.md §2–§4: usable, isSmaller, fineWithPolicy, equality, printing; properties.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Policy } from "../../src/commands/types.js";
import { formatPolicy } from "../../src/commands/render.js";
import { bridgeOf, fineWithPolicy, isSmaller, policyEquals, rootPolicyUnikernels, usable } from "../../src/policy/policy.js";
import { p1, u, withoutBlock } from "./support.js";

const good: Policy = { unikernels: 2n, cpuids: [0, 1], memory: 512, block: 100, bridges: ["br0", "service"] };

test("rootPolicyUnikernels is OCaml's max_int (2^62-1)", () => {
  assert.equal(rootPolicyUnikernels, 4611686018427387903n);
});

test("bridgeOf: host bridge if given, else the netif", () => {
  assert.equal(bridgeOf({ netif: "service" }), "service");
  assert.equal(bridgeOf({ netif: "service", bridge: "br0" }), "br0");
});

test("usable: a sensible policy is usable", () => {
  assert.equal(usable(good), null);
  assert.equal(usable(withoutBlock(good)), null);
  assert.equal(usable({ ...good, block: 0, memory: 17, bridges: [] }), null);
  assert.equal(usable({ ...good, unikernels: rootPolicyUnikernels }), null);
});

test("usable: the four upstream texts, in check order", () => {
  assert.equal(usable({ ...good, unikernels: 0n }), "Unusable policy with no unikernels");
  assert.equal(usable({ ...good, unikernels: -3n, cpuids: [] }), "Unusable policy with no unikernels");
  assert.equal(usable({ ...good, cpuids: [] }), "Unusable policy with no CPUids");
  assert.equal(usable({ ...good, cpuids: [], memory: 1 }), "Unusable policy with no CPUids");
  assert.equal(usable({ ...good, memory: 16 }), "Unusable policy with memory 16 MB <= 16 MB");
  assert.equal(usable({ ...good, memory: -1, block: -1 }), "Unusable policy with memory -1 MB <= 16 MB");
  assert.equal(usable({ ...good, block: -1 }), "Unusable policy with block -1 MB < 0 MB");
});

test("isSmaller: check order (unikernels before memory before cpuids before bridges before block)", () => {
  const sub: Policy = { unikernels: 5n, cpuids: [7], memory: 99, block: 50, bridges: ["x"] };
  assert.equal(isSmaller(p1, sub), "policy above allows 1 unikernels, which is fewer than 5");
  assert.equal(isSmaller(p1, { ...sub, unikernels: 1n }), "policy above allows 10 MB memory, which is fewer than 99 MB");
  assert.equal(isSmaller(p1, { ...sub, unikernels: 1n, memory: 1 }), "policy above does not allow CPUids 7");
  assert.equal(isSmaller(p1, { ...sub, unikernels: 1n, memory: 1, cpuids: [] }), "policy above allows bridge(s) service, which is not a superset of x");
  assert.equal(
    isSmaller(p1, { ...sub, unikernels: 1n, memory: 1, cpuids: [], bridges: [] }),
    "policy above allows 5 MB block storage, which is fewer than 50 MB",
  );
});

test("isSmaller: lists are sorted, CPU id difference ascending", () => {
  const sup: Policy = { ...good, cpuids: [2, 0], bridges: ["zz", "aa"] };
  assert.equal(isSmaller(sup, { ...good, cpuids: [9, 0, 3, 1] }), "policy above does not allow CPUids 1, 3, 9");
  assert.equal(
    isSmaller(sup, { ...good, cpuids: [0], bridges: ["b", "aa", "A"] }),
    "policy above allows bridge(s) aa, zz, which is not a superset of A, aa, b",
  );
  assert.equal(isSmaller({ ...good, bridges: [] }, { ...good, bridges: ["x"] }), "policy above allows bridge(s) , which is not a superset of x");
});

test("isSmaller: block combinations", () => {
  const none = withoutBlock(p1);
  assert.equal(isSmaller(none, none), null);
  assert.equal(isSmaller(p1, none), null);
  assert.equal(isSmaller(none, p1), "policy above allows 0 MB block storage, which is fewer than 5 MB");
  assert.equal(isSmaller({ ...p1, block: 5 }, { ...p1, block: 5 }), null);
  assert.equal(isSmaller({ ...p1, block: 4 }, p1), "policy above allows 4 MB block storage, which is fewer than 5 MB");
  assert.equal(isSmaller(none, { ...p1, block: 0 }), "policy above allows 0 MB block storage, which is fewer than 0 MB");
});

test("isSmaller: bigint unikernels up to 2^62-1", () => {
  const root = { ...p1, unikernels: rootPolicyUnikernels };
  assert.equal(isSmaller(root, p1), null);
  assert.equal(isSmaller(p1, root), "policy above allows 1 unikernels, which is fewer than 4611686018427387903");
});

test("fineWithPolicy: fine config", () => {
  assert.equal(fineWithPolicy(p1, u), null);
  assert.equal(fineWithPolicy(good, { ...u, cpuids: [1, 0], bridges: [{ netif: "eth0", bridge: "br0" }, { netif: "service" }] }), null);
});

test("fineWithPolicy: the three upstream texts, in check order", () => {
  assert.equal(fineWithPolicy(p1, { ...u, cpuids: [3, 0, 1], memory: 99 }), "the CPUids 1, 3 requested by the unikernel are not allowed by policy");
  assert.equal(fineWithPolicy(p1, { ...u, memory: 11, bridges: [] }), "11 MB memory assigned to unikernel exceeds policy (10MB)");
  assert.equal(
    fineWithPolicy(good, {
      ...u,
      bridges: [{ netif: "z" }, { netif: "service" }, { netif: "a", bridge: "other" }, { netif: "z" }],
    }),
    "Bridge(s) z, other, z not allowed by policy (available: br0, service)",
  );
  // the bridge is the host bridge, not the netif
  assert.equal(fineWithPolicy(p1, { ...u, bridges: [{ netif: "service", bridge: "br9" }] }), "Bridge(s) br9 not allowed by policy (available: service)");
});

test("policyEquals compares all five fields, sets as sets", () => {
  assert.ok(policyEquals(p1, { ...p1 }));
  assert.ok(policyEquals(good, { ...good, cpuids: [1, 0, 1], bridges: ["service", "br0"] }));
  assert.ok(policyEquals(withoutBlock(p1), withoutBlock(p1)));
  assert.ok(!policyEquals(p1, withoutBlock(p1)));
  assert.ok(!policyEquals(p1, { ...p1, block: 0 }));
  assert.ok(!policyEquals(p1, { ...p1, unikernels: 2n }));
  assert.ok(!policyEquals(p1, { ...p1, memory: 11 }));
  assert.ok(!policyEquals(p1, { ...p1, cpuids: [1] }));
  assert.ok(!policyEquals(p1, { ...p1, cpuids: [0, 1] }));
  assert.ok(!policyEquals(p1, { ...p1, bridges: ["service", "x"] }));
});

test("formatPolicy renders upstream's Policy.pp", () => {
  assert.equal(formatPolicy(p1), "policy: 1 unikernels 0 CPUids 10 MB memory 5 MB block, bridges: service");
  assert.equal(
    formatPolicy({ unikernels: rootPolicyUnikernels, cpuids: [1, 0], memory: 512, bridges: [] }),
    "policy: 4611686018427387903 unikernels 0,1 CPUids 512 MB memory no block",
  );
  assert.equal(formatPolicy(good), "policy: 2 unikernels 0,1 CPUids 512 MB memory 100 MB block, bridges: br0, service");
});

// ---------------------------------------------------------------------------------------
// Properties

const policyArb: fc.Arbitrary<Policy> = fc.record(
  {
    unikernels: fc.bigInt({ min: 0n, max: rootPolicyUnikernels }),
    cpuids: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { maxLength: 8 }).map((xs) => xs.sort((a, b) => a - b)),
    memory: fc.integer({ min: 0, max: 1 << 20 }),
    block: fc.integer({ min: 0, max: 1 << 20 }),
    bridges: fc.uniqueArray(fc.constantFrom("a", "b", "br0", "service", "x"), { maxLength: 5 }).map((xs) => xs.sort()),
  },
  { requiredKeys: ["unikernels", "cpuids", "memory", "bridges"] },
);

/** A policy no larger than `p` (each field shrunk or kept at random). */
const smallerThan = (p: Policy): fc.Arbitrary<Policy> =>
  fc
    .record({
      u: fc.bigInt({ min: 0n, max: p.unikernels }),
      m: fc.integer({ min: 0, max: p.memory }),
      c: fc.subarray([...p.cpuids]),
      br: fc.subarray([...p.bridges]),
      b: p.block === undefined ? fc.constant(undefined) : fc.option(fc.integer({ min: 0, max: p.block }), { nil: undefined }),
    })
    .map(({ u, m, c, br, b }) => ({ unikernels: u, memory: m, cpuids: c, bridges: br, ...(b === undefined ? {} : { block: b }) }));

test("property: isSmaller(p, p) is null (a policy fits into itself)", () => {
  fc.assert(fc.property(policyArb, (p) => isSmaller(p, p) === null && policyEquals(p, p)));
});

test("property: isSmaller is transitive on random triples", () => {
  fc.assert(
    fc.property(policyArb, policyArb, policyArb, (a, b, c) => {
      if (isSmaller(a, b) === null && isSmaller(b, c) === null) assert.equal(isSmaller(a, c), null);
    }),
  );
});

test("property: isSmaller is transitive on generated chains a >= b >= c", () => {
  const chain = policyArb.chain((a) => smallerThan(a).chain((b) => smallerThan(b).map((c) => [a, b, c] as const)));
  fc.assert(
    fc.property(chain, ([a, b, c]) => {
      assert.equal(isSmaller(a, b), null);
      assert.equal(isSmaller(b, c), null);
      assert.equal(isSmaller(a, c), null);
    }),
  );
});

test("property: a >= b and b >= a implies a equals b", () => {
  fc.assert(
    fc.property(policyArb, fc.nat(), (a, seed) => {
      const b = fc.sample(smallerThan(a), { seed, numRuns: 1 })[0]!;
      if (isSmaller(b, a) === null) assert.ok(policyEquals(a, b));
      else assert.ok(!policyEquals(a, b));
    }),
  );
});
