// `--csr` mode (cli.md §1.3): key and request in the current directory, CN of §1.1.

import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { inflateSync } from "node:zlib";
import { decodeCertExtension } from "../../src/commands/codec.js";
import { albatrossExtension } from "../../src/ca/x509.js";
import { parseCsrPem } from "../../src/ca/csr.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { runCli, tempDir } from "../support/cli.js";

let tmp: { dir: string; cleanup: () => void };
let image: string;
before(() => {
  tmp = tempDir();
  image = path.join(tmp.dir, "net.hvt");
  writeFileSync(image, buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes);
});
after(() => tmp.cleanup());

function requestCommand(file: string) {
  const csr = parseCsrPem(readFileSync(file, "utf8"));
  const v = albatrossExtension(csr);
  assert.ok(v, "the CSR carries the albatross extension");
  return { csr, ext: decodeCertExtension(v) };
}

describe("--csr", () => {
  test("create: hello.key + hello.req with the image compressed at level 9", async () => {
    const r = await runCli(["create", "hello", image, "--net", "service", "--csr"], { cwd: tmp.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello\.req/);
    const key = path.join(tmp.dir, "hello.key");
    assert.ok(existsSync(key));
    assert.equal(statSync(key).mode & 0o077, 0, "key not readable by others");
    const { ext } = requestCommand(path.join(tmp.dir, "hello.req"));
    assert.equal(ext.version, 5);
    if (ext.command.kind !== "unikernel-create") assert.fail(ext.command.kind);
    assert.equal(ext.command.config.compressed, true);
    assert.deepEqual(inflateSync(ext.command.config.image), readFileSync(image));

    // inspect shows the request and its command
    const i = await runCli(["inspect", path.join(tmp.dir, "hello.req")]);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /certificate signing request\n {2}subject: +CN=hello/);
    assert.match(i.stdout, /albatross extension: version 5, unikernel create typ solo5 compression true/);

    // a second run reuses the key and replaces the request (as upstream), saying so
    assert.match(r.stdout, /^wrote /);
    const keyBefore = readFileSync(key, "utf8");
    const again = await runCli(["create", "hello", image, "--net", "service", "--csr", "--compression-level", "0"], { cwd: tmp.dir });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^replaced .*hello\.req \(reused key /);
    assert.equal(readFileSync(key, "utf8"), keyBefore);
    const second = requestCommand(path.join(tmp.dir, "hello.req")).ext;
    assert.ok(second.command.kind === "unikernel-create" && second.command.config.compressed === false);
  });

  test("add-policy: CN = path text, policy add command", async () => {
    const r = await runCli(["add-policy", "tenant", "2", "--mem", "1024", "--bridge", "br0", "--csr"], { cwd: tmp.dir });
    assert.equal(r.code, 0, r.stderr);
    const { csr, ext } = requestCommand(path.join(tmp.dir, "tenant.req"));
    assert.equal(csr.subject[0]![0]!.value, "tenant");
    assert.deepEqual(ext.command, { kind: "policy-add", policy: { unikernels: 2n, cpuids: [0], memory: 1024, bridges: ["br0"] } });
  });

  test("--key-type and --key-password-file", async () => {
    const pw = path.join(tmp.dir, "pw");
    writeFileSync(pw, "secret\n");
    const r = await runCli(["destroy", "gone", "--csr", "--key-type", "p256", "--key-password-file", pw], { cwd: tmp.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(path.join(tmp.dir, "gone.key"), "utf8"), /ENCRYPTED PRIVATE KEY/);
    const i = await runCli(["inspect", path.join(tmp.dir, "gone.req")]);
    assert.match(i.stdout, /key: +ECDSA P-256/);
    assert.match(i.stdout, /unikernel destroy/);
  });

  test("a name with a path: non-empty path (124)", async () => {
    const r = await runCli(["console", "a:b", "--csr"], { cwd: tmp.dir });
    assert.equal(r.code, 124);
    assert.equal(r.stderr, "dromedary: non-empty path\n");
  });

  test("the default `:` of info (CN `.`) cannot name files: 124", async () => {
    const r = await runCli(["info", "--csr"], { cwd: tmp.dir });
    assert.equal(r.code, 124);
    assert.match(r.stderr, /^dromedary: error while creating CSR: /);
    assert.ok(!existsSync(path.join(tmp.dir, "..key")));
  });

  test("a policy command for the root path (empty CN): 125 as upstream", async () => {
    const r = await runCli(["policy", "--csr"], { cwd: tmp.dir });
    assert.equal(r.code, 125);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
  });
});
