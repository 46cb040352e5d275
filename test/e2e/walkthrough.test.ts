// The albatross README walkthrough (steps 1–8), run with the `dromedary` command line only,
// against `dromedary endpoint` + `hostd` + `console-daemon` on this machine: hostd and the
// console daemon in a fresh network namespace (tests/hostd harness) with the stand-in
// tender, the endpoint on loopback, every client step a separate `dromedary` process.
// The resulting chains are also checked with `openssl verify`. Skipped without root/netns.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { pidsWith, waitFor, withHostd } from "../support/hostd.js";
import { dromedary, ok, readUntil, startEndpoint } from "./support.js";

const pExecFile = promisify(execFile);

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

describe("the albatross README walkthrough with dromedary", () => {
  it("generate → endpoint → add-policy --csr → sign → create --csr → sign → certificate → create --destination", async (t) => {
    if (skip !== false) return t.skip(skip);
    const dir = mkdtempSync(join(tmpdir(), "dromedary-walkthrough-"));
    try {
      writeFileSync(join(dir, "hello-key.hvt"), buildSolo5Elf({ target: "hvt", devices: [] }).bytes);
      await withNetns((ns) =>
        withHostd(ns, async (env) => {
          // 1. root CA and server keypair
          await ok(dir, ["generate", "ca", "db"]);
          for (const f of ["ca.key", "cacert.pem", "server.key", "server.pem", "db"]) readFileSync(join(dir, f));

          // 2. the endpoint, with the server keypair and the root CA certificate
          const ep = await startEndpoint(dir, env.tmpdir);
          try {
            const dest = ep.dest;

            // 3. the user asks for a policy: 16 unikernels, 1024 MB, CPUs 0 and 1
            await ok(dir, ["add-policy", "user", "16", "--mem", "1024", "--cpu", "0", "--cpu", "1", "--csr"]);
            // 4. the CA signs it into an intermediate CA certificate carrying the policy
            await ok(dir, ["sign", "cacert.pem", "db", "ca.key", "user.req"]);
            // 5. the client wraps a create command (with the image) in a CSR
            // (--standin-run keeps the stand-in tender running, as a real service unikernel would)
            await ok(dir, ["create", "hello", "hello-key.hvt", "--csr", "--arg=--hello=albatross-hi", "--arg=--standin-run", "--cpu=1"]);
            // 6. the intermediate CA signs it; hello.pem holds the chain
            await ok(dir, ["sign", "user.pem", "db", "user.key", "hello.req"]);
            assert.equal((readFileSync(join(dir, "hello.pem"), "utf8").match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
            const verify = await pExecFile("openssl", ["verify", "-CAfile", "cacert.pem", "-untrusted", "user.pem", "hello.pem"], { cwd: dir });
            assert.match(verify.stdout, /hello\.pem: OK/);
            assert.match(await ok(dir, ["verify", "hello.pem", "--ca", "cacert.pem"]), /name: user:hello/);

            // 7. the client sends the signed request (README form: CACERT CERT KEY)
            assert.match(await ok(dir, ["certificate", "cacert.pem", "hello.pem", "hello.key", "--destination", dest]), /success: created unikernel/);
            // the tender runs pinned to CPU 1 with the guest argument after --name=
            // (this test's own tender: its image lies in this test's tmpdir — other tests on the
            // machine may run tenders of the same name)
            const [pid] = await waitFor("the tender of user:hello", async () => {
              const pids = await pidsWith(`${env.tmpdir}/user:hello.img`);
              return pids.length > 0 ? pids : null;
            });
            const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
            assert.ok(cmdline.includes("--name=hello") && cmdline.includes("--hello=albatross-hi"), cmdline.join(" "));
            const affinity = await pExecFile("taskset", ["-pc", String(pid)]);
            assert.match(affinity.stdout, /list: 1\n/);

            // 8. steps 5-7 in one: a leaf signed on the fly by the user's CA key
            const remote = ["--ca=user.pem", "--ca-key=user.key", "--server-ca=cacert.pem", "--destination", dest];
            assert.match(
              await ok(dir, ["create", "hello2", "hello-key.hvt", ...remote, "--arg=--hello=albatross-hi", "--arg=--standin-run", "--cpu=1"]),
              /success: created unikernel/,
            );

            // what the user sees: both unikernels (names relative to its path), and a console
            const info = await ok(dir, ["info", ...remote, "--json"]);
            const names = info
              .trim()
              .split("\n")
              .flatMap((l) =>
                ((JSON.parse(l) as { payload: { reply?: { unikernels?: Array<{ name: string }> } } }).payload.reply?.unikernels ?? []).map((u) => u.name),
              );
            assert.deepEqual(names.sort(), [":hello", ":hello2"]);
            const consoleOut = await readUntil(dir, ["console", "hello", ...remote], /Hello, World/);
            assert.match(consoleOut, /console \S+: Hello, World/);

            // the policy travels with the chain: CPU 0 is allowed, CPU 2 is not (refused locally
            // against the CA's policy before anything is sent, exit 124)
            const refused = await dromedary(dir, ["create", "hello3", "hello-key.hvt", ...remote, "--cpu=2"]);
            assert.equal(refused.code, 124, refused.stderr);
            assert.match(refused.stderr, /CPUids 2 requested by the unikernel are not allowed by policy/);

            for (const n of ["hello", "hello2"]) {
              assert.match(await ok(dir, ["destroy", n, ...remote]), /success: destroyed unikernel/);
            }
            // gone soon after the replies, not necessarily at once (as in big-create)
            await waitFor("no tender of this test left", async () => (await pidsWith(`${env.tmpdir}/user:hello`)).length === 0);
          } finally {
            ep.stop();
          }
        }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
