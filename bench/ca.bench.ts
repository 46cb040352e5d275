// Issuing leaf command certificates (what `sign` and remote mode do per command) vs. the raw
// WebCrypto signature rate for the same key type, measured in the same run. Issuance is
// @peculiar/x509's X509CertificateGenerator (ASN.1 schema encoding, SHA-1 key identifiers,
// one WebCrypto sign) plus our strict re-parse of the result; the ratio certs/sign is the
// share of the time that is the signature itself (1.00 = the library's and our overhead is
// nothing next to signing).
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { encodeCertExtension } from "../src/commands/codec.js";
import { encodeCnName } from "../src/ca/asn1.js";
import { issueCertificate, validity } from "../src/ca/issue.js";
import { generateKey, spkiDer, type KeyType } from "../src/ca/keys.js";

const N = 1000;

const WEBCRYPTO: Record<
  "ed25519" | "p256",
  { importAlg: Parameters<typeof webcrypto.subtle.importKey>[2]; signAlg: Parameters<typeof webcrypto.subtle.sign>[0] }
> = {
  ed25519: { importAlg: { name: "Ed25519" }, signAlg: { name: "Ed25519" } },
  p256: { importAlg: { name: "ECDSA", namedCurve: "P-256" }, signAlg: { name: "ECDSA", hash: "SHA-256" } },
};

async function one(type: "ed25519" | "p256"): Promise<void> {
  const caKey = await generateKey(type as KeyType);
  const leafKey = await generateKey(type as KeyType);
  const issuerName = encodeCnName("user");
  const subject = encodeCnName("hello");
  const spki = spkiDer(leafKey);
  const albatross = encodeCertExtension({ version: 5, command: { kind: "console-subscribe", sinceCount: { kind: "count", count: 20 } } });

  // warm-up
  for (let i = 0; i < 50; i++)
    await issueCertificate({ profile: "leaf", subject, spki, issuerName, issuerKey: caKey, albatross, ...validity(new Date(), 86400) });

  let size = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    size = (await issueCertificate({ profile: "leaf", subject, spki, issuerName, issuerKey: caKey, albatross, ...validity(new Date(), 86400) })).length;
  }
  const certMs = performance.now() - t0;

  // raw WebCrypto signatures over a message of the certificate's size, same key
  const w = WEBCRYPTO[type];
  const pkcs8 = caKey.export({ type: "pkcs8", format: "der" });
  const ck = await webcrypto.subtle.importKey("pkcs8", pkcs8, w.importAlg, false, ["sign"]);
  const msg = new Uint8Array(size);
  for (let i = 0; i < 50; i++) await webcrypto.subtle.sign(w.signAlg, ck, msg);
  const t1 = performance.now();
  for (let i = 0; i < N; i++) {
    msg[0] = i & 0xff;
    await webcrypto.subtle.sign(w.signAlg, ck, msg);
  }
  const signMs = performance.now() - t1;

  const certRate = (N / certMs) * 1000;
  const signRate = (N / signMs) * 1000;
  console.log(
    `${type.padEnd(8)} ${N} leaf certificates (${size} bytes) in ${certMs.toFixed(0)} ms = ${certRate.toFixed(0)} certs/s; ` +
      `raw WebCrypto sign ${signRate.toFixed(0)}/s; certs/sign ratio ${(certRate / signRate).toFixed(2)}`,
  );
}

export async function run(): Promise<void> {
  await one("ed25519");
  await one("p256");
}
