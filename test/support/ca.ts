// Helpers for the CA tests: building chains with arbitrary properties, running openssl and
// the CLI, temp dirs, the vectors.
import "reflect-metadata";
import { execFile } from "node:child_process";
import type { KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { X509Certificate } from "@peculiar/x509";
import { encodeCertExtension } from "../../src/commands/codec.js";
import type { Command, Policy } from "../../src/commands/types.js";
import { encodeCnName } from "../../src/ca/asn1.js";
import { DAY, issueCertificate, validity, type Profile } from "../../src/ca/issue.js";
import { generateKey, spkiDer, type KeyType } from "../../src/ca/keys.js";
import { certificateFromDer, certificatesFromPem, toPem } from "../../src/ca/x509.js";

const pExecFile = promisify(execFile);

/** Repository root, from test/support (ts) and dist/test/support (js). */
export const ROOT = fileURLToPath(new URL(import.meta.url.includes("/dist/") ? "../../../" : "../../", import.meta.url));
export const VECTORS = join(ROOT, "fixtures/vectors");
export const CLI = join(ROOT, "bin/dromedary.cjs");

export const vectorCerts = (name: string): X509Certificate[] => certificatesFromPem(readFileSync(join(VECTORS, name), "utf8"));

const made: string[] = [];
process.on("exit", () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp dir, removed when the test process exits. */
export const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), "dromedary-ca-"));
  made.push(d);
  return d;
};

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function run(cmd: string, args: readonly string[], cwd?: string): Promise<Run> {
  try {
    const r = await pExecFile(cmd, [...args], { cwd, maxBuffer: 64 << 20, encoding: "utf8" });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof x.code !== "number") throw e;
    return { code: x.code, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

export const cli = (cwd: string, ...args: string[]): Promise<Run> => run(process.execPath, [CLI, ...args], cwd);
export const openssl = (cwd: string, ...args: string[]): Promise<Run> => run("openssl", args, cwd);

/** `openssl req` arguments for a new, unencrypted P-256 key (then `-keyout FILE`). */
export const NEW_P256_KEY: readonly string[] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export interface Node {
  readonly cn: string;
  readonly key: KeyObject;
  readonly cert: X509Certificate;
  readonly der: Uint8Array;
}

export const policy = (p: Partial<Policy> = {}): Policy => ({
  unikernels: p.unikernels ?? 16n,
  cpuids: p.cpuids ?? [0, 1],
  memory: p.memory ?? 1024,
  ...(p.block === undefined ? {} : { block: p.block }),
  bridges: p.bridges ?? ["service"],
});

export const consoleCmd: Command = { kind: "console-subscribe", sinceCount: { kind: "count", count: 20 } };

export interface MakeOptions {
  readonly profile: Profile;
  readonly cn: string;
  readonly keyType?: KeyType;
  /** the subject's key (default: a fresh one of keyType) */
  readonly key?: KeyObject;
  readonly issuer?: Node;
  readonly policy?: Policy;
  readonly command?: Command;
  /** raw albatross extension value (overrides policy/command) */
  readonly albatross?: Uint8Array;
  readonly now?: Date;
  readonly seconds?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** Issue a certificate directly (bypassing `sign`'s checks) for building odd chains. */
export async function make(o: MakeOptions): Promise<Node> {
  const key = o.key ?? (await generateKey(o.keyType ?? "ed25519"));
  const subject = encodeCnName(o.cn);
  const issuerKey = o.issuer?.key ?? key;
  const issuerName = o.issuer ? encodeCnName(o.issuer.cn) : subject;
  const v = validity(o.now ?? new Date(), o.seconds ?? DAY);
  const albatross =
    o.albatross ??
    (o.policy
      ? encodeCertExtension({ version: 5, command: { kind: "policy-add", policy: o.policy } })
      : o.command
        ? encodeCertExtension({ version: 5, command: o.command })
        : undefined);
  const der = await issueCertificate({
    profile: o.profile,
    subject,
    spki: spkiDer(key),
    issuerName,
    issuerKey,
    ...(albatross ? { albatross } : {}),
    notBefore: o.notBefore ?? v.notBefore,
    notAfter: o.notAfter ?? v.notAfter,
  });
  return { cn: o.cn, key, der, cert: certificateFromDer(der) };
}

export function writePem(dir: string, file: string, ...nodes: Array<Node | Uint8Array>): string {
  const path = join(dir, file);
  writeFileSync(path, nodes.map((n) => toPem(n instanceof Uint8Array ? n : n.der, "CERTIFICATE")).join(""));
  return path;
}
