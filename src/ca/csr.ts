// PKCS#10 certification requests (RFC 2986) as albatross writes and reads them: subject
// `CN=<cn>` (UTF8String), and at most one attribute, `extensionRequest`, holding the
// albatross extension (non-critical).
//
// Building is @peculiar/x509's Pkcs10CertificateRequestGenerator. Parsing is ours, on the
// strict DER layer, for the same reasons as the certificate parser (src/ca/x509.ts): the file
// handed to `sign` is untrusted, the library is BER-lenient, and we want one-line errors; the
// self-signature is always verified (src/ca/keys.ts verifySignature).

import "reflect-metadata";
import type { KeyObject } from "node:crypto";
import { Extension as X509Extension, Pkcs10CertificateRequestGenerator } from "@peculiar/x509";
import { Cursor, DecodeError, TAG, type Bytes } from "../commands/der.js";
import { OID, cnName, readName, readOid, commonName, type DistinguishedName } from "./asn1.js";
import { firstLine } from "../core/text.js";
import { signingKeys, verifySignature, webCrypto } from "./keys.js";
import { fromPemAll, readExtensions, readSigned, readSpki, toPem, type Extension, type SignedLayout, type SubjectPublicKeyInfo } from "./x509.js";

export class CsrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CsrError";
  }
}

export interface ParsedCsr {
  readonly der: Bytes;
  readonly subject: DistinguishedName;
  /** DER of the subject Name, copied into the certificate as is */
  readonly subjectDer: Bytes;
  readonly publicKey: SubjectPublicKeyInfo;
  /** extensions from the extensionRequest attribute (empty if none) */
  readonly extensions: readonly Extension[];
}

/**
 * Build and sign a CSR for `CN=<cn>`; `extensions` go into one extensionRequest attribute (if
 * any), with their criticality as given. The result is read back with `parseCsr`, which
 * checks the signature the library made and that the CN came out as given.
 */
export async function buildCsr(key: KeyObject, cn: string, extensions: readonly Extension[]): Promise<Bytes> {
  const signer = await signingKeys(key);
  let der: Bytes;
  try {
    const req = await Pkcs10CertificateRequestGenerator.create(
      {
        name: cnName(cn),
        keys: signer.keys,
        signingAlgorithm: signer.algorithm,
        extensions: extensions.map((e) => new X509Extension(e.oid, e.critical, Uint8Array.from(e.value))),
      },
      webCrypto,
    );
    der = new Uint8Array(req.rawData);
  } catch (e) {
    throw new CsrError(`cannot build the signing request: ${firstLine(e)}`);
  }
  const back = parseCsr(der);
  if (csrCommonName(back) !== cn) throw new CsrError("the common name cannot be encoded unchanged");
  return der;
}

export const csrToPem = (der: Bytes): string => toPem(der, "CERTIFICATE REQUEST");

/**
 * The signature BIT STRING of a request: whole bytes, like a certificate's, but refused with
 * one message of its own (where readOctetAlignedBitString has two) at the byte after it.
 */
function readRequestSignature(c: Cursor, what: string): Bytes {
  const t = c.expect(TAG.BIT_STRING, what);
  if (t.end === t.contentStart || c.buf[t.contentStart] !== 0) c.fail("invalid signature BIT STRING", what);
  return c.buf.subarray(t.contentStart + 1, t.end);
}

const REQUEST: SignedLayout = {
  what: "request",
  tbs: "certificationRequestInfo",
  signature: "signature",
  readSignature: readRequestSignature,
};

export function parseCsr(der: Bytes): ParsedCsr {
  try {
    const { tbs, tbsCursor: info, signatureAlgorithm, signature } = readSigned(der, REQUEST);

    const version = info.int("version");
    if (version !== 0) info.fail(`unsupported request version ${version}`, "version");
    const subjT = info.expect(TAG.SEQUENCE, "subject");
    const subjectDer = info.buf.subarray(subjT.start, subjT.end);
    const subject = readName(Cursor.of(subjectDer, "certificationRequestInfo.subject"), "subject");
    const publicKey = readSpki(info, "subjectPKInfo");
    let extensions: Extension[] = [];
    const attrs = info.into(0xa0, "attributes");
    let sawExtReq = false;
    while (!attrs.atEnd()) {
      const a = attrs.into(TAG.SEQUENCE, "attribute");
      const oid = readOid(a, "type");
      const values = a.into(TAG.SET, "values");
      if (oid === OID.extensionRequest) {
        if (sawExtReq) a.fail("more than one extensionRequest attribute");
        sawExtReq = true;
        extensions = readExtensions(values, "extensionRequest");
        if (!values.atEnd()) values.fail("extensionRequest with more than one value");
      } else {
        // other attributes (challengePassword, ...) are ignored, as by upstream
        while (!values.atEnd()) values.next("value");
      }
      a.done();
    }
    info.done();

    const bad = verifySignature(publicKey, signatureAlgorithm, tbs, signature);
    if (bad) throw new CsrError(`signing request: ${bad}`);
    return { der, subject, subjectDer, publicKey, extensions };
  } catch (e) {
    if (e instanceof DecodeError) throw new CsrError(`malformed signing request: ${e.message}`);
    throw e;
  }
}

export function parseCsrPem(text: string): ParsedCsr {
  let blocks: Bytes[];
  try {
    blocks = fromPemAll(text, "CERTIFICATE REQUEST");
  } catch (e) {
    throw new CsrError((e as Error).message);
  }
  if (blocks.length !== 1) {
    throw new CsrError(blocks.length === 0 ? "no PEM CERTIFICATE REQUEST found" : "more than one CERTIFICATE REQUEST in the file");
  }
  return parseCsr(blocks[0]!);
}

export const csrCommonName = (c: ParsedCsr): string | null => commonName(c.subject);
