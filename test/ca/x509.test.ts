// Certificate reading/building, keys at rest, CSRs.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeCertTime, encodeNamedBits, hex } from "../../src/ca/asn1.js";
import { validity } from "../../src/ca/issue.js";
import {
  KEY_TYPES,
  generateKey,
  keyMatchesCertificate,
  privateKeyFromPem,
  privateKeyToPem,
  readPrivateKeyFile,
  writePrivateKeyFile,
} from "../../src/ca/keys.js";
import {
  CertificateError,
  albatrossExtension,
  authorityKeyId,
  basicConstraints,
  certificateFromDer,
  fromPemAll,
  keyId,
  keyUsage,
  parseCertificate,
  parsed,
  serialFromRandom,
  subjectKeyId,
} from "../../src/ca/x509.js";
import { buildCsr, csrToPem, parseCsr, parseCsrPem, CsrError } from "../../src/csr/csr.js";
import { ext } from "../../src/ca/x509.js";
import { consoleCmd, make, openssl, tempDir, vectorCerts } from "./helpers.js";
import { encodeCertExtension } from "../../src/commands/codec.js";

test("the albatross vectors parse: serial, validity, key ids, extensions", () => {
  const [ca] = vectorCerts("cert-test-ca.pem");
  const [leaf] = vectorCerts("cert-console-foo.bar-leaf.pem");
  const c = parsed(ca!);
  assert.equal(hex(c.serial), "00fa4634e2ae27c507");
  assert.equal(c.notBefore.toISOString(), "2024-09-01T21:25:28.000Z");
  assert.equal(c.notAfter.toISOString(), "2034-08-30T21:25:38.000Z");
  assert.deepEqual(basicConstraints(c), { ca: true });
  // ocaml-x509's two-byte keyUsage (7 unused bits) reads fine
  assert.deepEqual([...keyUsage(c)!].sort(), [0, 1, 5, 6]);
  assert.equal(subjectKeyId(c), undefined);
  assert.equal(hex(keyId(c.publicKey.key)), "02c421675d29a236a6b5fe624988893df92e5674");
  const l = parsed(leaf!);
  assert.equal(hex(l.serial), "00d20a8b3fee38bf36c852");
  assert.equal(hex(subjectKeyId(l)!), hex(keyId(l.publicKey.key)));
  assert.equal(hex(authorityKeyId(l)!), "02c421675d29a236a6b5fe624988893df92e5674");
  assert.equal(hex(albatrossExtension(l)!), "300c020105a007a205a103020114");
  assert.deepEqual(basicConstraints(l), { ca: false });
});

test("serials follow ocaml-x509's prefix rule", () => {
  const r = (first: number, second: number) => Uint8Array.of(first, second, 1, 2, 3, 4, 5, 6, 7, 8);
  assert.equal(hex(serialFromRandom(r(0x80, 0))), "00800001020304050607" + "08");
  assert.equal(hex(serialFromRandom(r(0x00, 0x7f))), "7f007f0102030405060708");
  assert.equal(hex(serialFromRandom(r(0x00, 0x80))), "00800102030405060708");
  assert.equal(hex(serialFromRandom(r(0x12, 0x00))), "12000102030405060708");
});

test("certificate times: UTCTime before 2050, GeneralizedTime after; whole seconds; now-10 s", () => {
  assert.equal(hex(encodeCertTime(new Date("2049-12-31T23:59:59.999Z"))), hex(new TextEncoder().encode("491231235959Z")).replace(/^/, "170d"));
  assert.equal(hex(encodeCertTime(new Date("2050-01-01T00:00:00Z"))).slice(0, 4), "180f");
  const v = validity(new Date("2025-08-22T13:04:53.700Z"), 300);
  assert.equal(v.notBefore.toISOString(), "2025-08-22T13:04:43.000Z");
  assert.equal(v.notAfter.toISOString(), "2025-08-22T13:09:53.000Z");
});

test("keyUsage is written as DER named bits", () => {
  assert.equal(hex(encodeNamedBits([0, 2])), "030205a0");
  assert.equal(hex(encodeNamedBits([5, 6, 0, 1])), "030201c6");
  assert.equal(hex(encodeNamedBits([8])), "0303070080");
});

