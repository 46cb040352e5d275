// Offline X.509 chain-of-trust validation with the rules ocaml-x509 applies for albatross'
// TLS endpoint (daemon.md §6): signatures (Ed25519, ECDSA and RSA with SHA-2), validity at a
// given time, issuer/subject chaining, AKI/SKI, basicConstraints and keyUsage on issuers,
// pathLen, unknown critical extensions, chain length. Unlike a TLS stack it does not stop at
// the first failure: every link gets the list of its problems, which `dromedary verify`
// prints.

import type { X509Certificate } from "@peculiar/x509";
import { decodeCertExtension } from "../commands/codec.js";
import { DecodeError, type Bytes } from "../commands/der.js";
import type { Policy } from "../commands/types.js";
import { isSmaller } from "../policy/policy.js";
import { chainPolicies, deriveCommand, type Derived, type PolicyAt } from "./chain.js";
import type { Path } from "../core/name.js";
import { OID, bytesEqual, dnEquals, dnToString } from "./asn1.js";
import { bytesKey, LruCache } from "../core/lru.js";
import { signatureUsable, verifySignature, verifySignatureAsync } from "./keys.js";
import {
  CertificateError,
  KU,
  albatrossExtension,
  authorityKeyId,
  basicConstraints,
  extKeyUsage,
  keyUsage,
  parsed,
  subjectKeyId,
  type ParsedCertificate,
} from "./x509.js";

interface LinkReport {
  /** subject DN as text, e.g. `CN=foo` */
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** empty when this link is fine */
  readonly problems: string[];
}

/**
 * The report of a parsed link. Its names are rendered on first use: the TLS endpoint
 * validates a chain per connection and reads them only when something is wrong.
 */
class ParsedLink implements LinkReport {
  readonly problems: string[] = [];
  readonly notBefore: Date;
  readonly notAfter: Date;
  private subjectText: string | undefined;
  private issuerText: string | undefined;

  constructor(private readonly c: ParsedCertificate) {
    this.notBefore = c.notBefore;
    this.notAfter = c.notAfter;
  }

  get subject(): string {
    return (this.subjectText ??= dnToString(this.c.subject));
  }

  get issuer(): string {
    return (this.issuerText ??= dnToString(this.c.issuer));
  }

  /** as a plain object (JSON, spreading) */
  toJSON(): { subject: string; issuer: string; notBefore: Date; notAfter: Date; problems: string[] } {
    return { subject: this.subject, issuer: this.issuer, notBefore: this.notBefore, notAfter: this.notAfter, problems: this.problems };
  }
}

export interface ChainReport {
  readonly ok: boolean;
  /** one per certificate of the path, leaf first (a trailing copy of the anchor is dropped) */
  readonly links: LinkReport[];
  /** problems of the chain as a whole (empty chain, too long) */
  readonly problems: string[];
  /** subject of the trust anchor the path ends in, if one was found */
  readonly anchor: string | null;
}

export interface VerifyOptions {
  readonly at: Date;
  /** chains of this many certificates or more are refused; default 10 (upstream) */
  readonly maxLength?: number;
  /**
   * A memo of signatures on CA certificates already found valid (see SignatureCache). Only
   * the cryptographic check is memoised; everything else is evaluated on every call.
   */
  readonly signatures?: SignatureCache;
  /**
   * Run the signature arithmetic on libuv's thread pool instead of inline (same checks, same
   * answers). A server with other connections in flight keeps serving them meanwhile; an
   * idle one is faster inline (no hand-over to another thread). Default: inline.
   */
  readonly offload?: boolean;
  /**
   * The chain's first certificate is a delegation — an intermediate CA handed to a tenant,
   * who signs leaves with it — instead of an end-entity certificate: it is checked by the
   * rules for issuers (CA:TRUE, keyCertSign, path length counting the leaves it will sign),
   * and the chain must leave room for those leaves under `maxLength`.
   */
  readonly delegation?: boolean;
  /**
   * The DER SubjectPublicKeyInfo under which the leaf's signature is already known to verify
   * — the TLS endpoint passes the key of the leaf's issuer in the path OpenSSL verified in the
   * handshake (peer.ts). When the leaf's issuer in `chain` (or the anchor, for a leaf the
   * anchor issued) has exactly this key, the signature arithmetic over the leaf — the whole
   * leaf hashed, megabytes for a create with its image inside — is not done again; every other
   * check of the signature (algorithm, parameters, key type, the two algorithm fields agreeing)
   * still is. Any other issuer key: verified as usual. Ignored for a delegation.
   */
  readonly leafSignatureVerifiedUnder?: Bytes;
}

