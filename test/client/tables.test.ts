// Replies on a terminal (src/client/tables.ts): tables and plain names; piped, albatross' text exactly.
// The terminal is injected (Sink.tty), as processSink sets it from process.stdout.isTTY.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeWire } from "../../src/commands/codec.js";
import { wireText } from "../../src/commands/render.js";
import { WIRE_VERSION, type Payload, type UnikernelInfo, type Wire } from "../../src/commands/types.js";
import { parseName, rootName } from "../../src/core/name.js";
import { processReplies, type Sink } from "../../src/client/replies.js";
import { consoleLine, plainName, printable, terminalText } from "../../src/client/tables.js";

const enc = new TextEncoder();
const wire = (name: string, payload: Payload): Wire => ({
  header: { version: WIRE_VERSION, sequence: 0n, name: name === ":" ? rootName : parseName(name) },
  payload,
});
const reply = (name: string, r: Extract<Payload, { kind: "reply" }>["reply"]): Wire => wire(name, { kind: "reply", reply: r });

const INFO: UnikernelInfo = {
  typ: "solo5",
  failBehaviour: { kind: "restart", exitCodes: [] },
  cpuids: [0],
  memory: 32,
  digest: Uint8Array.from({ length: 32 }, (_, i) => i),
  blockDevices: [{ unikernelDevice: "storage", hostDevice: "tenant:data", sectorSize: 512, blockSize: 10 }],
  bridges: [{ unikernelDevice: "service", hostDevice: "vmmtap0", mac: Uint8Array.of(0, 0x80, 0x41, 1, 2, 3) }],
  argv: [enc.encode("--ipv4=10.0.0.2/24"), enc.encode("\u001b[31mred")],
  started: new Date("2025-06-01T10:00:00.500Z"),
  numcpus: 1,
};

const policies = reply(":", {
  kind: "policies",
  policies: [
    { name: rootName, policy: { unikernels: (1n << 62n) - 1n, cpuids: [0, 1], memory: 24151, block: 258019, bridges: ["br0", "service"] } },
    { name: parseName("tenant:"), policy: { unikernels: 16n, cpuids: [0], memory: 1024, bridges: ["br0"] } },
  ],
});

async function run(w: Wire, tty: boolean, json = false): Promise<{ out: string[]; err: string[]; code: number }> {
  const out: string[] = [];
  const err: string[] = [];
  const sink: Sink = { json, tty, out: (t) => void out.push(t), err: (t) => void err.push(t) };
  const frames = [{ kind: "frame" as const, payload: encodeWire(w) }, { kind: "end" as const }];
  const code = await processReplies(async () => frames.shift()!, "single", { sink, startedAt: new Date(0) });
  return { out, err, code };
}

describe("terminal output", () => {
  it("plain names: tenant:hello, hello at the root", () => {
    assert.equal(plainName(parseName("tenant:hello")), "tenant:hello");
    assert.equal(plainName(parseName("hello")), "hello");
    assert.equal(plainName(parseName("tenant:")), "tenant:");
    assert.equal(printable(enc.encode("é\u001b[2J\tx")), "é\\x1b[2J\tx");
  });

  it("policy: a table, the root's count as 'unlimited', no OCaml-isms", () => {
    assert.equal(
      terminalText(policies),
      [
        "PATH    UNIKERNELS  CPUS    MEMORY      BLOCK  BRIDGES",
        "(root)   unlimited  0,1   24151 MB  258019 MB  br0, service",
        "tenant          16  0      1024 MB       none  br0",
      ].join("\n"),
    );
  });

  it("info: one row per unikernel; -v adds the arguments (control characters made visible)", () => {
    const w = reply(":", { kind: "unikernel-info", unikernels: [{ name: parseName("tenant:hello"), info: INFO }] });
    const t = terminalText(w)!.split("\n");
    assert.deepEqual(t[0]!.split(/\s{2,}/), ["NAME", "STARTED", "CPU", "MEMORY", "ON EXIT", "DEVICES", "IMAGE"]);
    assert.deepEqual(t[1]!.split(/\s{2,}/), [
      "tenant:hello",
      "2025-06-01 10:00:00 UTC",
      "0",
      "32 MB",
      "restart (not on 1)",
      "service=vmmtap0, storage=tenant:data (10 MB)",
      "sha256 000102030405…",
    ]);
    assert.match(terminalText(w, true)!, /ARGUMENTS\n.*--ipv4=10\.0\.0\.2\/24 \\x1b\[31mred$/);
    assert.equal(terminalText(reply(":", { kind: "unikernel-info", unikernels: [] })), "no unikernels");
  });

  it("block, inactive consoles, success and failure texts, console lines", () => {
    assert.equal(
      terminalText(
        reply(":", {
          kind: "block-devices",
          devices: [
            { name: parseName("tenant:data"), size: 10, active: true },
            { name: parseName("scratch"), size: 1024, active: false },
          ],
        }),
      ),
      ["NAME            SIZE  IN USE", "tenant:data    10 MB  yes", "scratch      1024 MB  no"].join("\n"),
    );
    assert.equal(terminalText(reply(":", { kind: "consoles", names: [parseName("a:b"), parseName("c")] })), "a:b\nc");
    assert.equal(terminalText(reply("tenant:hello", { kind: "string", text: enc.encode("created unikernel") })), "tenant:hello: created unikernel");
    assert.equal(terminalText(wire("tenant:hello", { kind: "failure", message: enc.encode("not found") })), "tenant:hello: not found");
    const d = { kind: "console" as const, timestamp: new Date("2025-06-01T10:00:00.123Z"), line: enc.encode("Hello, wörld") };
    assert.equal(consoleLine(parseName("tenant:hello"), d, new Date("2025-06-01T23:00:00Z")), "10:00:00.123 tenant:hello  Hello, wörld");
    assert.equal(consoleLine(parseName("tenant:hello"), d, new Date("2025-06-02T00:00:00Z")), "2025-06-01 10:00:00.123 tenant:hello  Hello, wörld");
  });

  it("processReplies: tables on a terminal; piped, albatross' text byte for byte; --json either way", async () => {
    const tty = await run(policies, true);
    assert.equal(tty.code, 0);
    assert.deepEqual(tty.out, [terminalText(policies)]);
    const piped = await run(policies, false);
    assert.deepEqual(piped.out, [wireText(policies)]);
    assert.match(
      piped.out[0]!,
      /^host \[unikernel: :\]: \[unikernel: :\]: policy: 4611686018427387903 unikernels 0,1 CPUids 24151 MB memory 258019 MB block, bridges: br0, service/,
    );
    const json = await run(policies, true, true);
    const o = JSON.parse(json.out[0]!) as { payload: { reply: { policies: { policy: { unikernels: unknown; memory: unknown } }[] } } };
    // the root's and a tenant's count alike: strings; other numbers numbers
    assert.deepEqual(
      o.payload.reply.policies.map((p) => [p.policy.unikernels, p.policy.memory]),
      [
        ["4611686018427387903", 24151],
        ["16", 1024],
      ],
    );
    const fail = wire("tenant:hello", { kind: "failure", message: enc.encode("not found") });
    assert.deepEqual((await run(fail, true)).err, ["tenant:hello: not found"]);
    assert.deepEqual((await run(fail, false)).err, ["host [unikernel: tenant:hello]: command failed not found"]);
  });
});
