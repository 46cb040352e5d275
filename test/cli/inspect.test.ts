// `dromedary inspect` on every vector file, on hand-made inputs and on hostile ones;
// `inspect-dump` / `extract-dump` on state files.

import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { encodeState, encodeWire } from "../../src/commands/codec.js";
import { deflate } from "../../src/commands/compress.js";
import { encodeFrame, END_FRAME } from "../../src/commands/framing.js";
import type { State, Wire } from "../../src/commands/types.js";
import { VECTORS, runCli, tempDir, utf8 } from "../support/cli.js";

let tmp: { dir: string; cleanup: () => void };
before(() => {
  tmp = tempDir();
});
after(() => tmp.cleanup());

const vectorFiles = readdirSync(VECTORS).filter((f) => /\.(hex|pem|b64)$/.test(f));

const hello: Wire = {
  header: { version: 5, sequence: 0n, name: { path: [], label: "hello" } },
  payload: { kind: "reply", reply: { kind: "string", text: utf8("created unikernel") } },
};

describe("inspect on the vectors", () => {
  test("there are vectors to look at", () => {
    assert.ok(vectorFiles.length >= 15, vectorFiles.join(" "));
  });

  for (const f of vectorFiles) {
    test(`${f}: decoded meaning shown, --json parses`, async () => {
      const r = await runCli(["inspect", path.join(VECTORS, f)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "");
      if (f.startsWith("wire-console-subscribe-")) {
        const name = f.slice("wire-console-subscribe-".length, -".hex".length);
        assert.match(r.stdout, new RegExp(`name: +:${name.replace(".", "\\.")}\\n`));
        assert.match(r.stdout, /command: +console subscribe count 20/);
        assert.match(r.stdout, /version: +5/);
      } else if (f.startsWith("ext-")) {
        assert.match(r.stdout, /albatross certificate extension/);
        assert.match(r.stdout, /command: console subscribe count 20/);
      } else if (f === "cert-test-ca.pem") {
        assert.match(r.stdout, /subject: +CN=test/);
        assert.match(r.stdout, /albatross extension: none/);
        assert.match(r.stdout, /keyUsage \(critical\), basicConstraints \(critical\)/);
      } else if (f.startsWith("cert-console-")) {
        const cn = f.slice("cert-console-".length, -"-leaf.pem".length);
        assert.match(r.stdout, new RegExp(`subject: +CN=${cn.replace(".", "\\.")}\\n`));
        assert.match(r.stdout, /albatross extension: version 5, console subscribe count 20/);
        assert.match(r.stdout, new RegExp(`name: +:${cn.replace(".", "\\.")} `));
        assert.match(r.stdout, /key: +Ed25519/);
      } else if (f.startsWith("state-")) {
        const form = { unikernel1: 0, unikernel2: 2, unikernel3: 3 }[/unikernel\d/.exec(f)![0] as "unikernel1"];
        assert.match(r.stdout, new RegExp(`^state file, form \\[${form}\\]`));
        assert.match(r.stdout, /parsed 4 unikernels:/);
        assert.match(r.stdout, /parsed 0 policies:/);
        const prefix = f.includes("-path") ? "foo:" : ":foo.";
        assert.ok(r.stdout.includes(`[unikernel: ${prefix}hello]: typ solo5`), r.stdout);
        assert.match(r.stdout, /CPUids 0 1 MB memory/);
      } else {
        assert.fail(`no expectation for ${f}`);
      }
      const j = await runCli(["inspect", "--json", path.join(VECTORS, f)]);
      assert.equal(j.code, 0, j.stderr);
      const values = j.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string });
      assert.ok(values.length >= 1);
      const expectedType = f.startsWith("wire-") ? "wire" : f.startsWith("ext-") ? "extension" : f.startsWith("cert-") ? "certificate" : "state";
      assert.equal(values[0]!.type, expectedType);
    });
  }

  test("--json of a wire vector carries the decoded fields", async () => {
    const j = await runCli(["inspect", "--json", path.join(VECTORS, "wire-console-subscribe-foo.hex")]);
    const v = JSON.parse(j.stdout);
    assert.equal(v.message.header.name, ":foo");
    assert.equal(v.message.header.version, 5);
    assert.deepEqual(v.message.payload.command.sinceCount, { kind: "count", count: 20 });
  });

  test("the output of `--socket -` (with its out: line) can be piped into inspect -", async () => {
    const dump = await runCli(["console", "foo", "--socket", "-"]);
    const r = await runCli(["inspect", "-"], { input: dump.stdout });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /name: +:foo\n/);
  });

  test("a certificate in DER, and a chain in one PEM file", async () => {
    const pem = readFileSync(path.join(VECTORS, "cert-console-foo-leaf.pem"), "utf8");
    const b64 = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
    const der = path.join(tmp.dir, "leaf.der");
    writeFileSync(der, Buffer.from(b64, "base64"));
    const r = await runCli(["inspect", der]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /subject: +CN=foo/);
    const chain = path.join(tmp.dir, "chain.pem");
    writeFileSync(chain, pem + readFileSync(path.join(VECTORS, "cert-test-ca.pem"), "utf8"));
    const c = await runCli(["inspect", chain]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /certificate 1 of 2/);
    assert.match(c.stdout, /certificate 2 of 2/);
    assert.match(c.stdout, /name: +:foo \(derived from the chain/);
  });
});

