// The client certificate chain of an accepted TLS connection, and our own validation of it.
//
// OpenSSL (Node's TLS) has already verified the chain to the single CA when we get here
// (server.ts admits only `authorized` connections). We nevertheless re-check every link with
// src/ca/verify.ts before a policy carried by an intermediate is trusted, because OpenSSL's
// rules are not ocaml-x509's (daemon.md §6): OpenSSL accepts a CA:TRUE leaf, issuers without
// a keyUsage extension, leaves with critical extensions it happens to know
// (certificatePolicies, nameConstraints, policyConstraints, ...), and chains of any length up
// to its verify depth of 100. And the chain Node hands out is rebuilt by name lookups, not
// necessarily the path OpenSSL verified.
//
// Two ways to the chain. With the native addon (addon.ts, native/max-cert-list), OpenSSL hands
// over the very path it verified (verifiedPath): leaf, the intermediates that signed, the
// anchor — no name lookups, no fingerprints, and, for the leaf whose signature OpenSSL checked
// under its issuer's key in that path, no second hashing of the leaf (a create's leaf holds
// the image: megabytes); every other check still runs here. Without it, Node's
// getPeerCertificate (peerCertificates below). Never getPeerX509Certificate(), although
// cheaper: on Node 20 and 22 it takes the intermediates out of OpenSSL's session chain — a
// later getPeerCertificate(true) no longer sees them — and leaks them (measured: RSS grows by
// each connection's intermediates; Node 24 neither).
//
// Everything here works on src/ca/x509.ts' ParsedCertificate (our strict DER parser), never
// on @peculiar/x509 objects: constructing one costs about 1 ms, more than everything else
// the endpoint does for a connection, and nothing here needs its API.

import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from "node:tls";
import { verifyParsedChain, type SignatureCache } from "../ca/verify.js";
import { bytesEqual, dnEquals } from "../ca/asn1.js";
import { CertificateError, authorityKeyId, parseCertificate, subjectKeyId, type ParsedCertificate } from "../ca/x509.js";
import { err, ok, type Result } from "../core/result.js";
import { bytesKey, LruCache } from "../core/lru.js";

/** More certificates than this in the path are never walked (upstream refuses >= 10 anyway). */
const WALK_LIMIT = 16;

/**
 * Parsed CA certificates (those after the leaf) by their exact DER. A tenant CA comes back
 * on every connection of its users; parsing is a pure function of the bytes, so a hit is
 * the same parse. The leaf is never cached (albatross clients make a fresh one for every
 * connection), nor is a certificate over MEMO_MAX_DER bytes (albatross CAs have well under
 * 2 KiB; what a client sends is parsed before anything is verified, and must not pin
 * memory). Bounded, least recently used out first.
 */
export class ParsedCertificateCache {
  static readonly MEMO_MAX_DER = 16 * 1024;
  private readonly byDer: LruCache<string, ParsedCertificate>;

  constructor(capacity = 128) {
    this.byDer = new LruCache(capacity);
  }

  get size(): number {
    return this.byDer.size;
  }

  /** parseCertificate(der), remembered; throws CertificateError like it. */
  parse(der: Uint8Array): ParsedCertificate {
    if (der.length > ParsedCertificateCache.MEMO_MAX_DER) return parseCertificate(der);
    const key = bytesKey(der);
    const hit = this.byDer.get(key);
    if (hit) return hit;
    // An own copy: the entry outlives the connection whose buffer `der` views.
    const p = parseCertificate(new Uint8Array(der));
    this.byDer.set(key, p);
    return p;
  }
}

const view = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function unreadable(e: unknown): Result<never> {
  if (e instanceof CertificateError) return err(`unreadable client certificate: ${e.message}`);
  throw e;
}

/**
 * Without the addon's verified path (verifiedPath): the peer's path from Node, leaf first,
 * parsed: the leaf, then each issuer Node found among the
 * certificates the client sent — without the trust anchor `ca` at its end (upstream derives
 * names and policies from the certificates the client sent; albatross clients send the leaf
 * and the intermediates but not the root, and a root carrying a policy extension would
 * otherwise add a policy nobody asked for). An error text when there is no client
 * certificate, one does not parse, or the path is too long to walk.
 */
export function peerCertificates(
  sock: TLSSocket,
  ca: ParsedCertificate,
  cas: ParsedCertificateCache,
  opts: { readonly large?: boolean } = {},
): Result<ParsedCertificate[]> {
  // Node turns a certificate into a JS object with three fingerprints of it: for a chain of
  // megabytes (`large`: an image inside the leaf) that costs more than the second call saves,
  // so the leaf is converted once, by the detailed call.
  if (opts.large) return detailedPath(sock, ca, cas, null);
  // Fast path: a leaf issued directly by the CA (issuer name = CA subject, key ids agreeing)
  // is the whole path. getPeerCertificate(true) turns every certificate into a JS object with
  // fingerprints and all and looks issuers up in the store; it is only needed when there are
  // intermediates. (Not getPeerX509Certificate(): see the top of this file.)
  const first = sock.getPeerCertificate(false) as PeerCertificate | undefined;
  if (!first?.raw) return err("no client certificate");
  let leaf: ParsedCertificate;
  try {
    // `raw` is a fresh buffer of this connection's own: parsed in place, no copy.
    leaf = parseCertificate(view(first.raw));
  } catch (e) {
    return unreadable(e);
  }
  if (issuedBy(leaf, ca)) return ok([leaf]);
  return detailedPath(sock, ca, cas, leaf);
}

