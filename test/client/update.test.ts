// `update` (cli.md §5) against a local builder-web stand-in (HTTP on 127.0.0.1) and a fake
// daemon on a Unix socket.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import type { UnikernelInfo, Wire } from "../../src/commands/types.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { fakeDaemon, runCli, tempDir, utf8 } from "../support/cli.js";

const oldImage = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;
const newImage = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }], text: Uint8Array.from([0x90, 0xf4]) }).bytes;
const digest = createHash("sha256").update(oldImage).digest();

const info: UnikernelInfo = {
  typ: "solo5",
  failBehaviour: { kind: "restart", exitCodes: [4] },
  startup: 10,
  cpuids: [1],
  memory: 64,
  digest: new Uint8Array(digest),
  blockDevices: [],
  bridges: [{ unikernelDevice: "service", hostDevice: "br0", mac: Uint8Array.from([0, 0x80, 0x41, 1, 2, 3]) }],
  argv: [utf8("--hello=Hi")],
  started: new Date("2025-01-01T00:00:00Z"),
  numcpus: 1,
};

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let routes: Record<string, Route> = {};
let server: http.Server;
let base = "";
let tmp: { dir: string; cleanup: () => void };
let sock: string;
let daemon: Awaited<ReturnType<typeof fakeDaemon>> | null = null;
let requests: Wire[] = [];

