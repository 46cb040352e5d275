// Recognising and explaining albatross data for `dromedary inspect` (the command: cli/inspect.ts):
// wire messages (hex text such as the output of `--socket -`, or binary, with or without the
// 4-byte length prefix, several in a row), state files of any version (binary or base64),
// certificates and CSRs (PEM or DER, with the albatross extension decoded), and bare
// certificate extensions; as text or JSON. Pure.

import { decodeCertExtension, decodeState, decodeWire } from "../commands/codec.js";
import { DecodeError, readTlv, type Bytes } from "../commands/der.js";
import { toJson } from "../commands/show.js";
import { ALBATROSS_OID, type CertExtension, type State, type StateVersion, type Wire } from "../commands/types.js";
import { dnToString, OID } from "../ca/asn1.js";
import { albatrossExtension, parseCertificate, type Extension, type ParsedCertificate } from "../ca/x509.js";
import { parseCsr, type ParsedCsr } from "../ca/csr.js";
import { deriveFromParsed } from "../ca/chain.js";
import { compareLabels, nameLabels, nameToString, type Name } from "../core/name.js";
import { commandJson, stateUnikernelJson, wireJson } from "./jsonview.js";
import { configText, dataText, describeCommand, nameText, policyText, successText } from "../commands/render.js";
import { hex } from "../core/hex.js";

// ---------------------------------------------------------------------------------------
// recognising input (pure)

export class InspectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InspectError";
  }
}

type ExtensionResult = { readonly ok: true; readonly ext: CertExtension } | { readonly ok: false; readonly error: string };

export type Item =
  | { readonly type: "wire"; readonly offset: number; readonly length: number; readonly framed: boolean; readonly wire: Wire }
  /** a zero-length (or negative) frame: end of a stream */
  | { readonly type: "end-of-stream"; readonly offset: number }
  | { readonly type: "state"; readonly version: StateVersion; readonly state: State; readonly length: number }
  | { readonly type: "certificate"; readonly cert: ParsedCertificate; readonly extension?: ExtensionResult; readonly chainName?: string }
  | { readonly type: "csr"; readonly csr: ParsedCsr; readonly extension?: ExtensionResult }
  | { readonly type: "extension"; readonly ext: CertExtension }
  | { readonly type: "pem"; readonly label: string };

/** Largest input read. */
export const MAX_INPUT = 1 << 30;

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const errOffset = (e: unknown): number => (e instanceof DecodeError ? e.offset : -1);

function decodeExtension(v: Bytes): ExtensionResult {
  try {
    return { ok: true, ext: decodeCertExtension(v) };
  } catch (e) {
    return { ok: false, error: errText(e) };
  }
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

function fromBase64Strict(body: string): Bytes {
  const t = body.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) throw new InspectError("invalid base64");
  return new Uint8Array(Buffer.from(t, "base64"));
}

function fromHex(s: string): Bytes {
  const t = s.replace(/\s+/g, "");
  if (t.length % 2 !== 0) throw new InspectError("odd number of hex digits");
  return new Uint8Array(Buffer.from(t, "hex"));
}

function isPrintableText(b: Bytes): boolean {
  for (const c of b) if (!(c === 0x09 || c === 0x0a || c === 0x0d || (c >= 0x20 && c <= 0x7e))) return false;
  return true;
}

function pemItems(textIn: string): Item[] {
  const items: Item[] = [];
  const certs: ParsedCertificate[] = [];
  for (const m of textIn.matchAll(PEM_RE)) {
    const label = m[1]!;
    const der = fromBase64Strict(m[2]!.replace(/^[A-Za-z-]+:.*$/gm, ""));
    if (label === "CERTIFICATE") {
      const cert = parseCertificateOrThrow(der);
      certs.push(cert);
      items.push(certificateItem(cert));
    } else if (label === "CERTIFICATE REQUEST" || label === "NEW CERTIFICATE REQUEST") {
      items.push(csrItem(parseCsrOrThrow(der)));
    } else {
      // Keys and anything else: named, never printed.
      items.push({ type: "pem", label });
    }
  }
  if (items.length === 0) throw new InspectError("no PEM block found");
  // A chain (leaf first) names the leaf's command target as the TLS endpoint would (wire.md §11).
  const first = items[0];
  if (certs.length > 0 && first?.type === "certificate" && first.extension?.ok && first.extension.ext.command.kind !== "policy-add") {
    const d = deriveFromParsed(certs);
    items[0] = { ...first, chainName: d.ok ? nameToString(d.value.name) : `(${d.error})` };
  }
  return items;
}

function parseCertificateOrThrow(der: Bytes): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (e) {
    throw new InspectError(`not a certificate: ${errText(e)}`);
  }
}