describe("inspect on hand-made input", () => {
  test("binary, framed, several messages and an end-of-stream marker", async () => {
    const f = path.join(tmp.dir, "frames.bin");
    const fail: Wire = { header: hello.header, payload: { kind: "failure", message: utf8("destroy: not found") } };
    writeFileSync(f, Buffer.concat([encodeFrame(encodeWire(hello)), encodeFrame(encodeWire(fail)), END_FRAME]));
    const r = await runCli(["inspect", f]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wire message 1 of 2 \(48 bytes, framed, at byte 0\)/);
    assert.match(r.stdout, /reply: +success: created unikernel/);
    assert.match(r.stdout, /failure: +destroy: not found/);
    assert.match(r.stdout, /end of stream/);
  });

  test("binary, unframed, two messages back to back, from stdin", async () => {
    const input = Buffer.concat([encodeWire(hello), encodeWire(hello)]);
    const r = await runCli(["inspect", "-"], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wire message 2 of 2/);
  });

  test("a state file [6] with a compressed image and a policy", async () => {
    const state: State = {
      unikernels: [
        {
          name: { path: ["foo"], label: "hello" },
          config: {
            typ: "solo5",
            compressed: true,
            image: deflate(utf8("IMAGE BYTES"), 9),
            addName: true,
            failBehaviour: { kind: "restart", exitCodes: [] },
            cpuids: [0],
            memory: 32,
            blockDevices: [],
            bridges: [{ netif: "service" }],
            argv: [utf8("-l *:debug")],
            numcpus: 1,
          },
        },
      ],
      policies: [{ name: { path: [], label: null }, policy: { unikernels: (1n << 62n) - 1n, cpuids: [0, 1], memory: 2048, block: 10000, bridges: ["br0"] } }],
    };
    const dbdir = path.join(tmp.dir, "db");
    mkdirSync(dbdir, { recursive: true });
    writeFileSync(path.join(dbdir, "state"), encodeState(state));
    writeFileSync(path.join(dbdir, "state.bak"), encodeState({ unikernels: [], policies: [] }));

    const r = await runCli(["inspect", path.join(dbdir, "state")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /form \[6\]/);
    assert.match(r.stdout, /\[unikernel: foo:hello\]: typ solo5 compression true .* fail behaviour restart all except 1 .*argv -l \*:debug/);
    assert.match(r.stdout, /\[unikernel: :\]: policy: 4611686018427387903 unikernels 0,1 CPUids 2048 MB memory 10000 MB block, bridges: br0/);

    const d = await runCli(["inspect-dump", "--dbdir", dbdir]);
    assert.equal(d.code, 0, d.stderr);
    const lines = d.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "parsed 1 unikernels:");
    assert.match(
      lines[1]!,
      /^\[unikernel: foo:hello\]: typ solo5 compression true image \d+ bytes fail behaviour restart all except 1 startup at not specified add_name true CPUids 0 32 MB memory block devices {2}bridge service -> service #cpus 1 linux_boot not specified$/,
    );
    assert.equal(lines[2], "parsed 1 policies:");

    const bak = await runCli(["inspect-dump", "--dbdir", dbdir, "--file", "state.bak"]);
    assert.equal(bak.stdout, "parsed 0 unikernels:\nparsed 0 policies:\n");
    const given = await runCli(["inspect-dump", "--file", path.join(dbdir, "state")]);
    assert.equal(given.stdout, d.stdout);

    const out = path.join(tmp.dir, "out");
    mkdirSync(out);
    const x = await runCli(["extract-dump", "foo:hello", "--dbdir", dbdir], { env: { TMPDIR: out } });
    assert.equal(x.code, 0, x.stderr);
    const files = readdirSync(out);
    assert.equal(files.length, 1);
    assert.equal(readFileSync(path.join(out, files[0]!), "utf8"), "IMAGE BYTES");
    assert.match(x.stdout, /^dumped image to .*foo:hello\.\d{4}-.*-00:00\ntyp solo5 .* argv -l \*:debug\n$/);

    const missing = await runCli(["extract-dump", "foo:nope", "--dbdir", dbdir]);
    assert.equal(missing.code, 124);
    assert.equal(missing.stderr, "dromedary: unikernel not found\n");
  });

  test("inspect-dump errors: missing file, garbage, missing dbdir", async () => {
    const none = await runCli(["inspect-dump", "--file", path.join(tmp.dir, "nothing")]);
    assert.equal(none.code, 124);
    assert.equal(none.stderr, "dromedary: dump file not found\n");
    const g = path.join(tmp.dir, "garbage");
    writeFileSync(g, "this is no state");
    const bad = await runCli(["inspect-dump", "--file", g]);
    assert.equal(bad.code, 124);
    assert.match(bad.stderr, /^dromedary: couldn't parse dump file: /);
    const nodir = await runCli(["inspect-dump", "--dbdir", path.join(tmp.dir, "nodir")]);
    assert.equal(nodir.code, 124);
  });
});

describe("inspect on bad input: one line, exit 124", () => {
  const wireBytes = encodeWire(hello);
  const cases: [string, Uint8Array | string][] = [
    ["empty", ""],
    ["garbage text", "hello world, this is not albatross data\n"],
    ["garbage binary", Uint8Array.from([0xff, 0x00, 0x13, 0x37, 0x80])],
    ["truncated wire (binary)", wireBytes.subarray(0, 20)],
    ["truncated wire (hex)", Buffer.from(wireBytes.subarray(0, 20)).toString("hex")],
    ["odd hex", "30 2"],
    ["wire with version 4", Uint8Array.from([...wireBytes.subarray(0, 6), 0x04, ...wireBytes.subarray(7)])],
    ["indefinite length", Uint8Array.from([0x30, 0x80, 0x00, 0x00])],
    ["oversized length", Uint8Array.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02])],
    ["trailing garbage after a state", Uint8Array.from([0xa6, 0x04, 0x30, 0x02, 0x30, 0x00, 0x99])],
    ["broken PEM", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ["a der.txt tree dump", readFileSync(path.join(VECTORS, "wire-console-subscribe-foo.der.txt"), "utf8")],
  ];
  for (const [title, input] of cases) {
    test(title, async () => {
      const r = await runCli(["inspect", "-"], { input });
      assert.equal(r.code, 124, `exit ${r.code}: ${r.stdout} ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /^dromedary: \S/);
    });
  }

  test("a version-4 wire message says so", async () => {
    const r = await runCli(["inspect", "-"], { input: Uint8Array.from([...wireBytes.subarray(0, 6), 0x04, ...wireBytes.subarray(7)]) });
    assert.match(r.stderr, /version/);
  });

  test("a missing file", async () => {
    const r = await runCli(["inspect", path.join(tmp.dir, "does-not-exist")]);
    assert.equal(r.code, 124);
    assert.match(r.stderr, /no such file/);
  });
});
