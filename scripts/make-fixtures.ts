// `npm run fixtures`: writes fixtures/certs/ — a small PKI made with our own CA code, good
// and deliberately broken chains, for tests of the TLS endpoint and of `verify`. Test keys
// only (never use them for anything real). Re-running replaces the directory's contents.
//
// Validity: the "good" certificates are valid for 10 years from the run, so checked-in
// fixtures stay usable; the broken ones are broken independently of the date where possible.
import "reflect-metadata";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { KeyObject } from "node:crypto";
import { encodeCertExtension } from "../src/commands/codec.js";
import type { Command, Policy } from "../src/commands/types.js";
import { encodeCnName } from "../src/ca/asn1.js";
import { DAY, issueCertificate, validity, type Profile } from "../src/ca/issue.js";
import { KEY_TYPES, generateKey, privateKeyToPem, spkiDer, type KeyType } from "../src/ca/keys.js";
import { parseCertificate, serialHex, toPem } from "../src/ca/x509.js";

const OUT = fileURLToPath(new URL(import.meta.url.includes("/dist/") ? "../../fixtures/certs/" : "../fixtures/certs/", import.meta.url));
const PASSWORD = "dromedary-test";
const TEN_YEARS = 3650 * DAY;

interface Node {
  cn: string;
  key: KeyObject;
  der: Uint8Array;
}

const db: string[] = [];

async function make(o: {
  profile: Profile;
  cn: string;
  keyType?: KeyType;
  issuer?: Node;
  policy?: Policy;
  command?: Command;
  notBefore?: Date;
  notAfter?: Date;
}): Promise<Node> {
  const key = await generateKey(o.keyType ?? "ed25519");
  const subject = encodeCnName(o.cn);
  const v = validity(new Date(), TEN_YEARS);
  const command: Command | undefined = o.policy ? { kind: "policy-add", policy: o.policy } : o.command;
  const der = await issueCertificate({
    profile: o.profile,
    subject,
    spki: spkiDer(key),
    issuerName: o.issuer ? encodeCnName(o.issuer.cn) : subject,
    issuerKey: o.issuer?.key ?? key,
    ...(command ? { albatross: encodeCertExtension({ version: 5, command }) } : {}),
    notBefore: o.notBefore ?? v.notBefore,
    notAfter: o.notAfter ?? v.notAfter,
  });
  if (o.profile !== "root") db.push(`${serialHex(parseCertificate(der).serial)} ${o.cn}`);
  return { cn: o.cn, key, der };
}

const files: Array<[string, string]> = [];
const pem = (file: string, ...nodes: Array<Node | Uint8Array>) =>
  files.push([file, nodes.map((n) => toPem(n instanceof Uint8Array ? n : n.der, "CERTIFICATE")).join("")]);
const key = (file: string, n: Node, password?: string) => files.push([file, privateKeyToPem(n.key, password)]);

const consoleCmd: Command = { kind: "console-subscribe", sinceCount: { kind: "count", count: 20 } };
const userPolicy: Policy = { unikernels: 16n, cpuids: [0, 1], memory: 1024, block: 100, bridges: ["service"] };

