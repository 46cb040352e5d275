// The certificate authority operations behind `dromedary generate` and `dromedary sign`
// (cli.md §2 "Certificates", upstream albatross_client.ml `generate` / `sign_csr`).
//
// Differences from upstream, all on the side of refusing what would be wrong later:
// * `sign` checks the requested policy against EVERY policy in the signer's chain (upstream:
//   only the CA certificate's own) and the chain's own monotonicity; no `--force`.
// * `sign` checks that the CA key matches CACERT, that CACERT is a CA, that the CN works as a
//   label at the TLS endpoint, and that the resulting chain stays under 10 certificates.
// * CACERT may hold a chain (issuer first); every certificate of it that is not self-signed
//   goes into the output, so delegation deeper than one level yields complete chains.
// * Output files are never overwritten unless asked to; keys are written 0600.

import type { KeyObject } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { decodeCertExtension, encodeCertExtension } from "../commands/codec.js";
import { DecodeError, type Bytes } from "../commands/der.js";
import { WIRE_VERSION, type Command } from "../commands/types.js";
import { LABEL_ERROR, isLabel } from "../core/name.js";
import { fineWithPolicy, isSmaller, usable } from "../policy/policy.js";
import { allowedLeafCommand, chainPolicies, checkPolicyMonotonic, MAX_CHAIN_LENGTH } from "./chain.js";
import { describeCommand } from "../commands/render.js";
import { fileNameProblem } from "./request.js";
import { csrCommonName, parseCsrPem, CsrError } from "./csr.js";
import { dnToString, encodeCnName } from "./asn1.js";
import { DAY, issueCertificate, validity, type Profile } from "./issue.js";
import {
  KeyError,
  generateKey,
  keyKind,
  keyMatchesSpki,
  pathExists,
  readPrivateKeyFile,
  spkiDer,
  writeNewFile,
  writePrivateKeyFile,
  type KeyType,
} from "./keys.js";
import {
  CertificateError,
  KU,
  albatrossExtension,
  basicConstraints,
  fromPemAll,
  isSelfIssued,
  keyUsage,
  parseCertificate,
  serialHex,
  toPem,
  type ParsedCertificate,
} from "./x509.js";
import { createPublicKey } from "node:crypto";

export class AuthorityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthorityError";
  }
}

const exists = (path: string): Promise<boolean> => pathExists(path, (m) => new AuthorityError(m));

/** The key file `<name>.key`: read if present, else generated and written (0600). */
async function loadOrCreateKey(file: string, type: KeyType, password?: string): Promise<{ key: KeyObject; created: boolean }> {
  if (await exists(file)) return { key: await readPrivateKeyFile(file, password), created: false };
  const key = await generateKey(type);
  await writePrivateKeyFile(file, key, password);
  return { key, created: true };
}

async function appendDb(db: string, serial: Bytes, cn: string): Promise<void> {
  try {
    await fs.appendFile(db, `${serialHex(serial)} ${cn}\n`, { mode: 0o644 });
  } catch (e) {
    throw new AuthorityError(`cannot append to ${db}: ${(e as Error).message}`);
  }
}

function wrap<T>(f: () => Promise<T>): Promise<T> {
  return f().catch((e: unknown) => {
    if (e instanceof KeyError || e instanceof CertificateError || e instanceof CsrError) throw new AuthorityError(e.message);
    throw e;
  });
}

// --- generate -------------------------------------------------------------------------

export interface GenerateOptions {
  /** CN of the root CA and name of its key file `<name>.key` */
  readonly name: string;
  readonly db: string;
  /** default 3650 */
  readonly days?: number;
  /** default "server" */
  readonly server?: string;
  /** default 365 */
  readonly serverDays?: number;
  readonly keyType: KeyType;
  /** directory for the output files (default: current directory) */
  readonly dir?: string;
  /** encrypts a newly generated CA key / decrypts an existing one; the server key stays plain (the endpoint reads it) */
  readonly keyPassword?: string;
  readonly overwrite?: boolean;
  readonly now?: Date;
}

export interface GenerateResult {
  readonly caKeyFile: string;
  readonly caCertFile: string;
  readonly serverKeyFile: string;
  readonly serverCertFile: string;
  readonly createdKeys: string[];
  readonly serverSerial: string;
}

