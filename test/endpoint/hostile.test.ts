// Hostile TLS clients against the endpoint, over real loopback TLS and with `openssl
// s_client`: each is refused or closed with a log line, nothing reaches a daemon, and the
// endpoint keeps serving others.
import "reflect-metadata";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import net from "node:net";
import { before, beforeEach, describe, it } from "node:test";
import tls from "node:tls";
import {
  FakeDaemons,
  cmds,
  data,
  defaultBehaviour,
  endpointFixture,
  exchange,
  keyPem,
  leaf,
  make,
  pem,
  startEndpoint,
  success,
  tempDir,
  writeFiles,
  type Node,
  type Pki,
  type Running,
} from "../support/endpoint.js";

let pki: Pki;
let fake: FakeDaemons;
let ep: Running;
let good: Node;

endpointFixture({ handshakeTimeoutMs: 400, uploadIdleMs: 400, writeStallMs: 400 }, async (f) => {
  ({ pki, fake, ep } = f);
  good = await leaf(pki.root, "good", cmds.info);
});

beforeEach(() => {
  ep.logs.length = 0;
});

/** The endpoint still answers a well-behaved client. */
async function stillServing(): Promise<void> {
  const r = await exchange({ port: ep.port, chain: [good], ca: pki.root });
  assert.deepEqual(
    r.replies.map((w) => w.payload),
    [success({ kind: "unikernel-info", unikernels: [] })],
  );
}

function openssl(args: string[], input = ""): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = execFile("openssl", args, { timeout: 10_000 }, (e, stdout, stderr) => {
      const code = e ? (typeof (e as { code?: unknown }).code === "number" ? (e as { code: number }).code : -1) : 0;
      resolve({ code, out: `${stdout}\n${stderr}` });
    });
    p.stdin!.end(input);
  });
}

/** A chain the endpoint must refuse: no reply, nothing at the daemons, a log line. */
async function refused(chain: Node[], log: RegExp): Promise<void> {
  fake.received.length = 0;
  const r = await exchange({ port: ep.port, chain, ca: pki.root });
  assert.equal(r.replies.length, 0, "no reply");
  assert.equal(fake.received.length, 0, "nothing reached a daemon");
  await ep.waitLog(log);
  await stillServing();
}

