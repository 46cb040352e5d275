// Certificate reading/building, keys at rest, CSRs.
import "reflect-metadata";
import { SubjectKeyIdentifierExtension } from "@peculiar/x509";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OID, encodeCnName } from "../../src/ca/asn1.js";
import { hex } from "../../src/core/hex.js";
import { issueCertificate, validity, type Profile } from "../../src/ca/issue.js";
import {
  KEY_TYPES,
  generateKey,
  spkiDer,
  keyMatchesSpki,
  pathExists,
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
  readSpki,
  serialFromRandom,
  subjectKeyId,
  toPem,
} from "../../src/ca/x509.js";
import { buildCsr, csrToPem, parseCsr, parseCsrPem, CsrError } from "../../src/ca/csr.js";
import { ext } from "../../src/ca/x509.js";
import { consoleCmd, make, openssl, tempDir, vectorCerts } from "../support/ca.js";
import { encodeCertExtension } from "../../src/commands/codec.js";
import { Cursor } from "../../src/commands/der.js";

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

test("validity: now - 10 s .. now + n s, whole seconds", () => {
  const v = validity(new Date("2025-08-22T13:04:53.700Z"), 300);
  assert.equal(v.notBefore.toISOString(), "2025-08-22T13:04:43.000Z");
  assert.equal(v.notAfter.toISOString(), "2025-08-22T13:09:53.000Z");
});

// --- the bytes @peculiar/x509's generator writes for us (cli.md §4) ---

const ALBATROSS_OID_DER = "06092b0601040183852c2a";
const tlvHex = (tag: number, contentHex: string): string => {
  const n = contentHex.length / 2;
  const len = n < 0x80 ? n.toString(16).padStart(2, "0") : n < 0x100 ? "81" + n.toString(16).padStart(2, "0") : "82" + n.toString(16).padStart(4, "0");
  return tag.toString(16).padStart(2, "0") + len + contentHex;
};
/** The contents of the TLV in `h` (definite lengths up to 0x82 forms). */
const contentHex = (h: string): string => {
  const l = parseInt(h.slice(2, 4), 16);
  return h.slice(l < 0x80 ? 4 : 4 + (l - 0x80) * 2);
};
/** DER of one Extension: non-critical ones without the BOOLEAN (DEFAULT FALSE). */
const extHex = (oidDer: string, critical: boolean, valueHex: string) => tlvHex(0x30, oidDer + (critical ? "0101ff" : "") + tlvHex(0x04, valueHex));
/** The tail of the TBS: [3] { SEQUENCE OF Extension } */
const extensionsHex = (...exts: string[]) => tlvHex(0xa3, tlvHex(0x30, exts.join("")));

async function built(
  profile: Profile,
  o: { random?: Uint8Array; notBefore?: Date; notAfter?: Date; albatross?: Uint8Array; issuerType?: "ed25519" | "p256" | "p384" | "p521" | "rsa2048" } = {},
) {
  const issuerKey = await generateKey(o.issuerType ?? "ed25519");
  const key = profile === "root" ? issuerKey : await generateKey("p256");
  const spki = spkiDer(key);
  const der = await issueCertificate({
    profile,
    subject: encodeCnName(profile === "root" ? "root CA" : "hello"),
    spki,
    issuerName: encodeCnName("root CA"),
    issuerKey,
    ...(o.albatross ? { albatross: o.albatross } : {}),
    notBefore: o.notBefore ?? new Date("2026-01-01T00:00:00Z"),
    notAfter: o.notAfter ?? new Date("2027-01-01T00:00:00Z"),
    ...(o.random ? { random: o.random } : {}),
  });
  const c = parseCertificate(der);
  const issuerSpki = readSpki(Cursor.of(spkiDer(issuerKey), "spki"), "spki");
  return { der, c, hexDer: hex(der), tbsHex: hex(c.tbs), subjectKeyId: hex(keyId(c.publicKey.key)), issuerKeyId: hex(keyId(issuerSpki.key)) };
}

