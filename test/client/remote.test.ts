// The remote client transport (cli.md §1.2) against the endpoint and fake daemons.
import "reflect-metadata";
import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import type { Command, Wire } from "../../src/commands/types.js";
import { CliError } from "../../src/core/exit.js";
import { decodeCertExtension } from "../../src/commands/codec.js";
import { albatrossExtension, parseCertificate } from "../../src/ca/x509.js";
import { parseName, rootName, nameToString } from "../../src/core/name.js";
import { inflateSync } from "node:zlib";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileUpload } from "../../src/transport/upload.js";
import { INLINE_IMAGE_LIMIT, leafCommonName, makeLeaf, runCertificate, runRemote, splitImage, type RemoteOptions } from "../../src/client/remote.js";
import {
  type FakeDaemons,
  cmds,
  defaultBehaviour,
  dec,
  enc,
  endpointFixture,
  fail,
  keyPem,
  leaf,
  make,
  pem,
  startEndpoint,
  tempDir,
  writeFiles,
  type Pki,
  type Running,
} from "../support/endpoint.js";

let pki: Pki;
let tmp: string;
let fake: FakeDaemons;
let ep: Running;
let files: Record<string, string>;

endpointFixture({}, async (f) => {
  ({ pki, tmp, fake, ep } = f);
  const other = await make({ profile: "root", cn: "other" });
  files = writeFiles(tempDir(), {
    "arc.pem": pem(pki.arc),
    "arc.key": keyPem(pki.arc),
    "root.key": keyPem(pki.root),
    "cacert.pem": pem(pki.root),
    "other.pem": pem(other),
  });
});

function opts(command: Command, extra: Partial<RemoteOptions> = {}): RemoteOptions & { got: Wire[] } {
  const got: Wire[] = [];
  return {
    destination: { host: "127.0.0.1", port: ep.port },
    command,
    name: rootName,
    ca: files["arc.pem"]!,
    caKey: files["arc.key"]!,
    serverCa: files["cacert.pem"]!,
    keyType: "ed25519",
    onMessage: (w) => void got.push(w),
    got,
    ...extra,
  };
}

async function exitCodeOf(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    const code = await p;
    return { code: code as number, message: "" };
  } catch (e) {
    if (e instanceof CliError) return { code: e.exitCode, message: e.message };
    throw e;
  }
}