function parseCsrOrThrow(der: Bytes): ParsedCsr {
  try {
    return parseCsr(der);
  } catch (e) {
    throw new InspectError(`not a certificate signing request: ${errText(e)}`);
  }
}

function certificateItem(cert: ParsedCertificate): Item {
  const v = albatrossExtension(cert);
  return v === undefined ? { type: "certificate", cert } : { type: "certificate", cert, extension: decodeExtension(v) };
}

function csrItem(csr: ParsedCsr): Item {
  const v = albatrossExtension(csr);
  return v === undefined ? { type: "csr", csr } : { type: "csr", csr, extension: decodeExtension(v) };
}

/** Framed messages: every frame must hold a wire message; a length <= 0 ends the stream. */
function tryFramed(b: Bytes): Item[] | null {
  if (b.length < 4) return null;
  const items: Item[] = [];
  let pos = 0;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  while (pos < b.length) {
    if (b.length - pos < 4) return null;
    const len = dv.getInt32(pos, false);
    if (len <= 0) {
      items.push({ type: "end-of-stream", offset: pos });
      pos += 4;
      continue;
    }
    if (len > b.length - pos - 4) return null;
    const payload = b.subarray(pos + 4, pos + 4 + len);
    let wire: Wire;
    try {
      wire = decodeWire(payload);
    } catch {
      return null;
    }
    items.push({ type: "wire", offset: pos, length: len, framed: true, wire });
    pos += 4 + len;
  }
  return items.some((i) => i.type === "wire") ? items : null;
}

/** One or more DER wire messages back to back (no length prefix). */
function tryUnframed(b: Bytes): Item[] {
  const items: Item[] = [];
  let pos = 0;
  while (pos < b.length) {
    const t = readTlv(b, pos, b.length, `message ${items.length + 1}`);
    const wire = decodeWire(b.subarray(pos, t.end));
    items.push({ type: "wire", offset: pos, length: t.end - pos, framed: false, wire });
    pos = t.end;
  }
  return items;
}

/** An X.509 Extension `SEQUENCE { OID, [critical], OCTET STRING }` of the albatross OID. */
function tryX509Extension(b: Bytes): CertExtension {
  const ALB = Uint8Array.from([0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0x85, 0x2c, 0x2a]);
  const outer = readTlv(b, 0, b.length, "extension");
  if (outer.tag !== 0x30 || outer.end !== b.length) throw new InspectError("not an X.509 extension");
  const oid = b.subarray(outer.contentStart, outer.contentStart + ALB.length);
  if (oid.length !== ALB.length || !oid.every((x, i) => x === ALB[i])) throw new InspectError(`not the albatross extension (${ALBATROSS_OID})`);
  let pos = outer.contentStart + ALB.length;
  let t = readTlv(b, pos, outer.end, "extension");
  if (t.tag === 0x01) {
    pos = t.end;
    t = readTlv(b, pos, outer.end, "extension");
  }
  if (t.tag !== 0x04 || t.end !== outer.end) throw new InspectError("malformed extension");
  return decodeCertExtension(b.subarray(t.contentStart, t.end));
}

/** Classify binary input. Throws InspectError with the most telling reason. */
function inspectBinary(b: Bytes): Item[] {
  if (b.length === 0) throw new InspectError("empty input");
  const framed = tryFramed(b);
  if (framed) return framed;
  const attempts: { what: string; run: () => Item[] }[] = [];
  const tag = b[0]!;
  if (tag >= 0xa0 && tag <= 0xa7) {
    attempts.push({
      what: "a state file",
      run: () => {
        const { state, version } = decodeState(b);
        return [{ type: "state", state, version, length: b.length }];
      },
    });
  }
  if (tag === 0x30) {
    attempts.push({ what: "a wire message", run: () => tryUnframed(b) });
    attempts.push({ what: "an albatross extension", run: () => [{ type: "extension", ext: decodeCertExtension(b) }] });
    attempts.push({ what: "a certificate", run: () => [certificateItem(parseCertificate(b))] });
    attempts.push({ what: "a certificate signing request", run: () => [csrItem(parseCsr(b))] });
    attempts.push({ what: "an X.509 extension", run: () => [{ type: "extension", ext: tryX509Extension(b) }] });
  }
  if (tag === 0x04) {
    attempts.push({
      what: "an extension value",
      run: () => {
        const t = readTlv(b, 0, b.length, "extnValue");
        if (t.end !== b.length) throw new DecodeError("trailing bytes", t.end, "");
        return [{ type: "extension", ext: decodeCertExtension(b.subarray(t.contentStart, t.end)) }];
      },
    });
  }
  if (attempts.length === 0) {
    throw new InspectError(
      `unrecognised input (first byte 0x${tag.toString(16).padStart(2, "0")}): not a wire message, state file, certificate, CSR or albatross extension`,
    );
  }
  let best: { what: string; error: unknown } | null = null;
  for (const a of attempts) {
    try {
      return a.run();
    } catch (e) {
      // The attempt that got furthest into the data explains the failure best.
      if (!best || errOffset(e) > errOffset(best.error)) best = { what: a.what, error: e };
    }
  }
  throw new InspectError(`not ${best!.what}: ${errText(best!.error)}`);
}

