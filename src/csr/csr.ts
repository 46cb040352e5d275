// PKCS#10 certification requests (RFC 2986) as albatross writes and reads them: subject
// `CN=<cn>`, and at most one attribute, `extensionRequest`, holding the albatross extension
// (non-critical). Strict parsing on the DER layer; the self-signature is always verified.

import type { KeyObject } from "node:crypto";
import { Cursor, DecodeError, TAG, seq, tlv, type Bytes } from "../commands/der.js";
import { OID, encodeCnName, encodeOid, readName, readOid, commonName, dnToString, type DistinguishedName } from "../ca/asn1.js";
import { signWith, signatureAlgorithmFor, spkiDer, verifySignature } from "../ca/keys.js";
import {
  encodeExtension,
  encodeSigned,
  fromPemAll,
  readExtensions,
  readSpki,
  toPem,
  type AlgorithmIdentifier,
  type Extension,
  type SubjectPublicKeyInfo,
} from "../ca/x509.js";

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

/** Build and sign a CSR; `extensions` go into one extensionRequest attribute (if any). */
export function buildCsr(key: KeyObject, cn: string, extensions: readonly Extension[]): Bytes {
  const attrs = extensions.length
    ? [seq(encodeOid(OID.extensionRequest), tlv(TAG.SET, seq(...extensions.map(encodeExtension))))]
    : [];
  const info = seq(
    Uint8Array.of(TAG.INTEGER, 1, 0),
    encodeCnName(cn),
    spkiDer(key),
    // attributes [0] IMPLICIT SET OF Attribute; one element, so no sorting question
    tlv(0xa0, ...attrs),
  );
  const alg = signatureAlgorithmFor(key);
  return encodeSigned(info, alg, signWith(key, info));
}

export const csrToPem = (der: Bytes): string => toPem(der, "CERTIFICATE REQUEST");

export function parseCsr(der: Bytes): ParsedCsr {
  try {
    const top = Cursor.of(der, "request");
    const reqT = top.expect(TAG.SEQUENCE, "request");
    top.done();
    const req = top.enter(reqT, "");
    const infoT = req.expect(TAG.SEQUENCE, "certificationRequestInfo");
    const info = req.enter(infoT, "certificationRequestInfo");
    const algC = req.into(TAG.SEQUENCE, "signatureAlgorithm");
    const algOid = readOid(algC, "algorithm");
    let params: Bytes | undefined;
    if (!algC.atEnd()) {
      const t = algC.next("parameters");
      params = algC.buf.subarray(t.start, t.end);
    }
    algC.done();
    const sigT = req.expect(TAG.BIT_STRING, "signature");
    if (sigT.end === sigT.contentStart || req.buf[sigT.contentStart] !== 0) req.fail("invalid signature BIT STRING", "signature");
    const signature = req.buf.subarray(sigT.contentStart + 1, sigT.end);
    req.done();

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

    const algorithm: AlgorithmIdentifier = params === undefined ? { oid: algOid } : { oid: algOid, params };
    const bad = verifySignature(publicKey, algorithm, der.subarray(infoT.start, infoT.end), signature);
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
export const csrSubjectText = (c: ParsedCsr): string => dnToString(c.subject);
