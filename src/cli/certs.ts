// `dromedary generate`, `sign` and `verify` (cli.md §2 "Certificates"; verify is ours).
import "reflect-metadata";
import type { Command } from "commander";
import { Option } from "commander";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { AuthorityError, generate, sign } from "../ca/authority.js";
import { KEY_TYPES, parseKeyType, type KeyType } from "../ca/keys.js";
import { PasswordError, existingKeyPassword, newKeyPassword } from "../ca/password.js";
import { verifyAlbatrossChain, type AlbatrossReport } from "../ca/verify.js";
import { CertificateError, certificatesFromPem } from "../ca/x509.js";
import { describeCommand } from "../commands/render.js";
import { toJson } from "../commands/show.js";
import type { PolicyAt } from "../ca/chain.js";
import { nameToString, pathToString } from "../core/name.js";
import { formatPolicy } from "../commands/render.js";
import { commandJson } from "../client/jsonview.js";
import { CliError, EXIT } from "../core/exit.js";

function intArg(what: string) {
  return (v: string): number => {
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) <= 0)
      throw new CliError(`${what} must be a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}

function keyTypeOption(): Option {
  return new Option("--key-type <type>", "key type of newly generated keys").choices([...KEY_TYPES]).default("ed25519");
}

/** RFC 3339 date-time (`2025-08-22T13:05:00Z`, offsets allowed) or a date (midnight UTC). */
function parseTime(s: string): Date {
  const ok = /^\d{4}-\d{2}-\d{2}$/.test(s) || /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(s);
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
  if (!ok || Number.isNaN(d.getTime())) throw new CliError(`invalid time ${JSON.stringify(s)} (expected e.g. 2025-08-22T13:05:00Z)`);
  return d;
}

async function guard<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof AuthorityError || e instanceof PasswordError || e instanceof CertificateError) {
      throw new CliError(`${what}: ${e.message}`, EXIT.USAGE);
    }
    throw e;
  }
}

async function keyExists(f: string): Promise<boolean> {
  try {
    await fs.lstat(f);
    return true;
  } catch {
    return false;
  }
}

export function registerCertCommands(program: Command): void {
  program
    .command("generate")
    .description("generate a root CA certificate (cacert.pem) and a server certificate, as albatross-client generate")
    .argument("<NAME>", "common name of the CA; its key is NAME.key")
    .argument("<DB>", "file recording the issued serial numbers")
    .option("--days <n>", "validity of the CA certificate in days", intArg("--days"), 3650)
    .option("--server <sname>", "common name of the server certificate (SNAME.pem, SNAME.key)", "server")
    .option("--server-days <n>", "validity of the server certificate in days", intArg("--server-days"), 365)
    .addOption(keyTypeOption())
    .option("--key-password-file <file>", "encrypt the new CA key (AES-256) with the password in this file; on a terminal you are asked instead")
    .option("--overwrite", "replace existing cacert.pem / SNAME.pem")
    .option("--json", "print the result as one JSON object")
    .action(
      async (
        name: string,
        db: string,
        o: { days: number; server: string; serverDays: number; keyType: string; keyPasswordFile?: string; overwrite?: boolean; json?: boolean },
      ) => {
        await guard("error while generating", async () => {
          const caKey = join(".", `${name}.key`);
          const keyPassword = (await keyExists(caKey)) ? await existingKeyPassword(o.keyPasswordFile, caKey) : await newKeyPassword(o.keyPasswordFile, caKey);
          const r = await generate({
            name,
            db,
            days: o.days,
            server: o.server,
            serverDays: o.serverDays,
            keyType: parseKeyType(o.keyType) as KeyType,
            ...(keyPassword === undefined ? {} : { keyPassword }),
            overwrite: Boolean(o.overwrite),
          });
          if (o.json) {
            const { caKeyFile: caKey, caCertFile: caCert, serverKeyFile: serverKey, serverCertFile: serverCert, createdKeys, serverSerial } = r;
            process.stdout.write(
              `${JSON.stringify({ event: "generated", ca: name, caKey, caCert, server: o.server, serverKey, serverCert, serverSerial, db, createdKeys })}\n`,
            );
            return;
          }
          for (const k of r.createdKeys) process.stdout.write(`created key ${k}\n`);
          process.stdout.write(`wrote ${r.caCertFile} (CA ${name}) and ${r.serverCertFile} (serial ${r.serverSerial}, recorded in ${db})\n`);
        });
      },
    );

  program
    .command("sign")
    .description("sign a certificate signing request with a CA certificate and key, as albatross-client sign")
    .argument("<CACERT>", "certificate of the signing CA (optionally followed by its chain)")
    .argument("<DB>", "file recording the issued serial numbers")
    .argument("<KEY>", "private key of the signing CA")
    .argument("<CSR>", "the request")
    .option("--days <n>", "validity in days (default: 365 for CA and server certificates, 1 for command certificates)", intArg("--days"))
    .option("--key-password-file <file>", "password of an encrypted CA key; on a terminal you are asked instead")
    .option("--overwrite", "replace an existing <CN>.pem")
    .option("--json", "print the result as one JSON object (warnings also go to standard error)")
    .action(
      async (cacert: string, db: string, key: string, csr: string, o: { days?: number; keyPasswordFile?: string; overwrite?: boolean; json?: boolean }) => {
        await guard("error while signing", async () => {
          const keyPassword = await existingKeyPassword(o.keyPasswordFile, key);
          const r = await sign({
            caCertFile: cacert,
            db,
            caKeyFile: key,
            csrFile: csr,
            ...(o.days === undefined ? {} : { days: o.days }),
            ...(keyPassword === undefined ? {} : { keyPassword }),
            overwrite: Boolean(o.overwrite),
          });
          for (const w of r.warnings) process.stderr.write(`dromedary: [WARNING] ${w}\n`);
          if (o.json) {
            const { certFile: certificate, profile, subject, serial, notAfter, chainLength, warnings } = r;
            const command = r.command === undefined ? null : commandJson(r.command);
            process.stdout.write(
              `${JSON.stringify({ event: "signed", profile, certificate, subject, serial, notAfter, chainLength, db, command, warnings })}\n`,
            );
            return;
          }
          const what = r.profile === "intermediate" ? "CA certificate" : r.profile === "leaf" ? "command certificate" : "server certificate";
          process.stdout.write(
            `signed ${what} for ${r.subject}${r.command ? ` (${describeCommand(r.command)})` : ""}, serial ${r.serial}, valid until ${r.notAfter.toISOString()}\n`,
          );
          process.stdout.write(`wrote ${r.certFile} (${r.chainLength} certificate${r.chainLength > 1 ? "s" : ""})\n`);
        });
      },
    );

  program
    .command("verify")
    .description(
      "verify a certificate chain offline, as the TLS endpoint would, and show what it grants: a command certificate (leaf) or a delegation (an intermediate CA made by add-policy --csr and sign)",
    )
    .argument("<CHAIN>", "PEM file, leaf or delegation first (as written by sign)")
    .option("--ca <file>", "trusted CA certificate(s)", "cacert.pem")
    .option("--at <time>", "verify at this time (RFC 3339) instead of now")
    .option("--json", "print the result as one JSON object")
    .action(async (chainFile: string, o: { ca: string; at?: string; json?: boolean }) => {
      const at = o.at === undefined ? new Date() : parseTime(o.at);
      const read = async (f: string) => {
        let text: string;
        try {
          text = await fs.readFile(f, "utf8");
        } catch (e) {
          throw new CliError(`cannot read ${f}: ${(e as Error).message.split("\n")[0]}`);
        }
        try {
          const certs = certificatesFromPem(text);
          if (certs.length === 0) throw new CliError(`${f}: no PEM CERTIFICATE found`);
          return certs;
        } catch (e) {
          if (e instanceof CertificateError) throw new CliError(`${f}: ${e.message}`);
          throw e;
        }
      };
      const chain = await read(chainFile);
      const anchors = await read(o.ca);
      const r = await verifyAlbatrossChain(chain, anchors, { at });
      process.stdout.write(o.json ? `${JSON.stringify(verifyJson(chainFile, at, r))}\n` : verifyText(r));
      if (!r.ok) process.exitCode = EXIT.CHAIN_INVALID;
    });
}

/** The first problem of a report, as one line (`CN=sub: policy wider than ...`), or null. */
function firstProblem(r: AlbatrossReport): string | null {
  for (const l of r.links) if (l.problems.length > 0) return `${l.subject}: ${l.problems[0]}`;
  return r.problems[0] ?? null;
}

const policyLines = (policies: readonly PolicyAt[]): string[] => policies.map((p) => `policy ${pathToString(p.path)}: ${formatPolicy(p.policy)}`);

/**
 * `verify`'s report: a line per problem of each certificate (or `ok`), the chain's own
 * problems, the trust anchor, then what the chain grants, and the verdict. A leaf's verdict
 * is `chain ok` / `chain NOT valid`; a delegation's `delegation ok` / `delegation NOT
 * valid: <its first problem>`.
 */
function verifyText(r: AlbatrossReport): string {
  const out: string[] = [];
  for (const l of r.links) {
    if (l.problems.length === 0) out.push(`${l.subject}: ok`);
    else for (const p of l.problems) out.push(`${l.subject}: ${p}`);
  }
  for (const p of r.problems) out.push(p);
  if (r.anchor) out.push(`trusted CA: ${r.anchor}`);
  if (r.derived) {
    out.push(`name: ${nameToString(r.derived.name)}`);
    out.push(...policyLines(r.derived.policies));
    out.push(`command: ${describeCommand(r.derived.command)}`);
  }
  if (r.delegated) {
    out.push(`delegation: ${pathToString(r.delegated.path)} (an intermediate CA: the leaves it signs are named ${pathToString(r.delegated.path)}:<name>)`);
    out.push(...policyLines(r.delegated.policies));
  }
  if (r.kind === "leaf") out.push(r.ok ? "chain ok" : "chain NOT valid");
  else out.push(r.ok ? "delegation ok" : `delegation NOT valid: ${firstProblem(r)}`);
  return `${out.join("\n")}\n`;
}

const policiesJson = (policies: readonly PolicyAt[]): unknown[] => policies.map((p) => ({ path: pathToString(p.path), policy: toJson(p.policy) }));

/**
 * `verify --json`: one object. `kind` leaf or delegation, `ok`, `reason` (the first
 * problem, null when ok), every link with its problems, the anchor, and what is granted:
 * a leaf's `name`, `policies`, `command` (its image summarised); a delegation's `path` and
 * `policies` (deepest first). Numbers as in every --json output (src/commands/show.ts).
 */
function verifyJson(chainFile: string, at: Date, r: AlbatrossReport): unknown {
  const links = r.links.map((l) => ({
    subject: l.subject,
    issuer: l.issuer,
    notBefore: l.notBefore ?? null,
    notAfter: l.notAfter ?? null,
    problems: l.problems,
  }));
  const granted =
    r.derived !== null
      ? { name: nameToString(r.derived.name), policies: policiesJson(r.derived.policies), command: commandJson(r.derived.command) }
      : r.delegated !== null
        ? { path: pathToString(r.delegated.path), policies: policiesJson(r.delegated.policies) }
        : {};
  return toJson({
    event: "verified",
    file: chainFile,
    at,
    kind: r.kind,
    ok: r.ok,
    reason: firstProblem(r),
    links,
    problems: r.problems,
    anchor: r.anchor,
    ...granted,
  });
}
