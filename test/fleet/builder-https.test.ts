// The builder client (src/fleet/builder.ts) over https, as `update` and `fleet` use it: the
// builder-web stand-in serving https with a certificate for 127.0.0.1/localhost issued by a
// throwaway CA (openssl, in a temp dir) that is in no system store. With that CA's PEM given
// as --builder-ca gives it (extraCa) every builder request works; without it, or with another
// CA, a one-line error about the certificate; a redirect from https to http is refused. And
// the same through the command line: `dromedary update --dryrun --builder-ca FILE` against a
// daemon stand-in that runs the build's image.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Builder, HttpFailure } from "../../src/fleet/builder.js";
import type { UnikernelInfo } from "../../src/commands/types.js";
import { NEW_P256_KEY, openssl, tempDir } from "../support/ca.js";
import { fakeDaemon, runCli } from "../support/cli.js";
import { startBuilder, type BuilderStandin } from "../support/builder.js";
import { buildSolo5Elf } from "../support/elf-builder.js";

const img = (tag: string): Uint8Array => buildSolo5Elf({ target: "hvt", devices: [], text: new TextEncoder().encode(tag) }).bytes;

/** A self-signed CA (ca.pem, ca.key) in `dir`, named `cn`. */
async function makeCa(dir: string, cn: string): Promise<string> {
  const r = await openssl(
    dir,
    "req",
    "-x509",
    ...NEW_P256_KEY,
    "-keyout",
    `${cn}.key`,
    "-out",
    `${cn}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  );
  assert.equal(r.code, 0, r.stderr);
  return join(dir, `${cn}.pem`);
}

/** A server certificate for 127.0.0.1 and localhost signed by CA `ca`: { key, cert } PEM. */
async function makeLeaf(dir: string, ca: string): Promise<{ key: string; cert: string }> {
  const csr = await openssl(dir, "req", "-new", ...NEW_P256_KEY, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost");
  assert.equal(csr.code, 0, csr.stderr);
  writeFileSync(join(dir, "leaf.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n");
  const sign = await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-set_serial",
    "2",
    "-days",
    "1",
    "-extfile",
    "leaf.ext",
    "-out",
    "leaf.pem",
  );
  assert.equal(sign.code, 0, sign.stderr);
  return { key: readFileSync(join(dir, "leaf.key"), "utf8"), cert: readFileSync(join(dir, "leaf.pem"), "utf8") };
}

let sb: BuilderStandin;
let dir: string;
let caFile: string; // what --builder-ca FILE names
let caPem: string; // what --builder-ca FILE reads
let otherCaPem: string;
before(async () => {
  dir = tempDir();
  caFile = await makeCa(dir, "builder-test-ca");
  caPem = readFileSync(caFile, "utf8");
  otherCaPem = readFileSync(await makeCa(dir, "other-ca"), "utf8");
  sb = await startBuilder({ tls: await makeLeaf(dir, "builder-test-ca") });
});
after(async () => {
  await sb.close();
});

/** The one-line certificate error, `https://127.0.0.1:<port>: the builder's TLS certificate is not trusted (...)`. */
const untrusted = (e: unknown): boolean =>
  e instanceof HttpFailure &&
  !e.message.includes("\n") &&
  e.message.startsWith(`${sb.url}: `) &&
  /^https:\S+: the builder's TLS certificate is not trusted \([^()]*certificate[^()]*\); --builder-ca FILE adds a CA to trust$/.test(e.message);

describe("builder over https", () => {
  test("with --builder-ca naming its CA: hash, latest, main binary (redirected within the origin), diff", async () => {
    assert.match(sb.url, /^https:\/\/127\.0\.0\.1:[0-9]+$/);
    const a = img("https-a");
    const b = img("https-b");
    const u1 = sb.addBuild("hj", { image: a, packages: { x: "1" } });
    const u2 = sb.addBuild("hj", { image: b, packages: { x: "2", y: "1" } });
    const c = new Builder({ base: sb.url, extraCa: [caPem] });
    assert.deepEqual(await c.buildOfHash(createHash("sha256").update(a).digest("hex")), { job: "hj", build: u1 });
    assert.deepEqual(await c.latest("hj"), { job: "hj", build: u2 });
    const got = await c.mainBinary({ job: "hj", build: u2 });
    assert.deepEqual(Buffer.from(got.image), Buffer.from(b));
    const d = await c.diff({ job: "hj", build: u1 }, { job: "hj", build: u2 });
    assert.ok(!(d instanceof Error), String(d));
    assert.deepEqual(d.added, [{ name: "y", version: "1" }]);
    assert.deepEqual(d.changed, [{ name: "x", from: "1", to: "2" }]);
    // the main binary went through the redirect to /f/bin/hj.hvt over https
    assert.ok(sb.requests.includes(`GET /job/hj/build/${u2}/f/bin/hj.hvt`), sb.requests.join("\n"));
  });

  test("without it (a CA in no system store), or with another CA: a one-line certificate error", async () => {
    sb.addBuild("hk", { image: img("https-k"), packages: {} });
    const before = sb.requests.length;
    await assert.rejects(new Builder({ base: sb.url }).latest("hk"), untrusted);
    await assert.rejects(new Builder({ base: sb.url, extraCa: [otherCaPem] }).latest("hk"), untrusted);
    // refused at the handshake: the stand-in never saw a request
    assert.equal(sb.requests.length, before);
  });

  test("a redirect from https to http (same host and port) is refused and not followed", async () => {
    const u = sb.addBuild("hr", { image: img("https-r"), packages: {} });
    const port = new URL(sb.url).port;
    sb.knobs.foreignRedirect = `http://127.0.0.1:${port}`;
    try {
      await assert.rejects(
        new Builder({ base: sb.url, extraCa: [caPem] }).mainBinary({ job: "hr", build: u }),
        (e: Error) => e instanceof HttpFailure && e.message === `refusing to leave the builder's origin ${sb.url} for http://127.0.0.1:${port}`,
      );
      assert.ok(sb.requests.includes(`GET /job/hr/build/${u}/main-binary`));
      assert.ok(!sb.requests.some((r) => r.includes(`/job/hr/build/${u}/f/`)), sb.requests.join("\n"));
    } finally {
      sb.knobs.foreignRedirect = null;
    }
  });

  test("the command line: update --dryrun with --builder-ca finds the builds and the package diff; without it, the certificate error", async () => {
    const a = img("https-cli-a");
    const u1 = sb.addBuild("hc", { image: a, packages: { x: "1" } });
    const u2 = sb.addBuild("hc", { image: img("https-cli-b"), packages: { x: "2" } });
    // the host runs build u1: a daemon stand-in answering `info` with its digest
    const info: UnikernelInfo = {
      typ: "solo5",
      failBehaviour: { kind: "quit" },
      cpuids: [0],
      memory: 32,
      digest: createHash("sha256").update(a).digest(),
      blockDevices: [],
      bridges: [],
      started: new Date(),
      numcpus: 1,
    };
    const sock = join(dir, "vmmd.sock");
    const daemon = await fakeDaemon(sock, async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "reply", reply: { kind: "unikernel-info", unikernels: [{ name: req.header.name, info }] } });
      await c.end();
    });
    try {
      const args = ["update", "hello", "--dryrun", "--http-host", sb.url, "--socket", sock, "--state-dir", join(dir, "state")];
      const ok = await runCli([...args, "--builder-ca", caFile]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, new RegExp(`compare at ${sb.url}/compare/${u1}/${u2}`));
      assert.match(ok.stdout, /\n {2}x 1 -> 2\n$/);
      const refused = await runCli(args);
      assert.equal(refused.code, 118, refused.stderr); // EXIT.HTTP, as upstream
      assert.match(refused.stderr, /the builder's TLS certificate is not trusted \(.*\); --builder-ca FILE adds a CA to trust\n$/);
      assert.equal(refused.stderr.trimEnd().split("\n").length, 1, refused.stderr);
      const missing = await runCli([...args, "--builder-ca", join(dir, "nope.pem")]);
      assert.equal(missing.code, 124);
      assert.match(missing.stderr, /--builder-ca/);
    } finally {
      await daemon.close();
    }
  });
});
