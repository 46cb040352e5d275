// The CLI as a child process: `--socket -` dumps against the upstream vectors, flag parsing
// and local validation (exact texts, exit 124), destination modes.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { decodeWire } from "../../src/commands/codec.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { VECTORS, runCli, tempDir } from "../support/cli.js";

/** The hex bytes after `out:` as a byte array. */
function dumped(stdout: string): Uint8Array {
  const m = /^out:\n([0-9a-f \n]+)$/.exec(stdout);
  assert.ok(m, `unexpected output ${JSON.stringify(stdout)}`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "hex"));
}

let tmp: { dir: string; cleanup: () => void };
let image: string;
let netImage: string;
before(() => {
  tmp = tempDir();
  image = path.join(tmp.dir, "hello.hvt");
  writeFileSync(image, buildSolo5Elf({ target: "hvt", devices: [] }).bytes);
  netImage = path.join(tmp.dir, "netblk.hvt");
  writeFileSync(
    netImage,
    buildSolo5Elf({
      target: "hvt",
      devices: [
        { name: "service", type: "net" },
        { name: "storage", type: "block" },
      ],
    }).bytes,
  );
});
after(() => tmp.cleanup());

describe("--socket - (upstream vectors)", () => {
  for (const name of ["foo", "foo.bar"]) {
    test(`console ${name} --socket - prints exactly wire-console-subscribe-${name}.hex`, async () => {
      const r = await runCli(["console", name, "--socket", "-"]);
      assert.equal(r.code, 121);
      const vector = readFileSync(path.join(VECTORS, `wire-console-subscribe-${name}.hex`), "utf8");
      // byte-identical text: the vector is the upstream hexdump itself
      assert.equal(r.stdout, `out:\n${vector}`);
      assert.equal(r.stderr, "");
    });
  }

  test("console --since sends a since subscription", async () => {
    const r = await runCli(["console", "foo", "--since", "2023-03-12", "--count", "5", "--socket", "-"]);
    assert.equal(r.code, 121);
    const w = decodeWire(dumped(r.stdout));
    assert.equal(w.payload.kind, "command");
    if (w.payload.kind !== "command" || w.payload.command.kind !== "console-subscribe") assert.fail("not a subscribe");
    assert.deepEqual(w.payload.command.sinceCount, { kind: "since", since: new Date("2023-03-12T00:00:00Z") });
  });

  test("create encodes the derived example of wire.md §14.2 shape (uncompressed locally)", async () => {
    const r = await runCli(["create", "hello", image, "--socket", "-"]);
    assert.equal(r.code, 121);
    const w = decodeWire(dumped(r.stdout));
    if (w.payload.kind !== "command" || w.payload.command.kind !== "unikernel-create") assert.fail("not a create");
    const c = w.payload.command.config;
    assert.equal(c.compressed, false);
    assert.deepEqual(Array.from(c.image), Array.from(readFileSync(image)));
    assert.deepEqual(c.cpuids, [0]);
    assert.equal(c.memory, 32);
    assert.equal(c.addName, true);
    assert.deepEqual(c.failBehaviour, { kind: "quit" });
    assert.equal(c.numcpus, 1);
    assert.equal(c.argv, undefined);
    assert.equal(w.header.sequence, 0n);
    assert.equal(w.header.version, 5);
  });

  test("create with every option", async () => {
    const r = await runCli([
      "create",
      "-f",
      "a:b",
      netImage,
      "--socket",
      "-",
      "--net",
      "service:br0@00:11:22:33:44:55",
      "--block",
      "storage:disk@4096",
      "--cpu",
      "3",
      "--cpu",
      "1",
      "--cpu",
      "3",
      "--mem",
      "64",
      "--arg",
      "--hello=Hi",
      "--arg",
      "-l *:debug",
      "--restart-on-fail",
      "--exit-code",
      "7",
      "--exit-code",
      "2",
      "--startup",
      "3",
      "--no-add-name",
      "--cpus",
      "2",
      "--linux-boot",
      "/boot",
      "--compression-level",
      "6",
    ]);
    assert.equal(r.code, 121, r.stderr);
    const w = decodeWire(dumped(r.stdout));
    if (w.payload.kind !== "command" || w.payload.command.kind !== "unikernel-force-create") assert.fail("not a force-create");
    const c = w.payload.command.config;
    assert.equal(w.header.name.label, "b");
    assert.deepEqual(w.header.name.path, ["a"]);
    assert.equal(c.compressed, true);
    assert.deepEqual(c.cpuids, [1, 3]);
    assert.equal(c.memory, 64);
    assert.deepEqual(
      c.argv?.map((a) => Buffer.from(a).toString()),
      ["--hello=Hi", "-l *:debug"],
    );
    assert.deepEqual(c.failBehaviour, { kind: "restart", exitCodes: [2, 7] });
    assert.equal(c.startup, 3);
    assert.equal(c.addName, false);
    assert.equal(c.numcpus, 2);
    assert.equal(c.linuxBootPartition, "/boot");
    assert.deepEqual(c.blockDevices, [{ name: "storage", device: "disk", sectorSize: 4096 }]);
    assert.equal(c.bridges.length, 1);
    assert.equal(c.bridges[0]!.netif, "service");
    assert.equal(c.bridges[0]!.bridge, "br0");
    assert.deepEqual(Array.from(c.bridges[0]!.mac!), [0, 0x11, 0x22, 0x33, 0x44, 0x55]);
  });

  test("restart without --replace-arguments ignores the create options", async () => {
    const r = await runCli(["restart", "hello", "--mem", "99", "--socket", "-"]);
    assert.equal(r.code, 121);
    const hexText = r.stdout.slice("out:\n".length).replace(/\s+/g, " ").trim();
    // wire.md §14.2 "Restart :hello without new arguments"
    assert.equal(hexText, "30 21 30 15 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 06 3a 68 65 6c 6c 6f a0 08 a3 06 ae 04 a0 02 05 00");
  });

  test("restart --replace-arguments sends [14][3] with the defaults restated", async () => {
    const r = await runCli(["restart", "hello", "--replace-arguments", "--net", "service", "--socket", "-"]);
    assert.equal(r.code, 121);
    const w = decodeWire(dumped(r.stdout));
    if (w.payload.kind !== "command" || w.payload.command.kind !== "unikernel-restart") assert.fail("not a restart");
    const a = w.payload.command.args!;
    assert.equal(a.memory, 32);
    assert.deepEqual(a.cpuids, [0]);
    assert.deepEqual(a.bridges, [{ netif: "service" }]);
  });

  const simple: [string[], string, string][] = [
    [["destroy", "hello"], "unikernel-destroy", ":hello"],
    [["info"], "unikernel-info", ":"],
    [["info", "-n", "foo:"], "unikernel-info", "foo:"],
    [["get", "hello"], "unikernel-get", ":hello"],
    [["policy", "-p", "foo"], "policy-info", "foo:"],
    [["remove-policy", "--path", "foo:bar"], "policy-remove", "foo:bar:"],
    [["block"], "block-info", ":"],
    [["create-block", "disk", "10"], "block-add", ":disk"],
    [["destroy-block", "disk"], "block-remove", ":disk"],
    [["dump-block", "disk"], "block-dump", ":disk"],
    [["inactive-consoles"], "console-list-inactive", ":"],
    [["stats"], "stats-subscribe", ":"],
    [["stats-remove", "-n", "hello"], "stats-remove", ":hello"],
    [["stats-add", "42", "--bridge", "service:vmmtap0", "-n", "hello"], "stats-add", ":hello"],
  ];
  for (const [args, kind, name] of simple) {
    test(`${args.join(" ")} --socket - sends ${kind} for ${name}`, async () => {
      const r = await runCli([...args, "--socket", "-"]);
      assert.equal(r.code, 121, r.stderr);
      const w = decodeWire(dumped(r.stdout));
      assert.equal(w.payload.kind === "command" && w.payload.command.kind, kind);
      const { nameToString } = await import("../../src/core/name.js");
      assert.equal(nameToString(w.header.name), name);
    });
  }

  test("add-policy encodes the policy (cpus as a set, default memory 512)", async () => {
    const r = await runCli(["add-policy", "foo", "2", "--cpu", "1", "--cpu", "0", "--size", "100", "--bridge", "br1", "--network", "br0", "--socket", "-"]);
    assert.equal(r.code, 121, r.stderr);
    const w = decodeWire(dumped(r.stdout));
    if (w.payload.kind !== "command" || w.payload.command.kind !== "policy-add") assert.fail("not a policy add");
    assert.deepEqual(w.payload.command.policy, { unikernels: 2n, cpuids: [0, 1], memory: 512, block: 100, bridges: ["br0", "br1"] });
  });

  test("get and dump-block default to level 0 locally", async () => {
    for (const cmd of ["get", "dump-block"]) {
      const r = await runCli([cmd, "x", "--socket", "-"]);
      const w = decodeWire(dumped(r.stdout));
      assert.ok(w.payload.kind === "command" && "level" in w.payload.command && w.payload.command.level === 0);
    }
  });
});