before(async () => {
  tmp = tempDir();
  sock = path.join(tmp.dir, "vmmd.sock");
  server = http.createServer((req, res) => {
    const r = routes[req.url ?? ""];
    if (r) r(req, res);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  tmp.cleanup();
});
afterEach(async () => {
  if (daemon) await daemon.close();
  daemon = null;
  routes = {};
  requests = [];
});

const redirect =
  (to: string): Route =>
  (_req, res) => {
    res.statusCode = 302;
    res.setHeader("Location", to);
    res.end();
  };

async function daemonWith(infos: UnikernelInfo[], createReply: "ok" | "fail" = "ok"): Promise<void> {
  let running = infos;
  daemon = await fakeDaemon(sock, async (c) => {
    const req = await c.request();
    requests.push(req);
    const cmd = req.payload.kind === "command" ? req.payload.command : null;
    if (cmd?.kind === "unikernel-info") {
      await c.send(req, { kind: "reply", reply: { kind: "unikernel-info", unikernels: running.map((i) => ({ name: req.header.name, info: i })) } });
    } else if (cmd?.kind === "unikernel-get") {
      await c.send(req, { kind: "reply", reply: { kind: "unikernel-image", compressed: false, image: oldImage } });
    } else if (cmd?.kind === "unikernel-force-create" && createReply === "ok") {
      const d = createHash("sha256").update(cmd.config.image).digest();
      running = running.map((i) => ({ ...i, digest: new Uint8Array(d), started: new Date() }));
      await c.send(req, { kind: "reply", reply: { kind: "string", text: utf8("created unikernel") } });
    } else {
      await c.send(req, { kind: "failure", message: utf8("could not create unikernel: console failed") });
    }
    await c.end();
  });
}

const hashPath = `/hash?sha256=${digest.toString("hex")}`;
const newHashPath = `/hash?sha256=${createHash("sha256").update(newImage).digest("hex")}`;
const update = (...extra: string[]) =>
  runCli(["update", "hello", "--socket", sock, "--http-host", base, "--health-timeout", "0", "--state-dir", path.join(tmp.dir, "state"), ...extra]);

describe("update", () => {
  test("already up to date", async () => {
    await daemonWith([info]);
    routes[hashPath] = redirect("/job/hello/build/u1");
    routes["/job/hello/build/latest"] = redirect("/job/hello/build/u1/");
    const r = await update();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "already up to date\n");
    assert.equal(requests.length, 1);
  });

  test("--dryrun prints the compare URL and changes nothing", async () => {
    await daemonWith([info]);
    routes[hashPath] = redirect("/job/hello/build/u1");
    routes["/job/hello/build/latest"] = redirect("/job/hello/build/u2");
    const r = await update("--dryrun");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `compare at ${base}/compare/u1/u2\n`);
    assert.equal(requests.length, 1);
  });

  test("a newer build: download (redirects followed), manifest check, force-create with the running config", async () => {
    await daemonWith([info]);
    routes[hashPath] = redirect("/job/hello/build/u1");
    routes["/job/hello/build/latest"] = redirect("/job/hello/build/u2");
    routes["/job/hello/build/u2/main-binary"] = redirect("/job/hello/build/u2/f/bin/hello.hvt");
    routes["/job/hello/build/u2/f/bin/hello.hvt"] = (_req, res) => res.end(Buffer.from(newImage));
    routes[newHashPath] = redirect("/job/hello/build/u2");
    const r = await update();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `compare at ${base}/compare/u1/u2\nhost [unikernel: :hello]: success: created unikernel\n`);
    // no package information from this builder: said on stderr, the update goes on
    assert.match(r.stderr, /no package changes from the builder: compare: HTTP 404; opam-switch: not found/);
    // info, get (the previous image is kept), force-create
    assert.deepEqual(
      requests.map((q) => (q.payload.kind === "command" ? q.payload.command.kind : q.payload.kind)),
      ["unikernel-info", "unikernel-get", "unikernel-force-create"],
    );
    const fc = requests[2]!.payload;
    if (fc.kind !== "command" || fc.command.kind !== "unikernel-force-create") assert.fail("no force-create");
    const c = fc.command.config;
    assert.equal(c.compressed, false);
    assert.deepEqual(Array.from(c.image), Array.from(newImage));
    assert.deepEqual(c.failBehaviour, { kind: "restart", exitCodes: [4] });
    assert.equal(c.startup, 10);
    assert.equal(c.addName, true);
    assert.deepEqual(c.cpuids, [1]);
    assert.equal(c.memory, 64);
    assert.equal(c.bridges[0]!.bridge, "br0");
    assert.deepEqual(Array.from(c.bridges[0]!.mac!), [0, 0x80, 0x41, 1, 2, 3]);
    assert.deepEqual(
      c.argv?.map((a) => Buffer.from(a).toString()),
      ["--hello=Hi"],
    );
  });

  test("the force-create fails: 117", async () => {
    await daemonWith([info], "fail");
    routes[hashPath] = redirect("/job/hello/build/u1");
    routes["/job/hello/build/latest"] = redirect("/job/hello/build/u2");
    routes["/job/hello/build/u2/main-binary"] = (_req, res) => res.end(Buffer.from(newImage));
    routes[newHashPath] = redirect("/job/hello/build/u2");
    const r = await update();
    assert.equal(r.code, 117);
    // refused with the old image still running: nothing to roll back
    assert.doesNotMatch(r.stdout, /rolled back/);
  });

  const httpErrors: [string, () => void, RegExp][] = [
    ["unknown hash (404)", () => undefined, /couldn't find the unikernel in the repository/],
    ["a full URL as Location", () => (routes[hashPath] = redirect(`${base}/job/hello/build/u1`)), /expected '\/job\/<jobname>\/build\/<uuid>', got: http/],
    [
      "no Location header",
      () =>
        (routes[hashPath] = (_q, s) => {
          s.statusCode = 302;
          s.end();
        }),
      /no Location header received in HTTP reply/,
    ],
    [
      "some other status",
      () =>
        (routes[hashPath] = (_q, s) => {
          s.statusCode = 500;
          s.end();
        }),
      /unexpected HTTP reply/,
    ],
    [
      "an empty binary",
      () => {
        routes[hashPath] = redirect("/job/hello/build/u1");
        routes["/job/hello/build/latest"] = redirect("/job/hello/build/u2");
        routes["/job/hello/build/u2/main-binary"] = (_q, s) => s.end();
      },
      /unexpected HTTP reply/,
    ],
  ];
  for (const [title, setup, re] of httpErrors) {
    test(`HTTP: ${title} -> 118`, async () => {
      await daemonWith([info]);
      setup();
      const r = await update();
      assert.equal(r.code, 118, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(
        r.stderr
          .trimEnd()
          .split("\n")
          .filter((l) => !/no package changes from the builder/.test(l)).length,
        1,
        r.stderr,
      );
    });
  }

  test("the new binary does not match the devices: 125", async () => {
    await daemonWith([info]);
    routes[hashPath] = redirect("/job/hello/build/u1");
    routes["/job/hello/build/latest"] = redirect("/job/hello/build/u2");
    const bad = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
    routes["/job/hello/build/u2/main-binary"] = (_req, res) => res.end(Buffer.from(bad));
    routes[`/hash?sha256=${createHash("sha256").update(bad).digest("hex")}`] = redirect("/job/hello/build/u2");
    const r = await update();
    assert.equal(r.code, 125);
    assert.match(r.stderr, /manifest failed: specified bridge\(s\) does not match/);
    assert.equal(requests.length, 1);
  });

  test("not exactly one solo5 unikernel in the info reply: 121", async () => {
    await daemonWith([info, info]);
    const r = await update();
    assert.equal(r.code, 121);
    assert.match(r.stderr, /unexpected reply/);
  });

  test("no daemon: 121", async () => {
    const r = await update();
    assert.equal(r.code, 121);
  });
});