/** The path from getPeerCertificate(true): the leaf (parsed already, or here), then its issuers. */
function detailedPath(sock: TLSSocket, ca: ParsedCertificate, cas: ParsedCertificateCache, parsedLeaf: ParsedCertificate | null): Result<ParsedCertificate[]> {
  // An empty object when the client sent no certificate.
  const detailed = sock.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!detailed?.raw) return err("no client certificate");
  let leaf = parsedLeaf;
  if (!leaf) {
    try {
      leaf = parseCertificate(view(detailed.raw));
    } catch (e) {
      return unreadable(e);
    }
  }
  const out: ParsedCertificate[] = [leaf];
  const seen = new Set<string>([detailed.fingerprint256]);
  let c: DetailedPeerCertificate | undefined = detailed.issuerCertificate;
  while (c?.raw && out.length < WALK_LIMIT) {
    if (seen.has(c.fingerprint256)) break; // the self-signed anchor links to itself
    seen.add(c.fingerprint256);
    const der = view(c.raw);
    const next: DetailedPeerCertificate | undefined = c.issuerCertificate;
    // The CA from our trust store, where Node's walk ends: not part of the client's chain.
    if (bytesEqual(der, ca.der) && (!next?.raw || seen.has(next.fingerprint256))) break;
    try {
      out.push(cas.parse(der));
    } catch (e) {
      return unreadable(e);
    }
    c = next;
  }
  if (out.length >= WALK_LIMIT) return err("certificate chain too long");
  return ok(out);
}

/** A client's path, and what OpenSSL proved about it. */
export interface PeerPath {
  /** leaf first, then its issuers, without the trust anchor */
  readonly chain: ParsedCertificate[];
  /**
   * The DER SubjectPublicKeyInfo under which OpenSSL verified the leaf's signature (the key
   * of chain[1], or of the anchor for a leaf it issued); undefined when unknown.
   */
  readonly leafSignedUnder?: Uint8Array;
}

/**
 * The path OpenSSL verified (the addon's takeVerifiedChain: DER, leaf first, the anchor last),
 * parsed, without the anchor. Null when it does not end in exactly `ca` (then the chain is
 * taken from Node instead); an error text when a certificate does not parse or the path is
 * too long to walk. The leaf's DER is parsed in place (a fresh buffer of this connection's).
 */
export function verifiedPath(ders: readonly Uint8Array[], ca: ParsedCertificate, cas: ParsedCertificateCache): Result<PeerPath> | null {
  if (ders.length < 2 || !bytesEqual(ders[ders.length - 1]!, ca.der)) return null;
  if (ders.length - 1 >= WALK_LIMIT) return err("certificate chain too long");
  const chain: ParsedCertificate[] = [];
  try {
    chain.push(parseCertificate(ders[0]!));
    for (let i = 1; i < ders.length - 1; i++) chain.push(cas.parse(ders[i]!));
  } catch (e) {
    return unreadable(e);
  }
  // OpenSSL checked each certificate's signature with the key of the next one in this path.
  return ok({ chain, leafSignedUnder: (chain[1] ?? ca).publicKey.der });
}

/**
 * Every link of `chain` (leaf first, without the anchor) validated against `ca` at `at` with
 * the rules of daemon.md §6 (src/ca/verify.ts). `signatures` memoises CA signatures only;
 * `offload` runs the signature arithmetic on the thread pool; `leafSignedUnder` (only from
 * verifiedPath) spares the leaf's signature arithmetic under that one key (see VerifyOptions).
 */
export async function validatePeerChain(
  chain: readonly ParsedCertificate[],
  ca: ParsedCertificate,
  at: Date,
  opts: { readonly signatures?: SignatureCache; readonly offload?: boolean; readonly leafSignedUnder?: Uint8Array | undefined } = {},
): Promise<Result<readonly ParsedCertificate[]>> {
  if (chain.length === 0) return err("no client certificate");
  const { leafSignedUnder, ...rest } = opts;
  const report = await verifyParsedChain(chain, [ca], {
    at,
    maxLength: 10,
    ...rest,
    ...(leafSignedUnder ? { leafSignatureVerifiedUnder: leafSignedUnder } : {}),
  });
  if (!report.ok) {
    const problems = [
      ...report.problems,
      ...report.links.flatMap((l, i) => l.problems.map((p) => `${i === 0 ? "leaf" : `certificate ${i}`} ${l.subject}: ${p}`)),
    ];
    return err(`chain validation failed: ${problems.join("; ")}`);
  }
  return ok(chain);
}

/** Names chain and the key ids (where both are present) agree; the signature is verifyChain's. */
function issuedBy(c: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (!dnEquals(c.issuer, issuer.subject)) return false;
  try {
    const aki = authorityKeyId(c);
    const ski = subjectKeyId(issuer);
    return !(aki && ski && !bytesEqual(aki, ski));
  } catch {
    return false; // malformed key ids: the full path, and verification, will say so
  }
}
