// Building the four kinds of certificates albatross-client produces (cli.md §4): the
// self-signed root CA of `generate`, intermediate (delegation) CAs carrying a policy, leaf
// command certificates, and the TLS server certificate.

import type { KeyObject } from "node:crypto";
import { randomBytes } from "node:crypto";
import type { Bytes } from "../commands/der.js";
import { OID } from "./asn1.js";
import { signWith, signatureAlgorithmFor, spkiDer } from "./keys.js";
import { KU, encodeSigned, encodeTbs, ext, keyId, readSpki, serialFromRandom, type Extension } from "./x509.js";
import { Cursor } from "../commands/der.js";

export type Profile = "root" | "intermediate" | "leaf" | "server";

export interface IssueRequest {
  readonly profile: Profile;
  /** DER Name of the new certificate */
  readonly subject: Bytes;
  /** DER SubjectPublicKeyInfo of the new certificate */
  readonly spki: Bytes;
  /** DER Name of the issuer (for a root: equal to subject) */
  readonly issuerName: Bytes;
  readonly issuerKey: KeyObject;
  /** albatross extension value (intermediate: policy add; leaf: the command) */
  readonly albatross?: Bytes;
  /** start of validity, already including the 10 s of clock skew allowance */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** 10 random bytes; default crypto.randomBytes */
  readonly random?: Bytes;
}

/** The extensions of each profile, in upstream's order. */
export function profileExtensions(r: Pick<IssueRequest, "profile" | "spki" | "issuerKey" | "albatross">): Extension[] {
  const out: Extension[] = [];
  const ids = r.profile !== "root";
  if (r.albatross !== undefined) out.push(ext.albatross(r.albatross));
  if (ids) {
    const pub = readSpki(Cursor.of(r.spki, "spki"), "spki");
    out.push(ext.subjectKeyId(keyId(pub.key)));
  }
  switch (r.profile) {
    case "root":
    case "intermediate":
      out.push(ext.keyUsage([KU.keyCertSign, KU.cRLSign, KU.digitalSignature, KU.contentCommitment]));
      out.push(ext.basicConstraints(true));
      break;
    case "leaf":
    case "server":
      out.push(ext.keyUsage([KU.digitalSignature, KU.keyEncipherment]));
      out.push(ext.basicConstraints(false));
      break;
  }
  if (ids) out.push(ext.authorityKeyId(issuerKeyId(r.issuerKey)));
  if (r.profile === "leaf") out.push(ext.extKeyUsage([OID.clientAuth]));
  if (r.profile === "server") out.push(ext.extKeyUsage([OID.serverAuth]));
  return out;
}

const keyIdCache = new WeakMap<KeyObject, Bytes>();

/** Key id (SHA-1 of the public key bits) of a CA key, remembered per key object. */
function issuerKeyId(key: KeyObject): Bytes {
  let id = keyIdCache.get(key);
  if (!id) {
    id = keyId(readSpki(Cursor.of(spkiDer(key), "spki"), "spki").key);
    keyIdCache.set(key, id);
  }
  return id;
}

/** Sign a new certificate; returns its DER. */
export function issueCertificate(r: IssueRequest): Bytes {
  if ((r.profile === "intermediate" || r.profile === "leaf") && r.albatross === undefined) {
    throw new RangeError(`a ${r.profile} certificate needs an albatross extension`);
  }
  const sigAlg = signatureAlgorithmFor(r.issuerKey);
  const tbs = encodeTbs({
    serial: serialFromRandom(r.random ?? new Uint8Array(randomBytes(10))),
    signatureAlgorithm: sigAlg,
    issuer: r.issuerName,
    notBefore: r.notBefore,
    notAfter: r.notAfter,
    subject: r.subject,
    spki: r.spki,
    extensions: profileExtensions(r),
  });
  return encodeSigned(tbs, sigAlg, signWith(r.issuerKey, tbs));
}

/** Validity as upstream computes it: now - 10 s .. now + seconds, in whole seconds. */
export function validity(now: Date, seconds: number): { notBefore: Date; notAfter: Date } {
  const t = Math.floor(now.getTime() / 1000) * 1000;
  return { notBefore: new Date(t - 10_000), notAfter: new Date(t + seconds * 1000) };
}

export const DAY = 86_400;
