// The endpoint's memo of CA signatures across connections: it answers only for the same CA
// bytes under the same CA key, never for leaves, and every other check still runs at the
// time of each connection.
import "reflect-metadata";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FakeDaemons, cmds, exchange, leaf, make, makePki, startEndpoint, success, tempDir, type Pki, type Running } from "../support/endpoint.js";

let pki: Pki;
let fake: FakeDaemons;
let ep: Running;
let clock = Date.now();

before(async () => {
  pki = await makePki();
  const tmp = tempDir();
  fake = await FakeDaemons.start(tmp);
  ep = await startEndpoint(pki, tmp, { now: () => new Date(clock) });
});

after(async () => {
  await ep.close();
  await fake.close();
});

const infoReply = [success({ kind: "unikernel-info", unikernels: [] })];

describe("memo of CA signatures", () => {
  it("is not used for leaves issued by the CA directly", async () => {
    for (const cn of ["a", "b"]) {
      const r = await exchange({ port: ep.port, chain: [await leaf(pki.root, cn, cmds.info)], ca: pki.root });
      assert.deepEqual(
        r.replies.map((w) => w.payload),
        infoReply,
      );
    }
    assert.equal(ep.ep.signatures.size, 0);
  });

  it("answers for the same tenant CA on later connections; validity is still checked each time", async () => {
    const sig = ep.ep.signatures;
    const r1 = await exchange({ port: ep.port, chain: [await leaf(pki.arc, "one", cmds.info), pki.arc], ca: pki.root });
    assert.deepEqual(
      r1.replies.map((w) => w.payload),
      infoReply,
    );
    assert.deepEqual([sig.size, sig.hits, sig.misses], [1, 0, 1]);
    const r2 = await exchange({ port: ep.port, chain: [await leaf(pki.arc, "two", cmds.info), pki.arc], ca: pki.root });
    assert.deepEqual(
      r2.replies.map((w) => w.payload),
      infoReply,
    );
    assert.deepEqual([sig.size, sig.hits, sig.misses], [1, 1, 1], "the second leaf's signature was verified, not memoised");

    // A tenant CA valid for ten minutes; twenty minutes on (our clock only: OpenSSL still
    // accepts the chain; the root is valid for an hour) it has expired. Its signature comes
    // from the memo, its dates do not.
    const short = await make({ profile: "intermediate", cn: "short", issuer: pki.root, policy: pki.arcPolicy, seconds: 600 });
    const ok = await exchange({ port: ep.port, chain: [await leaf(short, "five", cmds.info), short], ca: pki.root });
    assert.deepEqual(
      ok.replies.map((w) => w.payload),
      infoReply,
    );
    assert.deepEqual([sig.size, sig.hits, sig.misses], [2, 1, 2]);
    const received = fake.received.length;
    clock = Date.now() + 20 * 60_000;
    try {
      const r3 = await exchange({ port: ep.port, chain: [await leaf(short, "six", cmds.info, { seconds: 3600 }), short], ca: pki.root });
      assert.equal(r3.replies.length, 0);
      const line = await ep.waitLog(/chain validation failed/);
      assert.match(line, /chain validation failed: certificate 1 CN=short: expired \(valid until [^;]*$/);
      assert.equal(fake.received.length, received, "nothing reached a daemon");
      assert.deepEqual([sig.hits, sig.misses], [2, 2]);
    } finally {
      clock = Date.now();
    }
  });

  it("does not answer for another CA of the same name (other key, other bytes)", async () => {
    const sig = ep.ep.signatures;
    const before = sig.misses;
    const arc2 = await make({ profile: "intermediate", cn: "arc", issuer: pki.root, policy: pki.arcPolicy, seconds: 3600 });
    const r = await exchange({ port: ep.port, chain: [await leaf(arc2, "four", cmds.info), arc2], ca: pki.root });
    assert.deepEqual(
      r.replies.map((w) => w.payload),
      infoReply,
    );
    assert.equal(sig.misses, before + 1);
    assert.equal(sig.size, 3);
  });
});