async function main(): Promise<void> {
  const ca = await make({ profile: "root", cn: "ca" });
  const server = await make({ profile: "server", cn: "server", issuer: ca });
  const user = await make({ profile: "intermediate", cn: "user", issuer: ca, policy: userPolicy });
  pem("cacert.pem", ca);
  key("ca.key", ca);
  key("ca-encrypted.key", ca, PASSWORD);
  files.push(["ca-encrypted.password", `${PASSWORD}\n`]);
  pem("server.pem", server);
  key("server.key", server);
  pem("user.pem", user);
  key("user.key", user);

  // good leaves under user, one per key type (the leaf's own key has that type)
  for (const t of KEY_TYPES) {
    const leaf = await make({ profile: "leaf", cn: `hello-${t}`, keyType: t, issuer: user, command: consoleCmd });
    pem(`leaf-${t}.pem`, leaf, user);
    key(`leaf-${t}.key`, leaf);
  }
  // a leaf directly under the root (no policies), name :direct
  const direct = await make({ profile: "leaf", cn: "direct", issuer: ca, command: { kind: "unikernel-info" } });
  pem("leaf-direct.pem", direct);
  key("leaf-direct.key", direct);
  // two levels of delegation: user:sub:deep
  const sub = await make({ profile: "intermediate", cn: "sub", issuer: user, policy: { ...userPolicy, unikernels: 4n, memory: 256 } });
  const deep = await make({ profile: "leaf", cn: "deep", issuer: sub, command: { kind: "block-info" } });
  pem("sub.pem", sub, user);
  key("sub.key", sub);
  pem("leaf-deep.pem", deep, sub, user);
  key("leaf-deep.key", deep);

  // --- broken on purpose ---
  const expired = await make({
    profile: "leaf",
    cn: "expired",
    issuer: user,
    command: consoleCmd,
    notBefore: new Date("2020-01-01T00:00:00Z"),
    notAfter: new Date("2020-01-02T00:00:00Z"),
  });
  pem("bad-expired.pem", expired, user);
  const notYet = await make({
    profile: "leaf",
    cn: "notyet",
    issuer: user,
    command: consoleCmd,
    notBefore: new Date("2049-01-01T00:00:00Z"),
    notAfter: new Date("2049-01-02T00:00:00Z"),
  });
  pem("bad-not-yet-valid.pem", notYet, user);
  const wide = await make({ profile: "intermediate", cn: "wide", issuer: user, policy: { ...userPolicy, unikernels: 32n } });
  const wideLeaf = await make({ profile: "leaf", cn: "hello", issuer: wide, command: consoleCmd });
  pem("bad-widened-policy.pem", wideLeaf, wide, user);
  const asIssuer = await make({ profile: "leaf", cn: "issuer", issuer: user, command: consoleCmd });
  const belowLeaf = await make({ profile: "leaf", cn: "hello", issuer: asIssuer, command: consoleCmd });
  pem("bad-leaf-as-issuer.pem", belowLeaf, asIssuer, user);
  const twin = await make({ profile: "root", cn: "ca" });
  const foreign = await make({ profile: "leaf", cn: "hello", issuer: twin, command: consoleCmd });
  pem("bad-foreign-root.pem", foreign);
  pem("foreign-cacert.pem", twin);
  const corrupted = new Uint8Array(direct.der);
  corrupted[corrupted.length - 1]! ^= 0x01;
  pem("bad-signature.pem", corrupted);
  const noExt = await make({ profile: "server", cn: "hello", issuer: ca });
  pem("bad-no-extension.pem", noExt);

  files.push(["db", db.join("\n") + "\n"]);
  files.push([
    "README.md",
    `# fixtures/certs — generated by \`npm run fixtures\` (scripts/make-fixtures.ts); do not edit

Test-only PKI (private keys are public here!). Root \`ca\` (Ed25519, \`cacert.pem\`, key \`ca.key\`,
also as \`ca-encrypted.key\` with the password in \`ca-encrypted.password\`), TLS server
certificate \`server.pem\`, delegation \`user\` (\`user.pem\`: 16 unikernels, CPUs 0,1,
1024 MB, 100 MB block, bridge service). Good certificates are valid for 10 years from
generation (${new Date().toISOString().slice(0, 10)}).

Good chains (leaf first, root not included; verify with \`dromedary verify X --ca cacert.pem\`):

* \`leaf-<keytype>.pem\` (+ key): leaf \`hello-<keytype>\` under \`user\`, console subscribe 20 -> name
  \`user:hello-<keytype>\`, for ${KEY_TYPES.join(", ")}
* \`leaf-direct.pem\`: leaf \`direct\` issued by the root, unikernel info -> \`:direct\`, no policies
* \`leaf-deep.pem\`: \`deep\` under \`sub\` under \`user\`, block info -> \`user:sub:deep\`

Broken chains (each rejected by \`dromedary verify\` with the reason in the name):
\`bad-expired.pem\`, \`bad-not-yet-valid.pem\` (valid in 2049), \`bad-widened-policy.pem\` (\`wide\` asks 32
unikernels below \`user\`'s 16), \`bad-leaf-as-issuer.pem\`, \`bad-foreign-root.pem\` (issued by another
root also named \`ca\`, \`foreign-cacert.pem\`), \`bad-signature.pem\` (last signature byte flipped),
\`bad-no-extension.pem\` (a server certificate as client leaf).
`,
  ]);

  mkdirSync(OUT, { recursive: true });
  for (const f of readdirSync(OUT)) rmSync(join(OUT, f), { recursive: true });
  for (const [name, content] of files) writeFileSync(join(OUT, name), content, { mode: name.endsWith(".key") ? 0o600 : 0o644 });
  process.stdout.write(`wrote ${files.length} files to ${OUT}\n`);
}

await main();
