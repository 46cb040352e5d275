// End to end: the remote client -> the TLS endpoint -> the real `dromedary hostd` and
// `dromedary console-daemon` (in a network namespace with the stand-in tender, via the
// hostd test harness). Policy enforcement across tenants whose names and policies come
// only from their certificate chains (issue 5 item 3). Skipped without root/namespaces.
import "reflect-metadata";
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { Command, Wire } from "../../src/commands/types.js";
import { parseName, rootName } from "../../src/core/name.js";
import { runRemote } from "../../src/client/remote.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { config, withHostd } from "../support/hostd.js";
import { dec, enc, keyPem, make, makePki, pem, policy, startEndpoint, tempDir, writeFiles } from "../support/endpoint.js";

const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

interface Reply {
  code: number;
  texts: string[];
  wires: Wire[];
}

function text(w: Wire): string {
  const p = w.payload;
  if (p.kind === "failure") return `failure: ${dec(p.message)}`;
  if (p.kind === "reply") {
    const r = p.reply;
    if (r.kind === "string") return `success: ${dec(r.text)}`;
    // labels only: whether names in listings are relative to the asking path is hostd's business
    if (r.kind === "unikernel-info") return `unikernels: ${r.unikernels.map((u) => u.name.label).join(",")}`;
    if (r.kind === "block-devices") return `blocks: ${r.devices.map((d) => d.name.label).join(",")}`;
    if (r.kind === "policies") return `policies: ${r.policies.length}`;
    return r.kind;
  }
  return p.kind;
}

describe("end to end with hostd", () => {
  it("tenants: limits from the chain, isolation by name, widening chains refused", async (t) => {
    if (skip !== false) return t.skip(skip);
    const pki = await makePki(); // arc: 1 unikernel, cpu 0, 64 MB, no block
    const bob = await make({
      profile: "intermediate",
      cn: "bob",
      issuer: pki.root,
      policy: policy({ unikernels: 2n, cpuids: [0], memory: 64, block: 20, bridges: [] }),
      seconds: 3600,
    });
    const wide = await make({
      profile: "intermediate",
      cn: "wide",
      issuer: pki.arc,
      policy: policy({ unikernels: 3n, cpuids: [0], memory: 64, bridges: [] }),
      seconds: 3600,
    });
    const dir = tempDir();
    const f = writeFiles(dir, {
      "arc.pem": pem(pki.arc),
      "arc.key": keyPem(pki.arc),
      "bob.pem": pem(bob),
      "bob.key": keyPem(bob),
      "wide.pem": pem(wide, pki.arc),
      "wide.key": keyPem(wide),
      "cacert.pem": pem(pki.root),
    });
    const as =
      (ca: string) =>
      async (command: Command, name = rootName): Promise<Reply> => {
        const wires: Wire[] = [];
        const code = await runRemote({
          destination: { host: "127.0.0.1", port: ep.port },
          command,
          name,
          ca: f[`${ca}.pem`]!,
          caKey: f[`${ca}.key`]!,
          serverCa: f["cacert.pem"]!,
          keyType: "ed25519",
          onMessage: (w) => void wires.push(w),
        });
        return { code, texts: wires.map(text), wires };
      };
    let ep: Awaited<ReturnType<typeof startEndpoint>>;
    await withNetns((ns) =>
      withHostd(ns, async (env) => {
        ep = await startEndpoint(pki, env.tmpdir);
        try {
          const arc = as("arc");
          const bobc = as("bob");
          const create = (c: (cmd: Command, n?: ReturnType<typeof parseName>) => Promise<Reply>, n: string) =>
            c({ kind: "unikernel-create", config: config(HELLO, { memory: 32, argv: [enc("--standin-run")] }) }, parseName(n));

          // arc may run one unikernel
          assert.deepEqual((await create(arc, "web1")).texts, ["success: created unikernel"]);
          const second = await create(arc, "web2");
          assert.equal(second.code, 117);
          assert.deepEqual(second.texts, ["failure: maximum amount of unikernels (1) reached"]);
          assert.deepEqual((await arc({ kind: "unikernel-info" })).texts, ["unikernels: web1"]);

          // bob sees and touches only bob's
          assert.deepEqual((await bobc({ kind: "unikernel-info" })).texts, ["unikernels: "]);
          const destroy = await bobc({ kind: "unikernel-destroy" }, parseName("web1"));
          assert.deepEqual(destroy.texts, ["failure: destroy: not found"]);
          assert.deepEqual((await arc({ kind: "unikernel-info" })).texts, ["unikernels: web1"]);
          assert.deepEqual((await bobc({ kind: "block-add", size: 10 }, parseName("disk"))).texts, ["success: added block device"]);
          assert.deepEqual((await arc({ kind: "block-info" })).texts, ["blocks: "]);
          assert.deepEqual((await arc({ kind: "block-remove" }, parseName("disk"))).texts[0]?.startsWith("failure:"), true);
          assert.deepEqual((await bobc({ kind: "block-info" })).texts, ["blocks: disk"]);
          // arc has no block storage in its policy
          assert.equal((await arc({ kind: "block-add", size: 1 }, parseName("d"))).code, 117);

          // a chain that widens (wide allows 3 under arc's 1) never reaches hostd
          const before = env.hostdLog.length;
          const w = await as("wide")({ kind: "unikernel-info" });
          assert.equal(w.code, 117);
          assert.match(w.texts[0]!, /^failure: delegated policies in the certificate chain widen/);
          assert.equal(
            env.hostdLog.slice(before).some((l) => l.includes("wide")),
            false,
          );
          // the refused chain changed nothing: arc's unikernel is still there
          assert.deepEqual((await arc({ kind: "unikernel-info" }, parseName("web1"))).texts, ["unikernels: web1"]);

          assert.deepEqual((await arc({ kind: "unikernel-destroy" }, parseName("web1"))).code, 0);
        } finally {
          await ep.close();
        }
      }),
    );
  });
});