describe("runRemote", () => {
  it("info for the CA's own path: leaf CN '.', policies re-asserted, exit 0", async () => {
    const o = opts(cmds.info);
    assert.equal(await runRemote(o), 0);
    assert.equal(o.got.length, 1);
    assert.equal(nameToString(o.got[0]!.header.name), "arc:");
    assert.deepEqual(
      fake.of("vmmd").map((w) => nameToString(w.header.name)),
      ["arc:", "arc:"],
    );
  });

  it("a Failure reply exits 117", async () => {
    fake.behaviour = (w) =>
      w.payload.kind === "command" && w.payload.command.kind === "unikernel-destroy"
        ? { replies: [fail("destroy: not found")], close: true }
        : defaultBehaviour(w, "vmmd");
    const o = opts({ kind: "unikernel-destroy" }, { name: parseName("web") });
    assert.equal(await runRemote(o), 117);
    assert.equal(nameToString(fake.of("vmmd")[1]!.header.name), "arc:web");
  });

  it("a large image is streamed after the handshake, a small one travels in the certificate", async () => {
    const image = new Uint8Array(INLINE_IMAGE_LIMIT * 3).map((_, i) => (i * 7) % 256);
    assert.equal(await runRemote(opts(cmds.create({ image }), { name: parseName("web") })), 0);
    const created = fake.of("vmmd")[1]!;
    assert.equal(created.payload.kind, "command");
    assert.deepEqual(new Uint8Array((created.payload as { command: { config: { image: Uint8Array } } }).command.config.image), image);
    const small = splitImage(cmds.create({ image: enc("tiny") }));
    assert.equal(small.image, null);
    const big = splitImage(cmds.create({ image }));
    assert.equal(big.image?.length, image.length);
    assert.equal(big.command.kind === "unikernel-create" && big.command.config.image.length, 0);
  });

  it("block set uploads raw chunks", async () => {
    const seen: number[] = [];
    const o = opts(cmds.blockSet, {
      name: parseName("disk"),
      upload: [enc("aaaa"), new Uint8Array(0), enc("bbbb")],
      uploadSize: 8,
      progress: () => ({ update: (sent) => void seen.push(sent), done: () => undefined }),
    });
    assert.equal(await runRemote(o), 0);
    assert.deepEqual(
      fake.received.filter((r) => r.raw).map((r) => dec(r.raw!)),
      ["aaaa", "bbbb"],
    );
    assert.ok(fake.received.some((r) => r.terminator));
    assert.deepEqual(seen, [4, 8]);
  });

  it("an upload source failing mid-way: the stream is ended, the reply read, exit 125", async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield enc("part");
      throw new Error("EIO reading disk.img");
    }
    const warnings: string[] = [];
    const o = opts(cmds.blockSet, { name: parseName("disk"), upload: broken(), warn: (m) => void warnings.push(m) });
    assert.equal(await runRemote(o), 125);
    assert.deepEqual(warnings, ["upload failed: EIO reading disk.img"]);
    assert.ok(fake.received.some((r) => r.terminator));
    assert.equal(o.got.length, 1);
  });

  it("client-side policy pre-check (fine_with_policy) exits 124 before connecting", async () => {
    const r = await exitCodeOf(runRemote(opts(cmds.create({ memory: 1024 }), { name: parseName("web") })));
    assert.equal(r.code, 124);
    assert.match(r.message, /exceeds policy/);
    assert.equal(fake.received.length, 0);
  });

  it("a name with a path exits 124 (non-empty path)", async () => {
    const r = await exitCodeOf(runRemote(opts(cmds.info, { name: parseName("a:b") })));
    assert.deepEqual(r, { code: 124, message: "non-empty path" });
  });

  it("a CA key that does not match the CA certificate exits 124", async () => {
    const r = await exitCodeOf(runRemote(opts(cmds.info, { caKey: files["root.key"]! })));
    assert.deepEqual(r, { code: 124, message: "Public key of certificate doesn't match private key" });
  });

  it("an own chain not valid for --server-ca exits 116", async () => {
    const r = await exitCodeOf(runRemote(opts(cmds.info, { serverCa: files["other.pem"]! })));
    assert.equal(r.code, 116);
    assert.match(r.message, /^TLS validation error of provided certificate chain/);
  });

  it("--destination - prints the chain and the leaf, exit 121", async () => {
    let printed = "";
    const r = await runRemote(opts(cmds.info, { destination: { host: "-", port: 1025 }, print: (t) => void (printed += t) }));
    assert.equal(r, 121);
    assert.match(printed, /^intermediate:\n-----BEGIN CERTIFICATE-----[\s\S]*\nleaf:\n-----BEGIN CERTIFICATE-----/);
  });

  it("nothing listening exits 122", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await exitCodeOf(runRemote(opts(cmds.info, { destination: { host: "127.0.0.1", port } })));
    assert.equal(r.code, 122);
  });

  it("a server whose certificate is not trusted exits 120", async () => {
    const foreign = await make({ profile: "root", cn: "x" });
    const srv = await make({ profile: "server", cn: "server", issuer: foreign });
    const ep2 = await startEndpoint({ ...pki, server: srv }, tmp);
    try {
      const r = await exitCodeOf(runRemote(opts(cmds.info, { destination: { host: "127.0.0.1", port: ep2.port } })));
      assert.equal(r.code, 120);
    } finally {
      await ep2.close();
    }
  });

  it("a server refusing our chain: closed without a reply; nothing is forwarded", async () => {
    const foreign = await make({ profile: "root", cn: "x" });
    const ep2 = await startEndpoint({ ...pki, root: foreign }, tmp);
    try {
      const warnings: string[] = [];
      const o = opts(cmds.info, { destination: { host: "127.0.0.1", port: ep2.port }, warn: (m) => void warnings.push(m) });
      const r = await exitCodeOf(runRemote(o));
      // upstream (ocaml-tls) would alert bad_certificate (119); Node's TLS server only closes,
      // which the client takes as the end of the replies (exit 0, cli.md §3) with a warning
      assert.equal(r.code, 0);
      assert.match(warnings.join(), /closed the connection without a reply/);
      assert.equal(o.got.length, 0);
      assert.equal(fake.received.length, 0);
      await ep2.waitLog(/client certificate refused/);
    } finally {
      await ep2.close();
    }
  });
});

