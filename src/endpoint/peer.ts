// The client certificate chain of an accepted TLS connection, and our own validation of it.
//
// OpenSSL (Node's TLS) has already verified the chain to the single CA when we get here
// (server.ts admits only `authorized` connections). We nevertheless re-check every link with src/ca/verify.ts before a
// policy carried by an intermediate is trusted, because OpenSSL's rules are not ocaml-x509's
// (daemon.md §6): OpenSSL accepts a CA:TRUE leaf, issuers without a keyUsage extension,
// leaves with critical extensions it happens to know (certificatePolicies, nameConstraints,
// policyConstraints, ...), and chains of any length up to its verify depth of 100. And the
// chain Node hands out is rebuilt by name lookups, not necessarily the path OpenSSL verified.

import "reflect-metadata";
import type { PeerCertificate, DetailedPeerCertificate, TLSSocket } from "node:tls";
import type { X509Certificate } from "@peculiar/x509";
import { verifyChain } from "../ca/verify.js";
import { dnEquals, bytesEqual } from "../ca/asn1.js";
import { authorityKeyId, parsed, subjectKeyId, type ParsedCertificate } from "../ca/x509.js";
import { err, ok, type Result } from "../policy/result.js";

const parsedAlready = new WeakMap<Uint8Array, X509Certificate>();

/** More certificates than this in the path are never walked (upstream refuses >= 10 anyway). */
const WALK_LIMIT = 16;

/**
 * The peer's path, leaf first, as DER: the leaf, then each issuer Node found among the
 * certificates the client sent, ending in the CA from our trust store (which is dropped,
 * see below). Returns an error text when there is no client certificate.
 */
export function peerChainDer(sock: TLSSocket, ca?: ParsedCertificate): Result<Uint8Array[]> {
  // Fast path: a leaf issued directly by the CA (issuer name = CA subject, key ids agreeing)
  // is the whole path. getPeerCertificate(true) turns every certificate into a JS object with
  // fingerprints and all and looks issuers up in the store; it costs more than the rest of
  // our per-connection work and is only needed when there are intermediates. (Not
  // getPeerX509Certificate(): on Node 20 calling it makes a later getPeerCertificate(true)
  // lose the intermediates.)
  const first = sock.getPeerCertificate(false) as PeerCertificate | undefined;
  if (!first || !first.raw) return err("no client certificate");
  if (ca) {
    const leafDer = new Uint8Array(first.raw.buffer, first.raw.byteOffset, first.raw.length);
    try {
      const c = derBacked(leafDer);
      if (issuedBy(parsed(c), ca)) {
        parsedAlready.set(leafDer, c); // validatedPeerChain need not parse it again
        return ok([leafDer]);
      }
    } catch {
      // unreadable: the full path below, and verification, will say so
    }
  }
  // An empty object when the client sent no certificate.
  const leaf = sock.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!leaf || !leaf.raw) return err("no client certificate");
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | PeerCertificate | undefined = leaf;
  while (c && c.raw && out.length < WALK_LIMIT + 1) {
    const fp = c.fingerprint256;
    if (seen.has(fp)) break; // the self-signed anchor links to itself
    seen.add(fp);
    out.push(new Uint8Array(c.raw.buffer, c.raw.byteOffset, c.raw.length));
    const next: DetailedPeerCertificate | undefined = (c as DetailedPeerCertificate).issuerCertificate;
    c = next;
  }
  return ok(out);
}

export interface PeerChain {
  /** leaf first, without the trust anchor (as the albatross client sends it) */
  readonly chain: X509Certificate[];
}

/**
 * Parse the peer path and validate every link against `ca` at `at` with the rules of
 * daemon.md §6. The trust anchor is removed from the path: upstream derives names and
 * policies from the certificates the client sent, and albatross clients send the leaf and
 * the intermediates but not the root (a root carrying a policy extension would otherwise
 * add a policy nobody asked for).
 */
export async function validatedPeerChain(der: readonly Uint8Array[], ca: X509Certificate, at: Date): Promise<Result<PeerChain>> {
  if (der.length === 0) return err("no client certificate");
  let certs: X509Certificate[];
  try {
    certs = der.map((d) => parsedAlready.get(d) ?? derBacked(d));
  } catch (e) {
    return err(`unreadable client certificate: ${(e as Error).message}`);
  }
  const caDer = new Uint8Array(ca.rawData);
  const last = der[der.length - 1]!;
  if (der.length > 1 && Buffer.compare(Buffer.from(last), Buffer.from(caDer)) === 0) certs.pop();
  if (certs.length >= WALK_LIMIT) return err("certificate chain too long");
  const report = await verifyChain(certs, [ca], { at, maxLength: 10 });
  if (!report.ok) {
    const problems = [...report.problems, ...report.links.flatMap((l, i) => l.problems.map((p) => `${i === 0 ? "leaf" : `certificate ${i}`} ${l.subject}: ${p}`))];
    return err(`chain validation failed: ${problems.join("; ")}`);
  }
  return ok({ chain: certs });
}

/**
 * A certificate for verifyChain / deriveCommand without building an @peculiar/x509 object.
 * Both read certificates only through src/ca/x509.ts `parsed()`, i.e. through `rawData`
 * (parsed strictly by our own DER parser, cached per object). Constructing the @peculiar/x509
 * object costs about 1 ms per certificate — more than everything else the endpoint does for a
 * connection — and the endpoint never needs its API. Should verify.ts ever use more of the
 * object, the access fails, the connection is refused, and the endpoint tests catch it.
 * (Better: a ParsedCertificate-based verifyChain in src/ca/verify.ts; asked for.)
 */
export function derBacked(der: Uint8Array): X509Certificate {
  const copy = new Uint8Array(der); // own buffer: rawData must be exactly this certificate
  const cert = { rawData: copy.buffer } as unknown as X509Certificate;
  parsed(cert); // strict parse (and cache) now: a malformed certificate is refused here
  return cert;
}

/** Names chain and the key ids (where both are present) agree; the signature is verifyChain's. */
function issuedBy(c: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (!dnEquals(c.issuer, issuer.subject)) return false;
  const aki = authorityKeyId(c);
  const ski = subjectKeyId(issuer);
  return !(aki && ski && !bytesEqual(aki, ski));
}
