// Chain -> (name, policies, version, command), wire.md §11, and policy monotonicity.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { checkPolicyMonotonic, deriveCommand } from "../../src/ca/chain.js";
import { nameToString } from "../../src/core/name.js";
import { consoleCmd, make, policy, vectorCerts } from "../support/ca.js";
import type { Command } from "../../src/commands/types.js";

test("C3/C4: the real vectors derive :foo and :foo.bar, version 5, console subscribe 20, no policies", () => {
  const [ca] = vectorCerts("cert-test-ca.pem");
  for (const [file, name] of [
    ["cert-console-foo-leaf.pem", ":foo"],
    ["cert-console-foo.bar-leaf.pem", ":foo.bar"],
  ] as const) {
    const [leaf] = vectorCerts(file);
    const r = deriveCommand([leaf!, ca!]);
    assert.ok(r.ok, r.ok ? "" : r.error);
    assert.equal(nameToString(r.value.name), name);
    assert.equal(r.value.version, 5);
    assert.deepEqual(r.value.policies, []);
    assert.deepEqual(r.value.command, consoleCmd);
    // without the root the result is the same
    const r2 = deriveCommand([leaf!]);
    assert.ok(r2.ok);
    assert.equal(nameToString(r2.value.name), name);
  }
});

test("intermediates give the path and the policies, deepest first", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const a = await make({ profile: "intermediate", cn: "ARC", issuer: root, policy: policy({ unikernels: 10n }) });
  const b = await make({ profile: "intermediate", cn: "sub", issuer: a, policy: policy({ unikernels: 5n }) });
  const leaf = await make({ profile: "leaf", cn: "Foo.Bar", issuer: b, command: consoleCmd });
  const r = deriveCommand([leaf.cert, b.cert, a.cert, root.cert]);
  assert.ok(r.ok, r.ok ? "" : r.error);
  assert.equal(nameToString(r.value.name), "arc:sub:foo.bar");
  assert.deepEqual(
    r.value.policies.map((p) => [p.path.join(":"), p.policy.unikernels]),
    [
      ["arc:sub", 5n],
      ["arc", 10n],
    ],
  );
  assert.deepEqual(checkPolicyMonotonic(r.value.policies), { ok: true, value: null });
  // leaf CN "." or ":" -> the path itself
  for (const cn of [".", ":"]) {
    const l = await make({ profile: "leaf", cn, issuer: b, command: { kind: "unikernel-info" } });
    const d = deriveCommand([l.cert, b.cert, a.cert]);
    assert.ok(d.ok);
    assert.equal(nameToString(d.value.name), "arc:sub:");
  }
});

test("derivation errors, with upstream's texts and order", async () => {
  const root = await make({ profile: "root", cn: "root" });
  const leaf = await make({ profile: "leaf", cn: "foo", issuer: root, command: consoleCmd });
  const e = (r: ReturnType<typeof deriveCommand>) => (r.ok ? "ok" : r.error);
  assert.equal(e(deriveCommand([])), "empty chain");
  assert.equal(e(deriveCommand(Array(10).fill(leaf.cert))), "certificate chain too long");
  const noExt = await make({ profile: "server", cn: "foo", issuer: root });
  assert.equal(e(deriveCommand([noExt.cert, root.cert])), "leaf certificate does not contain an albatross extension");
  const remove = await make({ profile: "leaf", cn: "foo", issuer: root, command: { kind: "policy-remove" } });
  assert.equal(e(deriveCommand([remove.cert, root.cert])), "unexpected command");
  const add = await make({ profile: "leaf", cn: "foo", issuer: root, command: { kind: "policy-add", policy: policy() } });
  assert.equal(e(deriveCommand([add.cert])), "unexpected command");
  const badLabel = await make({ profile: "leaf", cn: "foo:bar", issuer: root, command: consoleCmd });
  assert.equal(e(deriveCommand([badLabel.cert])), "invalid label (only [a-zA-Z0-9-.] allowed, 1 to 63 chars)");
  // an intermediate carrying something else than policy add
  const odd = await make({ profile: "intermediate", cn: "x", issuer: root, command: consoleCmd });
  assert.equal(e(deriveCommand([leaf.cert, odd.cert])), "unexpected wire console subscribe count 20");
  // extension with version 4
  const v4 = await make({
    profile: "leaf",
    cn: "foo",
    issuer: root,
    albatross: Uint8Array.of(0x30, 0x0c, 0x02, 0x01, 0x04, 0xa0, 0x07, 0xa2, 0x05, 0xa1, 0x03, 0x02, 0x01, 0x14),
  });
  assert.match(e(deriveCommand([v4.cert])), /unknown version number 0x4/);
  // an undecodable intermediate wins over a bad leaf (intermediates are looked at first)
  const garbage = await make({ profile: "intermediate", cn: "x", issuer: root, albatross: Uint8Array.of(1, 2, 3) });
  assert.notEqual(e(deriveCommand([badLabel.cert, garbage.cert])), "ok");
  assert.notEqual(e(deriveCommand([badLabel.cert, garbage.cert])), "invalid label (only [a-zA-Z0-9-.] allowed, 1 to 63 chars)");
});

