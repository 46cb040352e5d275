// The local client against a fake daemon on a Unix socket: reply modes and exit codes
// (cli.md §3), file writing for get/dump-block, the set-block upload stream.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { inflateSync } from "node:zlib";
import { deflate } from "../../src/commands/compress.js";
import { encodeFrame } from "../../src/commands/framing.js";
import type { Wire } from "../../src/commands/types.js";
import { nameToString } from "../../src/core/name.js";
import { CLI, fakeDaemon, runCli, tempDir, utf8, type FakeConn } from "../support/cli.js";

let tmp: { dir: string; cleanup: () => void };
let sock: string;
let outDir: string;
let daemon: Awaited<ReturnType<typeof fakeDaemon>> | null = null;

before(() => {
  tmp = tempDir();
  sock = path.join(tmp.dir, "d.sock");
  outDir = path.join(tmp.dir, "out");
  mkdirSync(outDir, { recursive: true });
});
after(() => tmp.cleanup());
afterEach(async () => {
  if (daemon) {
    await daemon.close();
    assert.deepEqual(daemon.errors, []);
    daemon = null;
  }
});

async function serve(handler: (c: FakeConn) => Promise<void>): Promise<void> {
  daemon = await fakeDaemon(sock, handler);
}

const run = (args: string[]) => runCli([...args, "--socket", sock], { env: { TMPDIR: outDir } });

const ok = (text: string) => ({ kind: "reply", reply: { kind: "string", text: utf8(text) } }) as const;

describe("single replies", () => {
  test("success: printed upstream-style, exit 0, request header version 5 / sequence 0 / name", async () => {
    let req: Wire | null = null;
    await serve(async (c) => {
      req = await c.request();
      await c.send(req, ok("destroyed unikernel"));
      await c.end();
    });
    const r = await run(["destroy", "hello"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "host [unikernel: :hello]: success: destroyed unikernel\n");
    assert.ok(req);
    const w = req as Wire;
    assert.equal(w.header.version, 5);
    assert.equal(w.header.sequence, 0n);
    assert.equal(nameToString(w.header.name), ":hello");
    assert.equal(w.payload.kind === "command" && w.payload.command.kind, "unikernel-destroy");
  });

  test("failure: exit 117 with the daemon's message on stderr", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "failure", message: utf8("destroy: not found") });
      await c.end();
    });
    const r = await run(["destroy", "hello"]);
    assert.equal(r.code, 117);
    assert.equal(r.stderr, "dromedary: host [unikernel: :hello]: command failed destroy: not found\n");
  });

  test("listing replies: one entry per line; empty listing", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, {
        kind: "reply",
        reply: {
          kind: "block-devices",
          devices: [
            { name: { path: [], label: "a" }, size: 10, active: false },
            { name: { path: ["p"], label: "b" }, size: 20, active: true },
          ],
        },
      });
      await c.end();
    });
    const r = await run(["block"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "host [unikernel: :]: block [unikernel: :a] size 10 MB active false\nblock [unikernel: p:b] size 20 MB active true\n");
  });

  test("policies listing and --json lines", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, {
        kind: "reply",
        reply: {
          kind: "policies",
          policies: [{ name: { path: [], label: null }, policy: { unikernels: (1n << 62n) - 1n, cpuids: [0, 1], memory: 2048, block: 100, bridges: ["br0"] } }],
        },
      });
      await c.end();
    });
    const r = await run(["policy"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      "host [unikernel: :]: [unikernel: :]: policy: 4611686018427387903 unikernels 0,1 CPUids 2048 MB memory 100 MB block, bridges: br0\n",
    );
    const j = await run(["policy", "--json"]);
    assert.equal(j.code, 0);
    const lines = j.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 1);
    const v = JSON.parse(lines[0]!);
    assert.equal(v.header.name, ":");
    assert.equal(v.payload.reply.policies[0].policy.unikernels, "4611686018427387903");
  });

  test("EOF without any reply: exit 0 silently (upstream)", async () => {
    await serve(async (c) => {
      await c.request();
      await c.end();
    });
    const r = await run(["info"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "");
  });

  test("console data in single mode: exit 121", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "data", data: { kind: "console", timestamp: new Date(0), line: utf8("x") } });
      await c.end();
    });
    const r = await run(["info"]);
    assert.equal(r.code, 121);
    assert.match(r.stderr, /unexpected console data received/);
  });

  test("block data outside a dump: exit 121", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "data", data: { kind: "block-end" } });
      await c.end();
    });
    const r = await run(["block"]);
    assert.equal(r.code, 121);
  });

  test("a command payload: exit 125", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "command", command: { kind: "unikernel-info" } });
      await c.end();
    });
    const r = await run(["info"]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /unexpected command/);
  });

  test("an undecodable frame: exit 121, one line", async () => {
    await serve(async (c) => {
      await c.request();
      await c.sendRaw(encodeFrame(Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x04])));
      await c.end();
    });
    const r = await run(["info"]);
    assert.equal(r.code, 121);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
    assert.match(r.stderr, /^dromedary: communication failure: undecodable reply/);
  });

  test("EOF in the middle of a frame: exit 0", async () => {
    await serve(async (c) => {
      await c.request();
      await c.sendRaw(Uint8Array.from([0, 0, 0, 50, 0x30, 0x30]));
      await c.end();
    });
    const r = await run(["info"]);
    assert.equal(r.code, 0);
  });
});

