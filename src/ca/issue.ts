// Building the four kinds of certificates albatross-client produces (cli.md §4): the
// self-signed root CA of `generate`, intermediate (delegation) CAs carrying a policy, leaf
// command certificates, and the TLS server certificate.
//
// @peculiar/x509's X509CertificateGenerator assembles, encodes and signs the certificate;
// what is ours is the albatross profile: which extensions, with which criticality, the
// upstream serial rule, the validity window. Where the library decides an encoding detail
// that cli.md fixes, the choice is pinned here and checked on the result:
// * serial: the generator takes hex, strips leading zero bytes and re-adds `00` before a high
//   bit; serialFromRandom's output is already minimal and positive, so it passes unchanged
//   (including upstream's `7f` prefix, which the library would never invent itself);
// * names: the caller's DER Name goes in as a library Name, which the generator re-encodes;
//   the result must equal the input byte for byte (a name that does not survive, e.g. invalid
//   UTF-8, is refused rather than silently changed);
// * times: the library writes UTCTime up to 2049 and GeneralizedTime from 2050 on, whole
//   seconds (RFC 5280); years it cannot write correctly (before 1950) are refused up front.

import "reflect-metadata";
import type { KeyObject } from "node:crypto";
import { randomBytes } from "node:crypto";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension as X509Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from "@peculiar/x509";
import { Cursor, type Bytes } from "../commands/der.js";
import { ALBATROSS_OID } from "../commands/types.js";
import { bytesEqual } from "./asn1.js";
import { hex } from "../core/hex.js";
import { firstLine } from "../core/text.js";
import { signingKeys, spkiDer, webCrypto } from "./keys.js";
import { CertificateError, keyId, parseCertificate, readSpki, serialFromRandom } from "./x509.js";

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

const CA_USAGES = KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation;
const END_ENTITY_USAGES = KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment;

/** A copy the library may keep (it wants whole ArrayBuffers, not views into larger ones). */
const own = (b: Bytes): Uint8Array => Uint8Array.from(b);

/**
 * Key identifier of a DER SubjectPublicKeyInfo as cli.md §4 defines it (and as
 * SubjectKeyIdentifierExtension.create computes it, RFC 5280 §4.2.1.2 method 1): SHA-1 over
 * the subjectPublicKey BIT STRING contents. Computed here, synchronously, from our strict
 * SPKI reader, which saves `create`'s second SPKI parse and asynchronous WebCrypto digest
 * (test/ca/x509.test.ts checks both give the same identifier for every key type).
 */
const spkiKeyId = (spki: Bytes): string => hex(keyId(readSpki(Cursor.of(spki, "subjectPublicKeyInfo"), "subjectPublicKeyInfo").key));

// authorityKeyIdentifier of a CA key, built once per key object (a CA signs many certificates)
const akiCache = new WeakMap<KeyObject, AuthorityKeyIdentifierExtension>();

function authorityKeyIdFor(issuerKey: KeyObject): AuthorityKeyIdentifierExtension {
  let e = akiCache.get(issuerKey);
  if (e === undefined) {
    e = new AuthorityKeyIdentifierExtension(spkiKeyId(spkiDer(issuerKey)), false);
    akiCache.set(issuerKey, e);
  }
  return e;
}

/**
 * The extensions of each profile, in upstream's order (albatross, subjectKeyIdentifier,
 * keyUsage, basicConstraints, authorityKeyIdentifier, extKeyUsage). Criticality as cli.md
 * §4: keyUsage, basicConstraints and extKeyUsage critical, the rest not. The root has no key
 * identifiers; authorityKeyIdentifier is `[0] keyIdentifier` only.
 */
function profileExtensions(r: Pick<IssueRequest, "profile" | "spki" | "issuerKey" | "albatross">): X509Extension[] {
  const ids = r.profile !== "root";
  const fixed = FIXED[r.profile]();
  const out: X509Extension[] = [];
  if (r.albatross !== undefined) out.push(new X509Extension(ALBATROSS_OID, false, own(r.albatross)));
  if (ids) out.push(new SubjectKeyIdentifierExtension(spkiKeyId(r.spki), false));
  out.push(fixed.keyUsage, fixed.basicConstraints);
  if (ids) out.push(authorityKeyIdFor(r.issuerKey));
  if (fixed.extKeyUsage) out.push(fixed.extKeyUsage);
  return out;
}

