// The certificate subcommands end to end through the CLI, in temp dirs: the albatross
// README walkthrough, refusals, encrypted keys, and the vectors.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeCommandRequest } from "../../src/ca/request.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { readPrivateKeyFile } from "../../src/ca/keys.js";
import { certificatesFromPem, toPem } from "../../src/ca/x509.js";
import { VECTORS, cli, make, openssl, policy, tempDir, type Node } from "../support/ca.js";

const pems = (f: string) => (readFileSync(f, "utf8").match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;

/** `create NAME IMAGE --csr` through the CLI when it works, else through writeCommandRequest. */
async function createCsr(dir: string, name: string, image: Uint8Array): Promise<void> {
  writeFileSync(join(dir, `${name}.hvt`), image);
  const r = await cli(dir, "create", name, `${name}.hvt`, "--csr");
  if (r.code === 0 && existsSync(join(dir, `${name}.req`))) return;
  await writeCommandRequest({
    cn: name,
    dir,
    keyType: "ed25519",
    command: {
      kind: "unikernel-create",
      config: {
        typ: "solo5",
        compressed: false,
        image,
        failBehaviour: { kind: "quit" },
        addName: true,
        cpuids: [0],
        memory: 32,
        blockDevices: [],
        bridges: [],
        numcpus: 1,
      },
    },
  });
}

test("README walkthrough: generate -> add-policy --csr -> sign -> create --csr -> sign; verify and openssl accept", async () => {
  const dir = tempDir();
  const g = await cli(dir, "generate", "ca", "db");
  assert.equal(g.code, 0, g.stderr);
  for (const f of ["ca.key", "cacert.pem", "server.key", "server.pem", "db"]) assert.ok(existsSync(join(dir, f)), f);
  assert.equal(statSync(join(dir, "ca.key")).mode & 0o777, 0o600);
  assert.match(readFileSync(join(dir, "ca.key"), "utf8"), /^-----BEGIN PRIVATE KEY-----/);
  assert.match(readFileSync(join(dir, "db"), "utf8"), /^[0-9a-f]{20,22} server\n$/);
  assert.equal((await openssl(dir, "verify", "-CAfile", "cacert.pem", "server.pem")).code, 0);
  const serverText = (await openssl(dir, "x509", "-in", "server.pem", "-text", "-noout")).stdout;
  assert.match(serverText, /TLS Web Server Authentication/);
  const caText = (await openssl(dir, "x509", "-in", "cacert.pem", "-text", "-noout")).stdout;
  assert.match(caText, /Issuer: CN\s?=\s?ca\n[\s\S]*Subject: CN\s?=\s?ca\n/);

  const ap = await cli(dir, "add-policy", "user", "16", "--mem", "1024", "--cpu", "0", "--cpu", "1", "--csr");
  assert.equal(ap.code, 0, ap.stderr);
  assert.equal((await openssl(dir, "req", "-verify", "-in", "user.req", "-noout")).code, 0);
  const s1 = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "user.req");
  assert.equal(s1.code, 0, s1.stderr);
  assert.equal(pems(join(dir, "user.pem")), 1); // the root is self-signed: not appended

  await createCsr(dir, "hello", buildSolo5Elf({ target: "hvt", devices: [] }).bytes);
  const s2 = await cli(dir, "sign", "user.pem", "db", "user.key", "hello.req");
  assert.equal(s2.code, 0, s2.stderr);
  assert.equal(pems(join(dir, "hello.pem")), 2);
  const db = readFileSync(join(dir, "db"), "utf8").trim().split("\n");
  assert.deepEqual(
    db.map((l) => l.split(" ")[1]),
    ["server", "user", "hello"],
  );

  const v = await cli(dir, "verify", "hello.pem", "--ca", "cacert.pem");
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(
    v.stdout,
    /^CN=hello: ok\nCN=user: ok\ntrusted CA: CN=ca\nname: user:hello\npolicy user: policy: 16 unikernels 0,1 CPUids 1024 MB memory no block\ncommand: unikernel create /,
  );
  // openssl: the intermediate as untrusted
  writeFileSync(join(dir, "inter.pem"), readFileSync(join(dir, "user.pem")));
  const o = await openssl(dir, "verify", "-CAfile", "cacert.pem", "-untrusted", "inter.pem", "hello.pem");
  assert.equal(o.code, 0, o.stdout + o.stderr);
  const leafText = (await openssl(dir, "x509", "-in", "hello.pem", "-text", "-noout")).stdout;
  assert.match(leafText, /Issuer: CN\s?=\s?user/);
  assert.match(leafText, /TLS Web Client Authentication/);

  // a widened delegation below user is refused at sign, naming the field
  const wide = await cli(dir, "add-policy", "sub", "32", "--mem", "512", "--cpu", "0", "--csr");
  assert.equal(wide.code, 0, wide.stderr);
  const sw = await cli(dir, "sign", "user.pem", "db", "user.key", "sub.req");
  assert.equal(sw.code, 124);
  assert.match(sw.stderr, /error while signing: policy of user: policy above allows 16 unikernels, which is fewer than 32/);
  assert.ok(!existsSync(join(dir, "sub.pem")));
  // a narrower one works and makes a 3-certificate chain for its leaves
  const narrow = await cli(dir, "add-policy", "sub", "8", "--mem", "512", "--cpu", "1", "--csr");
  assert.equal(narrow.code, 0, narrow.stderr);
  const sn = await cli(dir, "sign", "user.pem", "db", "user.key", "sub.req");
  assert.equal(sn.code, 0, sn.stderr);
  assert.equal(pems(join(dir, "sub.pem")), 2);
});

