// Offline chain validation: good chains of every key type (cross-checked with openssl
// verify / x509 -text), and each rejection with its reason.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { KEY_TYPES } from "../../src/ca/keys.js";
import { verifyAlbatrossChain, verifyChain } from "../../src/ca/verify.js";
import { certificateFromDer } from "../../src/ca/x509.js";
import { consoleCmd, make, NEW_P256_KEY, openssl, policy, tempDir, vectorCerts, writePem, type Node } from "../support/ca.js";

// The time of each check, not of loading the file: an RSA-4096 chain takes seconds to make under load,
// and a certificate made after a fixed "now" would be "not yet valid".
const now = (): Date => new Date();
const problems = (r: { links: { problems: string[] }[]; problems: string[] }) => [...r.links.flatMap((l) => l.problems), ...r.problems];

async function threeLevels(keyType: (typeof KEY_TYPES)[number]): Promise<{ root: Node; mid: Node; leaf: Node }> {
  const root = await make({ profile: "root", cn: "root", keyType, seconds: 3650 * 86400 });
  const mid = await make({ profile: "intermediate", cn: "user", keyType, issuer: root, policy: policy(), seconds: 365 * 86400 });
  const leaf = await make({ profile: "leaf", cn: "hello", keyType, issuer: mid, command: consoleCmd });
  return { root, mid, leaf };
}

test("chains of every key type verify, and openssl agrees", async () => {
  const dir = tempDir();
  for (const t of KEY_TYPES) {
    const { root, mid, leaf } = await threeLevels(t);
    const r = await verifyAlbatrossChain([leaf.cert, mid.cert], [root.cert], { at: now() });
    assert.ok(r.ok, `${t}: ${problems(r).join("; ")}`);
    assert.equal(r.anchor, "CN=root");
    assert.equal(r.derived?.name.path.join(":"), "user");
    // the root may be part of the chain
    assert.ok((await verifyChain([leaf.cert, mid.cert, root.cert], [root.cert], { at: now() })).ok);
    const ca = writePem(dir, `${t}-ca.pem`, root);
    const untrusted = writePem(dir, `${t}-mid.pem`, mid);
    const leafFile = writePem(dir, `${t}-leaf.pem`, leaf);
    const o = await openssl(dir, "verify", "-CAfile", ca, "-untrusted", untrusted, leafFile);
    assert.equal(o.code, 0, `${t}: ${o.stdout}${o.stderr}`);
    assert.match(o.stdout, /: OK/);
    // openssl's reading of our extensions
    const text = (await openssl(dir, "x509", "-in", leafFile, "-text", "-noout")).stdout;
    assert.match(text, /1\.3\.6\.1\.4\.1\.49836\.42:\s*\n/);
    assert.match(text, /Key Usage: critical\s+Digital Signature, Key Encipherment/);
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /Extended Key Usage: critical\s+TLS Web Client Authentication/);
    assert.match(text, /Subject: CN\s?=\s?hello/);
    const midText = (await openssl(dir, "x509", "-in", untrusted, "-text", "-noout")).stdout;
    assert.match(midText, /Key Usage: critical\s+Digital Signature, Non Repudiation, Certificate Sign, CRL Sign/);
    assert.match(midText, /Basic Constraints: critical\s+CA:TRUE\n/);
    const rootText = (await openssl(dir, "x509", "-in", ca, "-text", "-noout")).stdout;
    assert.doesNotMatch(rootText, /Key Identifier/);
    const sig =
      t === "ed25519"
        ? /ED25519/
        : t === "p256"
          ? /ecdsa-with-SHA256/
          : t === "p384"
            ? /ecdsa-with-SHA384/
            : t === "p521"
              ? /ecdsa-with-SHA512/
              : /sha256WithRSAEncryption/;
    assert.match(text, new RegExp(`Signature Algorithm: ${sig.source}`));
  }
});

test("the real vectors verify inside their validity window and are 'expired' after it", async () => {
  const [ca] = vectorCerts("cert-test-ca.pem");
  const [leaf] = vectorCerts("cert-console-foo-leaf.pem");
  const inside = await verifyAlbatrossChain([leaf!], [ca!], { at: new Date("2025-08-22T13:05:00Z") });
  assert.ok(inside.ok, problems(inside).join("; "));
  assert.equal(inside.derived?.command.kind, "console-subscribe");
  const after = await verifyChain([leaf!, ca!], [ca!], { at: now() });
  assert.equal(after.ok, false);
  assert.deepEqual(problems(after), ["expired (valid until 2025-08-22T13:09:53Z)"]);
  const before = await verifyChain([leaf!], [ca!], { at: new Date("2025-08-22T13:04:00Z") });
  assert.deepEqual(problems(before), ["not yet valid (valid from 2025-08-22T13:04:43Z)"]);
});