describe("hostile clients (Node TLS client)", () => {
  it("TLS 1.2 is refused during the handshake", async () => {
    const r = await exchange({ port: ep.port, chain: [good], ca: pki.root, maxVersion: "TLSv1.2" });
    assert.equal(r.end, "error");
    assert.match(r.error ?? "", /protocol version|PROTOCOL/i);
    await ep.waitLog(/error establishing TLS connection.*(protocol|version)/i);
    await stillServing();
  });

  it("no client certificate", async () => {
    const r = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: ep.port, ca: pem(pki.root), checkServerIdentity: () => undefined });
      s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      s.on("close", () => resolve("closed"));
      s.on("data", () => resolve("data"));
    });
    assert.notEqual(r, "data");
    await ep.waitLog(/error establishing TLS connection from 127\.0\.0\.1:\d+: no client certificate/);
    assert.equal(fake.received.length, 0);
    await stillServing();
  });

  it("a certificate from a foreign CA", async () => {
    const foreign = await make({ profile: "root", cn: "root" }); // same name, other key
    const l = await leaf(foreign, "foo", cmds.info);
    const r = await exchange({ port: ep.port, chain: [l], ca: pki.root });
    assert.equal(r.replies.length, 0);
    await ep.waitLog(/error establishing TLS connection.*client certificate refused: (CERT_SIGNATURE_FAILURE|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/);
    assert.equal(fake.received.length, 0);
    await stillServing();
  });

  it("an expired and a not-yet-valid leaf", async () => {
    const now = Date.now();
    const expired = await leaf(pki.root, "old", cmds.info, { notBefore: new Date(now - 7200_000), notAfter: new Date(now - 3600_000) });
    let r = await exchange({ port: ep.port, chain: [expired], ca: pki.root });
    assert.equal(r.replies.length, 0);
    await ep.waitLog(/error establishing TLS connection.*client certificate refused: CERT_HAS_EXPIRED/);
    const future = await leaf(pki.root, "new", cmds.info, { notBefore: new Date(now + 3600_000), notAfter: new Date(now + 7200_000) });
    r = await exchange({ port: ep.port, chain: [future], ca: pki.root });
    assert.equal(r.replies.length, 0);
    await ep.waitLog(/error establishing TLS connection.*client certificate refused: CERT_NOT_YET_VALID/);
    assert.equal(fake.received.length, 0);
    await stillServing();
  });

  it("a leaf with CA:TRUE (OpenSSL accepts it, our re-check does not)", async () => {
    const caLeaf = await make({ profile: "intermediate", cn: "foo", issuer: pki.root, command: cmds.info });
    await refused([caLeaf], /end-entity certificate is a CA/);
  });

  it("a chain of 10 certificates", async () => {
    let issuer = pki.root;
    const cas: Node[] = [];
    for (let i = 0; i < 9; i++) {
      issuer = await make({ profile: "intermediate", cn: `ca${i}`, issuer, policy: pki.arcPolicy });
      cas.unshift(issuer);
    }
    const l = await leaf(issuer, "deep", cmds.info);
    await refused([l, ...cas], /certificate chain too long/);
  });

  it("a garbage albatross extension", async () => {
    const l = await make({ profile: "leaf", cn: "foo", issuer: pki.root, albatross: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x04) });
    await refused([l], /failed to handle TLS connection/);
    const l2 = await make({ profile: "leaf", cn: "foo", issuer: pki.root, albatross: Uint8Array.of(0xde, 0xad) });
    await refused([l2], /failed to handle TLS connection/);
  });

  it("a garbage extension in an intermediate", async () => {
    const bad = await make({ profile: "intermediate", cn: "bad", issuer: pki.root, albatross: Uint8Array.of(0x30, 0x00) });
    await refused([await leaf(bad, "x", cmds.info), bad], /failed to handle TLS connection/);
  });

  it("a 200 KiB certificate passes TLS (the chain limit is raised) and its malformed extension is refused", async () => {
    const l = await make({ profile: "leaf", cn: "foo", issuer: pki.root, albatross: new Uint8Array(200 * 1024).fill(0x41) });
    await refused([l], /failed to handle TLS connection: expected tag 0x30 for extension, got 0x41/);
  });

  it("a client that stalls mid-handshake is cut off by the handshake timeout", async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port: ep.port }, () => {
        // the first bytes of a TLS record, then nothing
        s.write(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01));
      });
      s.on("error", () => undefined);
      s.on("close", () => resolve(true));
    });
    assert.ok(closed);
    await ep.waitLog(/error establishing TLS connection.*(timed out|timeout)/i);
    await stillServing();
  });

  it("a client that stops reading a stream is dropped after the write stall limit", async () => {
    const big = new Uint8Array(1 << 20);
    fake.behaviour = (w) =>
      w.payload.kind === "command" && w.payload.command.kind === "block-dump"
        ? {
            replies: [
              success({ kind: "block-device-image", compressed: false }),
              ...Array.from({ length: 48 }, () => data({ kind: "block-data", data: big })),
              data({ kind: "block-end" }),
            ],
          }
        : defaultBehaviour(w, "vmmd");
    const l = await leaf(pki.root, "disk", cmds.blockDump);
    const s = tls.connect({ host: "127.0.0.1", port: ep.port, ca: pem(pki.root), cert: pem(l), key: keyPem(l), checkServerIdentity: () => undefined });
    s.on("error", () => undefined);
    await new Promise((r) => s.once("secureConnect", r));
    s.pause(); // never read
    await ep.waitLog(/writing to the client failed: peer did not read/);
    s.destroy();
    await stillServing();
  });

  it("no session resumption: every connection presents (and has validated) its certificate", async () => {
    const conn = (session?: Buffer) =>
      new Promise<{ ticket: Buffer | null; reused: boolean; replies: number }>((resolve) => {
        let ticket: Buffer | null = null;
        let reused = false;
        let replies = 0;
        const s = tls.connect({
          host: "127.0.0.1",
          port: ep.port,
          ca: pem(pki.root),
          cert: pem(good),
          key: keyPem(good),
          checkServerIdentity: () => undefined,
          ...(session ? { session } : {}),
        });
        s.on("session", (t: Buffer) => (ticket = t));
        s.on("secureConnect", () => (reused = s.isSessionReused()));
        s.on("data", () => replies++);
        s.on("error", () => undefined);
        s.on("close", () => resolve({ ticket, reused, replies }));
      });
    const first = await conn();
    assert.equal(first.replies > 0, true);
    const second = await conn(first.ticket ?? undefined);
    assert.equal(second.reused, false);
    assert.equal(second.replies > 0, true);
  });

  it("many connections at once: those over the limit are dropped with a log line, the rest served", async () => {
    const tmp2 = tempDir();
    const fake2 = await FakeDaemons.start(tmp2, ["vmmd"]);
    const ep2 = await startEndpoint(pki, tmp2, { maxConnections: 4, handshakeTimeoutMs: 2000 });
    try {
      const idle = await Promise.all(
        Array.from(
          { length: 12 },
          () =>
            new Promise<net.Socket>((resolve) => {
              const s = net.connect({ host: "127.0.0.1", port: ep2.port }, () => resolve(s));
              s.on("error", () => undefined);
            }),
        ),
      );
      await ep2.waitLog(/too many connections \(4\), dropped/);
      for (const s of idle) s.destroy();
      // concurrent well-behaved clients
      await new Promise((r) => setTimeout(r, 50));
      const results = await Promise.all(Array.from({ length: 4 }, () => exchange({ port: ep2.port, chain: [good], ca: pki.root })));
      for (const r of results)
        assert.deepEqual(
          r.replies.map((w) => w.payload),
          [success({ kind: "unikernel-info", unikernels: [] })],
        );
    } finally {
      await ep2.close();
      await fake2.close();
    }
  });
});