test("serials follow ocaml-x509's prefix rule, and the generator writes them unchanged", async () => {
  const r = (first: number, second: number) => Uint8Array.of(first, second, 1, 2, 3, 4, 5, 6, 7, 8);
  const cases: Array<[Uint8Array, string]> = [
    [r(0x80, 0), "00800001020304050607" + "08"],
    [r(0x00, 0x7f), "7f007f0102030405060708"],
    [r(0x00, 0x80), "00800102030405060708"],
    [r(0x12, 0x00), "12000102030405060708"],
    [r(0x00, 0x00), "7f00000102030405060708"],
    [r(0xff, 0xff), "00ffff0102030405060708"],
  ];
  for (const [random, want] of cases) {
    assert.equal(hex(serialFromRandom(random)), want);
    const b = await built("leaf", { random, albatross: Uint8Array.of(0x30, 0x00) });
    // the TBS opens with version [0] v3, then the serial INTEGER exactly as computed
    assert.ok(contentHex(b.tbsHex).startsWith("a003020102" + tlvHex(0x02, want)), want);
    assert.equal(hex(b.c.serial), want);
  }
});

test("subject and issuer are one RDN CN=<name> as UTF8String (also printable and empty names)", async () => {
  for (const cn of ["hello", "root CA", "", "é-ü", "a".repeat(200)]) {
    const utf8 = Buffer.from(cn, "utf8").toString("hex");
    assert.equal(hex(encodeCnName(cn)), tlvHex(0x30, tlvHex(0x31, tlvHex(0x30, "0603550403" + tlvHex(0x0c, utf8)))));
  }
  const b = await built("leaf", { albatross: Uint8Array.of(0x30, 0x00) });
  assert.equal(hex(b.c.subjectDer), "3010310e300c06035504030c0568656c6c6f");
  assert.equal(hex(b.c.issuerDer), hex(encodeCnName("root CA")));
  assert.ok(b.tbsHex.includes(hex(encodeCnName("root CA")) + "301e170d"), "issuer followed by validity");
  // a subject name the generator would re-encode differently (invalid UTF-8) is refused, not changed
  const key = await generateKey("ed25519");
  const badName = Uint8Array.of(0x30, 0x0c, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 0xff);
  await assert.rejects(
    issueCertificate({ profile: "server", subject: badName, spki: spkiDer(key), issuerName: encodeCnName("ca"), issuerKey: key, ...validity(new Date(), 60) }),
    (e: unknown) => e instanceof CertificateError && /subject name cannot be re-encoded unchanged/.test(e.message),
  );
});

test("validity: UTCTime up to 2049, GeneralizedTime from 2050, whole seconds; years before 1950 refused", async () => {
  const b = await built("leaf", {
    albatross: Uint8Array.of(0x30, 0x00),
    notBefore: new Date("2049-12-31T23:59:59.999Z"),
    notAfter: new Date("2050-01-01T00:00:00Z"),
  });
  const utc = tlvHex(0x17, Buffer.from("491231235959Z").toString("hex"));
  const gen = tlvHex(0x18, Buffer.from("20500101000000Z").toString("hex"));
  assert.ok(b.tbsHex.includes(tlvHex(0x30, utc + gen)), b.tbsHex);
  assert.equal(b.c.notBefore.toISOString(), "2049-12-31T23:59:59.000Z");
  await assert.rejects(built("leaf", { albatross: Uint8Array.of(0x30, 0x00), notBefore: new Date("1949-12-31T00:00:00Z") }), /year 1949 cannot be encoded/);
});

