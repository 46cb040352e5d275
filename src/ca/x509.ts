// Strict reading of X.509 v3 certificates (RFC 5280), PEM, and the few building blocks the
// builders (src/ca/issue.ts, src/ca/csr.ts, both on @peculiar/x509's generators) share.
//
// Why the parser is ours and not @peculiar/x509's: certificates arrive from hostile TLS
// clients and must be refused precisely, and the library (asn1-schema on asn1js) is
// BER-lenient — `new X509Certificate(der)` accepts (measured with 2.2.0) indefinite lengths,
// non-minimal lengths and trailing bytes after the certificate, so two encodings that a DER
// check would tell apart look the same. This parser runs on the strict DER layer
// (src/commands/der.ts): one pass, exact TBS bytes for signature checks, every extension
// with its criticality, duplicate extensions refused, and a one-line error for anything
// malformed. The library's `X509Certificate` is still what crosses module boundaries
// (certificateFromDer wraps only input this parser accepted; `parsed` maps it back).

import "reflect-metadata";
import { X509Certificate } from "@peculiar/x509";
import { createHash } from "node:crypto";
import { Cursor, DecodeError, TAG, type Bytes } from "../commands/der.js";
import { ALBATROSS_OID } from "../commands/types.js";
import { hex } from "../core/hex.js";
import {
  OID,
  commonName,
  dnEquals,
  readCertTime,
  readIntegerContent,
  readName,
  readNamedBits,
  readOctetAlignedBitString,
  readOid,
  readSmallUint,
  type DistinguishedName,
} from "./asn1.js";

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** extnValue contents */
  readonly value: Bytes;
}

export interface AlgorithmIdentifier {
  readonly oid: string;
  /** DER of the parameters, if present */
  readonly params?: Bytes;
}

export interface SubjectPublicKeyInfo {
  /** full DER of the SubjectPublicKeyInfo (importable with createPublicKey) */
  readonly der: Bytes;
  readonly algorithm: AlgorithmIdentifier;
  /** contents of the subjectPublicKey BIT STRING (for SKI / key ids) */
  readonly key: Bytes;
}

export interface BasicConstraints {
  readonly ca: boolean;
  readonly pathLen?: number;
}

export const KU = {
  digitalSignature: 0,
  contentCommitment: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

export interface ParsedCertificate {
  readonly der: Bytes;
  readonly tbs: Bytes;
  /** 1, 2 or 3 */
  readonly version: number;
  /** INTEGER content bytes, as in the DB file (ocaml-x509 `Certificate.serial`) */
  readonly serial: Bytes;
  readonly signatureAlgorithm: AlgorithmIdentifier;
  /** the algorithm inside the TBS (must equal signatureAlgorithm) */
  readonly tbsSignatureAlgorithm: AlgorithmIdentifier;
  readonly issuer: DistinguishedName;
  /** DER of the issuer Name */
  readonly issuerDer: Bytes;
  readonly subject: DistinguishedName;
  /** DER of the subject Name (the issuer field of certificates this one signs) */
  readonly subjectDer: Bytes;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: SubjectPublicKeyInfo;
  readonly extensions: readonly Extension[];
  readonly signature: Bytes;
}

export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CertificateError";
  }
}

function readAlgorithm(c: Cursor, what: string): AlgorithmIdentifier {
  const a = c.into(TAG.SEQUENCE, what);
  const oid = readOid(a, "algorithm");
  let params: Bytes | undefined;
  if (!a.atEnd()) {
    const t = a.next("parameters");
    params = a.buf.subarray(t.start, t.end);
  }
  a.done();
  return params === undefined ? { oid } : { oid, params };
}

export function readSpki(c: Cursor, what: string): SubjectPublicKeyInfo {
  const t = c.expect(TAG.SEQUENCE, what);
  const s = c.enter(t, what);
  const algorithm = readAlgorithm(s, "algorithm");
  const key = readOctetAlignedBitString(s, "subjectPublicKey");
  s.done();
  return { der: c.buf.subarray(t.start, t.end), algorithm, key };
}

