// The memos on the TLS endpoint's verification path: CA signatures (SignatureCache), public
// keys (publicKeyFromSpki), parsed CA certificates (ParsedCertificateCache), and the parsed /
// thread-pool forms of verification, which must answer exactly like the plain ones.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { publicKeyFromSpki, verifySignature, verifySignatureAsync } from "../../src/ca/keys.js";
import { SignatureCache, verifyChain, verifyParsedChain, type ChainReport } from "../../src/ca/verify.js";
import { CertificateError, certificateFromDer, parseCertificate, parsed } from "../../src/ca/x509.js";
import { ParsedCertificateCache } from "../../src/endpoint/peer.js";
import { consoleCmd, make, policy, type Node } from "../support/ca.js";

const HOUR = 3600_000;
const problems = (r: ChainReport) => [...r.problems, ...r.links.flatMap((l) => l.problems)];

/** root -> mid (1 day) -> leaf (1 hour), all Ed25519 unless asked */
async function chain(keyType?: "ed25519" | "p256" | "rsa2048") {
  const root = await make({ profile: "root", cn: "root", seconds: 3650 * 86400, ...(keyType ? { keyType } : {}) });
  const mid = await make({ profile: "intermediate", cn: "tenant", issuer: root, policy: policy(), seconds: 86400, ...(keyType ? { keyType } : {}) });
  const leaf = await make({ profile: "leaf", cn: "hello", issuer: mid, command: consoleCmd, seconds: 3600, ...(keyType ? { keyType } : {}) });
  return { root, mid, leaf };
}

/** A copy of `n`'s DER with the last byte (inside the signature) changed. */
function tampered(n: Node): Uint8Array {
  const d = new Uint8Array(n.der);
  d[d.length - 1]! ^= 0x01;
  return d;
}

test("a memoised CA signature answers only for the same bytes and the same issuer key", async () => {
  const { root, mid, leaf } = await chain();
  const memo = new SignatureCache();
  const now = new Date();
  const first = await verifyChain([leaf.cert, mid.cert], [root.cert], { at: now, signatures: memo });
  assert.ok(first.ok, problems(first).join("; "));
  assert.deepEqual([memo.size, memo.hits, memo.misses], [1, 0, 1]);
  const again = await verifyChain([leaf.cert, mid.cert], [root.cert], { at: now, signatures: memo });
  assert.ok(again.ok);
  assert.deepEqual([memo.size, memo.hits, memo.misses], [1, 1, 1], "the CA's signature came from the memo");

  // different bytes: the CA certificate with a damaged signature is verified, and refused
  const bad = certificateFromDer(tampered(mid));
  const r = await verifyChain([leaf.cert, bad], [root.cert], { at: now, signatures: memo });
  assert.equal(r.ok, false);
  assert.match(r.links[1]!.problems.join("; "), /invalid signature \(not signed by the trusted CA CN=root\)/);
  assert.equal(memo.misses, 2);
  assert.equal(memo.size, 1, "a failed verification is not remembered");

  // the same CA bytes under another anchor key (same name): a miss, and refused
  const impostor = await make({ profile: "root", cn: "root" });
  const r2 = await verifyChain([leaf.cert, mid.cert], [impostor.cert], { at: now, signatures: memo });
  assert.equal(r2.ok, false);
  assert.match(problems(r2).join("; "), /invalid signature/);
  assert.equal(memo.misses, 3);
});