test("a corrupted signature is rejected", async () => {
  const { root, mid, leaf } = await threeLevels("ed25519");
  const der = new Uint8Array(leaf.der);
  der[der.length - 1]! ^= 0x01; // DER is never empty
  const r = await verifyChain([certificateFromDer(der), mid.cert], [root.cert], { at: now() });
  assert.equal(r.ok, false);
  assert.deepEqual(r.links[0]!.problems, ["invalid signature (not signed by CN=user)"]);
  assert.deepEqual(r.links[1]!.problems, []);
  // a changed byte in the signed body as well
  const body = new Uint8Array(leaf.der);
  const i = Buffer.from(body).indexOf(Buffer.from("hello"));
  body[i] = "j".charCodeAt(0);
  const r2 = await verifyChain([certificateFromDer(body), mid.cert], [root.cert], { at: now() });
  assert.match(r2.links[0]!.problems.join(), /invalid signature/);
});

test("expired and not-yet-valid certificates are rejected, anywhere in the chain", async () => {
  const root = await make({ profile: "root", cn: "root", seconds: 3650 * 86400 });
  const old = await make({ profile: "intermediate", cn: "user", issuer: root, policy: policy(), now: new Date("2020-01-01T00:00:00Z"), seconds: 86400 });
  const leaf = await make({ profile: "leaf", cn: "hello", issuer: old, command: consoleCmd });
  const r = await verifyChain([leaf.cert, old.cert], [root.cert], { at: now() });
  assert.deepEqual(
    r.links.map((l) => l.problems),
    [[], ["expired (valid until 2020-01-02T00:00:00Z)"]],
  );
  const future = await make({ profile: "leaf", cn: "hello", issuer: root, command: consoleCmd, now: new Date(now().getTime() + 86400_000 * 2) });
  const r2 = await verifyChain([future.cert], [root.cert], { at: now() });
  assert.match(r2.links[0]!.problems[0]!, /^not yet valid \(valid from /);
});

test("a leaf used as an issuer is rejected", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const leaf = await make({ profile: "leaf", cn: "hello", issuer: root, command: consoleCmd });
  const below = await make({ profile: "leaf", cn: "evil", issuer: leaf, command: consoleCmd });
  const r = await verifyChain([below.cert, leaf.cert], [root.cert], { at: now() });
  assert.equal(r.ok, false);
  assert.deepEqual(r.links[1]!.problems, [
    "used as an issuer but not a CA (basicConstraints CA:TRUE missing)",
    "used as an issuer but its keyUsage lacks keyCertSign",
    "used as an issuer but its extendedKeyUsage has neither anyExtendedKeyUsage nor serverAuth",
    "unsupported critical extension 2.5.29.37",
  ]);
  const dir = tempDir();
  const o = await openssl(dir, "verify", "-CAfile", writePem(dir, "ca.pem", root), "-untrusted", writePem(dir, "l.pem", leaf), writePem(dir, "b.pem", below));
  assert.notEqual(o.code, 0);
  // and a CA as the leaf
  const mid = await make({ profile: "intermediate", cn: "user", issuer: root, policy: policy() });
  const r2 = await verifyChain([mid.cert], [root.cert], { at: now() });
  assert.deepEqual(r2.links[0]!.problems, ["end-entity certificate is a CA (basicConstraints CA:TRUE)"]);
});

test("a widened policy is rejected, on the link that widens", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const a = await make({ profile: "intermediate", cn: "user", issuer: root, policy: policy({ unikernels: 16n }) });
  const b = await make({ profile: "intermediate", cn: "sub", issuer: a, policy: policy({ unikernels: 32n }) });
  const leaf = await make({ profile: "leaf", cn: "hello", issuer: b, command: consoleCmd });
  const r = await verifyAlbatrossChain([leaf.cert, b.cert, a.cert], [root.cert], { at: now() });
  assert.equal(r.ok, false);
  assert.deepEqual(
    r.links.map((l) => l.problems),
    [[], ["policy wider than the one above it: policy above allows 16 unikernels, which is fewer than 32"], []],
  );
  // plain X.509 has nothing against it
  assert.ok((await verifyChain([leaf.cert, b.cert, a.cert], [root.cert], { at: now() })).ok);
});