/**
 * Valid issuer signatures on CA certificates (intermediates), remembered by the exact bytes
 * they were computed from: the certificate's DER (its TBS, algorithms and signature) and the
 * issuer's SubjectPublicKeyInfo. Whether a signature verifies is a pure function of those
 * bytes, so a hit answers for exactly the same question; different bytes — a changed
 * certificate, another issuer key — are a miss and verified afresh. Validity dates,
 * chaining, key ids, CA flags, keyUsage, path length and critical extensions are never
 * memoised: they are checked on every call, at its time.
 *
 * The TLS endpoint keeps one (bounded, least recently used first out): tenant CAs come back
 * on every connection, their signature would otherwise be re-verified each time. Leaf
 * signatures are never memoised — albatross clients make a fresh leaf (new key, new
 * command) for every connection, so entries would only evict the CAs. Nor are certificates
 * over MEMO_MAX_DER bytes (albatross CAs have well under 2 KiB): whoever holds a CA key can
 * sign large sub-CAs, and the memo must not become a way to pin memory.
 */
export class SignatureCache {
  static readonly MEMO_MAX_DER = 16 * 1024;
  private readonly valid: LruCache<string, true>;
  /** verifications answered from the memo / computed (for tests and statistics) */
  hits = 0;
  misses = 0;

  constructor(capacity = 128) {
    this.valid = new LruCache(capacity);
  }

  get size(): number {
    return this.valid.size;
  }

  /** The problems with `issuer`'s signature on `c`; from the memo when this exact pair verified before. */
  async problems(c: ParsedCertificate, issuer: ParsedCertificate, offload = false): Promise<string[]> {
    if (c.der.length > SignatureCache.MEMO_MAX_DER) return signatureProblems(c, issuer, offload);
    const key = bytesKey(issuer.publicKey.der, c.der);
    if (this.valid.get(key)) {
      this.hits++;
      return [];
    }
    this.misses++;
    const ps = await signatureProblems(c, issuer, offload);
    if (ps.length === 0) this.valid.set(key, true);
    return ps;
  }
}

const LEAF_CRITICAL_OK = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName]);
const CA_CRITICAL_OK = new Set<string>([OID.keyUsage, OID.basicConstraints, OID.nameConstraints]);

const iso = (d: Date) => d.toISOString().replace(/\.000Z$/, "Z");

function validityProblem(c: ParsedCertificate, at: Date): string | null {
  if (at.getTime() < c.notBefore.getTime()) return `not yet valid (valid from ${iso(c.notBefore)})`;
  if (at.getTime() > c.notAfter.getTime()) return `expired (valid until ${iso(c.notAfter)})`;
  return null;
}

/** Problems of a certificate used as an issuer (intermediate CA). */
function caProblems(c: ParsedCertificate, below: number): string[] {
  const out: string[] = [];
  let bc;
  let ku;
  let eku;
  try {
    bc = basicConstraints(c);
    ku = keyUsage(c);
    eku = extKeyUsage(c);
  } catch (e) {
    return [`malformed extension: ${(e as Error).message}`];
  }
  if (c.version !== 3) out.push("used as an issuer but not an X.509 v3 certificate");
  if (!bc?.ca) out.push("used as an issuer but not a CA (basicConstraints CA:TRUE missing)");
  if (!ku) out.push("used as an issuer but has no keyUsage extension");
  else if (!ku.has(KU.keyCertSign)) out.push("used as an issuer but its keyUsage lacks keyCertSign");
  if (eku && !eku.includes(OID.anyExtendedKeyUsage) && !eku.includes(OID.serverAuth)) {
    out.push("used as an issuer but its extendedKeyUsage has neither anyExtendedKeyUsage nor serverAuth");
  }
  if (bc?.ca && bc.pathLen !== undefined && below > bc.pathLen) {
    out.push(`path length constraint ${bc.pathLen} exceeded (${below} intermediate CA certificate(s) below)`);
  }
  for (const e of c.extensions) if (e.critical && !CA_CRITICAL_OK.has(e.oid)) out.push(`unsupported critical extension ${e.oid}`);
  return out;
}