export function generate(o: GenerateOptions): Promise<GenerateResult> {
  return wrap(async () => {
    const dir = o.dir ?? ".";
    const server = o.server ?? "server";
    for (const n of [o.name, server]) {
      const bad = fileNameProblem(n);
      if (bad) throw new AuthorityError(bad);
    }
    if (o.name === "cacert") throw new AuthorityError("the CA name cacert would make cacert.pem hold both certificates");
    if (server === o.name) throw new AuthorityError("the CA and the server need different names");
    const days = o.days ?? 3650,
      serverDays = o.serverDays ?? 365;
    for (const d of [days, serverDays]) if (!Number.isSafeInteger(d) || d <= 0) throw new AuthorityError(`invalid number of days ${d}`);
    const caKeyFile = join(dir, `${o.name}.key`);
    const caCertFile = join(dir, "cacert.pem"); // fixed name, as upstream
    const serverKeyFile = join(dir, `${server}.key`);
    const serverCertFile = join(dir, `${server}.pem`);
    if (!o.overwrite) {
      for (const f of [caCertFile, serverCertFile]) if (await exists(f)) throw new AuthorityError(`${f} already exists, not overwriting it`);
    }
    const now = o.now ?? new Date();
    const createdKeys: string[] = [];
    const ca = await loadOrCreateKey(caKeyFile, o.keyType, o.keyPassword);
    if (ca.created) createdKeys.push(caKeyFile);
    const caName = encodeCnName(o.name);
    const caValid = validity(now, days * DAY);
    const caDer = await issueCertificate({ profile: "root", subject: caName, spki: spkiDer(ca.key), issuerName: caName, issuerKey: ca.key, ...caValid });
    const srv = await loadOrCreateKey(serverKeyFile, o.keyType);
    if (srv.created) createdKeys.push(serverKeyFile);
    const srvValid = validity(now, serverDays * DAY);
    const srvDer = await issueCertificate({
      profile: "server",
      subject: encodeCnName(server),
      spki: spkiDer(srv.key),
      issuerName: caName,
      issuerKey: ca.key,
      ...srvValid,
    });
    const srvCert = parseCertificate(srvDer);
    await writeNewFile(caCertFile, toPem(caDer, "CERTIFICATE"), 0o644, o.overwrite);
    // upstream: the root is not recorded in the DB, the server certificate is
    await appendDb(o.db, srvCert.serial, server);
    await writeNewFile(serverCertFile, toPem(srvDer, "CERTIFICATE"), 0o644, o.overwrite);
    return { caKeyFile, caCertFile, serverKeyFile, serverCertFile, createdKeys, serverSerial: serialHex(srvCert.serial) };
  });
}

// --- sign -----------------------------------------------------------------------------

export interface SignOptions {
  /** PEM file: the signing CA certificate first, optionally followed by its own chain */
  readonly caCertFile: string;
  readonly db: string;
  readonly caKeyFile: string;
  readonly csrFile: string;
  /** default: 365 for CA and server certificates, 1 for command certificates */
  readonly days?: number;
  readonly dir?: string;
  readonly keyPassword?: string;
  readonly overwrite?: boolean;
  readonly now?: Date;
}

export interface SignResult {
  readonly certFile: string;
  readonly profile: Profile;
  readonly subject: string;
  readonly serial: string;
  readonly command?: Command;
  readonly notAfter: Date;
  /** number of certificates written (new one + chain) */
  readonly chainLength: number;
  readonly warnings: string[];
}

/** Read a PEM file of certificates, strictly. */
export async function readCertificateFile(file: string): Promise<ParsedCertificate[]> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (e) {
    throw new AuthorityError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const certs = fromPemAll(text, "CERTIFICATE").map(parseCertificate);
    if (certs.length === 0) throw new AuthorityError(`${file}: no PEM CERTIFICATE found`);
    return certs;
  } catch (e) {
    if (e instanceof CertificateError) throw new AuthorityError(`${file}: ${e.message}`);
    throw e;
  }
}

function issuerProblem(c: ParsedCertificate): string | null {
  const bc = basicConstraints(c);
  if (!bc?.ca) return "it is not a CA certificate (basicConstraints CA:TRUE missing)";
  const ku = keyUsage(c);
  if (ku && !ku.has(KU.keyCertSign)) return "its keyUsage does not allow certificate signing";
  return null;
}

