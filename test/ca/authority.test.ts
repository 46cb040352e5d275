// generate/sign through the library: validity windows, extension sets, DB lines, chain files.
import "reflect-metadata";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generate, readCertificateFile, sign } from "../../src/ca/authority.js";
import { OID } from "../../src/ca/asn1.js";
import { authorityKeyId, basicConstraints, extKeyUsage, keyId, keyUsage, subjectKeyId, albatrossExtension } from "../../src/ca/x509.js";
import { decodeCertExtension } from "../../src/commands/codec.js";
import { writeCommandRequest } from "../../src/ca/request.js";
import { tempDir } from "../support/ca.js";

const now = new Date("2026-03-01T12:00:00.750Z");

test("generate: root and server certificates as albatross-client generate makes them", async () => {
  const dir = tempDir();
  const db = join(dir, "db");
  const r = await generate({ name: "ca", db, keyType: "p384", dir, now });
  const [root] = await readCertificateFile(r.caCertFile);
  const [srv] = await readCertificateFile(r.serverCertFile);
  assert.equal(root!.notBefore.toISOString(), "2026-03-01T11:59:50.000Z");
  assert.equal(root!.notAfter.toISOString(), "2036-02-27T12:00:00.000Z"); // + 3650 days
  assert.equal(srv!.notAfter.toISOString(), "2027-03-01T12:00:00.000Z"); // + 365 days
  assert.equal(root!.extensions.map((e) => e.oid).join(), [OID.keyUsage, OID.basicConstraints].join());
  assert.ok(root!.extensions.every((e) => e.critical));
  assert.deepEqual(basicConstraints(root!), { ca: true });
  assert.deepEqual([...keyUsage(root!)!].sort(), [0, 1, 5, 6]);
  assert.equal(
    srv!.extensions.map((e) => e.oid).join(),
    [OID.subjectKeyIdentifier, OID.keyUsage, OID.basicConstraints, OID.authorityKeyIdentifier, OID.extKeyUsage].join(),
  );
  assert.deepEqual(extKeyUsage(srv!), [OID.serverAuth]);
  assert.deepEqual(authorityKeyId(srv!), keyId(root!.publicKey.key));
  assert.deepEqual(subjectKeyId(srv!), keyId(srv!.publicKey.key));
  assert.ok(srv!.serial.length === 10 || srv!.serial.length === 11);
  assert.equal(srv!.serial[0]! & 0x80, 0);
  assert.equal(readFileSync(db, "utf8"), `${Buffer.from(srv!.serial).toString("hex")} server\n`);
});

test("sign: days defaults, leaf extension set, re-encoded command, chain file", async () => {
  const dir = tempDir();
  const db = join(dir, "db");
  await generate({ name: "ca", db, keyType: "ed25519", dir, now });
  await writeCommandRequest({
    cn: "user",
    dir,
    keyType: "ed25519",
    command: { kind: "policy-add", policy: { unikernels: 3n, cpuids: [0], memory: 64, bridges: [] } },
  });
  const u = await sign({ caCertFile: join(dir, "cacert.pem"), db, caKeyFile: join(dir, "ca.key"), csrFile: join(dir, "user.req"), dir, now });
  assert.equal(u.profile, "intermediate");
  assert.equal(u.notAfter.toISOString(), "2027-03-01T12:00:00.000Z");
  await writeCommandRequest({ cn: "hello", dir, keyType: "p256", command: { kind: "unikernel-destroy" } });
  const l = await sign({ caCertFile: u.certFile, db, caKeyFile: join(dir, "user.key"), csrFile: join(dir, "hello.req"), dir, now });
  assert.equal(l.profile, "leaf");
  assert.equal(l.notAfter.toISOString(), "2026-03-02T12:00:00.000Z");
  const [leaf, inter, ...rest] = await readCertificateFile(l.certFile);
  assert.equal(rest.length, 0);
  assert.equal(
    leaf!.extensions.map((e) => e.oid).join(),
    ["1.3.6.1.4.1.49836.42", OID.subjectKeyIdentifier, OID.keyUsage, OID.basicConstraints, OID.authorityKeyIdentifier, OID.extKeyUsage].join(),
  );
  assert.equal(leaf!.extensions[0]!.critical, false);
  assert.deepEqual(decodeCertExtension(albatrossExtension(leaf!)!), { version: 5, command: { kind: "unikernel-destroy" } });
  assert.deepEqual(authorityKeyId(leaf!), keyId(inter!.publicKey.key));
  assert.deepEqual(extKeyUsage(leaf!), [OID.clientAuth]);
  const d = await sign({ caCertFile: u.certFile, db, caKeyFile: join(dir, "user.key"), csrFile: join(dir, "hello.req"), dir, now, days: 7, overwrite: true });
  assert.equal(d.notAfter.toISOString(), "2026-03-08T12:00:00.000Z");
  assert.deepEqual(
    readFileSync(db, "utf8")
      .trim()
      .split("\n")
      .map((x) => x.split(" ")[1]),
    ["server", "user", "hello", "hello"],
  );
  // unusable policies are refused (policy.md §2)
  await writeCommandRequest({
    cn: "empty",
    dir,
    keyType: "ed25519",
    command: { kind: "policy-add", policy: { unikernels: 1n, cpuids: [0], memory: 16, bridges: [] } },
  });
  await assert.rejects(
    sign({ caCertFile: join(dir, "cacert.pem"), db, caKeyFile: join(dir, "ca.key"), csrFile: join(dir, "empty.req"), dir, now }),
    /Unusable policy with memory 16 MB <= 16 MB/,
  );
  // a create that does not fit the signer's policy (fine_with_policy)
  await writeCommandRequest({
    cn: "big",
    dir,
    keyType: "ed25519",
    command: {
      kind: "unikernel-create",
      config: {
        typ: "solo5",
        compressed: false,
        image: new Uint8Array(0),
        failBehaviour: { kind: "quit" },
        addName: true,
        cpuids: [0],
        memory: 128,
        blockDevices: [],
        bridges: [],
        numcpus: 1,
      },
    },
  });
  await assert.rejects(
    sign({ caCertFile: u.certFile, db, caKeyFile: join(dir, "user.key"), csrFile: join(dir, "big.req"), dir, now }),
    /policy of user: 128 MB memory assigned to unikernel exceeds policy \(64MB\)/,
  );
});