test("extension sets: exact DER, criticality and order per profile", async () => {
  const albatross = encodeCertExtension({ version: 5, command: consoleCmd });
  const ku = (bits: string) => extHex("0603551d0f", true, bits);
  const bc = (ca: boolean) => extHex("0603551d13", true, ca ? "30030101ff" : "3000");
  const eku = (purpose: string) => extHex("0603551d25", true, tlvHex(0x30, "06082b0601050507030" + purpose));
  const ski = (id: string) => extHex("0603551d0e", false, tlvHex(0x04, id));
  const aki = (id: string) => extHex("0603551d23", false, tlvHex(0x30, tlvHex(0x80, id)));
  const alb = extHex(ALBATROSS_OID_DER, false, hex(albatross));

  const root = await built("root");
  // the root: keyUsage(keyCertSign, cRLSign, digitalSignature, nonRepudiation), CA:TRUE, no key ids
  assert.ok(root.tbsHex.endsWith(extensionsHex(ku("030201c6"), bc(true))), root.tbsHex);

  const inter = await built("intermediate", { albatross });
  assert.ok(inter.tbsHex.endsWith(extensionsHex(alb, ski(inter.subjectKeyId), ku("030201c6"), bc(true), aki(inter.issuerKeyId))), inter.tbsHex);

  const leaf = await built("leaf", { albatross });
  assert.ok(leaf.tbsHex.endsWith(extensionsHex(alb, ski(leaf.subjectKeyId), ku("030205a0"), bc(false), aki(leaf.issuerKeyId), eku("2"))), leaf.tbsHex);

  const server = await built("server");
  assert.ok(server.tbsHex.endsWith(extensionsHex(ski(server.subjectKeyId), ku("030205a0"), bc(false), aki(server.issuerKeyId), eku("1"))), server.tbsHex);
  assert.deepEqual(
    server.c.extensions.map((e) => [e.oid, e.critical]),
    [
      [OID.subjectKeyIdentifier, false],
      [OID.keyUsage, true],
      [OID.basicConstraints, true],
      [OID.authorityKeyIdentifier, false],
      [OID.extKeyUsage, true],
    ],
  );
  await assert.rejects(built("leaf"), /a leaf certificate needs an albatross extension/);
  // our key identifier is the library's (SubjectKeyIdentifierExtension.create), for every key type
  for (const t of KEY_TYPES.filter((k) => k !== "rsa4096")) {
    const spki = spkiDer(await generateKey(t));
    const lib = await SubjectKeyIdentifierExtension.create(spki);
    assert.equal(lib.keyId, hex(keyId(readSpki(Cursor.of(spki, "spki"), "spki").key)), t);
  }
});

test("signature algorithms per issuer key type (TBS and outer identical), openssl verifies", async () => {
  const dir = tempDir();
  const want = {
    ed25519: "300506032b6570",
    p256: "300a06082a8648ce3d040302",
    p384: "300a06082a8648ce3d040303",
    p521: "300a06082a8648ce3d040304",
    rsa2048: "300d06092a864886f70d01010b0500",
  } as const;
  for (const [t, alg] of Object.entries(want) as Array<[keyof typeof want, string]>) {
    const b = await built("root", { issuerType: t, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) });
    assert.equal(b.c.tbsSignatureAlgorithm.oid, b.c.signatureAlgorithm.oid);
    // outer AlgorithmIdentifier right after the TBS
    assert.ok(b.hexDer.includes(b.tbsHex + alg), `${t}: outer algorithm`);
    // and the same one inside the TBS, right after the serial
    assert.ok(b.tbsHex.includes(tlvHex(0x02, hex(b.c.serial)) + alg), `${t}: TBS algorithm`);
    const f = join(dir, `${t}.pem`);
    writeFileSync(f, `-----BEGIN CERTIFICATE-----\n${Buffer.from(b.der).toString("base64")}\n-----END CERTIFICATE-----\n`);
    const r = await openssl(dir, "verify", "-CAfile", f, f);
    assert.equal(r.code, 0, `${t}: ${r.stdout}${r.stderr}`);
  }
});

test("hostile certificate input gives one-line errors", () => {
  const [leaf] = vectorCerts("cert-console-foo-leaf.pem");
  const der = new Uint8Array(leaf!.rawData);
  // truncated
  assert.throws(
    () => parseCertificate(der.subarray(0, der.length - 5)),
    (e: unknown) => e instanceof CertificateError && !e.message.includes("\n"),
  );
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
    assert.equal(keyMatchesSpki(n.key, parsed(n.cert).publicKey.der), true);
    assert.equal(keyMatchesSpki(back, parsed(n.cert).publicKey.der), false);
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
  assert.throws(() => privateKeyFromPem("garbage"), /^KeyError: not a private key \(no PEM block found\); give the \.key file$/);
  assert.throws(() => privateKeyFromPem(""), /not a private key \(the file is empty\)/);
  assert.throws(
    () => privateKeyFromPem("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"),
    /^KeyError: cannot read the private key: its PRIVATE KEY block does not decode/,
  );
});