test("deeper delegation, console CSR, sign refusals", async () => {
  const dir = tempDir();
  assert.equal((await cli(dir, "generate", "ca", "db", "--key-type", "p256")).code, 0);
  const mk = async (cn: string, unikernels: string, ...extra: string[]) =>
    writeCommandRequest({
      cn,
      dir,
      keyType: "p384",
      command: {
        kind: "policy-add",
        policy: { unikernels: BigInt(unikernels), cpuids: [0], memory: 512, bridges: extra, ...(cn === "blk" ? { block: 10 } : {}) },
      },
    });
  await mk("user", "16", "service");
  assert.equal((await cli(dir, "sign", "cacert.pem", "db", "ca.key", "user.req")).code, 0);
  await mk("sub", "4", "service");
  assert.equal((await cli(dir, "sign", "user.pem", "db", "user.key", "sub.req")).code, 0);
  assert.equal(pems(join(dir, "sub.pem")), 2);
  await writeCommandRequest({ cn: "foo", dir, keyType: "rsa2048", command: { kind: "console-subscribe", sinceCount: { kind: "count", count: 20 } } });
  const s = await cli(dir, "sign", "sub.pem", "db", "sub.key", "foo.req");
  assert.equal(s.code, 0, s.stderr);
  assert.equal(pems(join(dir, "foo.pem")), 3);
  const v = await cli(dir, "verify", "foo.pem");
  assert.equal(v.code, 0, v.stdout);
  assert.match(v.stdout, /name: user:sub:foo\npolicy user:sub: .*\npolicy user: .*\ncommand: console subscribe count 20\n/);
  writeFileSync(join(dir, "chain.pem"), readFileSync(join(dir, "foo.pem"), "utf8").replace(/^[\s\S]*?-----END CERTIFICATE-----\n/, ""));
  assert.equal((await openssl(dir, "verify", "-CAfile", "cacert.pem", "-untrusted", "chain.pem", "foo.pem")).code, 0);

  // a bridge the parent lacks, block storage the parent lacks
  await mk("net", "2", "service", "other");
  const n = await cli(dir, "sign", "sub.pem", "db", "sub.key", "net.req");
  assert.equal(n.code, 124);
  assert.match(n.stderr, /policy of user:sub: policy above allows bridge\(s\) service, which is not a superset of other, service/);
  await mk("blk", "2", "service");
  assert.match((await cli(dir, "sign", "sub.pem", "db", "sub.key", "blk.req")).stderr, /which is fewer than 10 MB/);
  // wrong key for the CA certificate
  const wrong = await cli(dir, "sign", "sub.pem", "db", "user.key", "foo.req", "--overwrite");
  assert.equal(wrong.code, 124);
  assert.match(wrong.stderr, /Public key of certificate doesn't match private key/);
  // a leaf cannot sign
  await writeCommandRequest({ cn: "bar", dir, keyType: "ed25519", command: { kind: "unikernel-info" } });
  const leafSigns = await cli(dir, "sign", "foo.pem", "db", "foo.key", "bar.req");
  assert.equal(leafSigns.code, 124);
  assert.match(leafSigns.stderr, /cannot sign: it is not a CA certificate/);
  // the output exists: no silent overwrite
  const again = await cli(dir, "sign", "sub.pem", "db", "sub.key", "foo.req");
  assert.equal(again.code, 124);
  assert.match(again.stderr, /foo\.pem already exists/);
  assert.equal((await cli(dir, "sign", "sub.pem", "db", "sub.key", "foo.req", "--overwrite")).code, 0);
  // a CSR without the albatross extension -> server certificate, with a warning
  assert.equal((await openssl(dir, "req", "-new", "-newkey", "ed25519", "-nodes", "-keyout", "host.key", "-subj", "/CN=host", "-out", "host.req")).code, 0);
  const h = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "host.req");
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stderr, /signing certificate without albatross extension/);
  assert.match((await openssl(dir, "x509", "-in", "host.pem", "-text", "-noout")).stdout, /TLS Web Server Authentication/);
  // garbage request
  writeFileSync(join(dir, "junk.req"), "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n");
  const j = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "junk.req");
  assert.equal(j.code, 124);
  assert.equal(j.stderr.trim().split("\n").length, 1);
});

