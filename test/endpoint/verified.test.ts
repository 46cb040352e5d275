// The client's path as OpenSSL verified it (the native addon keeps it, peer.ts verifiedPath)
// against the path from Node's getPeerCertificate (the fallback): the same answers for good
// chains in any order, for same-name intermediates forged to carry a wider policy, and for a
// delegation that widens; with the addon, the leaf's signature is not hashed a second time
// only under the key OpenSSL verified it with.
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import type { Policy } from "../../src/commands/types.js";
import { parseCertificate } from "../../src/ca/x509.js";
import { verifyParsedChain } from "../../src/ca/verify.js";
import { ParsedCertificateCache, verifiedPath } from "../../src/endpoint/peer.js";
import {
  FakeDaemons,
  cmds,
  exchange,
  failureText,
  leaf,
  make,
  makePki,
  policy,
  startEndpoint,
  success,
  tempDir,
  type Node,
  type Pki,
  type Running,
} from "../support/endpoint.js";

let pki: Pki;
let fake: FakeDaemons;
const eps: Record<"verified" | "node", Running> = {} as never;
let fakeRoot: Node;
const wide: Policy = policy({ unikernels: 100n, cpuids: [0, 1, 2, 3], memory: 65536, bridges: ["service", "other"] });

before(async () => {
  pki = await makePki();
  const tmp = tempDir();
  fake = await FakeDaemons.start(tmp);
  eps.verified = await startEndpoint(pki, tmp);
  eps.node = await startEndpoint(pki, tmp, { verifiedChains: false });
  // another "root": same name as the real one, its own key
  fakeRoot = await make({ profile: "root", cn: "root", seconds: 3600 });
});

after(async () => {
  await eps.verified.close();
  await eps.node.close();
  await fake.close();
});

beforeEach(() => {
  fake.received.length = 0;
});

const infoReply = [success({ kind: "unikernel-info", unikernels: [] })];
/** the policies the endpoint sent to the vmmd fake */
const forwardedPolicies = (): Policy[] =>
  fake.received.flatMap((r) => (r.wire?.payload.kind === "command" && r.wire.payload.command.kind === "policy-add" ? [r.wire.payload.command.policy] : []));

describe("the endpoint is sure the addon is in use", () => {
  it("with the addon built, the verified path is recorded (else the tests below test only one side)", () => {
    assert.equal(eps.verified.ep.verifiedChainsProblem, null);
    assert.equal(eps.node.ep.verifiedChainsProblem, "not asked for");
  });
});

for (const source of ["verified", "node"] as const) {
  describe(`client paths taken from ${source === "verified" ? "OpenSSL's verification (addon)" : "Node's getPeerCertificate"}`, () => {
    const ep = () => eps[source];
    const counted = () => ep().ep.chainSource[source];

    it("a tenant chain, as sent and with an unrelated certificate between leaf and CA: served under the CA's policy", async () => {
      const before = counted();
      for (const chain of [
        [await leaf(pki.arc, "one", cmds.info), pki.arc],
        [await leaf(pki.arc, "two", cmds.info), pki.server, pki.arc],
      ]) {
        fake.received.length = 0;
        const r = await exchange({ port: ep().port, chain, ca: pki.root });
        assert.deepEqual(
          r.replies.map((w) => w.payload),
          infoReply,
        );
        assert.deepEqual(forwardedPolicies(), [pki.arcPolicy]);
      }
      assert.equal(counted(), before + 2);
    });

    it("a same-name intermediate with a wider policy and arc's own public key, signed by a forged root: refused, nothing forwarded", async () => {
      const forged = await make({ profile: "intermediate", cn: "arc", key: pki.arc.key, issuer: fakeRoot, policy: wide, seconds: 3600 });
      const l = await leaf(pki.arc, "x", cmds.info);
      for (const chain of [
        [l, forged],
        [l, forged, pki.arc],
      ]) {
        ep().logs.length = 0;
        fake.received.length = 0;
        const r = await exchange({ port: ep().port, chain, ca: pki.root });
        assert.equal(r.replies.length, 0);
        await ep().waitLog(/error establishing TLS connection .*client certificate refused|failed to handle TLS connection: chain validation failed/);
        assert.equal(fake.received.length, 0, "nothing reached a daemon");
      }
    });

    it("a same-name intermediate with a wider policy (its own key) sent before the real one: the real one's policy is what reaches the daemon", async () => {
      const forged = await make({ profile: "intermediate", cn: "arc", issuer: fakeRoot, policy: wide, seconds: 3600 });
      const r = await exchange({ port: ep().port, chain: [await leaf(pki.arc, "y", cmds.info), forged, pki.arc], ca: pki.root });
      assert.deepEqual(
        r.replies.map((w) => w.payload),
        infoReply,
      );
      assert.deepEqual(forwardedPolicies(), [pki.arcPolicy]);
    });

    it("a sub-CA of arc (validly signed by arc's key) with a wider policy: a Failure, nothing forwarded", async () => {
      const sub = await make({ profile: "intermediate", cn: "sub", issuer: pki.arc, policy: wide, seconds: 3600 });
      const r = await exchange({ port: ep().port, chain: [await leaf(sub, "z", cmds.info), sub, pki.arc], ca: pki.root });
      assert.equal(r.replies.length, 1);
      assert.match(failureText(r.replies[0]!) ?? "", /^delegated policies in the certificate chain widen/);
      assert.equal(fake.received.length, 0);
    });

    it("a leaf the root issued directly; and a 3 MiB one under arc", async () => {
      const r = await exchange({ port: ep().port, chain: [await leaf(pki.root, "direct", cmds.info)], ca: pki.root });
      assert.deepEqual(
        r.replies.map((w) => w.payload),
        infoReply,
      );
      const big = await leaf(pki.arc, "big", cmds.create({ image: new Uint8Array(3 << 20).fill(7) }));
      const r2 = await exchange({ port: ep().port, chain: [big, pki.arc], ca: pki.root });
      assert.equal(r2.replies.length, 1);
      const created = fake.received.find((x) => x.wire?.payload.kind === "command" && x.wire.payload.command.kind === "unikernel-create");
      const c = created?.wire?.payload.kind === "command" ? created.wire.payload.command : null;
      assert.equal(c?.kind === "unikernel-create" ? c.config.image.length : -1, 3 << 20);
    });
  });
}