test("a memoised CA signature does not spare any other check: validity at the new time", async () => {
  const { root, mid, leaf } = await chain();
  const memo = new SignatureCache();
  assert.ok((await verifyChain([leaf.cert, mid.cert], [root.cert], { at: new Date(), signatures: memo })).ok);
  // two days later the CA (one day) has expired; its signature is a memo hit
  const later = new Date(Date.now() + 48 * HOUR);
  const r = await verifyChain([leaf.cert, mid.cert], [root.cert], { at: later, signatures: memo });
  assert.equal(memo.hits, 1);
  assert.equal(r.ok, false);
  assert.match(r.links[1]!.problems.join("; "), /^expired \(valid until /);
  // and before it was valid (so was the root: no anchor to check the signature against)
  const before = await verifyChain([leaf.cert, mid.cert], [root.cert], { at: new Date(Date.now() - 48 * HOUR), signatures: memo });
  assert.equal(before.ok, false);
  assert.match(before.links[1]!.problems.join("; "), /^not yet valid.*the trusted CA CN=root is not valid at/);
  // the same report as without a memo
  assert.deepEqual(r, await verifyChain([leaf.cert, mid.cert], [root.cert], { at: later }));
});

test("leaf signatures are never memoised: a damaged leaf after a good one is refused", async () => {
  const { root, mid, leaf } = await chain();
  const direct = await make({ profile: "leaf", cn: "direct", issuer: root, command: consoleCmd });
  const memo = new SignatureCache();
  const now = new Date();
  assert.ok((await verifyChain([direct.cert], [root.cert], { at: now, signatures: memo })).ok);
  assert.equal(memo.size, 0);
  const r = await verifyChain([certificateFromDer(tampered(direct))], [root.cert], { at: now, signatures: memo });
  assert.equal(r.ok, false);
  assert.match(r.links[0]!.problems.join("; "), /invalid signature \(not signed by the trusted CA CN=root\)/);
  assert.ok((await verifyChain([leaf.cert, mid.cert], [root.cert], { at: now, signatures: memo })).ok);
  const r2 = await verifyChain([certificateFromDer(tampered(leaf)), mid.cert], [root.cert], { at: now, signatures: memo });
  assert.match(r2.links[0]!.problems.join("; "), /invalid signature \(not signed by CN=tenant\)/);
  assert.equal(memo.size, 1, "only the CA");
});

test("the memo is bounded: least recently used CA signatures are evicted and verified again", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const cas = await Promise.all([0, 1, 2].map((i) => make({ profile: "intermediate", cn: `t${i}`, issuer: root, policy: policy() })));
  const leaves = await Promise.all(cas.map((ca, i) => make({ profile: "leaf", cn: `l${i}`, issuer: ca, command: consoleCmd })));
  const memo = new SignatureCache(2);
  const at = new Date();
  const check = async (i: number) => assert.ok((await verifyChain([leaves[i]!.cert, cas[i]!.cert], [root.cert], { at, signatures: memo })).ok);
  await check(0);
  await check(1);
  await check(0); // hit; t1 is now the least recently used
  await check(2); // evicts t1
  assert.deepEqual([memo.size, memo.hits, memo.misses], [2, 1, 3]);
  await check(1);
  assert.deepEqual([memo.hits, memo.misses], [1, 4]);
  await check(2);
  assert.deepEqual([memo.hits, memo.misses], [2, 4]);
});

test("verifyParsedChain and the thread-pool form give verifyChain's reports", async () => {
  for (const t of ["ed25519", "p256", "rsa2048"] as const) {
    const { root, mid, leaf } = await chain(t);
    const now = new Date();
    const cases = [
      { chain: [leaf, mid], at: now },
      { chain: [leaf, mid], at: new Date(Date.now() + 48 * HOUR) },
      { chain: [leaf], at: now }, // leaf not issued by the anchor
    ];
    for (const c of cases) {
      const plain = await verifyChain(
        c.chain.map((n) => n.cert),
        [root.cert],
        { at: c.at },
      );
      const p = c.chain.map((n) => parsed(n.cert));
      assert.deepEqual(await verifyParsedChain(p, [parsed(root.cert)], { at: c.at }), plain, t);
      assert.deepEqual(await verifyParsedChain(p, [parsed(root.cert)], { at: c.at, offload: true, signatures: new SignatureCache() }), plain, t);
    }
    const bad = certificateFromDer(tampered(leaf));
    const plain = await verifyChain([bad, mid.cert], [root.cert], { at: now });
    assert.equal(plain.ok, false);
    assert.deepEqual(await verifyChain([bad, mid.cert], [root.cert], { at: now, offload: true }), plain, t);
  }
});