describe("fileUpload", () => {
  it("4096-byte pieces, or one zlib stream; progress counts the file", async () => {
    const dir = tempDir();
    const file = join(dir, "disk.img");
    const content = new Uint8Array(10_000).map((_, i) => i % 13);
    writeFileSync(file, content);
    const raw: Uint8Array[] = [];
    const fu = await fileUpload(file, 0);
    for await (const c of fu) raw.push(c);
    assert.deepEqual(
      raw.map((c) => c.length),
      [4096, 4096, 1808],
    );
    assert.equal(fu.size, 10_000);
    assert.equal(fu.consumed, 10_000);
    const z: Uint8Array[] = [];
    for await (const c of await fileUpload(file, 9)) z.push(c);
    assert.deepEqual(new Uint8Array(inflateSync(Buffer.concat(z))), content);
    const missing = await exitCodeOf(fileUpload(join(dir, "nope"), 0));
    assert.equal(missing.code, 124);
  });

  it("as the upload of runRemote (set-block)", async () => {
    const file = join(tempDir(), "d");
    writeFileSync(file, new Uint8Array(9000).fill(7));
    const seen: Array<[number, number]> = [];
    const o = opts(cmds.blockSet, {
      name: parseName("disk"),
      upload: await fileUpload(file, 0),
      progress: () => ({ update: (a, b) => void seen.push([a, b]), done: () => undefined }),
    });
    assert.equal(await runRemote(o), 0);
    assert.deepEqual(
      fake.received.filter((r) => r.raw).map((r) => r.raw!.length),
      [4096, 4096, 808],
    );
    assert.deepEqual(seen.at(-1), [9000, 9000]);
  });
});

describe("leaf building", () => {
  it("CN per cli.md §1.1 and the command in the extension; 300 s validity starting 10 s early", async () => {
    assert.equal(leafCommonName({ kind: "policy-info" }, parseName("a:b:")), "a:b");
    assert.equal(leafCommonName(cmds.info, parseName("web")), "web");
    assert.equal(leafCommonName(cmds.info, rootName), ".");
    // the root path of a policy command: "." (upstream sends an empty CN its endpoint refuses)
    assert.equal(leafCommonName({ kind: "policy-info" }, rootName), ".");
    const now = new Date("2026-01-01T00:00:00Z");
    const c = await makeLeaf({ command: cmds.console, cn: "web", caChain: [parseCertificate(pki.arc.der)], caKey: pki.arc.key, keyType: "p256", now });
    const l = c.chain[0]!;
    assert.equal(l.notBefore.toISOString(), "2025-12-31T23:59:50.000Z");
    assert.equal(l.notAfter.toISOString(), "2026-01-01T00:05:00.000Z");
    assert.deepEqual(decodeCertExtension(albatrossExtension(l)!).command, cmds.console);
    assert.equal(c.chain.length, 2);
  });
});

describe("runCertificate", () => {
  it("runs the command of a ready leaf (chain in the file)", async () => {
    const l = await leaf(pki.arc, "web", cmds.consoleList);
    const f = writeFiles(tempDir(), { "web.pem": pem(l, pki.arc), "web.key": keyPem(l) });
    fake.behaviour = () => ({ replies: [{ kind: "reply", reply: { kind: "consoles", names: [] } }], close: true });
    const got: Wire[] = [];
    const code = await runCertificate({
      cert: f["web.pem"]!,
      key: f["web.key"]!,
      serverCa: files["cacert.pem"]!,
      destination: { host: "127.0.0.1", port: ep.port },
      onMessage: (w) => void got.push(w),
    });
    assert.equal(code, 0);
    assert.equal(got.length, 1);
    assert.equal(fake.received[0]!.socket, "console");
  });

  it("without a destination: 'no destination provided' (124)", async () => {
    const r = await exitCodeOf(runCertificate({ cert: files["arc.pem"]!, key: files["arc.key"]!, serverCa: files["cacert.pem"]!, onMessage: () => undefined }));
    assert.deepEqual(r, { code: 124, message: "no destination provided" });
  });

  it("a key that does not belong to the leaf (124)", async () => {
    const r = await exitCodeOf(
      runCertificate({
        cert: files["arc.pem"]!,
        key: files["root.key"]!,
        serverCa: files["cacert.pem"]!,
        destination: { host: "127.0.0.1", port: ep.port },
        onMessage: () => undefined,
      }),
    );
    assert.equal(r.code, 124);
  });
});
