// The TLS endpoint over real loopback TLS against fake daemons (daemon.md §6 steps 1–8).
import "reflect-metadata";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import tls from "node:tls";
import { nameToString } from "../../src/core/name.js";
import type { Wire } from "../../src/commands/types.js";
import {
  type FakeDaemons,
  cmds,
  data,
  dec,
  defaultBehaviour,
  enc,
  endpointFixture,
  exchange,
  fail,
  failureText,
  keyPem,
  leaf,
  make,
  makePki,
  pem,
  policy,
  startEndpoint,
  str,
  success,
  tempDir,
  type Pki,
  type Running,
} from "../support/endpoint.js";

let pki: Pki;
let tmp: string;
let fake: FakeDaemons;
let ep: Running;

endpointFixture({ uploadIdleMs: 500 }, (f) => {
  ({ pki, tmp, fake, ep } = f);
});

const commandsSent = (): Wire[] => fake.received.filter((r) => r.wire).map((r) => r.wire!);

describe("forwarding (daemon.md §6)", () => {
  it("info from a leaf of the root: no policies, name from the CN, single reply with header (5, 0, name)", async () => {
    const l = await leaf(pki.root, "foo", cmds.info);
    const r = await exchange({ port: ep.port, chain: [l], ca: pki.root });
    assert.equal(r.replies.length, 1);
    const reply = r.replies[0]!;
    assert.equal(reply.header.version, 5);
    assert.equal(reply.header.sequence, 0n);
    assert.equal(nameToString(reply.header.name), ":foo");
    assert.deepEqual(reply.payload, success({ kind: "unikernel-info", unikernels: [] }));
    const sent = commandsSent();
    assert.equal(sent.length, 1);
    assert.equal(nameToString(sent[0]!.header.name), ":foo");
    assert.equal(sent[0]!.header.sequence, 0n); // the endpoint's counter starts at 0
    assert.equal(sent[0]!.header.version, 5);
    assert.deepEqual(sent[0]!.payload, { kind: "command", command: cmds.info });
    assert.equal(fake.received[0]!.socket, "vmmd");
  });

  it("a leaf CN '.' addresses the path itself", async () => {
    const l = await leaf(pki.arc, ".", cmds.info);
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(nameToString(r.replies[0]!.header.name), "arc:");
    assert.equal(nameToString(commandsSent()[1]!.header.name), "arc:");
  });

  it("sends the chain's policies deepest first, then the command, with one global counter", async () => {
    const sub = await make({ profile: "intermediate", cn: "team", issuer: pki.arc, policy: policy({ unikernels: 1n, cpuids: [0], memory: 32, bridges: [] }) });
    const l = await leaf(sub, "web", cmds.create({ memory: 16 }));
    const r1 = await exchange({ port: ep.port, chain: [l, sub, pki.arc], ca: pki.root });
    assert.equal(failureText(r1.replies[0]!), null);
    assert.equal(nameToString(r1.replies[0]!.header.name), "arc:team:web");
    const sent = commandsSent();
    assert.deepEqual(
      sent.map((w) => nameToString(w.header.name)),
      ["arc:team:", "arc:", "arc:team:web"],
    );
    assert.deepEqual(
      sent.map((w) => (w.payload.kind === "command" ? w.payload.command.kind : "")),
      ["policy-add", "policy-add", "unikernel-create"],
    );
    const seqs = sent.map((w) => w.header.sequence);
    assert.equal(seqs[1], seqs[0]! + 1n);
    assert.equal(seqs[2], seqs[1]! + 1n);
    // the next connection continues the counter
    fake.received.length = 0;
    await exchange({ port: ep.port, chain: [await leaf(pki.root, "x", cmds.info)], ca: pki.root });
    assert.equal(commandsSent()[0]!.header.sequence, seqs[2]! + 1n);
  });

  it("a daemon refusing a policy: Failure 'expected success when adding policy, got: ...', the command is not sent", async () => {
    fake.behaviour = (w) =>
      w.payload.kind === "command" && w.payload.command.kind === "policy-add"
        ? { replies: [fail("maximum amount of unikernels reached")], close: true }
        : defaultBehaviour(w, "vmmd");
    const l = await leaf(pki.arc, "second", cmds.create());
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(
      failureText(r.replies[0]!),
      "expected success when adding policy, got: host [unikernel: arc:]: command failed maximum amount of unikernels reached",
    );
    assert.equal(r.replies[0]!.header.sequence, 0n);
    assert.equal(commandsSent().length, 1);
  });

  it("a chain whose policies widen is refused before anything reaches a daemon", async () => {
    const wide = await make({
      profile: "intermediate",
      cn: "wide",
      issuer: pki.arc,
      policy: policy({ unikernels: 5n, cpuids: [0], memory: 64, bridges: ["service"] }),
    });
    const l = await leaf(wide, "x", cmds.info);
    const r = await exchange({ port: ep.port, chain: [l, wide, pki.arc], ca: pki.root });
    assert.match(failureText(r.replies[0]!) ?? "", /widen: policy of arc:wide: policy above allows 1 unikernels, which is fewer than 5/);
    assert.equal(fake.received.length, 0);
  });

  it("names come only from the chain: a CN that is not a label is refused without a reply", async () => {
    const l = await leaf(pki.arc, "bob:x", cmds.info);
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(r.replies.length, 0);
    assert.equal(fake.received.length, 0);
    await ep.waitLog(/failed to handle TLS connection: invalid label/);
  });

  it("a leaf may not add policies", async () => {
    const l = await leaf(pki.arc, "x", { kind: "policy-add", policy: policy() });
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(r.replies.length, 0);
    assert.equal(fake.received.length, 0);
    await ep.waitLog(/unexpected command/);
  });

  it("console commands go to the console socket without policies; the stream is relayed, then the endpoint's Failure", async () => {
    const t = new Date("2025-08-22T13:04:43Z");
    fake.behaviour = (w) => ({
      replies: [
        str("subscribed"),
        data({ kind: "console", timestamp: t, line: enc("hello") }),
        { header: { ...w.header, sequence: 0n }, payload: data({ kind: "console", timestamp: t, line: enc("world") }) },
      ],
      close: true,
    });
    const l = await leaf(pki.arc, "web", cmds.console);
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(fake.received.length, 1);
    assert.equal(fake.received[0]!.socket, "console");
    assert.equal(nameToString(fake.received[0]!.wire!.header.name), "arc:web");
    assert.equal(r.replies.length, 4);
    assert.deepEqual(r.replies[0]!.payload, str("subscribed"));
    assert.equal(dec((r.replies[2]!.payload as { data: { line: Uint8Array } }).data.line), "world");
    // forwarded messages keep the daemon's header
    assert.equal(r.replies[0]!.header.sequence, fake.received[0]!.wire!.header.sequence);
    assert.equal(r.replies[2]!.header.sequence, 0n);
    assert.equal(failureText(r.replies[3]!), "exception while reading from fd");
  });

  it("a client leaving a silent subscription releases the daemon connection at once", async () => {
    fake.behaviour = () => ({ replies: [str("subscribed")] }); // and then nothing, connection kept
    const l = await leaf(pki.arc, "web", cmds.console);
    await new Promise<void>((resolve) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port: ep.port,
        ca: pem(pki.root),
        cert: pem(l, pki.arc),
        key: keyPem(l),
        checkServerIdentity: () => undefined,
      });
      s.on("error", () => undefined);
      s.once("data", () => {
        s.destroy();
        resolve();
      });
    });
    await ep.waitLog(/client went away during the stream/);
  });

  it("listening on :: is dual stack", async () => {
    const ep6 = await startEndpoint(pki, tmp, {}, "::");
    try {
      const r = await exchange({ port: ep6.port, chain: [await leaf(pki.root, "foo", cmds.info)], ca: pki.root });
      assert.equal(r.replies.length, 1);
    } finally {
      await ep6.close();
    }
  });

  it("console list-inactive is a single reply from the console socket", async () => {
    fake.behaviour = () => ({ replies: [success({ kind: "consoles", names: [] })], close: true });
    const l = await leaf(pki.arc, ".", cmds.consoleList);
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root });
    assert.equal(fake.received[0]!.socket, "console");
    assert.deepEqual(
      r.replies.map((w) => w.payload),
      [success({ kind: "consoles", names: [] })],
    );
  });

  it("stats subscribe goes to stat.sock", async () => {
    fake.behaviour = () => ({ replies: [str("subscribed")], close: true });
    const r = await exchange({ port: ep.port, chain: [await leaf(pki.arc, "web", cmds.stats), pki.arc], ca: pki.root });
    assert.equal(fake.received[0]!.socket, "stat");
    assert.deepEqual(
      r.replies.map((w) => failureText(w) ?? "reply"),
      ["reply", "exception while reading from fd"],
    );
  });

  it("block dump: the data is forwarded, `Data block no-data` becomes the final reply", async () => {
    fake.behaviour = (w) =>
      w.payload.kind === "command" && w.payload.command.kind === "policy-add"
        ? defaultBehaviour(w, "vmmd")
        : {
            replies: [
              success({ kind: "block-device-image", compressed: false }),
              data({ kind: "block-data", data: enc("abc") }),
              data({ kind: "block-data", data: enc("def") }),
              data({ kind: "block-end" }),
            ],
          };
    const r = await exchange({ port: ep.port, chain: [await leaf(pki.arc, "disk", cmds.blockDump), pki.arc], ca: pki.root });
    assert.equal(r.replies.length, 4);
    assert.deepEqual(r.replies[3]!.payload, data({ kind: "block-end" }));
    assert.equal(r.replies[3]!.header.sequence, 0n);
    assert.equal(nameToString(r.replies[3]!.header.name), "arc:disk");
    // policies first on the vmmd connection
    assert.deepEqual(
      commandsSent().map((w) => (w.payload.kind === "command" ? w.payload.command.kind : "")),
      ["policy-add", "block-dump"],
    );
  });

  it("block set: raw chunks are copied to the daemon, then the terminator, then the reply", async () => {
    const r = await exchange({
      port: ep.port,
      chain: [await leaf(pki.arc, "disk", cmds.blockSet), pki.arc],
      ca: pki.root,
      upload: [enc("chunk-1"), enc("chunk-2")],
    });
    assert.deepEqual(
      r.replies.map((w) => w.payload),
      [str("set block device")],
    );
    const raw = fake.received.filter((x) => x.raw || x.terminator);
    assert.deepEqual(
      raw.map((x) => (x.raw ? dec(x.raw) : "END")),
      ["chunk-1", "chunk-2", "END"],
    );
  });

  it("block set: a client stalling before the terminator gets Failure 'reading tls chunk' (daemon sees no terminator)", async () => {
    fake.behaviour = (w) => ({ ...defaultBehaviour(w, "vmmd"), upload: w.payload.kind === "command" && w.payload.command.kind === "block-set" });
    const r = await exchange({
      port: ep.port,
      chain: [await leaf(pki.arc, "disk", cmds.blockSet), pki.arc],
      ca: pki.root,
      upload: [enc("only")],
      terminate: false,
    });
    // the client keeps the connection open without sending more: the upload times out
    assert.equal(failureText(r.replies[0]!), "reading tls chunk");
    assert.equal(
      fake.received.some((x) => x.terminator),
      false,
    );
    await ep.waitLog(/block upload stalled/);
  });

  it("create with an empty image: the image follows the handshake as raw chunks", async () => {
    const image = new Uint8Array(300_000).map((_, i) => i % 251);
    const pieces = [image.subarray(0, 100_000), image.subarray(100_000, 250_000), image.subarray(250_000)];
    const l = await leaf(pki.arc, "web", cmds.create({ image: new Uint8Array(0) }));
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root, upload: pieces });
    assert.deepEqual(
      r.replies.map((w) => w.payload),
      [str("ok")],
    );
    const created = commandsSent()[1]!;
    assert.equal(created.payload.kind === "command" && created.payload.command.kind, "unikernel-create");
    const cfg = (created.payload as { command: { config: { image: Uint8Array } } }).command.config;
    assert.deepEqual(new Uint8Array(cfg.image), image);
  });

  it("create with an empty image and a client stalling mid-stream: closed without reply, nothing sent", async () => {
    const l = await leaf(pki.arc, "web", cmds.create({ image: new Uint8Array(0) }));
    const r = await exchange({ port: ep.port, chain: [l, pki.arc], ca: pki.root, upload: [enc("part")], terminate: false });
    assert.equal(r.replies.length, 0);
    assert.equal(fake.received.length, 0);
    await ep.waitLog(/error retrieving unikernel image: no data for 500 ms/);
  });

  it('a daemon that is not running: Failure "couldn\'t reach service"', async () => {
    const tmp2 = tempDir();
    const ep2 = await startEndpoint(pki, tmp2);
    try {
      const r = await exchange({ port: ep2.port, chain: [await leaf(pki.root, "foo", cmds.info)], ca: pki.root });
      assert.equal(failureText(r.replies[0]!), "couldn't reach service");
    } finally {
      await ep2.close();
    }
  });

  it("logLevel: below it the per-connection lines are not handed to the logger, errors still are", async () => {
    const quiet = await startEndpoint(pki, tmp, { logLevel: "warn" });
    try {
      const ok = await exchange({ port: quiet.port, chain: [await leaf(pki.root, "foo", cmds.info)], ca: pki.root });
      assert.equal(ok.replies.length, 1);
      assert.deepEqual(
        quiet.logs.filter((l) => l.level === "info" || l.level === "debug"),
        [],
      );
      // a refused chain is still reported
      const foreign = await makePki();
      await exchange({ port: quiet.port, chain: [await leaf(foreign.root, "foo", cmds.info)], ca: pki.root }).catch(() => undefined);
      await quiet.waitLog(/error establishing TLS connection/);
    } finally {
      await quiet.close();
    }
    // the default hands everything over: the same request gives an info line
    const r = await exchange({ port: ep.port, chain: [await leaf(pki.root, "bar", cmds.info)], ca: pki.root });
    assert.equal(r.replies.length, 1);
    await ep.waitLog(/bar unikernel-info/);
  });

  it("a daemon closing without a reply: Failure 'error reading from fd'", async () => {
    fake.behaviour = () => ({ replies: [], close: true });
    const r = await exchange({ port: ep.port, chain: [await leaf(pki.root, "foo", cmds.info)], ca: pki.root });
    assert.equal(failureText(r.replies[0]!), "error reading from fd");
  });
});