export function readExtensions(c: Cursor, what: string): Extension[] {
  const s = c.into(TAG.SEQUENCE, what);
  const out: Extension[] = [];
  const seen = new Set<string>();
  while (!s.atEnd()) {
    const e = s.into(TAG.SEQUENCE, "extension");
    const oid = readOid(e, "extnID");
    let critical = false;
    // DER wants DEFAULT FALSE omitted; an explicit FALSE is tolerated (it means the same and
    // occurs in the wild), we never write it.
    if (e.peekTag() === TAG.BOOLEAN) critical = e.bool("critical");
    const value = e.octets("extnValue");
    e.done();
    if (seen.has(oid)) s.fail(`duplicate extension ${oid}`);
    seen.add(oid);
    out.push({ oid, critical, value });
  }
  if (out.length === 0) s.fail("empty extensions");
  return out;
}

/** How a SIGNED{} envelope's parts are named in error paths, and how its signature is read. */
export interface SignedLayout {
  /** the whole value ("certificate") */
  readonly what: string;
  /** the to-be-signed SEQUENCE ("tbsCertificate") */
  readonly tbs: string;
  /** the signature BIT STRING ("signatureValue") */
  readonly signature: string;
  /** reads the signature BIT STRING's bytes (the two parsers word its failures differently) */
  readonly readSignature: (c: Cursor, what: string) => Bytes;
}

export interface Signed {
  /** exact DER of the to-be-signed SEQUENCE: what the signature covers */
  readonly tbs: Bytes;
  /** a cursor over the to-be-signed SEQUENCE's content, for the caller to read */
  readonly tbsCursor: Cursor;
  readonly signatureAlgorithm: AlgorithmIdentifier;
  readonly signature: Bytes;
}

/**
 * The SIGNED{} envelope shared by certificates and signing requests: one SEQUENCE (nothing
 * after it) of the to-be-signed SEQUENCE, an AlgorithmIdentifier and the signature BIT STRING
 * (nothing after that either). Throws DecodeError. The inner cursor is entered with an empty
 * segment, hence the doubled dot in error paths ("certificate..tbsCertificate"): kept, the
 * messages are pinned.
 */
export function readSigned(der: Bytes, layout: SignedLayout): Signed {
  const top = Cursor.of(der, layout.what);
  const outerT = top.expect(TAG.SEQUENCE, layout.what);
  top.done();
  const outer = top.enter(outerT, "");
  const tbsT = outer.expect(TAG.SEQUENCE, layout.tbs);
  const tbsCursor = outer.enter(tbsT, layout.tbs);
  const signatureAlgorithm = readAlgorithm(outer, "signatureAlgorithm");
  const signature = layout.readSignature(outer, layout.signature);
  outer.done();
  return { tbs: der.subarray(tbsT.start, tbsT.end), tbsCursor, signatureAlgorithm, signature };
}

const CERTIFICATE: SignedLayout = {
  what: "certificate",
  tbs: "tbsCertificate",
  signature: "signatureValue",
  readSignature: readOctetAlignedBitString,
};