test("a foreign root is rejected, also one with the same name", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const other = await make({ profile: "root", cn: "other" });
  const twin = await make({ profile: "root", cn: "root" });
  for (const [foreign, reason] of [
    [other, "not issued by a trusted CA (issuer CN=other)"],
    [twin, "invalid signature (not signed by the trusted CA CN=root)"],
  ] as const) {
    const leaf = await make({ profile: "leaf", cn: "hello", issuer: foreign, command: consoleCmd });
    const r = await verifyChain([leaf.cert], [root.cert], { at: now() });
    assert.deepEqual(r.links[0]!.problems, [reason]);
    // presenting the foreign root in the chain does not help
    const r2 = await verifyChain([leaf.cert, foreign.cert], [root.cert], { at: now() });
    assert.equal(r2.ok, false);
    assert.deepEqual(r2.links[0]!.problems, []);
    assert.equal(r2.links[1]!.problems.length, 1);
  }
});

test("an expired trust anchor is ignored; chains of 10 are too long", async () => {
  const root = await make({ profile: "root", cn: "root", now: new Date("2020-01-01T00:00:00Z"), seconds: 86400 });
  const leaf = await make({ profile: "leaf", cn: "hello", issuer: root, command: consoleCmd });
  const r = await verifyChain([leaf.cert], [root.cert], { at: now() });
  assert.equal(r.links[0]!.problems.length, 1);
  assert.match(r.links[0]!.problems[0]!, /^the trusted CA CN=root is not valid at \d{4}-/);
  // chain length: 9 intermediates + leaf = 10 certificates
  const good = await make({ profile: "root", cn: "root" });
  let issuer = good;
  const chain = [];
  for (let i = 0; i < 9; i++) {
    issuer = await make({ profile: "intermediate", cn: `l${i}`, issuer, policy: policy() });
    chain.unshift(issuer.cert);
  }
  const l = await make({ profile: "leaf", cn: "hello", issuer, command: consoleCmd });
  const r2 = await verifyAlbatrossChain([l.cert, ...chain], [good.cert], { at: now() });
  assert.equal(r2.ok, false);
  assert.deepEqual(r2.problems, ["certificate chain too long (10 certificates, at most 9)", "albatross: certificate chain too long"]);
  assert.ok((await verifyAlbatrossChain([l.cert, ...chain.slice(0, 8)], [good.cert], { at: now() })).links.length === 9);
});

test("an undecodable albatross extension is reported on its link", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const leaf = await make({ profile: "leaf", cn: "hello", issuer: root, albatross: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x04) });
  const r = await verifyAlbatrossChain([leaf.cert], [root.cert], { at: now() });
  assert.equal(r.ok, false);
  assert.match(r.links[0]!.problems[0]!, /^albatross extension does not decode: /);
  assert.equal(r.derived, null);
});