/** Classify any input: PEM, hex text (e.g. `--socket -` output), base64, or binary. */
export function inspectInput(b: Bytes): Item[] {
  if (b.length === 0) throw new InspectError("empty input");
  if (!isPrintableText(b)) return inspectBinary(b);
  const s = Buffer.from(b).toString("latin1");
  if (s.includes("-----BEGIN ")) return pemItems(s);
  // `--socket -` prints `out:` lines before its hex dumps; several dumps may follow each other.
  const body = s.replace(/^\s*out:\s*$/gm, "");
  const compact = body.replace(/\s+/g, "");
  if (compact.length === 0) throw new InspectError("empty input");
  if (/^[0-9a-fA-F]+$/.test(compact)) return inspectBinary(fromHex(body));
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return inspectBinary(fromBase64Strict(body));
  throw new InspectError("unrecognised text: neither PEM, hex nor base64");
}

// ---------------------------------------------------------------------------------------
// rendering

const indent = (s: string, pad = "  "): string =>
  s
    .split("\n")
    .map((l) => pad + l)
    .join("\n");

const EXT_NAMES: Record<string, string> = {
  [ALBATROSS_OID]: "albatross",
  [OID.subjectKeyIdentifier]: "subjectKeyIdentifier",
  [OID.keyUsage]: "keyUsage",
  [OID.subjectAltName]: "subjectAltName",
  [OID.basicConstraints]: "basicConstraints",
  [OID.authorityKeyIdentifier]: "authorityKeyIdentifier",
  [OID.extKeyUsage]: "extKeyUsage",
  [OID.nameConstraints]: "nameConstraints",
  [OID.certificatePolicies]: "certificatePolicies",
};

const KEY_NAMES: Record<string, string> = {
  [OID.ed25519]: "Ed25519",
  [OID.rsaEncryption]: "RSA",
  [OID.p256]: "ECDSA P-256",
  [OID.p384]: "ECDSA P-384",
  [OID.p521]: "ECDSA P-521",
};

function keyName(spki: { algorithm: { oid: string; params?: Bytes } }): string {
  if (spki.algorithm.oid === OID.ecPublicKey && spki.algorithm.params) {
    // params is the DER of the named-curve OID; match its text form by suffix bytes.
    for (const [oid, name] of Object.entries(KEY_NAMES)) if (curveMatches(spki.algorithm.params, oid)) return name;
    return "ECDSA";
  }
  return KEY_NAMES[spki.algorithm.oid] ?? spki.algorithm.oid;
}

function curveMatches(params: Bytes, oid: string): boolean {
  const known: Record<string, string> = { [OID.p256]: "2a8648ce3d030107", [OID.p384]: "2b81040022", [OID.p521]: "2b81040023" };
  const h = known[oid];
  return h !== undefined && hex(params.subarray(2)) === h;
}

const extensionList = (exts: readonly Extension[]): string =>
  exts.map((e) => `${EXT_NAMES[e.oid] ?? e.oid}${e.critical ? " (critical)" : ""}`).join(", ") || "none";

function extensionText(r: ExtensionResult | undefined): string {
  if (!r) return "albatross extension: none";
  if (!r.ok) return `albatross extension: undecodable (${r.error})`;
  return `albatross extension: version ${r.ext.version}, ${describeCommand(r.ext.command, true)}`;
}

function headerLines(w: Wire): string[] {
  return [`version:  ${w.header.version}`, `sequence: ${w.header.sequence}`, `name:     ${nameToString(w.header.name)}`];
}

function payloadText(w: Wire): string {
  const p = w.payload;
  switch (p.kind) {
    case "command":
      return `command:  ${describeCommand(p.command, true)}`;
    case "reply":
      return `reply:    ${successText(p.reply, true).split("\n").join("\n          ")}`;
    case "failure":
      return `failure:  ${Buffer.from(p.message).toString("utf8")}`;
    case "data":
      return `data:     ${dataText(p.data).split("\n").join("\n          ")}`;
  }
}