test("empty names: CN-less certificates", async () => {
  const root = await make({ profile: "root", cn: "root" });
  // make() always sets a CN; build CN-less ones by giving an empty subject through a custom node
  const { issueCertificate, validity } = await import("../../src/ca/issue.js");
  const { encodeCertExtension } = await import("../../src/commands/codec.js");
  const { spkiDer, generateKey } = await import("../../src/ca/keys.js");
  const { encodeCnName } = await import("../../src/ca/asn1.js");
  const { certificateFromDer } = await import("../../src/ca/x509.js");
  const key = await generateKey("ed25519");
  const cnless = async (profile: "leaf" | "intermediate", command: Command | Uint8Array) =>
    certificateFromDer(
      await issueCertificate({
        profile,
        subject: Uint8Array.of(0x30, 0x00),
        spki: spkiDer(key),
        issuerName: encodeCnName("root"),
        issuerKey: root.key,
        albatross: command instanceof Uint8Array ? command : encodeCertExtension({ version: 5, command }),
        ...validity(new Date(), 300),
      }),
    );
  const e = (r: ReturnType<typeof deriveCommand>) => (r.ok ? nameToString(r.value.name) : r.error);
  assert.equal(e(deriveCommand([await cnless("leaf", { kind: "block-add", size: 10 })])), "block add may not have an empty name");
  assert.equal(e(deriveCommand([await cnless("leaf", { kind: "policy-remove" })])), "policy remove may not have an empty name");
  assert.equal(e(deriveCommand([await cnless("leaf", { kind: "block-info" })])), ":");
  assert.equal(e(deriveCommand([await cnless("leaf", Uint8Array.of(5, 0))])), "couldn't parse albatross extension");
  const leaf = await make({ profile: "leaf", cn: "foo", issuer: root, command: consoleCmd });
  assert.equal(e(deriveCommand([leaf.cert, await cnless("intermediate", { kind: "policy-add", policy: policy() })])), "policy add may not have an empty name");
});

test("checkPolicyMonotonic names the path and the widened field", () => {
  const r = checkPolicyMonotonic([
    { path: ["a", "b"], policy: policy({ memory: 2048 }) },
    { path: ["a"], policy: policy({ memory: 1024 }) },
  ]);
  assert.deepEqual(r, { ok: false, error: "policy of a:b: policy above allows 1024 MB memory, which is fewer than 2048 MB" });
  const r2 = checkPolicyMonotonic([
    { path: ["a", "b"], policy: policy({ bridges: ["service", "other"] }) },
    { path: ["a"], policy: policy({ bridges: ["service"] }) },
  ]);
  assert.ok(!r2.ok && /bridge\(s\) service, which is not a superset of other, service/.test(r2.error));
  assert.ok(checkPolicyMonotonic([{ path: ["a"], policy: policy() }]).ok);
});