describe("hostile clients (openssl s_client)", () => {
  let files: Record<string, string>;
  before(async () => {
    const foreignRoot = await make({ profile: "root", cn: "evil" });
    const foreign = await leaf(foreignRoot, "foo", cmds.info);
    const dir = tempDir();
    files = writeFiles(dir, {
      "ca.pem": pem(pki.root),
      "good.pem": pem(good),
      "good.key": keyPem(good),
      "foreign.pem": pem(foreign),
      "foreign.key": keyPem(foreign),
    });
  });

  const connect = (): string[] => ["s_client", "-connect", `127.0.0.1:${ep.port}`, "-CAfile", files["ca.pem"]!, "-ign_eof"];

  it("-tls1_2 is refused", async () => {
    const r = await openssl([...connect(), "-tls1_2"]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /alert protocol version|wrong version|no protocols available/i);
    await ep.waitLog(/error establishing TLS connection/);
    await stillServing();
  });

  it("without a client certificate: closed, nothing forwarded", async () => {
    const r = await openssl(connect());
    assert.match(r.out, /CONNECTED/); // TCP and TLS came up, then the endpoint closed
    await ep.waitLog(/no client certificate/);
    assert.equal(fake.received.length, 0);
    await stillServing();
  });

  it("with a certificate of a foreign CA: closed right after the handshake", async () => {
    const r = await openssl([...connect(), "-cert", files["foreign.pem"]!, "-key", files["foreign.key"]!]);
    // Node's TLS server sends no alert for a refused chain; the connection just ends
    assert.match(r.out, /unexpected eof|closed|errno/i);
    await ep.waitLog(/client certificate refused: UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE)/);
    assert.equal(fake.received.length, 0);
    await stillServing();
  });

  it("with a good certificate: the framed reply arrives (s_client as a client works)", async () => {
    const r = await openssl([...connect(), "-cert", files["good.pem"]!, "-key", files["good.key"]!, "-quiet"]);
    assert.equal(fake.received.length, 1);
    assert.match(r.out, /Verify return code: 0|verify return:1/);
  });
});