test("keys: a file that is not a private key says what it holds; one with a key after a certificate is read", async () => {
  const n = await make({ profile: "root", cn: "ca" });
  const certPem = toPem(n.der, "CERTIFICATE");
  assert.throws(() => privateKeyFromPem(certPem), /^KeyError: not a private key \(found a CERTIFICATE PEM block\); give the \.key file$/);
  const pub = createPublicKey(n.key).export({ type: "spki", format: "pem" }) as string;
  assert.throws(() => privateKeyFromPem(pub), /not a private key \(found a PUBLIC KEY PEM block\)/);
  // an encrypted key without its password keeps its own message
  assert.throws(() => privateKeyFromPem(privateKeyToPem(n.key, "pw")), /encrypted, a password is needed/);
  // a certificate and its key in one file: the key is found
  assert.equal(keyMatchesSpki(privateKeyFromPem(certPem + privateKeyToPem(n.key)), parsed(n.cert).publicKey.der), true);
  const dir = tempDir();
  const f = join(dir, "ca.pem");
  writeFileSync(f, certPem);
  await assert.rejects(readPrivateKeyFile(f), (e: Error) => e.message === `${f}: not a private key (found a CERTIFICATE PEM block); give the .key file`);
});

test("CSRs: built like albatross', openssl verifies them and reads the extension; tampering is detected", async () => {
  const dir = tempDir();
  for (const t of KEY_TYPES.filter((k) => k !== "rsa4096")) {
    const key = await generateKey(t);
    const value = encodeCertExtension({ version: 5, command: consoleCmd });
    const der = await buildCsr(key, "foo", [ext.albatross(value)]);
    // byte level: CN=foo as UTF8String; one extensionRequest attribute holding exactly the
    // non-critical albatross extension
    const p0 = parseCsr(der);
    assert.equal(hex(p0.subjectDer), hex(encodeCnName("foo")));
    assert.ok(hex(p0.subjectDer).includes("0c03666f6f"));
    const attr = tlvHex(0xa0, tlvHex(0x30, "06092a864886f70d01090e" + tlvHex(0x31, tlvHex(0x30, extHex(ALBATROSS_OID_DER, false, hex(value))))));
    assert.ok(hex(der).includes(hex(p0.publicKey.der) + attr), "attributes follow the key");
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
    bad[at + value.length - 1]! ^= 1; // inside `bad`: the extension value was found in it
    assert.throws(() => parseCsr(bad), /signing request: invalid signature/);
  }
  assert.throws(() => parseCsrPem("nothing here"), CsrError);
});

/** Malformed SIGNED{} envelopes made from a well-formed certificate or request. */
function envelopeCases(der: Uint8Array): Record<string, Uint8Array> {
  const tlv = (tag: number, content: Uint8Array): Uint8Array => {
    const n = content.length;
    const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
    return Uint8Array.from([tag, ...len, ...content]);
  };
  const c = Cursor.of(der);
  const outer = c.into(0x30, "outer");
  const [tbs, alg, sig] = [0, 1, 2].map(() => {
    const t = outer.next("part");
    return der.subarray(t.start, t.end);
  }) as [Uint8Array, Uint8Array, Uint8Array];
  const seq = (...xs: Uint8Array[]): Uint8Array => tlv(0x30, Uint8Array.from(xs.flatMap((x) => [...x])));
  const content = (t: Uint8Array): Uint8Array => t.subarray(t[1]! < 0x80 ? 2 : 2 + (t[1]! & 0x7f));
  return {
    empty: new Uint8Array(0),
    outerSet: tlv(0x31, content(der)),
    trailing: Uint8Array.of(...der, 0),
    nothingInside: seq(),
    tbsOnly: seq(tbs),
    noSignature: seq(tbs, alg),
    afterSignature: seq(tbs, alg, sig, Uint8Array.of(5, 0)),
    tbsSet: seq(tlv(0x31, content(tbs)), alg, sig),
    algTrailing: seq(tbs, tlv(0x30, Uint8Array.of(...content(alg), 5, 0, 5, 0)), sig),
    sigEmpty: seq(tbs, alg, tlv(0x03, new Uint8Array(0))),
    sigUnusedBits: seq(tbs, alg, tlv(0x03, Uint8Array.of(1, ...content(sig).subarray(1)))),
    sigOctets: seq(tbs, alg, tlv(0x04, content(sig))),
  };
}