function leafProblems(c: ParsedCertificate): string[] {
  const out: string[] = [];
  try {
    if (basicConstraints(c)?.ca) out.push("end-entity certificate is a CA (basicConstraints CA:TRUE)");
    keyUsage(c);
    extKeyUsage(c);
  } catch (e) {
    return [`malformed extension: ${(e as Error).message}`];
  }
  for (const e of c.extensions) if (e.critical && !LEAF_CRITICAL_OK.has(e.oid)) out.push(`unsupported critical extension ${e.oid}`);
  return out;
}

type SignatureCheck = (c: ParsedCertificate, issuer: ParsedCertificate) => Promise<string[]>;

/** Problems with `issuer` having issued `c`: names and key ids (the signature: signatureProblems). */
function issuedProblems(c: ParsedCertificate, issuer: ParsedCertificate): string[] {
  const out: string[] = [];
  if (!dnEquals(c.issuer, issuer.subject)) {
    out.push(`issuer ${dnToString(c.issuer)} does not match the next certificate's subject ${dnToString(issuer.subject)}`);
  }
  try {
    const aki = authorityKeyId(c);
    const ski = subjectKeyId(issuer);
    if (aki && ski && !bytesEqual(aki, ski)) out.push("authority key identifier does not match the issuer's subject key identifier");
  } catch (e) {
    out.push(`malformed extension: ${(e as Error).message}`);
  }
  return out;
}

/** signatureProblems without the arithmetic (done by someone else under the same key). */
function signatureCheckedProblems(c: ParsedCertificate, issuer: ParsedCertificate): string[] {
  if (c.tbsSignatureAlgorithm.oid !== c.signatureAlgorithm.oid) return ["signature algorithm in the certificate body and outside differ"];
  const bad = signatureUsable(issuer.publicKey, c.signatureAlgorithm);
  return bad ? [bad] : [];
}

/** Problems with `issuer`'s signature on `c` (`offload`: verified on the thread pool, see keys.ts). */
async function signatureProblems(c: ParsedCertificate, issuer: ParsedCertificate, offload = false): Promise<string[]> {
  if (c.tbsSignatureAlgorithm.oid !== c.signatureAlgorithm.oid) return ["signature algorithm in the certificate body and outside differ"];
  const bad = offload
    ? await verifySignatureAsync(issuer.publicKey, c.signatureAlgorithm, c.tbs, c.signature)
    : verifySignature(issuer.publicKey, c.signatureAlgorithm, c.tbs, c.signature);
  return bad ? [bad === "invalid signature" ? `invalid signature (not signed by ${dnToString(issuer.subject)})` : bad] : [];
}

/** Could `anchor` have issued `c` (names and key ids; signature checked separately)? */
function anchorCandidate(c: ParsedCertificate, anchor: ParsedCertificate): boolean {
  if (!dnEquals(c.issuer, anchor.subject)) return false;
  try {
    const aki = authorityKeyId(c);
    const ski = subjectKeyId(anchor);
    return !(aki && ski && !bytesEqual(aki, ski));
  } catch {
    return false;
  }
}

function tryParse(c: X509Certificate): ParsedCertificate | string {
  try {
    return parsed(c);
  } catch (e) {
    if (e instanceof CertificateError) return e.message;
    throw e;
  }
}

/**
 * Validate `chain` (leaf first; it may end with the trust anchor itself, which is then not
 * counted as a link) against `anchors` at `opts.at`.
 */
export async function verifyChain(chain: readonly X509Certificate[], anchors: readonly X509Certificate[], opts: VerifyOptions): Promise<ChainReport> {
  const anchorProblems: string[] = [];
  const anchorCerts: ParsedCertificate[] = [];
  for (const a of anchors) {
    const p = tryParse(a);
    if (typeof p === "string") anchorProblems.push(`trust anchor: ${p}`);
    else anchorCerts.push(p);
  }
  return verify(chain.map(tryParse), anchorCerts, anchorProblems, opts);
}

/**
 * verifyChain on certificates already parsed by src/ca/x509.ts (the TLS endpoint's form:
 * no @peculiar/x509 objects on its hot path). Same checks, same report.
 */
export function verifyParsedChain(chain: readonly ParsedCertificate[], anchors: readonly ParsedCertificate[], opts: VerifyOptions): Promise<ChainReport> {
  return verify([...chain], anchors, [], opts);
}