/** Parse a DER certificate strictly. Throws CertificateError with one line. */
export function parseCertificate(der: Bytes): ParsedCertificate {
  try {
    const { tbs, tbsCursor: tbsC, signatureAlgorithm, signature } = readSigned(der, CERTIFICATE);

    let version = 1;
    const v = tbsC.intoOptional(0xa0, "version");
    if (v) {
      version = readSmallUint(v, "version") + 1;
      v.done();
      if (version === 1) tbsC.fail("explicit default version is not DER", "version");
      if (version > 3) tbsC.fail(`unknown certificate version ${version}`, "version");
    }
    const serial = readIntegerContent(tbsC, "serialNumber");
    if (serial.length > 21) tbsC.fail("serial number longer than 20 bytes", "serialNumber");
    const tbsSignatureAlgorithm = readAlgorithm(tbsC, "signature");
    const issuerStart = tbsC.pos;
    const issuer = readName(tbsC, "issuer");
    const issuerDer = der.subarray(issuerStart, tbsC.pos);
    const validity = tbsC.into(TAG.SEQUENCE, "validity");
    const notBefore = readCertTime(validity, "notBefore");
    const notAfter = readCertTime(validity, "notAfter");
    validity.done();
    const subjectStart = tbsC.pos;
    const subject = readName(tbsC, "subject");
    const subjectDer = der.subarray(subjectStart, tbsC.pos);
    const publicKey = readSpki(tbsC, "subjectPublicKeyInfo");
    // issuerUniqueID [1] / subjectUniqueID [2] (IMPLICIT BIT STRING, v2+): skipped
    if (tbsC.peekTag() === 0x81) tbsC.next("issuerUniqueID");
    if (tbsC.peekTag() === 0x82) tbsC.next("subjectUniqueID");
    let extensions: Extension[] = [];
    const extC = tbsC.intoOptional(0xa3, "extensions");
    if (extC) {
      if (version !== 3) tbsC.fail("extensions in a certificate that is not v3", "extensions");
      extensions = readExtensions(extC, "extensions");
      extC.done();
    }
    tbsC.done();
    return {
      der,
      tbs,
      version,
      serial,
      signatureAlgorithm,
      tbsSignatureAlgorithm,
      issuer,
      issuerDer,
      subject,
      subjectDer,
      notBefore,
      notAfter,
      publicKey,
      extensions,
      signature,
    };
  } catch (e) {
    if (e instanceof DecodeError) throw new CertificateError(`malformed certificate: ${e.message}`);
    throw e;
  }
}

const cache = new WeakMap<X509Certificate, ParsedCertificate>();

/** Parse (once) the DER behind an @peculiar/x509 certificate. */
export function parsed(cert: X509Certificate): ParsedCertificate {
  let p = cache.get(cert);
  if (!p) {
    p = parseCertificate(new Uint8Array(cert.rawData));
    cache.set(cert, p);
  }
  return p;
}

// --- extension accessors ---

function findExtension(c: ParsedCertificate | { extensions: readonly Extension[] }, oid: string): Extension | undefined {
  return c.extensions.find((e) => e.oid === oid);
}

function decodeExt<T>(e: Extension, f: (c: Cursor) => T): T {
  const c = Cursor.of(e.value, e.oid);
  const v = f(c);
  c.done();
  return v;
}

export function basicConstraints(c: ParsedCertificate): BasicConstraints | undefined {
  const e = findExtension(c, OID.basicConstraints);
  if (!e) return undefined;
  return decodeExt(e, (cur) => {
    const s = cur.into(TAG.SEQUENCE, "basicConstraints");
    let ca = false;
    if (s.peekTag() === TAG.BOOLEAN) ca = s.bool("cA");
    let pathLen: number | undefined;
    if (s.peekTag() === TAG.INTEGER) pathLen = readSmallUint(s, "pathLenConstraint");
    s.done();
    return pathLen === undefined ? { ca } : { ca, pathLen };
  });
}

export function keyUsage(c: ParsedCertificate): Set<number> | undefined {
  const e = findExtension(c, OID.keyUsage);
  return e ? decodeExt(e, (cur) => readNamedBits(cur, "keyUsage")) : undefined;
}

export function extKeyUsage(c: ParsedCertificate): string[] | undefined {
  const e = findExtension(c, OID.extKeyUsage);
  if (!e) return undefined;
  return decodeExt(e, (cur) => {
    const s = cur.into(TAG.SEQUENCE, "extKeyUsage");
    const out: string[] = [];
    while (!s.atEnd()) out.push(readOid(s, "keyPurpose"));
    return out;
  });
}

export function subjectKeyId(c: ParsedCertificate): Bytes | undefined {
  const e = findExtension(c, OID.subjectKeyIdentifier);
  return e ? decodeExt(e, (cur) => cur.octets("subjectKeyIdentifier")) : undefined;
}

