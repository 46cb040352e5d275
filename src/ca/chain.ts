// From a client certificate chain to (name, policies, version, command), exactly as
// albatross' TLS endpoint does it (wire.md §11, upstream tls/vmm_tls.ml `handle`).
// Pure: no I/O, no clock (signatures and validity are src/ca/verify.ts' business).

import type { X509Certificate } from "@peculiar/x509";
import { decodeCertExtension } from "../commands/codec.js";
import { DecodeError } from "../commands/der.js";
import { describeCommand } from "../commands/render.js";
import type { Command, Policy } from "../commands/types.js";
import { NameError, parseLabel, pathToString, type Name, type Path } from "../core/name.js";
import { isSmaller } from "../policy/policy.js";
import { err, ok, type Result } from "../core/result.js";
import { albatrossExtension, parsed, subjectCN, CertificateError, type ParsedCertificate } from "./x509.js";

export interface PolicyAt {
  readonly path: Path;
  readonly policy: Policy;
}

export interface Derived {
  readonly name: Name;
  /** deepest first (the CA closest to the leaf first) */
  readonly policies: PolicyAt[];
  readonly version: number;
  readonly command: Command;
}

/** Upstream's chain length limit: 10 or more certificates are refused. */
export const MAX_CHAIN_LENGTH = 10;

type Ext = { kind: "absent" } | { kind: "error"; message: string } | { kind: "ok"; version: number; command: Command };

function decodeExtensionOf(c: ParsedCertificate): Ext {
  const v = albatrossExtension(c);
  if (v === undefined) return { kind: "absent" };
  try {
    const e = decodeCertExtension(v);
    return { kind: "ok", version: e.version, command: e.command };
  } catch (e) {
    // the decoder's own message (e.g. `unknown version number 0x4`)
    const message = e instanceof DecodeError ? e.reason : (e as Error).message;
    return { kind: "error", message };
  }
}

/** upstream `cert_name`: the CN, or an error for commands that need a name. */
function certName(c: ParsedCertificate, ext: Ext): Result<string | null> {
  if (ext.kind === "absent") return ok(null);
  const cn = subjectCN(c);
  if (cn !== null) return ok(cn);
  if (ext.kind === "error") return err("couldn't parse albatross extension");
  const emptyName: Partial<Record<Command["kind"], string>> = {
    "policy-add": "policy add",
    "policy-remove": "policy remove",
    "block-add": "block add",
    "block-add-old": "old block add",
    "block-remove": "block remove",
    "block-set": "block set",
    "block-set-old": "old block set",
    "block-dump": "block dump",
    // upstream prints "block dump" for the old dump too
    "block-dump-old": "block dump",
  };
  const what = emptyName[ext.command.kind];
  return what ? err(`${what} may not have an empty name`) : ok(null);
}

function label(s: string): Result<string> {
  try {
    return ok(parseLabel(s));
  } catch (e) {
    if (e instanceof NameError) return err(e.message);
    throw e;
  }
}

/** The leaf commands the endpoint forwards (wire.md §11 step 5). */
export function allowedLeafCommand(c: Command): boolean {
  switch (c.kind) {
    case "console-subscribe":
    case "console-list-inactive":
    case "stats-subscribe":
    case "policy-info":
      return true;
    default:
      return c.kind.startsWith("unikernel-") || c.kind.startsWith("block-");
  }
}

/**
 * wire.md §11 steps 1–6 on a chain leaf first (the endpoint's peer chain: leaf, then its
 * issuer, ...; a root CA without extension may be included, it is ignored).
 */
export function deriveCommand(chain: readonly X509Certificate[]): Result<Derived> {
  if (chain.length >= MAX_CHAIN_LENGTH) return err("certificate chain too long");
  if (chain.length === 0) return err("empty chain");
  let certs: ParsedCertificate[];
  try {
    certs = chain.map(parsed);
  } catch (e) {
    if (e instanceof CertificateError) return err(e.message);
    throw e;
  }
  return deriveFromParsed(certs);
}

export function deriveFromParsed(certs: readonly ParsedCertificate[]): Result<Derived> {
  if (certs.length >= MAX_CHAIN_LENGTH) return err("certificate chain too long");
  if (certs.length === 0) return err("empty chain");
  const [leaf, ...rest] = certs as [ParsedCertificate, ...ParsedCertificate[]];
  const cp = chainPolicies(rest);
  if (!cp.ok) return cp;
  const { path, policies } = cp.value;
  const leafExt = decodeExtensionOf(leaf);
  const cn = certName(leaf, leafExt);
  if (!cn.ok) return cn;
  let name: Name;
  if (cn.value === null || cn.value === "." || cn.value === ":") {
    name = { path, label: null };
  } else {
    const l = label(cn.value);
    if (!l.ok) return l;
    name = { path, label: l.value };
  }
  if (leafExt.kind === "absent") return err("leaf certificate does not contain an albatross extension");
  if (leafExt.kind === "error") return err(leafExt.message);
  if (!allowedLeafCommand(leafExt.command)) return err("unexpected command");
  return ok({ name, policies, version: leafExt.version, command: leafExt.command });
}

/**
 * The CA part of a chain (nearest CA first, as in a chain file after the leaf): the
 * accumulated path and the policies, deepest first (wire.md §11 step 3).
 */
export function chainPolicies(cas: readonly ParsedCertificate[]): Result<{ path: Path; policies: PolicyAt[] }> {
  let path: Path = [];
  const policies: PolicyAt[] = [];
  for (const c of [...cas].reverse()) {
    const ext = decodeExtensionOf(c);
    if (ext.kind === "absent") continue;
    if (ext.kind === "error") return err(ext.message);
    if (ext.command.kind !== "policy-add") return err(`unexpected wire ${describeCommand(ext.command)}`);
    const cn = certName(c, ext);
    if (!cn.ok) return cn;
    if (cn.value !== null) {
      const l = label(cn.value);
      if (!l.ok) return l;
      path = [...path, l.value];
    }
    policies.unshift({ path, policy: ext.command.policy });
  }
  return ok({ path, policies });
}

/**
 * Every policy must fit into the one above it (policy.md §3, `is_smaller`). `policies` is
 * deepest first, as deriveCommand returns them. On failure the error names the path of the
 * offending (lower) policy and the field: `policy of user:sub: policy above allows ...`.
 */
export function checkPolicyMonotonic(policies: readonly PolicyAt[]): Result<null> {
  for (let i = 0; i + 1 < policies.length; i++) {
    const sub = policies[i]!,
      sup = policies[i + 1]!;
    const e = isSmaller(sup.policy, sub.policy);
    if (e) return err(`policy of ${sub.path.join(":")}: ${e}`);
  }
  return ok(null);
}

/**
 * cli.md §1.1: the CommonName of a leaf certificate or CSR that carries `cmd` for `name` —
 * the path text for policy commands (empty for the root path), otherwise the label of a
 * root-path name (`.` for the root name itself). null: the name has a path, which only the
 * CA chain may supply.
 */
export function leafCommonName(cmd: Command, name: Name): string | null {
  if (cmd.kind === "policy-info" || cmd.kind === "policy-add" || cmd.kind === "policy-remove") return pathToString(name.path);
  if (name.path.length !== 0) return null;
  return name.label ?? ".";
}