test("chains made by openssl: accepted with SHA-256, SHA-1 signatures refused", async () => {
  const dir = tempDir();
  const { readFileSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { certificatesFromPem } = await import("../../src/ca/x509.js");
  writeFileSync(
    join(dir, "ext.cnf"),
    "[req]\ndistinguished_name=dn\nx509_extensions=ca\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n[leaf]\nbasicConstraints=critical,CA:FALSE\nauthorityKeyIdentifier=keyid\n",
  );
  const ok = async (...a: string[]) => {
    const r = await openssl(dir, ...a);
    assert.equal(r.code, 0, r.stderr);
  };
  await ok("req", "-x509", ...NEW_P256_KEY, "-keyout", "ca.key", "-subj", "/CN=osslca", "-days", "30", "-out", "ca.pem", "-config", "ext.cnf");
  await ok("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-subj", "/CN=leaf", "-out", "leaf.req", "-config", "ext.cnf");
  for (const [digest, expect] of [
    ["-sha256", null],
    ["-sha384", null],
    ["-sha1", "unsupported signature algorithm 1.2.840.10045.4.1"],
  ] as const) {
    await ok(
      "x509",
      "-req",
      "-in",
      "leaf.req",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      digest,
      "-days",
      "1",
      "-out",
      "leaf.pem",
      "-extfile",
      "ext.cnf",
      "-extensions",
      "leaf",
    );
    const [anchor] = certificatesFromPem(readFileSync(join(dir, "ca.pem"), "utf8"));
    const leafCerts = certificatesFromPem(readFileSync(join(dir, "leaf.pem"), "utf8"));
    const r = await verifyChain(leafCerts, [anchor!], { at: new Date(Date.now() + 1000) });
    assert.deepEqual(r.links[0]!.problems, expect === null ? [] : [expect], digest);
  }
});

test("a delegation (intermediate CA with a policy) at the head of a chain is checked as one", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const user = await make({ profile: "intermediate", cn: "user", issuer: root, policy: policy({ unikernels: 16n }) });
  const sub = await make({ profile: "intermediate", cn: "sub", issuer: user, policy: policy({ unikernels: 4n, cpuids: [1], bridges: [] }) });
  const r = await verifyAlbatrossChain([sub.cert, user.cert], [root.cert], { at: now() });
  assert.ok(r.ok, problems(r).join("; "));
  assert.equal(r.kind, "delegation");
  assert.equal(r.derived, null);
  assert.deepEqual(r.delegated, {
    path: ["user", "sub"],
    policies: [
      { path: ["user", "sub"], policy: policy({ unikernels: 4n, cpuids: [1], bridges: [] }) },
      { path: ["user"], policy: policy({ unikernels: 16n }) },
    ],
  });
  // the same certificate through plain X.509 rules for an end entity is refused
  assert.deepEqual((await verifyChain([sub.cert, user.cert], [root.cert], { at: now() })).links[0]!.problems, [
    "end-entity certificate is a CA (basicConstraints CA:TRUE)",
  ]);
  // ... and as an issuer it is fine
  assert.ok((await verifyChain([sub.cert, user.cert], [root.cert], { at: now(), delegation: true })).ok);

  // its own policy wider than the one above: reported on the delegation itself
  const wide = await make({ profile: "intermediate", cn: "sub", issuer: user, policy: policy({ unikernels: 32n }) });
  const w = await verifyAlbatrossChain([wide.cert, user.cert], [root.cert], { at: now() });
  assert.equal(w.ok, false);
  assert.equal(w.kind, "delegation");
  assert.deepEqual(
    w.links.map((l) => l.problems),
    [["policy wider than the one above it: policy above allows 16 unikernels, which is fewer than 32"], []],
  );
  // expired, and issued by another CA
  const old = await make({
    profile: "intermediate",
    cn: "user",
    issuer: root,
    policy: policy(),
    now: new Date(now().getTime() - 3 * 86400_000),
    seconds: 86400,
  });
  assert.match((await verifyAlbatrossChain([old.cert], [root.cert], { at: now() })).links[0]!.problems[0]!, /^expired \(valid until /);
  const other = await make({ profile: "root", cn: "other" });
  const foreign = await make({ profile: "intermediate", cn: "user", issuer: other, policy: policy() });
  const f = await verifyAlbatrossChain([foreign.cert], [root.cert], { at: now() });
  assert.equal(f.kind, "delegation");
  assert.deepEqual(f.links[0]!.problems, ["not issued by a trusted CA (issuer CN=other)"]);
  // a delegation whose label is not one: the endpoint's reading fails
  const bad = await make({ profile: "intermediate", cn: "no/slash", issuer: root, policy: policy() });
  const b = await verifyAlbatrossChain([bad.cert], [root.cert], { at: now() });
  assert.equal(b.ok, false);
  assert.equal(b.delegated, null);
  assert.match(b.problems[0]!, /^albatross: /);
});

test("a CA carrying a command is not a delegation; a delegation leaves room for its leaves in the chain", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const caLeaf = await make({ profile: "intermediate", cn: "foo", issuer: root, command: consoleCmd });
  const r = await verifyAlbatrossChain([caLeaf.cert], [root.cert], { at: now() });
  assert.equal(r.kind, "leaf");
  assert.deepEqual(r.links[0]!.problems, ["end-entity certificate is a CA (basicConstraints CA:TRUE)"]);
  // 9 CAs: a leaf under the first would make 10 certificates, which the endpoint refuses
  let issuer = root;
  const chain = [];
  for (let i = 0; i < 9; i++) {
    issuer = await make({ profile: "intermediate", cn: `l${i}`, issuer, policy: policy() });
    chain.unshift(issuer.cert);
  }
  const long = await verifyAlbatrossChain(chain, [root.cert], { at: now() });
  assert.equal(long.kind, "delegation");
  assert.deepEqual(long.problems, ["certificate chain too long for a delegation (9 certificates and the leaves it signs, at most 8 and the leaves)"]);
  const fits = await verifyAlbatrossChain(chain.slice(1), [root.cert], { at: now() });
  assert.ok(fits.ok, problems(fits).join("; "));
  assert.equal(fits.delegated?.path.length, 8);
});