describe("read mode (console, stats)", () => {
  test("console: success, lines escaped like OCaml String.escaped, until EOF -> exit 0", async () => {
    let req: Wire | null = null;
    await serve(async (c) => {
      req = await c.request();
      await c.send(req, ok("subscribed"));
      const t = new Date("2025-08-22T13:04:43.123Z");
      await c.send(req, { kind: "data", data: { kind: "console", timestamp: t, line: utf8("Hello") } });
      await c.send(req, { kind: "data", data: { kind: "console", timestamp: t, line: Uint8Array.from([0x61, 0x09, 0x22, 0x5c, 0x1b, 0xff, 0x0d]) } });
      await c.end();
    });
    const r = await run(["console", "hello", "--count", "3"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      "host [unikernel: :hello]: success: subscribed\n" +
        "console 2025-08-22T13:04:43-00:00: Hello\n" +
        'console 2025-08-22T13:04:43-00:00: a\\t\\"\\\\\\027\\255\\r\n',
    );
    const w = req as unknown as Wire;
    assert.ok(w.payload.kind === "command" && w.payload.command.kind === "console-subscribe");
    assert.deepEqual(w.payload.command.sinceCount, { kind: "count", count: 3 });
  });

  test("failure in the middle of a stream: exit 117", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, ok("subscribed"));
      await c.send(req, { kind: "data", data: { kind: "console", timestamp: new Date(0), line: utf8("a") } });
      await c.send(req, { kind: "failure", message: utf8("exception while reading from fd") });
      await c.end();
    });
    const r = await run(["console", "hello"]);
    assert.equal(r.code, 117);
    assert.equal(r.stdout, "host [unikernel: :hello]: success: subscribed\nconsole 1970-01-01T00:00:00-00:00: a\n");
  });

  test("console --json: one JSON object per message", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, ok("subscribed"));
      await c.send(req, { kind: "data", data: { kind: "console", timestamp: new Date("2025-01-01T00:00:00Z"), line: utf8("hi") } });
      await c.end();
    });
    const r = await run(["console", "hello", "--json"]);
    assert.equal(r.code, 0);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.equal(lines[1].payload.data.kind, "console");
    assert.equal(lines[1].payload.data.line, "hi");
  });
});

describe("files: get, dump-block", () => {
  const filesIn = (prefix: string) => readdirSync(outDir).filter((f) => f.startsWith(prefix));

  test("get writes the (inflated) image to <tmp>/<name>.<time>", async () => {
    const image = utf8("ELF?".repeat(5000));
    let level = -1;
    await serve(async (c) => {
      const req = await c.request();
      if (req.payload.kind === "command" && req.payload.command.kind === "unikernel-get") level = req.payload.command.level;
      await c.send(req, { kind: "reply", reply: { kind: "unikernel-image", compressed: true, image: deflate(image, 9) } });
      await c.end();
    });
    const r = await run(["get", "foo:img", "--compression-level", "9"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(level, 9);
    const files = filesIn("foo:img.");
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^foo:img\.\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00$/);
    assert.deepEqual(readFileSync(path.join(outDir, files[0]!)), Buffer.from(image));
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^host \[unikernel: foo:img\]: image \(compression true\) \d+ bytes$/);
    assert.equal(lines[1], `dumped image to ${path.join(outDir, files[0]!)}`);
  });

  test("get with a corrupt compressed image: one line, exit 121", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "reply", reply: { kind: "unikernel-image", compressed: true, image: utf8("not zlib") } });
      await c.end();
    });
    const r = await run(["get", "bad"]);
    assert.equal(r.code, 121);
    assert.match(r.stderr, /^dromedary: failed to uncompress image/);
  });

  for (const compressed of [false, true]) {
    test(`dump-block streams into a file (${compressed ? "deflated" : "raw"})`, async () => {
      const content = Buffer.alloc(3 * 4096 + 100);
      for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
      await serve(async (c) => {
        const req = await c.request();
        await c.send(req, { kind: "reply", reply: { kind: "block-device-image", compressed } });
        const data = compressed ? Buffer.from(deflate(content, 6)) : content;
        for (let i = 0; i < data.length; i += 1000) {
          await c.send(req, { kind: "data", data: { kind: "block-data", data: data.subarray(i, i + 1000) } });
        }
        await c.send(req, { kind: "data", data: { kind: "block-end" } });
        await c.end();
      });
      const name = compressed ? "diskz" : "disk";
      const r = await run(["dump-block", name, "--compression-level", compressed ? "6" : "0"]);
      assert.equal(r.code, 0, r.stderr);
      const files = filesIn(`:${name}.`);
      assert.equal(files.length, 1);
      assert.deepEqual(readFileSync(path.join(outDir, files[0]!)), content);
      assert.match(r.stdout, new RegExp(`^host \\[unikernel: :${name}\\]: block device compressed ${compressed}\\ndumped to `));
    });
  }
});