interface FixedExtensions {
  readonly keyUsage: KeyUsagesExtension;
  readonly basicConstraints: BasicConstraintsExtension;
  readonly extKeyUsage?: ExtendedKeyUsageExtension;
}

/** The key-independent extensions of a profile, built once (the generator only reads them). */
function fixedExtensions(ca: boolean, purpose?: ExtendedKeyUsage): () => FixedExtensions {
  let v: FixedExtensions | undefined;
  return () =>
    (v ??= {
      keyUsage: new KeyUsagesExtension(ca ? CA_USAGES : END_ENTITY_USAGES, true),
      // CA:TRUE without pathLenConstraint; CA:FALSE is the DEFAULT, hence an empty SEQUENCE
      basicConstraints: new BasicConstraintsExtension(ca, undefined, true),
      ...(purpose === undefined ? {} : { extKeyUsage: new ExtendedKeyUsageExtension([purpose], true) }),
    });
}

const FIXED: Record<Profile, () => FixedExtensions> = {
  root: fixedExtensions(true),
  intermediate: fixedExtensions(true),
  leaf: fixedExtensions(false, ExtendedKeyUsage.clientAuth),
  server: fixedExtensions(false, ExtendedKeyUsage.serverAuth),
};

function checkTime(d: Date, what: string): void {
  const y = d.getUTCFullYear();
  if (!Number.isFinite(d.getTime())) throw new RangeError(`invalid ${what}`);
  if (y < 1950 || y > 9999) throw new RangeError(`year ${y} cannot be encoded in a certificate (${what})`);
}

/**
 * Sign a new certificate; returns its DER. A root goes through `create` too, with issuer =
 * subject and its own key: that is all `createSelfSigned` does, and it would want the public
 * half as a CryptoKey where `create` takes our SPKI bytes.
 */
export async function issueCertificate(r: IssueRequest): Promise<Bytes> {
  if ((r.profile === "intermediate" || r.profile === "leaf") && r.albatross === undefined) {
    throw new RangeError(`a ${r.profile} certificate needs an albatross extension`);
  }
  checkTime(r.notBefore, "notBefore");
  checkTime(r.notAfter, "notAfter");
  const serial = serialFromRandom(r.random ?? new Uint8Array(randomBytes(10)));
  const signer = await signingKeys(r.issuerKey);
  let der: Bytes;
  try {
    const cert = await X509CertificateGenerator.create(
      {
        serialNumber: hex(serial),
        subject: new Name(own(r.subject)),
        issuer: new Name(own(r.issuerName)),
        notBefore: r.notBefore,
        notAfter: r.notAfter,
        publicKey: own(r.spki),
        signingKey: signer.keys.privateKey,
        signingAlgorithm: signer.algorithm,
        extensions: profileExtensions(r),
      },
      webCrypto,
    );
    der = new Uint8Array(cert.rawData);
  } catch (e) {
    throw new CertificateError(`cannot build the certificate: ${firstLine(e)}`);
  }
  // The library re-encodes what it is given; make sure it wrote what cli.md asks for.
  const p = parseCertificate(der);
  if (!bytesEqual(p.serial, serial)) throw new CertificateError(`serial ${hex(serial)} was written as ${hex(p.serial)}`);
  if (!bytesEqual(p.subjectDer, r.subject)) throw new CertificateError("the subject name cannot be re-encoded unchanged");
  if (!bytesEqual(p.issuerDer, r.issuerName)) throw new CertificateError("the issuer name cannot be re-encoded unchanged");
  if (!bytesEqual(p.publicKey.der, r.spki)) throw new CertificateError("the public key cannot be re-encoded unchanged");
  return der;
}

/** Validity as upstream computes it: now - 10 s .. now + seconds, in whole seconds. */
export function validity(now: Date, seconds: number): { notBefore: Date; notAfter: Date } {
  const t = Math.floor(now.getTime() / 1000) * 1000;
  return { notBefore: new Date(t - 10_000), notAfter: new Date(t + seconds * 1000) };
}

export const DAY = 86_400;