describe("validation errors (exit 124, one line)", () => {
  const cases: [string, () => string[], RegExp][] = [
    ["sector size not a power of two", () => ["create", "x", image, "--block", "a@1000"], /sector size must be a power of two greater than or equal 512/],
    ["sector size below 512", () => ["create", "x", image, "--block", "a@256"], /sector size must be a power of two greater than or equal 512/],
    ["sector size not an integer", () => ["create", "x", image, "--block", "a@big"], /sector size must be an integer/],
    ["two @ in a block spec", () => ["create", "x", image, "--block", "a@512@1"], /format is 'name\[@sector-size\]' or 'name:device-name\[@sector-size\]'/],
    ["two : in a block spec", () => ["create", "x", image, "--block", "a:b:c"], /format is 'name' or 'name:device-name'/],
    ["bad mac", () => ["create", "x", image, "--net", "service@00:11"], /invalid MAC address/],
    ["two @ in a net spec", () => ["create", "x", image, "--net", "a@b@c"], /format is \[name:\]bridge\[@mac\]/],
    ["bridge names not a set", () => ["create", "x", image, "--net", "a", "--net", "a:br"], /Bridge names must be a set/],
    ["block names not a set", () => ["create", "x", image, "--block", "a", "--block", "a:b"], /Block devices must be a set/],
    ["restart sets are checked too", () => ["restart", "x", "--replace-arguments", "--block", "a", "--block", "a"], /Block devices must be a set/],
    [
      "manifest mismatch",
      () => ["create", "x", image, "--net", "service"],
      /specified bridge\(s\) does not match with the manifest. Devices present in manifest: $/m,
    ],
    [
      "manifest mismatch (blocks first)",
      () => ["create", "x", netImage, "--net", "service"],
      /specified block device\(s\) does not match with manifest. Devices present in manifest: net "service", block "storage"/,
    ],
    ["not an ELF", () => ["create", "x", "/etc/hostname"], /ELF|manifest/],
    ["missing image", () => ["create", "x", "/nonexistent/image"], /no '\/nonexistent\/image' file/],
    ["invalid name", () => ["destroy", "a::b"], /invalid name/],
    ["empty name", () => ["destroy", ""], /empty name/],
    ["name with slash", () => ["destroy", "../etc"], /invalid name/],
    ["invalid path", () => ["policy", "-p", "a/b"], /invalid path/],
    [
      "mutually exclusive --csr --socket",
      () => ["info", "--csr", "--socket", "-"],
      /^dromedary: The options --csr, --destination, and --socket are mutually exclusive$/m,
    ],
    ["mutually exclusive -d --socket", () => ["info", "-d", "host", "--socket", "x"], /The options --csr, --destination, and --socket are mutually exclusive/],
    ["bad port", () => ["info", "-d", "host:port"], /failed to parse port/],
    ["bare IPv6 literal", () => ["info", "-d", "::1"], /failed to parse port|invalid host/],
    ["bad timestamp", () => ["console", "x", "--since", "yesterday"], /couldn't parse timestamp/],
    ["bridge:tap format", () => ["stats-add", "1", "--bridge", "nocolon"], /broken, format is bridge:tap/],
    ["compression level range", () => ["get", "x", "--compression-level", "12"], /compression level must be between 0 and 9/],
    ["unusable policy", () => ["add-policy", "foo", "0", "--socket", "-"], /./],
    ["unknown option", () => ["info", "--frobnicate"], /unknown option/],
    ["missing argument", () => ["destroy"], /missing required argument/],
    ["non-empty path in CSR mode", () => ["destroy", "foo:bar", "--csr"], /^dromedary: non-empty path$/m],
    ["update with --csr", () => ["update", "x", "--csr"], /update with CSR not supported/],
    ["bad --http-host", () => ["update", "x", "--http-host", "ftp://x"], /expected http\[s\]:\/\/hostname/],
    ["create-block --data larger than SIZE", () => ["create-block", "d", "1", "--data", bigFile()], /^dromedary: data exceeds size$/m],
    ["create-block --data with SIZE 0", () => ["create-block", "d", "0", "--data", image], /^dromedary: overflow while computing bytes$/m],
    ["explicit --tmpdir must exist", () => ["info", "--tmpdir", "/nonexistent-dir"], /no '\/nonexistent-dir' directory/],
  ];
  for (const [title, args, re] of cases) {
    test(title, async () => {
      const r = await runCli(args());
      assert.equal(r.code, 124, `exit ${r.code}, stderr ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, `more than one line: ${r.stderr}`);
      assert.ok(r.stderr.startsWith("dromedary: "), r.stderr);
      assert.equal(r.stdout, "");
    });
  }

  test("remote mode without its CA certificate: one line naming the file, exit 124", async () => {
    const r = await runCli(["info", "-d", "localhost"]);
    assert.equal(r.code, 124);
    assert.match(r.stderr, /^dromedary: cannot read CA certificate ca\.pem: ENOENT\n$/);
  });

  test("connect failure exits 122", async () => {
    const r = await runCli(["info", "--socket", path.join(tmp.dir, "no.sock")]);
    assert.equal(r.code, 122);
    assert.match(r.stderr, /couldn't connect to/);
  });

  test("the default socket lives in <tmpdir>/util/vmmd.sock", async () => {
    const r = await runCli(["info", "--tmpdir", tmp.dir]);
    assert.equal(r.code, 122);
    assert.ok(r.stderr.includes(path.join(tmp.dir, "util", "vmmd.sock")), r.stderr);
    const c = await runCli(["console", "x", "--tmpdir", tmp.dir]);
    assert.ok(c.stderr.includes(path.join(tmp.dir, "util", "console.sock")), c.stderr);
    const s = await runCli(["stats", "--tmpdir", tmp.dir]);
    assert.ok(s.stderr.includes(path.join(tmp.dir, "util", "stat.sock")), s.stderr);
  });
});

function bigFile(): string {
  const f = path.join(tmp.dir, "big.bin");
  writeFileSync(f, Buffer.alloc(1048577));
  return f;
}