/** The checks, on parsed certificates (a string: the reason one did not parse). */
async function verify(
  certs: Array<ParsedCertificate | string>,
  anchorCerts: readonly ParsedCertificate[],
  anchorProblems: readonly string[],
  opts: VerifyOptions,
): Promise<ChainReport> {
  const maxLength = opts.maxLength ?? 10;
  const at = opts.at;
  const delegation = opts.delegation ?? false;
  if (certs.length === 0) return { ok: false, links: [], problems: ["empty chain"], anchor: null };
  const problems: string[] = [];
  if (!delegation && certs.length >= maxLength) problems.push(`certificate chain too long (${certs.length} certificates, at most ${maxLength - 1})`);
  // (a delegation's leaves are presented with the whole chain: one more certificate)
  if (delegation && certs.length + 1 >= maxLength) {
    problems.push(
      `certificate chain too long for a delegation (${certs.length} certificates and the leaves it signs, at most ${maxLength - 2} and the leaves)`,
    );
  }
  problems.push(...anchorProblems);
  // Signatures on CA certificates may come from the memo; the leaf's never does.
  const memo = opts.signatures;
  const offload = opts.offload ?? false;
  const known = delegation ? undefined : opts.leafSignatureVerifiedUnder;
  const leafCert = certs[0];
  const direct: SignatureCheck = (c, issuer) =>
    known !== undefined && c === leafCert && bytesEqual(issuer.publicKey.der, known)
      ? Promise.resolve(signatureCheckedProblems(c, issuer))
      : signatureProblems(c, issuer, offload);
  const caSignature: SignatureCheck = memo ? (c, issuer) => memo.problems(c, issuer, offload) : direct;
  const signatureOf = (index: number): SignatureCheck => (index === 0 ? direct : caSignature);

  // A chain that carries the anchor itself at its end: drop that copy.
  const last = certs[certs.length - 1]!;
  if (certs.length > 1 && typeof last !== "string" && anchorCerts.some((a) => bytesEqual(a.der, last.der))) certs.pop();

  // Every signature check is started first: offloaded, they run on the thread pool while
  // everything else is checked here. (None of them rejects: a failure is a problem text.)
  const linkSignatures = certs.map((c, i) => {
    const issuer = certs[i + 1];
    return typeof c !== "string" && issuer !== undefined && typeof issuer !== "string" ? signatureOf(i)(c, issuer) : null;
  });
  // The top of the path must be issued by a trust anchor valid at `at`.
  const topIndex = certs.length - 1;
  const top = certs[topIndex]!;
  const named = typeof top === "string" ? [] : anchorCerts.filter((a) => anchorCandidate(top, a));
  const valid = named.filter((a) => validityProblem(a, at) === null);
  const anchorSignatures = typeof top === "string" ? [] : valid.map((a) => signatureOf(topIndex)(top, a));

  const links: LinkReport[] = certs.map((c) =>
    typeof c === "string" ? { subject: "(unreadable)", issuer: "(unreadable)", problems: [c] } : new ParsedLink(c),
  );

  for (let i = 0; i < certs.length; i++) {
    const c = certs[i]!;
    if (typeof c === "string") continue;
    const ps = links[i]!.problems;
    const v = validityProblem(c, at);
    if (v) ps.push(v);
    // intermediates below this one (pathLen counts non-self-issued intermediates); below a
    // delegation come its leaves, so the delegation itself counts as an intermediate
    if (delegation) ps.push(...caProblems(c, i));
    else if (i === 0) ps.push(...leafProblems(c));
    else ps.push(...caProblems(c, i - 1));
    if (i + 1 < certs.length) {
      const issuer = certs[i + 1]!;
      if (typeof issuer !== "string") ps.push(...issuedProblems(c, issuer));
    }
  }
  // The signature problems come last in each link's list, as the issuer checks' last part.
  for (let i = 0; i < certs.length; i++) {
    const sig = linkSignatures[i];
    if (sig) links[i]!.problems.push(...(await sig));
  }

  let anchorName: string | null = null;
  if (typeof top !== "string") {
    const ps = links[links.length - 1]!.problems;
    const results = await Promise.all(anchorSignatures);
    const signer = valid.find((_, j) => results[j]!.length === 0);
    if (signer) {
      anchorName = dnToString(signer.subject);
    } else if (valid.length > 0) {
      const why = results[0]![0]!;
      ps.push(why.startsWith("invalid signature") ? `invalid signature (not signed by the trusted CA ${dnToString(valid[0]!.subject)})` : why);
    } else if (named.length > 0) {
      ps.push(`the trusted CA ${dnToString(named[0]!.subject)} is not valid at ${iso(at)}`);
    } else {
      ps.push(`not issued by a trusted CA (issuer ${dnToString(top.issuer)})`);
    }
  }

  const ok = problems.length === 0 && links.every((l) => l.problems.length === 0);
  return { ok, links, problems, anchor: anchorName };
}

