// The client-flight probe (src/endpoint/tls13.ts) on real TLS 1.3 traffic — a Node client's
// bytes recorded on their way to a Node server, whose keylog gives the client handshake
// traffic secret — and the budget and slots the endpoint waits for (src/endpoint/slots.ts).
import "reflect-metadata";
import assert from "node:assert/strict";
import { constants, randomBytes } from "node:crypto";
import net from "node:net";
import { Duplex } from "node:stream";
import { describe, it } from "node:test";
import tls from "node:tls";
import fc from "fast-check";
import { ClientFlightProbe, MAX_RECORD, MAX_UNREADABLE, expandLabel, openRecord, parseKeylogLine, trafficKeys } from "../../src/endpoint/tls13.js";
import { Budget, Slots } from "../../src/endpoint/slots.js";
import { cmds, keyPem, leaf, make, pem, policy, type Node } from "../support/endpoint.js";

interface Recording {
  /** every byte the client sent */
  readonly bytes: Buffer;
  readonly random: string;
  readonly secret: Buffer;
  readonly suite: string;
}

/** One handshake of a Node client presenting `chain`. */
async function record(root: Node, server: Node, chain: Node[], ciphers?: string): Promise<Recording> {
  // (without SSL_OP_NO_TICKET a Node server answers a large client chain with internal_error)
  const srv = tls.createServer(
    {
      ca: pem(root),
      cert: pem(server),
      key: keyPem(server),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
      secureOptions: constants.SSL_OP_NO_TICKET,
    },
    (s) => s.end("ok"),
  );
  let secret: { random: string; secret: Buffer; suite: string } | null = null;
  srv.on("keylog", (line: Buffer, s: tls.TLSSocket) => {
    const k = parseKeylogLine(line);
    if (k?.label === "CLIENT_HANDSHAKE_TRAFFIC_SECRET") secret = { random: k.random, secret: k.secret, suite: s.getCipher().standardName };
  });
  const parts: Buffer[] = [];
  const front = net.createServer((raw) => {
    const d = new Duplex({
      read: () => undefined,
      write: (c: Buffer, _e, cb) => raw.write(c, () => cb()),
      final: (cb) => (raw.end(), cb()),
    });
    raw.on("data", (b: Buffer) => (parts.push(b), d.push(b)));
    raw.on("end", () => d.push(null));
    raw.on("close", () => d.destroy());
    srv.emit("connection", d);
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
  try {
    await new Promise<void>((resolve, reject) => {
      const c = tls.connect({
        host: "127.0.0.1",
        port: (front.address() as net.AddressInfo).port,
        ca: pem(root),
        cert: pem(...chain),
        key: keyPem(chain[0]!),
        checkServerIdentity: () => undefined,
        ...(ciphers ? { ciphers } : {}),
      });
      c.on("data", () => undefined);
      c.on("end", () => (c.destroy(), resolve()));
      c.on("error", reject);
    });
  } finally {
    front.close();
  }
  assert.ok(secret, "the server logged the client handshake traffic secret");
  const s = secret as { random: string; secret: Buffer; suite: string };
  return { bytes: Buffer.concat(parts), ...s };
}

/** Offset of the client's first encrypted record, found by walking the record headers. */
function firstProtected(b: Buffer): number {
  for (let o = 0; o + 5 <= b.length; o += 5 + b.readUInt16BE(o + 3)) if (b[o] === 23) return o;
  return -1;
}

/** The Certificate message of `certs`: context (1) + list length (3) + per entry 3 + DER + 2. */
const certificateMessage = (certs: Node[]): number => 4 + certs.reduce((n, c) => n + c.der.length + 5, 0);

/**
 * Feed the recording in `cuts`-sized pieces, as the gate does: the keys go in once the random
 * is known, which is before the client's encrypted flight (the server logs them while it
 * answers the ClientHello, and the client encrypts only after that answer) — so no piece
 * crosses the start of the encrypted flight.
 */
function probe(rec: Recording, cuts: number[] = [rec.bytes.length], secret = rec.secret) {
  const p = new ClientFlightProbe();
  const boundary = firstProtected(rec.bytes);
  let off = 0;
  let v = p.push(Buffer.alloc(0));
  for (let i = 0; off < rec.bytes.length && v.kind === "pending"; i++) {
    const n = Math.max(1, cuts[i % cuts.length]!);
    const end = off < boundary ? Math.min(off + n, boundary) : off + n;
    v = p.push(rec.bytes.subarray(off, end));
    off = end;
    if (off === boundary) {
      assert.equal(p.random, rec.random);
      p.setKeys(trafficKeys(rec.suite, secret)!);
      if (v.kind === "pending") v = p.scan();
    }
  }
  return { v, forwardable: p.forwardable };
}

describe("TLS 1.3 client flight probe", () => {
  let root: Node;
  let server: Node;
  let small: Node;
  let big: Node;
  let viaTenant: Node[];
  const ready = (async () => {
    root = await make({ profile: "root", cn: "root" });
    server = await make({ profile: "server", cn: "server", issuer: root });
    small = await leaf(root, "small", cmds.info);
    big = await leaf(root, "big", cmds.create({ image: new Uint8Array(90 * 1024).fill(7) }));
    const tenant = await make({ profile: "intermediate", cn: "tenant", issuer: root, policy: policy() });
    viaTenant = [await leaf(tenant, "t", cmds.info), tenant];
  })();

  for (const suite of ["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"]) {
    it(`reads the declared chain size (${suite})`, async () => {
      await ready;
      const rec = await record(root, server, [small], suite);
      assert.equal(rec.suite, suite);
      const { v, forwardable } = probe(rec);
      assert.deepEqual(v, { kind: "message", type: 11, length: certificateMessage([small, root]), at: firstProtected(rec.bytes) });
      // everything before the record that told is passed on, that record is held
      assert.equal(forwardable, firstProtected(rec.bytes));
    });
  }

  it("a chain over several records (90 KiB), an intermediate, and any cut of the byte stream", async () => {
    await ready;
    // OpenSSL's client adds the root to a lone leaf (from its trust store), not to a given chain
    for (const [chain, sent] of [
      [[big], [big, root]],
      [viaTenant, viaTenant],
    ] as const) {
      const rec = await record(root, server, [...chain]);
      const expected = { kind: "message", type: 11, length: certificateMessage([...sent]), at: firstProtected(rec.bytes) };
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 8 }), (cuts) => {
          assert.deepEqual(probe(rec, cuts).v, expected);
        }),
        { numRuns: 40 },
      );
    }
  });

  it("with the wrong secret nothing is decided (and the probe gives up after 64 KiB of such records)", async () => {
    await ready;
    const rec = await record(root, server, [big]);
    const wrong = Buffer.from(rec.secret).fill(1);
    const { v } = probe(rec, [4096], wrong);
    assert.ok(rec.bytes.length - firstProtected(rec.bytes) > MAX_UNREADABLE, "the recording has enough encrypted bytes");
    assert.deepEqual(v, { kind: "error", message: "client records that the handshake keys do not open" });
  });

  it("a record over the record size limit ends it; encrypted records before the keys are held, 64 KiB at most", () => {
    const p = new ClientFlightProbe();
    const huge = Buffer.from([22, 3, 3, (MAX_RECORD + 1) >> 8, (MAX_RECORD + 1) & 0xff]);
    assert.deepEqual(p.push(huge), { kind: "error", message: `a TLS record of ${MAX_RECORD + 1} bytes (at most ${MAX_RECORD})` });
    const q = new ClientFlightProbe();
    const junk = Buffer.concat([Buffer.from([23, 3, 3, 0x40, 0]), Buffer.alloc(0x4000)]);
    let v = q.push(junk);
    for (let i = 0; i < 4 && v.kind === "pending"; i++) v = q.push(junk);
    assert.deepEqual(v, { kind: "error", message: "encrypted records before the handshake" });
    assert.equal(q.forwardable, 0, "none of it was passed on");
  });

  it("0-RTT-like records before the keys: held, then tried with the keys, passed on, and the flight after them read", async () => {
    await ready;
    const rec = await record(root, server, [small]);
    const at = firstProtected(rec.bytes);
    const early = Buffer.concat([Buffer.from([23, 3, 3, 0x01, 0x00]), randomBytes(0x100)]);
    const bytes = Buffer.concat([rec.bytes.subarray(0, at), early, rec.bytes.subarray(at)]);
    const p = new ClientFlightProbe();
    assert.deepEqual(p.push(bytes.subarray(0, at + early.length)), { kind: "pending" });
    assert.equal(p.forwardable, at, "the early record is held");
    p.setKeys(trafficKeys(rec.suite, rec.secret)!);
    assert.deepEqual(p.scan(), { kind: "pending" });
    assert.equal(p.forwardable, at + early.length, "tried, and passed on (OpenSSL skips rejected 0-RTT data)");
    assert.deepEqual(p.push(bytes.subarray(at + early.length)), {
      kind: "message",
      type: 11,
      length: certificateMessage([small, root]),
      at: at + early.length,
    });
  });

  it("HKDF-Expand-Label: RFC 8448 §3 client handshake traffic keys", () => {
    const secret = Buffer.from("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21", "hex");
    assert.equal(expandLabel("sha256", secret, "key", 16).toString("hex"), "dbfaa693d1762c5b666af5d950258d01");
    assert.equal(expandLabel("sha256", secret, "iv", 12).toString("hex"), "5bd3c71b836e0b76bb73265f");
    assert.equal(trafficKeys("TLS_AES_128_CCM_SHA256", secret), null, "a suite the probe cannot open");
    assert.equal(openRecord(trafficKeys("TLS_AES_128_GCM_SHA256", secret)!, 0, Buffer.alloc(30)), null);
  });

  it("keylog lines", () => {
    const r = "ab".repeat(32);
    assert.deepEqual(parseKeylogLine(`CLIENT_HANDSHAKE_TRAFFIC_SECRET ${r.toUpperCase()} 0011\n`), {
      label: "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
      random: r,
      secret: Buffer.from([0, 0x11]),
    });
    for (const bad of ["", "X y z", `L ${r}`, `L ${r.slice(2)} 00`, `L ${r} 0g`]) assert.equal(parseKeylogLine(bad), null, bad);
  });
});