test("hostile certificate input gives one-line errors", () => {
  const [leaf] = vectorCerts("cert-console-foo-leaf.pem");
  const der = new Uint8Array(leaf!.rawData);
  // truncated
  assert.throws(() => parseCertificate(der.subarray(0, der.length - 5)), (e: unknown) => e instanceof CertificateError && !e.message.includes("\n"));
  // trailing bytes
  assert.throws(() => parseCertificate(Uint8Array.of(...der, 0)), CertificateError);
  // oversized length
  const big = Uint8Array.of(0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00);
  assert.throws(() => parseCertificate(big), /exceeds/);
  // indefinite length
  assert.throws(() => parseCertificate(Uint8Array.of(0x30, 0x80, 0, 0)), /indefinite/);
  assert.throws(() => certificateFromDer(new Uint8Array(0)), CertificateError);
  // PEM with broken base64
  assert.throws(() => fromPemAll("-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n", "CERTIFICATE"), /base64/);
});

test("a duplicated extension is refused", async () => {
  const n = await make({ profile: "leaf", cn: "x", command: consoleCmd });
  const der = new Uint8Array(n.der);
  // rewrite the keyUsage OID (2.5.29.15) into the basicConstraints OID (2.5.29.19): two BCs
  const i = Buffer.from(der).indexOf(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0f]));
  assert.ok(i > 0);
  der[i + 4] = 0x13;
  assert.throws(() => parseCertificate(der), /duplicate extension 2\.5\.29\.19/);
});

test("keys: every type generates, signs a certificate, round-trips as PKCS#8 PEM (plain and encrypted)", async () => {
  const dir = tempDir();
  for (const t of KEY_TYPES) {
    const key = await generateKey(t);
    const plain = privateKeyToPem(key);
    assert.match(plain, /^-----BEGIN PRIVATE KEY-----/);
    const enc = privateKeyToPem(key, "s3cret");
    assert.match(enc, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.throws(() => privateKeyFromPem(enc), /encrypted, a password is needed/);
    assert.throws(() => privateKeyFromPem(enc, "wrong"), /wrong password/);
    const back = privateKeyFromPem(enc, "s3cret");
    const n = await make({ profile: "root", cn: `ca-${t}`, keyType: t });
    assert.equal(keyMatchesCertificate(n.key, n.cert), true);
    assert.equal(keyMatchesCertificate(back, n.cert), false);
    // openssl agrees about the encryption: PBES2 with AES-256-CBC
    const f = join(dir, `${t}.key`);
    await writePrivateKeyFile(f, key, "s3cret");
    assert.equal(statSync(f).mode & 0o777, 0o600);
    const r = await openssl(dir, "asn1parse", "-in", f);
    assert.match(r.stdout, /PBES2/);
    assert.match(r.stdout, /aes-256-cbc/);
    assert.equal((await readPrivateKeyFile(f, "s3cret")).asymmetricKeyType, key.asymmetricKeyType);
    await assert.rejects(writePrivateKeyFile(f, key), /already exists/);
  }
});

test("keys: small RSA and unknown curves are refused", async () => {
  const dir = tempDir();
  const f = join(dir, "k.pem");
  const r1 = await openssl(dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", f);
  assert.equal(r1.code, 0);
  assert.throws(() => privateKeyFromPem(readFileSync(f, "utf8")), /1024 bits is too small/);
  const r2 = await openssl(dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-out", f);
  assert.equal(r2.code, 0);
  assert.throws(() => privateKeyFromPem(readFileSync(f, "utf8")), /unsupported elliptic curve secp256k1/);
  assert.throws(() => privateKeyFromPem("garbage"), /cannot read the private key/);
});

test("CSRs: built like albatross', openssl verifies them and reads the extension; tampering is detected", async () => {
  const dir = tempDir();
  for (const t of KEY_TYPES.filter((k) => k !== "rsa4096")) {
    const key = await generateKey(t);
    const value = encodeCertExtension({ version: 5, command: consoleCmd });
    const der = buildCsr(key, "foo", [ext.albatross(value)]);
    const f = join(dir, `${t}.req`);
    writeFileSync(f, csrToPem(der));
    const r = await openssl(dir, "req", "-verify", "-in", f, "-noout", "-text");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /verify OK/);
    assert.match(r.stdout, /Subject: CN = foo/);
    assert.match(r.stdout, /1\.3\.6\.1\.4\.1\.49836\.42:\s*\n/);
    assert.doesNotMatch(r.stdout, /49836\.42: critical/);
    const p = parseCsr(der);
    assert.equal(p.extensions.length, 1);
    assert.equal(hex(p.extensions[0]!.value), hex(value));
    assert.equal(p.extensions[0]!.critical, false);
    // flip one byte of the signed part (inside the extension value)
    const bad = new Uint8Array(der);
    const at = Buffer.from(bad).indexOf(Buffer.from(value));
    bad[at + value.length - 1] ^= 1;
    assert.throws(() => parseCsr(bad), /signing request: invalid signature/);
  }
  assert.throws(() => parseCsrPem("nothing here"), CsrError);
});