/** Upstream inspect-dump lines (`parsed N unikernels:` ...), entries in trie order. */
export function stateLines(state: State, withArgv: boolean): string[] {
  const byTrie = <T extends { name: Name }>(xs: readonly T[]) => [...xs].sort((a, b) => compareLabels(nameLabels(a.name), nameLabels(b.name)));
  const u = byTrie(state.unikernels);
  const p = byTrie(state.policies);
  return [
    `parsed ${u.length} unikernels:`,
    ...u.map((x) => `${nameText(x.name)}: ${configText(x.config, withArgv)}`),
    `parsed ${p.length} policies:`,
    ...p.map((x) => `${nameText(x.name)}: ${policyText(x.policy)}`),
  ];
}

const STATE_FORMS: Record<StateVersion, string> = {
  0: "unikernel configurations V1",
  1: "unikernel configurations V0",
  2: "unikernel configurations V2",
  3: "unikernel configurations V3",
  4: "unikernel configurations V3 and policies",
  5: "unikernel configurations V4 and policies",
  6: "unikernel configurations and policies, current",
};

export function itemText(item: Item, index: number, count: number): string {
  const nth = count > 1 ? ` ${index + 1} of ${count}` : "";
  switch (item.type) {
    case "wire":
      return [
        `wire message${nth} (${item.length} bytes${item.framed ? ", framed" : ""}, at byte ${item.offset})`,
        ...[...headerLines(item.wire), payloadText(item.wire)].map((l) => indent(l)),
      ].join("\n");
    case "end-of-stream":
      return `end of stream (length <= 0 frame at byte ${item.offset})`;
    case "state":
      return [
        `state file, form [${item.version}] (${STATE_FORMS[item.version]}), ${item.length} bytes`,
        ...stateLines(item.state, true).map((l) => indent(l)),
      ].join("\n");
    case "certificate": {
      const c = item.cert;
      return [
        `certificate${nth}`,
        indent(`subject:    ${dnToString(c.subject)}`),
        indent(`issuer:     ${dnToString(c.issuer)}`),
        indent(`serial:     ${hex(c.serial)}`),
        indent(`validity:   ${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}`),
        indent(`key:        ${keyName(c.publicKey)}`),
        indent(`extensions: ${extensionList(c.extensions)}`),
        indent(extensionText(item.extension)),
        ...(item.chainName !== undefined ? [indent(`name:       ${item.chainName} (derived from the chain in this input)`)] : []),
      ].join("\n");
    }
    case "csr":
      return [
        `certificate signing request${nth}`,
        indent(`subject:    ${dnToString(item.csr.subject)}`),
        indent(`key:        ${keyName(item.csr.publicKey)}`),
        indent(`extensions: ${extensionList(item.csr.extensions)}`),
        indent(extensionText(item.extension)),
      ].join("\n");
    case "extension":
      return ["albatross certificate extension", indent(`version: ${item.ext.version}`), indent(`command: ${describeCommand(item.ext.command, true)}`)].join(
        "\n",
      );
    case "pem":
      return `PEM block ${item.label} (not shown)`;
  }
}

function extensionJson(r: ExtensionResult | undefined): unknown {
  if (!r) return null;
  return r.ok ? { version: r.ext.version, command: commandJson(r.ext.command) } : { error: r.error };
}

export function itemJson(item: Item): unknown {
  switch (item.type) {
    case "wire":
      return { type: "wire", offset: item.offset, length: item.length, framed: item.framed, message: wireJson(item.wire) };
    case "end-of-stream":
      return { type: "end-of-stream", offset: item.offset };
    case "state":
      return {
        type: "state",
        version: item.version,
        unikernels: item.state.unikernels.map(stateUnikernelJson),
        policies: toJson(item.state.policies),
      };
    case "certificate": {
      const c = item.cert;
      return {
        type: "certificate",
        subject: dnToString(c.subject),
        issuer: dnToString(c.issuer),
        serial: hex(c.serial),
        notBefore: c.notBefore.toISOString(),
        notAfter: c.notAfter.toISOString(),
        key: keyName(c.publicKey),
        extensions: c.extensions.map((e) => ({ oid: e.oid, name: EXT_NAMES[e.oid] ?? null, critical: e.critical })),
        albatross: extensionJson(item.extension),
        ...(item.chainName !== undefined ? { name: item.chainName } : {}),
      };
    }
    case "csr":
      return {
        type: "csr",
        subject: dnToString(item.csr.subject),
        key: keyName(item.csr.publicKey),
        extensions: item.csr.extensions.map((e) => ({ oid: e.oid, name: EXT_NAMES[e.oid] ?? null, critical: e.critical })),
        albatross: extensionJson(item.extension),
      };
    case "extension":
      return { type: "extension", version: item.ext.version, command: commandJson(item.ext.command) };
    case "pem":
      return { type: "pem", label: item.label };
  }
}