describe("verifiedPath (the addon's chain, leaf first, anchor last)", () => {
  it("drops the anchor, names the key OpenSSL verified the leaf under; declines a chain not ending in the anchor", async () => {
    const root = parseCertificate(pki.root.der);
    const l = await leaf(pki.arc, "p", cmds.info);
    const p = verifiedPath([l.der, pki.arc.der, pki.root.der], root, new ParsedCertificateCache());
    assert.ok(p?.ok);
    assert.deepEqual(
      p.value.chain.map((c) => c.der),
      [l.der, pki.arc.der],
    );
    assert.deepEqual(p.value.leafSignedUnder, parseCertificate(pki.arc.der).publicKey.der);
    const d = await leaf(pki.root, "q", cmds.info);
    const p2 = verifiedPath([d.der, pki.root.der], root, new ParsedCertificateCache());
    assert.ok(p2?.ok);
    assert.deepEqual(p2.value.leafSignedUnder, root.publicKey.der);
    assert.equal(verifiedPath([l.der, pki.arc.der, fakeRoot.der], root, new ParsedCertificateCache()), null);
    assert.equal(verifiedPath([pki.root.der], root, new ParsedCertificateCache()), null);
    const bad = verifiedPath([Uint8Array.of(0x30, 0x00), pki.root.der], root, new ParsedCertificateCache());
    assert.ok(bad && !bad.ok && /unreadable client certificate/.test(bad.error));
  });
});

describe("leafSignatureVerifiedUnder", () => {
  it("spares only the arithmetic, and only under that key: a leaf with a broken signature passes under it, fails under any other", async () => {
    const l = await leaf(pki.arc, "s", cmds.info);
    const broken = Uint8Array.from(l.der);
    broken[broken.length - 1]! ^= 1; // the last byte of the signature
    const chain = [parseCertificate(broken), parseCertificate(pki.arc.der)];
    const anchors = [parseCertificate(pki.root.der)];
    const at = new Date();
    const plain = await verifyParsedChain(chain, anchors, { at });
    assert.equal(plain.ok, false);
    assert.match(plain.links[0]!.problems.join(";"), /invalid signature/);
    const spared = await verifyParsedChain(chain, anchors, { at, leafSignatureVerifiedUnder: chain[1]!.publicKey.der });
    assert.equal(spared.ok, true);
    const other = await verifyParsedChain(chain, anchors, { at, leafSignatureVerifiedUnder: anchors[0]!.publicKey.der });
    assert.equal(other.ok, false);
    assert.match(other.links[0]!.problems.join(";"), /invalid signature/);
    // the intermediate's own (broken) signature is never spared
    const brokenArc = Uint8Array.from(pki.arc.der);
    brokenArc[brokenArc.length - 1]! ^= 1;
    const r = await verifyParsedChain([parseCertificate(l.der), parseCertificate(brokenArc)], anchors, {
      at,
      leafSignatureVerifiedUnder: parseCertificate(brokenArc).publicKey.der,
    });
    assert.equal(r.ok, false);
    assert.match(r.links[1]!.problems.join(";"), /invalid signature/);
  });
});