export function sign(o: SignOptions): Promise<SignResult> {
  return wrap(async () => {
    const warnings: string[] = [];
    const dir = o.dir ?? ".";
    const caChain = await readCertificateFile(o.caCertFile);
    const cacert = caChain[0]!;
    const key = await readPrivateKeyFile(o.caKeyFile, o.keyPassword);
    if (!keyMatchesSpki(key, cacert.publicKey.der)) throw new AuthorityError("Public key of certificate doesn't match private key");
    const notCa = issuerProblem(cacert);
    if (notCa) throw new AuthorityError(`${o.caCertFile} cannot sign: ${notCa}`);

    // policies delegated to the signer, deepest (its own) first
    const pol = chainPolicies(caChain);
    if (!pol.ok) throw new AuthorityError(`${o.caCertFile}: ${pol.error}`);
    const mono = checkPolicyMonotonic(pol.value.policies);
    if (!mono.ok) throw new AuthorityError(`${o.caCertFile}: ${mono.error}`);
    const policies = pol.value.policies;

    let csrText: string;
    try {
      csrText = await fs.readFile(o.csrFile, "utf8");
    } catch (e) {
      throw new AuthorityError(`cannot read ${o.csrFile}: ${(e as Error).message}`);
    }
    const csr = parseCsrPem(csrText);
    const cn = csrCommonName(csr);
    if (cn === null) throw new AuthorityError("couldn't find name (no common name in CSR subject)");
    const bad = fileNameProblem(cn);
    if (bad) throw new AuthorityError(bad);
    try {
      keyKind(createPublicKey({ key: Buffer.from(csr.publicKey.der), format: "der", type: "spki" }));
    } catch (e) {
      throw new AuthorityError(`the request's public key: ${(e as Error).message}`);
    }

    let profile: Profile;
    let defaultDays: number;
    let albatross: Bytes | undefined;
    let command: Command | undefined;
    const extValue = albatrossExtension(csr);
    if (extValue !== undefined) {
      let decoded;
      try {
        decoded = decodeCertExtension(extValue);
      } catch (e) {
        throw new AuthorityError(e instanceof DecodeError ? e.reason : (e as Error).message);
      }
      command = decoded.command;
      if (command.kind === "policy-add") {
        const u = usable(command.policy);
        if (u) throw new AuthorityError(u);
        // The CN becomes a path component at the endpoint, so it must be a label.
        if (!isLabel(cn)) throw new AuthorityError(`the common name ${JSON.stringify(cn)} of a delegation must be a label: ${LABEL_ERROR}`);
        for (const sup of policies) {
          const e = isSmaller(sup.policy, command.policy);
          if (e) throw new AuthorityError(`policy of ${sup.path.join(":") || "(root)"}: ${e}`);
        }
        profile = "intermediate";
        defaultDays = 365;
      } else {
        if (command.kind === "unikernel-create" || command.kind === "unikernel-force-create") {
          for (const p of policies) {
            const e = fineWithPolicy(p.policy, command.config);
            if (e) throw new AuthorityError(`policy of ${p.path.join(":")}: ${e}`);
          }
        }
        if (cn !== "." && cn !== ":" && !isLabel(cn)) {
          throw new AuthorityError(`the common name ${JSON.stringify(cn)} of a command certificate must be a label, "." or ":": ${LABEL_ERROR}`);
        }
        if (!allowedLeafCommand(command)) warnings.push(`the TLS endpoint refuses "${describeCommand(command)}" in a leaf certificate`);
        profile = "leaf";
        defaultDays = 1;
      }
      // re-encoded with our version (only 5 decodes anyway)
      albatross = encodeCertExtension({ version: WIRE_VERSION, command });
    } else {
      warnings.push("signing certificate without albatross extension (e.g. host certificate)");
      profile = "server";
      defaultDays = 365;
    }
    const days = o.days ?? defaultDays;
    if (!Number.isSafeInteger(days) || days <= 0) throw new AuthorityError(`invalid number of days ${days}`);

    // the chain written out: new certificate + every non-self-signed certificate of CACERT
    const carried = caChain.filter((c) => !isSelfIssued(c));
    // the client presents exactly this chain; the endpoint refuses 10 or more certificates
    if (1 + carried.length >= MAX_CHAIN_LENGTH) throw new AuthorityError("certificate chain too long");

    const certFile = join(dir, `${cn}.pem`);
    if (!o.overwrite && (await exists(certFile))) throw new AuthorityError(`${certFile} already exists, not overwriting it`);
    const now = o.now ?? new Date();
    for (const c of caChain) {
      if (now < c.notBefore || now > c.notAfter)
        warnings.push(`${dnToString(c.subject)} in ${o.caCertFile} is not valid now (${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()})`);
    }
    const v = validity(now, days * DAY);
    // (a few seconds beyond the issuer are normal: both count from their own "now")
    if (v.notAfter.getTime() > cacert.notAfter.getTime() + DAY * 1000)
      warnings.push(`the certificate outlives its issuer (valid until ${cacert.notAfter.toISOString()})`);
    const der = await issueCertificate({
      profile,
      subject: csr.subjectDer,
      spki: csr.publicKey.der,
      issuerName: cacert.subjectDer,
      issuerKey: key,
      ...(albatross === undefined ? {} : { albatross }),
      ...v,
    });
    const cert = parseCertificate(der);
    const pem = [der, ...carried.map((c) => c.der)].map((d) => toPem(d, "CERTIFICATE")).join("");
    await writeNewFile(certFile, pem, 0o644, o.overwrite);
    await appendDb(o.db, cert.serial, cn);
    return {
      certFile,
      profile,
      subject: cn,
      serial: serialHex(cert.serial),
      ...(command ? { command } : {}),
      notAfter: cert.notAfter,
      chainLength: 1 + carried.length,
      warnings,
    };
  });
}