test("--key-password-file encrypts the CA key at generate and decrypts it at sign", async () => {
  const dir = tempDir();
  writeFileSync(join(dir, "pw"), "correct horse\n");
  writeFileSync(join(dir, "bad"), "wrong\n");
  const g = await cli(dir, "generate", "ca", "db", "--key-password-file", "pw");
  assert.equal(g.code, 0, g.stderr);
  assert.match(readFileSync(join(dir, "ca.key"), "utf8"), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  assert.match(readFileSync(join(dir, "server.key"), "utf8"), /^-----BEGIN PRIVATE KEY-----/);
  const d = await openssl(dir, "pkey", "-in", "ca.key", "-passin", "pass:correct horse", "-noout");
  assert.equal(d.code, 0, d.stderr);
  await writeCommandRequest({ cn: "foo", dir, keyType: "ed25519", keyPassword: "tenant", command: { kind: "unikernel-info" } });
  assert.match(readFileSync(join(dir, "foo.key"), "utf8"), /ENCRYPTED/);
  const noPw = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "foo.req");
  assert.equal(noPw.code, 124);
  assert.match(noPw.stderr, /encrypted/);
  const badPw = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "foo.req", "--key-password-file", "bad");
  assert.equal(badPw.code, 124);
  assert.match(badPw.stderr, /wrong password/);
  const ok = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "foo.req", "--key-password-file", "pw");
  assert.equal(ok.code, 0, ok.stderr);
  // the tenant key is reused for a new request only with its password
  await assert.rejects(writeCommandRequest({ cn: "foo", dir, keyType: "ed25519", overwrite: true, command: { kind: "unikernel-info" } }), /password/);
  const re = await writeCommandRequest({ cn: "foo", dir, keyType: "ed25519", overwrite: true, keyPassword: "tenant", command: { kind: "unikernel-info" } });
  assert.equal(re.reusedKey, true);
  // generate again: outputs exist -> refused, unless --overwrite (the CA key is reused)
  const g2 = await cli(dir, "generate", "ca", "db", "--key-password-file", "pw");
  assert.equal(g2.code, 124);
  assert.match(g2.stderr, /cacert\.pem already exists/);
  const before = readFileSync(join(dir, "ca.key"), "utf8");
  assert.equal((await cli(dir, "generate", "ca", "db", "--key-password-file", "pw", "--overwrite")).code, 0);
  assert.equal(readFileSync(join(dir, "ca.key"), "utf8"), before);
});