// --- albatross on top of X.509: what `dromedary verify` checks ---------------------------

/** What a delegation grants: the path its leaves are named under, and the policies on it. */
interface Delegated {
  readonly path: Path;
  /** deepest (the delegation's own) first, as Derived.policies */
  readonly policies: PolicyAt[];
}

export interface AlbatrossReport extends ChainReport {
  /** how the chain's first certificate was checked (see isDelegation) */
  readonly kind: "leaf" | "delegation";
  /** a leaf: the endpoint's reading of the chain, when it succeeds */
  readonly derived: Derived | null;
  /** a delegation: what it grants, when the chain reads as one */
  readonly delegated: Delegated | null;
}

/**
 * Is `c` a delegation — what `sign` makes of an `add-policy --csr` request: a CA certificate
 * (basicConstraints CA:TRUE) whose albatross extension adds a policy? Anything else at the
 * head of a chain is checked as a leaf (a CA carrying a command stays "end-entity
 * certificate is a CA", as the endpoint sees it).
 */
function isDelegation(c: ParsedCertificate): boolean {
  try {
    if (!basicConstraints(c)?.ca) return false;
    const v = albatrossExtension(c);
    return v !== undefined && decodeCertExtension(v).command.kind === "policy-add";
  } catch {
    return false;
  }
}

/**
 * verifyChain plus the albatross rules: every albatross extension decodes, each delegated
 * policy fits into the one above it (reported on the link that widens), and the endpoint's
 * derivation (wire.md §11) succeeds. A chain headed by a delegation (isDelegation) is
 * checked as one: its head by the issuer rules, its own policy within those above it, and
 * its path and policies read as the endpoint will read them for the leaves it signs.
 */
export async function verifyAlbatrossChain(
  chain: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  opts: VerifyOptions,
): Promise<AlbatrossReport> {
  const certs = chain.map(tryParse);
  const head = certs[0];
  const kind = head !== undefined && typeof head !== "string" && isDelegation(head) ? "delegation" : "leaf";
  const base = await verifyChain(chain, anchors, { ...opts, delegation: kind === "delegation" });
  const problems = [...base.problems];
  let linkLevel = false;
  // [link index, path-less policy] for policy-carrying CAs, leaf side first
  const delegated: Array<{ index: number; policy: Policy }> = [];
  for (let i = 0; i < certs.length && i < base.links.length; i++) {
    const c = certs[i]!;
    if (typeof c === "string") continue;
    const v = albatrossExtension(c);
    if (v === undefined) continue;
    try {
      const e = decodeCertExtension(v);
      if ((i > 0 || kind === "delegation") && e.command.kind === "policy-add") delegated.push({ index: i, policy: e.command.policy });
    } catch (e) {
      base.links[i]!.problems.push(`albatross extension does not decode: ${e instanceof DecodeError ? e.reason : (e as Error).message}`);
      linkLevel = true;
    }
  }
  for (let j = 0; j + 1 < delegated.length; j++) {
    const sub = delegated[j]!,
      sup = delegated[j + 1]!;
    const e = isSmaller(sup.policy, sub.policy);
    if (e) {
      base.links[sub.index]!.problems.push(`policy wider than the one above it: ${e}`);
      linkLevel = true;
    }
  }
  let derived: Derived | null = null;
  let granted: Delegated | null = null;
  if (kind === "leaf") {
    const d = deriveCommand(chain);
    if (d.ok) derived = d.value;
    else if (!linkLevel) problems.push(`albatross: ${d.error}`);
  } else if (certs.every((c) => typeof c !== "string")) {
    // (an unreadable certificate is already a problem of its link)
    const d = chainPolicies(certs as ParsedCertificate[]);
    if (d.ok) granted = d.value;
    else if (!linkLevel) problems.push(`albatross: ${d.error}`);
  }
  const ok = problems.length === 0 && base.links.every((l) => l.problems.length === 0);
  return { ...base, ok, problems, kind, derived, delegated: granted };
}
