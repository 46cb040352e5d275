// fixtures/certs (made by `npm run fixtures`) mean what their README says.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { verifyAlbatrossChain } from "../../src/ca/verify.js";
import { certificatesFromPem, fromPemAll } from "../../src/ca/x509.js";
import { nameToString } from "../../src/core/name.js";
import { ROOT } from "../support/ca.js";

const DIR = join(ROOT, "fixtures/certs");
const certs = (f: string) => certificatesFromPem(readFileSync(join(DIR, f), "utf8"));

test("fixtures/certs: good chains verify, broken ones fail for their reason", {
  skip: !existsSync(join(DIR, "cacert.pem")) && "run npm run fixtures",
}, async () => {
  const anchors = certs("cacert.pem");
  const at = new Date();
  const good: Record<string, string> = {
    "leaf-ed25519.pem": "user:hello-ed25519",
    "leaf-p256.pem": "user:hello-p256",
    "leaf-p384.pem": "user:hello-p384",
    "leaf-p521.pem": "user:hello-p521",
    "leaf-rsa2048.pem": "user:hello-rsa2048",
    "leaf-rsa4096.pem": "user:hello-rsa4096",
    "leaf-direct.pem": ":direct",
    "leaf-deep.pem": "user:sub:deep",
  };
  for (const [f, name] of Object.entries(good)) {
    const r = await verifyAlbatrossChain(certs(f), anchors, { at });
    assert.ok(r.ok, `${f}: ${JSON.stringify(r.links)} ${r.problems}`);
    assert.equal(nameToString(r.derived!.name), name);
  }
  const bad: Record<string, RegExp> = {
    "bad-expired.pem": /^expired/,
    "bad-not-yet-valid.pem": /^not yet valid/,
    "bad-widened-policy.pem": /policy wider than the one above it: policy above allows 16 unikernels, which is fewer than 32/,
    "bad-leaf-as-issuer.pem": /not a CA/,
    "bad-foreign-root.pem": /invalid signature \(not signed by the trusted CA CN=ca\)/,
    "bad-signature.pem": /invalid signature/,
    "bad-no-extension.pem": /leaf certificate does not contain an albatross extension/,
  };
  for (const [f, reason] of Object.entries(bad)) {
    const r = await verifyAlbatrossChain(certs(f), anchors, { at });
    assert.equal(r.ok, false, f);
    const all = [...r.links.flatMap((l) => l.problems), ...r.problems];
    assert.ok(
      all.some((p) => reason.test(p)),
      `${f}: ${all.join("; ")}`,
    );
  }
});

test("PEM reading: hostile shapes fail with one line, quickly", () => {
  assert.throws(() => fromPemAll("-----BEGIN CERTIFICATE-----\nMAA=\n", "CERTIFICATE"), /without its END line/);
  // many BEGINs without END: one error, no quadratic scan
  const hostile = "-----BEGIN CERTIFICATE-----\n".repeat(200_000);
  assert.throws(() => fromPemAll(hostile, "CERTIFICATE"), /without its END line/);
  assert.deepEqual(fromPemAll("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "CERTIFICATE"), []);
});