test("writeCommandRequest refuses CNs that are not file names", async () => {
  const dir = tempDir();
  for (const cn of ["", ".", "..", "a/b", "../x"]) {
    await assert.rejects(writeCommandRequest({ cn, dir, keyType: "ed25519", command: { kind: "unikernel-info" } }), /common name/);
  }
  assert.equal(existsSync(join(dir, ".key")), false);
});

test("verify: the vectors inside their window, expired outside; bad input exits 124", async () => {
  const dir = tempDir();
  const ca = join(VECTORS, "cert-test-ca.pem");
  const leaf = join(VECTORS, "cert-console-foo-leaf.pem");
  const inside = await cli(dir, "verify", leaf, "--ca", ca, "--at", "2025-08-22T13:05:00Z");
  assert.equal(inside.code, 0, inside.stdout);
  assert.equal(inside.stdout, "CN=foo: ok\ntrusted CA: CN=test\nname: :foo\ncommand: console subscribe count 20\nchain ok\n");
  const now = await cli(dir, "verify", leaf, "--ca", ca);
  assert.equal(now.code, 116);
  assert.match(now.stdout, /^CN=foo: expired \(valid until 2025-08-22T13:09:53Z\)\n/);
  assert.equal((await cli(dir, "verify", leaf, "--ca", ca, "--at", "yesterday")).code, 124);
  writeFileSync(join(dir, "bad.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  const bad = await cli(dir, "verify", "bad.pem", "--ca", ca);
  assert.equal(bad.code, 124);
  assert.match(bad.stderr, /malformed certificate/);
  assert.equal((await cli(dir, "verify", "missing.pem", "--ca", ca)).code, 124);
});

test("a certificate given where a private key belongs: one line naming what the file holds", async () => {
  const dir = tempDir();
  assert.equal((await cli(dir, "generate", "ca", "db")).code, 0);
  assert.equal((await cli(dir, "add-policy", "user", "4", "--mem", "256", "--csr")).code, 0);
  const s = await cli(dir, "sign", "cacert.pem", "db", "cacert.pem", "user.req");
  assert.equal(s.code, 124);
  assert.equal(s.stderr, "dromedary: error while signing: cacert.pem: not a private key (found a CERTIFICATE PEM block); give the .key file\n");
  assert.ok(!existsSync(join(dir, "user.pem")));
  // the request itself is not a key either
  const r = await cli(dir, "sign", "cacert.pem", "db", "user.req", "user.req");
  assert.equal(r.code, 124);
  assert.match(r.stderr, /^dromedary: error while signing: user\.req: not a private key \(found a CERTIFICATE REQUEST PEM block\); give the \.key file\n$/);
  // an encrypted key without its password keeps its message
  assert.equal((await openssl(dir, "genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:secret", "-out", "enc.key")).code, 0);
  const e = await cli(dir, "sign", "cacert.pem", "db", "enc.key", "user.req");
  assert.equal(e.code, 124);
  assert.match(e.stderr, /enc\.key is encrypted: give --key-password-file/);
  // and the right key signs
  assert.equal((await cli(dir, "sign", "cacert.pem", "db", "ca.key", "user.req")).code, 0);
  // a client signing its own leaf (--ca-key) reads the key the same way, before connecting
  const i = await cli(dir, "info", "--ca", "user.pem", "--ca-key", "user.pem", "--server-ca", "cacert.pem", "-d", "127.0.0.1:1");
  assert.equal(i.code, 124);
  assert.equal(i.stderr, "dromedary: user.pem: not a private key (found a CERTIFICATE PEM block); give the .key file\n");
});

test("verify of a delegation (add-policy --csr + sign): what it grants, exit 0; widened, foreign, expired exit 116 with the reason", async () => {
  const dir = tempDir();
  assert.equal((await cli(dir, "generate", "ca", "db")).code, 0);
  assert.equal((await cli(dir, "add-policy", "user", "16", "--mem", "1024", "--cpu", "0", "--cpu", "1", "--bridge", "br0", "--csr")).code, 0);
  assert.equal((await cli(dir, "sign", "cacert.pem", "db", "ca.key", "user.req")).code, 0);
  const v = await cli(dir, "verify", "user.pem", "--ca", "cacert.pem");
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.equal(
    v.stdout,
    "CN=user: ok\ntrusted CA: CN=ca\n" +
      "delegation: user (an intermediate CA: the leaves it signs are named user:<name>)\n" +
      "policy user: policy: 16 unikernels 0,1 CPUids 1024 MB memory no block, bridges: br0\n" +
      "delegation ok\n",
  );
  // one level deeper, signed by the tenant: the path and both policies
  assert.equal((await cli(dir, "add-policy", "sub", "4", "--mem", "512", "--cpu", "1", "--bridge", "br0", "--block", "100", "--csr")).code, 0);
  const s = await cli(dir, "sign", "user.pem", "db", "user.key", "sub.req");
  assert.equal(s.code, 124); // user has no block storage to hand on
  assert.equal((await cli(dir, "add-policy", "sub", "4", "--mem", "512", "--cpu", "1", "--bridge", "br0", "--csr")).code, 0);
  assert.equal((await cli(dir, "sign", "user.pem", "db", "user.key", "sub.req")).code, 0);
  const d = await cli(dir, "verify", "sub.pem", "--ca", "cacert.pem");
  assert.equal(d.code, 0, d.stdout);
  assert.match(
    d.stdout,
    /^CN=sub: ok\nCN=user: ok\ntrusted CA: CN=ca\ndelegation: user:sub \(.*\)\npolicy user:sub: policy: 4 unikernels 1 CPUids 512 MB memory no block, bridges: br0\npolicy user: policy: 16 unikernels .*\ndelegation ok\n$/,
  );

  // widened below user (sign refuses that, so issued directly)
  const userPem = readFileSync(join(dir, "user.pem"), "utf8");
  const user: Node = { cn: "user", key: await readPrivateKeyFile(join(dir, "user.key")), cert: certificatesFromPem(userPem)[0]!, der: new Uint8Array() };
  const wide = await make({
    profile: "intermediate",
    cn: "wide",
    issuer: user,
    policy: policy({ unikernels: 32n, cpuids: [0], bridges: ["br0"], memory: 512 }),
  });
  writeFileSync(join(dir, "wide.pem"), toPem(wide.der, "CERTIFICATE") + userPem);
  const w = await cli(dir, "verify", "wide.pem", "--ca", "cacert.pem");
  assert.equal(w.code, 116, w.stdout);
  assert.match(w.stdout, /\ndelegation NOT valid: CN=wide: policy wider than the one above it: policy above allows 16 unikernels, which is fewer than 32\n$/);
  // expired (--at after its year)
  const e = await cli(dir, "verify", "user.pem", "--ca", "cacert.pem", "--at", new Date(Date.now() + 400 * 86400_000).toISOString().slice(0, 10));
  assert.equal(e.code, 116);
  assert.match(e.stdout, /\ndelegation NOT valid: CN=user: expired \(valid until \S+\)\n$/);
  // another CA of the same name
  const other = tempDir();
  assert.equal((await cli(other, "generate", "ca", "db")).code, 0);
  const f = await cli(dir, "verify", "user.pem", "--ca", join(other, "cacert.pem"));
  assert.equal(f.code, 116);
  assert.match(f.stdout, /\ndelegation NOT valid: CN=user: invalid signature \(not signed by the trusted CA CN=ca\)\n$/);

  // --json: one object, numbers as numbers
  const j = await cli(dir, "verify", "sub.pem", "--ca", "cacert.pem", "--json");
  assert.equal(j.code, 0);
  assert.equal(j.stdout.trim().split("\n").length, 1);
  const o = JSON.parse(j.stdout) as Record<string, unknown>;
  assert.equal(o["kind"], "delegation");
  assert.equal(o["ok"], true);
  assert.equal(o["reason"], null);
  assert.equal(o["path"], "user:sub");
  assert.equal(o["anchor"], "CN=ca");
  assert.deepEqual(o["policies"], [
    { path: "user:sub", policy: { unikernels: "4", cpuids: [1], memory: 512, bridges: ["br0"] } },
    { path: "user", policy: { unikernels: "16", cpuids: [0, 1], memory: 1024, bridges: ["br0"] } },
  ]);
  assert.deepEqual(
    (o["links"] as Array<{ subject: string; problems: string[] }>).map((l) => [l.subject, l.problems]),
    [
      ["CN=sub", []],
      ["CN=user", []],
    ],
  );
  const jw = JSON.parse((await cli(dir, "verify", "wide.pem", "--ca", "cacert.pem", "--json")).stdout) as Record<string, unknown>;
  assert.equal(jw["ok"], false);
  assert.equal(jw["reason"], "CN=wide: policy wider than the one above it: policy above allows 16 unikernels, which is fewer than 32");
});

test("--json on generate, sign and verify (a leaf): one object each", async () => {
  const dir = tempDir();
  const g = await cli(dir, "generate", "ca", "db", "--json");
  assert.equal(g.code, 0, g.stderr);
  const go = JSON.parse(g.stdout) as Record<string, unknown>;
  assert.deepEqual(
    { ...go, serverSerial: null },
    {
      event: "generated",
      ca: "ca",
      caKey: "ca.key",
      caCert: "cacert.pem",
      server: "server",
      serverKey: "server.key",
      serverCert: "server.pem",
      serverSerial: null,
      db: "db",
      createdKeys: ["ca.key", "server.key"],
    },
  );
  assert.match(go["serverSerial"] as string, /^[0-9a-f]+$/);
  assert.equal(readFileSync(join(dir, "db"), "utf8"), `${go["serverSerial"]} server\n`);
  assert.equal((await cli(dir, "add-policy", "user", "16", "--mem", "1024", "--csr")).code, 0);
  const s = await cli(dir, "sign", "cacert.pem", "db", "ca.key", "user.req", "--json");
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout.trim().split("\n").length, 1);
  const so = JSON.parse(s.stdout) as Record<string, unknown>;
  assert.equal(so["event"], "signed");
  assert.equal(so["profile"], "intermediate");
  assert.equal(so["certificate"], "user.pem");
  assert.equal(so["subject"], "user");
  assert.equal(so["chainLength"], 1);
  assert.deepEqual(so["command"], { kind: "policy-add", policy: { unikernels: "16", cpuids: [0], memory: 1024, bridges: [] } });
  assert.deepEqual(so["warnings"], []);
  assert.ok(new Date(so["notAfter"] as string).getTime() > Date.now() + 364 * 86400_000);
  assert.equal(readFileSync(join(dir, "db"), "utf8").split("\n")[1], `${so["serial"]} user`);

  await createCsr(dir, "hello", buildSolo5Elf({ target: "hvt", devices: [] }).bytes);
  const l = JSON.parse((await cli(dir, "sign", "user.pem", "db", "user.key", "hello.req", "--json")).stdout) as Record<string, unknown>;
  assert.equal(l["profile"], "leaf");
  assert.equal(l["chainLength"], 2);
  const cmd = l["command"] as { kind: string; config: { image: { bytes: number; sha256: string } } };
  assert.equal(cmd.kind, "unikernel-create");
  assert.match(cmd.config.image.sha256, /^[0-9a-f]{64}$/);
  const v = await cli(dir, "verify", "hello.pem", "--json");
  assert.equal(v.code, 0, v.stdout);
  const vo = JSON.parse(v.stdout) as Record<string, unknown>;
  assert.equal(vo["kind"], "leaf");
  assert.equal(vo["ok"], true);
  assert.equal(vo["name"], "user:hello");
  assert.equal((vo["command"] as { kind: string }).kind, "unikernel-create");
  // an invalid leaf: ok false and its reason, exit 116
  const late = await cli(dir, "verify", "hello.pem", "--json", "--at", new Date(Date.now() + 3 * 86400_000).toISOString());
  assert.equal(late.code, 116);
  assert.match((JSON.parse(late.stdout) as { reason: string }).reason, /^CN=hello: expired/);
});
