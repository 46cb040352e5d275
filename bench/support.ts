// What several benchmarks share: certificates made on the fly, and medians.
import type { KeyObject } from "node:crypto";
import { encodeCnName } from "../src/ca/asn1.js";
import { issueCertificate, type Profile, validity } from "../src/ca/issue.js";
import { generateKey, spkiDer } from "../src/ca/keys.js";
import { toPem } from "../src/ca/x509.js";
import { encodeCertExtension } from "../src/commands/codec.js";
import type { Command } from "../src/commands/types.js";

export interface Cert {
  key: KeyObject;
  der: Uint8Array;
  cn: string;
}

/** An Ed25519 certificate named `cn`, self-signed or issued by `issuer`, carrying `albatross` when given; valid for an hour. */
export async function cert(profile: Profile, cn: string, issuer: Cert | null, albatross?: Command): Promise<Cert> {
  const key = await generateKey("ed25519");
  const der = await issueCertificate({
    profile,
    subject: encodeCnName(cn),
    spki: spkiDer(key),
    issuerName: encodeCnName(issuer?.cn ?? cn),
    issuerKey: issuer?.key ?? key,
    ...(albatross ? { albatross: encodeCertExtension({ version: 5, command: albatross }) } : {}),
    ...validity(new Date(), 3600),
  });
  return { key, der, cn };
}

export const pem = (...cs: Cert[]): string => cs.map((c) => toPem(c.der, "CERTIFICATE")).join("");

/** The median (the mean of the middle two for an even count). */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The upper median: the middle value, or the higher of the middle two. */
export const upperMedian = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
