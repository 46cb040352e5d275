// The albatross-client path for a real-sized unikernel, with the `dromedary` command line only:
// `create --csr` puts the whole compressed image into the signing request, `sign` into the
// leaf, and `certificate --destination` sends that chain to `dromedary endpoint`, which passes
// the create to hostd (stand-in tender, fresh network namespace). A 3 MiB and a 12 MiB
// incompressible image (valid Solo5 ELFs padded with random bytes): each unikernel runs and its
// console shows its output. Skipped without root/netns.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { fromPemAll } from "../../src/ca/x509.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { pidsWith, waitFor, withHostd } from "../support/hostd.js";
import { ok, readUntil, startEndpoint } from "./support.js";

const MiB = 1 << 20;

/** A Solo5 hvt ELF of exactly `size` bytes, the rest random (zlib cannot shrink it). */
function bigImage(size: number): Uint8Array {
  const elf = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
  const out = new Uint8Array(size);
  out.set(elf);
  out.set(randomBytes(size - elf.length), elf.length);
  return out;
}

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

describe("albatross-client's create with the image inside the certificate", () => {
  it("create --csr, sign, certificate --destination: a 3 MiB and a 12 MiB unikernel run, their consoles show their output", async (t) => {
    if (skip !== false) return t.skip(skip);
    const dir = mkdtempSync(join(tmpdir(), "dromedary-big-"));
    try {
      await withNetns((ns) =>
        withHostd(ns, async (env) => {
          await ok(dir, ["generate", "ca", "db"]);
          const ep = await startEndpoint(dir, env.tmpdir, ["-v"]);
          try {
            await ok(dir, ["add-policy", "user", "4", "--mem", "1024", "--cpu", "0", "--csr"]);
            await ok(dir, ["sign", "cacert.pem", "db", "ca.key", "user.req"]);
            const remote = ["--ca=user.pem", "--ca-key=user.key", "--server-ca=cacert.pem", "--destination", ep.dest];
            for (const [name, size] of [
              ["big", 3 * MiB],
              ["huge", 12 * MiB],
            ] as const) {
              writeFileSync(join(dir, `${name}.img`), bigImage(size));
              await ok(dir, ["create", name, `${name}.img`, "--csr", "--arg=--standin-run"]);
              await ok(dir, ["sign", "user.pem", "db", "user.key", `${name}.req`]);
              // the leaf carries the compressed image: more than the image itself
              const [leafDer] = fromPemAll(readFileSync(join(dir, `${name}.pem`), "utf8"), "CERTIFICATE");
              assert.ok(leafDer!.length > size, `${name}.pem's leaf: ${leafDer!.length} bytes for a ${statSync(join(dir, `${name}.img`)).size}-byte image`);

              assert.match(await ok(dir, ["certificate", "cacert.pem", `${name}.pem`, `${name}.key`, "--destination", ep.dest]), /success: created unikernel/);
              // (this test's own tenders: their image lies in its tmpdir — other tests on the
              // machine may run tenders of the same names)
              await waitFor(`the tender of user:${name}`, async () => (await pidsWith(`${env.tmpdir}/user:${name}.img`)).length > 0);
              const out = await readUntil(dir, ["console", name, ...remote], /Hello, World/);
              assert.match(out, /console \S+: Hello, World/);
              assert.match(await ok(dir, ["destroy", name, ...remote]), /success: destroyed unikernel/);
            }
            assert.doesNotMatch(ep.log(), /refused|will be refused|excessive/, ep.log());
            // The tenders are gone soon after their replies, not necessarily at once (Node 22 in
            // CI once saw one still exiting); this test's own only: their image lies in its
            // tmpdir (other tests on the machine may run tenders named user:* too).
            await waitFor("no tender of this test left", async () => (await pidsWith(`${env.tmpdir}/user:`)).length === 0);
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