describe("budget and slots", () => {
  it("grants in order within the capacity; cancel withdraws or releases", () => {
    const b = new Budget(10);
    const got: string[] = [];
    const releases: Record<string, () => void> = {};
    const ask = (name: string, n: number) => b.request(n, (release) => (got.push(name), (releases[name] = release)));
    ask("a", 6);
    ask("b", 6);
    const cancelC = ask("c", 2);
    assert.deepEqual(got, ["a"], "b waits, and c behind it (first come, first served)");
    assert.equal(b.inUse, 6);
    assert.equal(b.waiting, 2);
    releases["a"]!();
    releases["a"]!(); // twice is once
    assert.deepEqual(got, ["a", "b", "c"]);
    assert.equal(b.inUse, 8);
    cancelC(); // releases a grant
    assert.equal(b.inUse, 6);
    const cancelD = ask("d", 5);
    assert.equal(b.waiting, 1);
    cancelD(); // withdraws a request
    assert.equal(b.waiting, 0);
    releases["b"]!();
    assert.equal(b.inUse, 0);
    assert.deepEqual(got, ["a", "b", "c"]);
    assert.throws(() => b.request(11, () => undefined), RangeError);
  });

  it("slots: a waiter gets a freed slot, or null after its timeout (and is then no longer waiting)", async () => {
    const s = new Slots(1);
    const alive = setTimeout(() => undefined, 10_000); // (the slots' own timers do not keep the process up)
    const first = await s.acquire(1000);
    assert.ok(first);
    assert.equal(await s.acquire(30), null, "timed out");
    assert.equal(s.queued, 0);
    const second = s.acquire(5000);
    assert.equal(s.queued, 1);
    first();
    const release = await second;
    assert.ok(release);
    assert.equal(s.inUse, 1);
    release();
    assert.equal(s.inUse, 0);
    clearTimeout(alive);
  });
});