export function authorityKeyId(c: ParsedCertificate): Bytes | undefined {
  const e = findExtension(c, OID.authorityKeyIdentifier);
  if (!e) return undefined;
  return decodeExt(e, (cur) => {
    const s = cur.into(TAG.SEQUENCE, "authorityKeyIdentifier");
    let id: Bytes | undefined;
    const t = s.optional(0x80, "keyIdentifier");
    if (t) id = s.buf.subarray(t.contentStart, t.end);
    if (s.peekTag() === 0xa1) s.next("authorityCertIssuer");
    if (s.peekTag() === 0x82) s.next("authorityCertSerialNumber");
    s.done();
    return id;
  });
}

/** The albatross extension's value (wire.md §11), if present. */
export function albatrossExtension(c: ParsedCertificate | { extensions: readonly Extension[] }): Bytes | undefined {
  return findExtension(c, ALBATROSS_OID)?.value;
}

export function subjectCN(c: ParsedCertificate): string | null {
  return commonName(c.subject);
}

export const isSelfIssued = (c: ParsedCertificate): boolean => dnEquals(c.subject, c.issuer);

// --- shared with the builders ---

/** X509.Public_key.id: SHA-1 over the subjectPublicKey BIT STRING contents. */
export function keyId(spkiKey: Bytes): Bytes {
  return new Uint8Array(createHash("sha1").update(spkiKey).digest());
}

export const serialHex = (serial: Bytes): string => hex(serial);

/**
 * A positive serial from 10 random bytes, with ocaml-x509's prefix rule (cli.md §4): `00` when
 * the first byte has its high bit set (else it would be negative), `7f` when the first byte is
 * `00` and the second <= 0x7f (else the INTEGER would not be minimal). Ours, not the library's
 * (which takes 16 random bytes and only knows the `00` rule).
 */
export function serialFromRandom(r: Bytes): Bytes {
  if (r.length !== 10) throw new RangeError("serial needs 10 random bytes");
  if (r[0]! > 0x7f) return Uint8Array.of(0, ...r);
  if (r[0] === 0 && r[1]! <= 0x7f) return Uint8Array.of(0x7f, ...r);
  return Uint8Array.from(r);
}

/** Extensions as the builders take them: the albatross extension is never critical. */
export const ext = {
  albatross: (value: Bytes): Extension => ({ oid: ALBATROSS_OID, critical: false, value }),
};

export function toPem(der: Bytes, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * All PEM blocks with `label` in `text` (other blocks are ignored). Strict base64: a block
 * that does not decode is an error, as is a BEGIN without its END (linear scan, no regex
 * backtracking on hostile input).
 */
export function fromPemAll(text: string, label: string): Bytes[] {
  const out: Bytes[] = [];
  let pos = 0;
  for (;;) {
    const b = text.indexOf("-----BEGIN ", pos);
    if (b < 0) break;
    const labelEnd = text.indexOf("-----", b + 11);
    if (labelEnd < 0 || labelEnd - b > 80) throw new CertificateError("malformed PEM BEGIN line");
    const found = text.slice(b + 11, labelEnd);
    const endMarker = `-----END ${found}-----`;
    const e = text.indexOf(endMarker, labelEnd + 5);
    if (e < 0) throw new CertificateError(`PEM ${found} without its END line`);
    pos = e + endMarker.length;
    if (found !== label) continue;
    const body = text.slice(labelEnd + 5, e).replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) throw new CertificateError(`invalid base64 in PEM ${label}`);
    out.push(new Uint8Array(Buffer.from(body, "base64")));
  }
  return out;
}

export function certificatesFromPem(text: string): X509Certificate[] {
  return fromPemAll(text, "CERTIFICATE").map(certificateFromDer);
}

/** Strict parse first (one-line error for hostile input), then wrap for the API boundary. */
export function certificateFromDer(der: Bytes): X509Certificate {
  const p = parseCertificate(der);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (e) {
    throw new CertificateError(`malformed certificate: ${(e as Error).message}`);
  }
  cache.set(cert, p);
  return cert;
}