describe("set-block upload", () => {
  const content = Buffer.alloc(10 * 4096 + 123);
  before(() => {
    for (let i = 0; i < content.length; i++) content[i] = (i * 13 + (i >> 9)) & 0xff;
    writeFileSync(path.join(tmp.dir, "data.bin"), content);
  });

  for (const level of [0, 9]) {
    test(`level ${level}: raw chunks${level ? " of one zlib stream" : " of 4096 bytes"}, zero-length terminator, intact`, async () => {
      let compressedFlag: boolean | null = null;
      let chunks: Uint8Array[] = [];
      await serve(async (c) => {
        const req = await c.request();
        if (req.payload.kind === "command" && req.payload.command.kind === "block-set") compressedFlag = req.payload.command.compressed;
        chunks = await c.upload();
        await c.send(req, ok("set block device"));
        await c.end();
      });
      const r = await run(["set-block", "disk", path.join(tmp.dir, "data.bin"), "--compression-level", String(level)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "host [unikernel: :disk]: success: set block device\n");
      assert.equal(r.stderr, "", "no progress output when stderr is not a TTY");
      assert.equal(compressedFlag, level > 0);
      const all = Buffer.concat(chunks);
      if (level === 0) {
        assert.ok(chunks.every((c) => c.length <= 4096));
        assert.equal(chunks.length, 11);
        assert.deepEqual(all, content);
      } else {
        assert.ok(all.length < content.length);
        assert.deepEqual(inflateSync(all), content);
      }
    });
  }

  test("create-block --data: block add, then a separate set-block connection", async () => {
    const seen: string[] = [];
    await serve(async (c) => {
      const req = await c.request();
      const cmd = req.payload.kind === "command" ? req.payload.command : null;
      seen.push(cmd?.kind ?? "?");
      if (cmd?.kind === "block-add") {
        assert.equal(cmd.size, 1);
        await c.send(req, { kind: "failure", message: utf8("block device with same name already exists") });
      } else {
        const chunks = await c.upload();
        assert.deepEqual(Buffer.concat(chunks), content);
        await c.send(req, ok("set block device"));
      }
      await c.end();
    });
    const r = await run(["create-block", "disk", "1", "--data", path.join(tmp.dir, "data.bin")]);
    // the add failed, but its outcome is not checked: the exit status is the set-block's
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(seen, ["block-add", "block-set"]);
    assert.match(r.stderr, /command failed block device with same name already exists/);
    assert.equal(r.stdout, "host [unikernel: :disk]: success: set block device\n");
  });

  test("the daemon refuses at once (not found): exit 117, its message shown", async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "failure", message: utf8("set block: not found") });
      await c.end();
    });
    const r = await run(["set-block", "nodisk", path.join(tmp.dir, "data.bin")]);
    assert.equal(r.code, 117, r.stderr);
    assert.match(r.stderr, /command failed set block: not found/);
  });

  test("a progress indicator on stderr when it is a terminal (via script(1))", { skip: !hasScript() }, async () => {
    await serve(async (c) => {
      const req = await c.request();
      await c.upload();
      await c.send(req, ok("set block device"));
      await c.end();
    });
    const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
    const cmd = [process.execPath, CLI, "set-block", "disk", path.join(tmp.dir, "data.bin"), "--socket", sock].map(q).join(" ");
    // async: the fake daemon lives in this process
    const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const child = spawn("script", ["-qefc", cmd, "/dev/null"], { env: { ...process.env, TMPDIR: outDir }, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
      child.on("close", (status) => resolve({ status, stdout: out }));
    });
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /\ruploading .*data\.bin: 0\.0 \/ 0\.0 MiB \(100%\)/);
    assert.match(r.stdout, /^disk: set block device\r?$/m); // a terminal: plain name and text (src/client/tables.ts)
  });
});

function hasScript(): boolean {
  return spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;
}