test("verifySignatureAsync agrees with verifySignature", async () => {
  const { root, mid } = await chain("p256");
  const ed = await chain("ed25519");
  const m = parsed(mid.cert);
  const r = parsed(root.cert);
  const cases: Array<[typeof r.publicKey, typeof m]> = [
    [r.publicKey, m], // good
    [parsed(ed.root.cert).publicKey, m], // ECDSA signature, Ed25519 key
    [r.publicKey, parseCertificate(tampered(mid))], // damaged
    [r.publicKey, parsed(ed.mid.cert)], // Ed25519 signature, EC key
  ];
  const answers: Array<string | null> = [];
  for (const [key, c] of cases) {
    const sync = verifySignature(key, c.signatureAlgorithm, c.tbs, c.signature);
    assert.equal(await verifySignatureAsync(key, c.signatureAlgorithm, c.tbs, c.signature), sync);
    answers.push(sync);
  }
  assert.equal(answers[0], null);
  assert.match(answers[1]!, /does not fit a ed25519 key/);
  assert.equal(answers[2], "invalid signature");
  assert.match(answers[3]!, /does not fit a p256 key/);
  const odd = { oid: "1.2.840.10045.4.3.2", params: Uint8Array.of(5, 0) };
  assert.match((await verifySignatureAsync(r.publicKey, odd, m.tbs, m.signature))!, /unexpected parameters/);
});

test("public keys are imported once per distinct SPKI; unusable ones are refused every time", async () => {
  const { root, mid } = await chain();
  const a = publicKeyFromSpki(parsed(root.cert).publicKey.der);
  const b = publicKeyFromSpki(new Uint8Array(parsed(root.cert).publicKey.der)); // same bytes, other buffer
  assert.ok(typeof a !== "string" && typeof b !== "string");
  assert.equal(a, b);
  assert.equal(a.kind, "ed25519");
  const other = publicKeyFromSpki(parsed(mid.cert).publicKey.der);
  assert.ok(typeof other !== "string");
  assert.notEqual(other.key, a.key);
  const garbage = Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00);
  assert.match(publicKeyFromSpki(garbage) as string, /^unusable public key/);
  assert.match(publicKeyFromSpki(garbage) as string, /^unusable public key/);
});

test("parsed CA certificates are remembered by their exact bytes, in an own copy", async () => {
  const { mid, leaf } = await chain();
  const cache = new ParsedCertificateCache(2);
  const buf = new Uint8Array(mid.der);
  const p = cache.parse(buf);
  assert.deepEqual(p, parseCertificate(mid.der));
  assert.equal(cache.parse(new Uint8Array(mid.der)), p, "same bytes: the same parse");
  buf.fill(0); // the caller's buffer is not the cached parse's
  assert.deepEqual(p.der, mid.der);
  assert.notEqual(cache.parse(leaf.der), p, "other bytes: another parse");
  assert.throws(() => cache.parse(tampered(mid).subarray(0, 40)), CertificateError);
  assert.equal(cache.size, 2);
});

test("certificates over the size limit are verified and parsed every time, never remembered", async () => {
  const root = await make({ profile: "root", cn: "root" });
  // an albatross extension of 20 KiB: not a policy, but verifyChain does not read it
  const big = await make({ profile: "intermediate", cn: "big", issuer: root, albatross: new Uint8Array(20 * 1024).fill(0x41) });
  assert.ok(big.der.length > SignatureCache.MEMO_MAX_DER && big.der.length > ParsedCertificateCache.MEMO_MAX_DER);
  const leaf = await make({ profile: "leaf", cn: "l", issuer: big, command: consoleCmd });
  const memo = new SignatureCache();
  for (let i = 0; i < 2; i++) {
    const r = await verifyChain([leaf.cert, big.cert], [root.cert], { at: new Date(), signatures: memo });
    assert.ok(r.ok, problems(r).join("; "));
  }
  assert.deepEqual([memo.size, memo.hits, memo.misses], [0, 0, 0]);
  const cache = new ParsedCertificateCache();
  assert.deepEqual(cache.parse(big.der), parseCertificate(big.der));
  assert.equal(cache.size, 0);
});