test("the SIGNED{} envelope: certificate and request parsers keep their own error texts", async () => {
  const [leaf] = vectorCerts("cert-console-foo-leaf.pem");
  const cert = envelopeCases(new Uint8Array(leaf!.rawData));
  const certWant: Record<string, string> = {
    empty: "missing certificate at byte 0 (certificate.certificate)",
    outerSet: "expected tag 0x30 for certificate, got 0x31 at byte 0 (certificate.certificate)",
    trailing: "1 trailing bytes at byte 369 (certificate)",
    nothingInside: "missing tbsCertificate at byte 2 (certificate..tbsCertificate)",
    tbsOnly: "missing signatureAlgorithm at byte 295 (certificate..signatureAlgorithm)",
    noSignature: "missing signatureValue at byte 302 (certificate..signatureValue)",
    afterSignature: "2 trailing bytes at byte 369 (certificate.)",
    tbsSet: "expected tag 0x30 for tbsCertificate, got 0x31 at byte 4 (certificate..tbsCertificate)",
    algTrailing: "2 trailing bytes at byte 304 (certificate..signatureAlgorithm)",
    sigEmpty: "empty BIT STRING at byte 302 (certificate..signatureValue)",
    sigUnusedBits: "BIT STRING with unused bits where whole bytes are expected at byte 302 (certificate..signatureValue)",
    sigOctets: "expected tag 0x03 for signatureValue, got 0x04 at byte 302 (certificate..signatureValue)",
  };
  const req = envelopeCases(await buildCsr(await generateKey("ed25519"), "envelope", []));
  // an Ed25519 request for CN=envelope is 149 bytes, whatever the key
  const reqWant: Record<string, string> = {
    empty: "missing request at byte 0 (request.request)",
    outerSet: "expected tag 0x30 for request, got 0x31 at byte 0 (request.request)",
    trailing: "1 trailing bytes at byte 149 (request)",
    nothingInside: "missing certificationRequestInfo at byte 2 (request..certificationRequestInfo)",
    tbsOnly: "missing signatureAlgorithm at byte 74 (request..signatureAlgorithm)",
    noSignature: "missing signature at byte 81 (request..signature)",
    afterSignature: "2 trailing bytes at byte 149 (request.)",
    tbsSet: "expected tag 0x30 for certificationRequestInfo, got 0x31 at byte 3 (request..certificationRequestInfo)",
    algTrailing: "2 trailing bytes at byte 84 (request..signatureAlgorithm)",
    // one message for both failures, at the byte after the BIT STRING (not at its start)
    sigEmpty: "invalid signature BIT STRING at byte 83 (request..signature)",
    sigUnusedBits: "invalid signature BIT STRING at byte 149 (request..signature)",
    sigOctets: "expected tag 0x03 for signature, got 0x04 at byte 82 (request..signature)",
  };
  assert.equal(Object.keys(certWant).length, Object.keys(cert).length);
  assert.equal(Object.keys(reqWant).length, Object.keys(req).length);
  for (const [name, der] of Object.entries(cert)) {
    assert.throws(
      () => parseCertificate(der),
      (e: unknown) => {
        assert.ok(e instanceof CertificateError);
        assert.equal(e.message, `malformed certificate: ${certWant[name]}`, name);
        return true;
      },
    );
  }
  for (const [name, der] of Object.entries(req)) {
    assert.throws(
      () => parseCsr(der),
      (e: unknown) => {
        assert.ok(e instanceof CsrError);
        assert.equal(e.message, `malformed signing request: ${reqWant[name]}`, name);
        return true;
      },
    );
  }
});

test("pathExists: absent is false, a file or a dangling link is there, other failures in the caller's class", async () => {
  class MyError extends Error {}
  const mine = (m: string): Error => new MyError(m);
  const dir = tempDir();
  assert.equal(await pathExists(join(dir, "none"), mine), false);
  writeFileSync(join(dir, "file"), "x");
  assert.equal(await pathExists(join(dir, "file"), mine), true);
  symlinkSync(join(dir, "none"), join(dir, "link"));
  assert.equal(await pathExists(join(dir, "link"), mine), true);
  const under = join(dir, "file", "below");
  await assert.rejects(pathExists(under, mine), (e: unknown) => {
    assert.ok(e instanceof MyError);
    assert.equal(e.message, `cannot access ${under}: ENOTDIR: not a directory, lstat '${under}'`);
    return true;
  });
});
