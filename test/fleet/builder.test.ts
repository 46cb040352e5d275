// The builder client (src/fleet/builder.ts) against the builder-web stand-in and hostile HTTP
// servers on loopback; the diff (pure) and the fleet file parser.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Builder, HttpFailure, jobAndBuild } from "../../src/fleet/builder.js";
import { diffFromCompare, diffFromSwitches, parseOpamSwitch, renderDiff } from "../../src/fleet/diff.js";
import { FleetFileError, parseFleet as parseWith, selectHosts } from "../../src/fleet/file.js";
import { parseDestination, parseHttpHost } from "../../src/cli/flags.js";

const parseFleet = (text: string, file: string) => parseWith(text, file, { destination: (s) => parseDestination(s), httpHost: parseHttpHost });
import { bounded } from "../../src/fleet/fleet.js";
import { checkHealth } from "../../src/fleet/health.js";
import type { Target } from "../../src/fleet/target.js";
import { parseName } from "../../src/core/name.js";
import { opamSwitchText, startBuilder, type BuilderStandin } from "../support/builder.js";
import { buildSolo5Elf } from "../support/elf-builder.js";

const img = (tag: string): Uint8Array => buildSolo5Elf({ target: "hvt", devices: [], text: new TextEncoder().encode(tag) }).bytes;

let sb: BuilderStandin;
before(async () => {
  sb = await startBuilder();
});
after(async () => {
  await sb.close();
});

/** A server answering every request with `handler`. */
async function serve(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

describe("builder client", () => {
  test("hash -> build, latest, main binary checked against the builder", async () => {
    const a = img("a");
    const b = img("b");
    const u1 = sb.addBuild("job1", { image: a, packages: { x: "1" } });
    const u2 = sb.addBuild("job1", { image: b, packages: { x: "2" } });
    const c = new Builder({ base: sb.url });
    const from = await c.buildOfHash(createHash("sha256").update(a).digest("hex"));
    assert.deepEqual(from, { job: "job1", build: u1 });
    assert.deepEqual(await c.latest("job1"), { job: "job1", build: u2 });
    const got = await c.mainBinary({ job: "job1", build: u2 });
    assert.deepEqual(Buffer.from(got.image), Buffer.from(b));
    assert.equal(got.sha256, createHash("sha256").update(b).digest("hex"));
    await assert.rejects(c.buildOfHash("00".repeat(32)), { message: "couldn't find the unikernel in the repository" });
    await assert.rejects(c.latest("nope"), { message: "couldn't find the unikernel in the repository" });
  });

  test("a binary that is not what the builder announced is refused", async () => {
    const u = sb.addBuild("job2", { image: img("t"), packages: {} });
    sb.knobs.tampered.add(u);
    try {
      await assert.rejects(new Builder({ base: sb.url }).mainBinary({ job: "job2", build: u }), /is not the one the builder announced/);
    } finally {
      sb.knobs.tampered.delete(u);
    }
  });

  test("a binary without an ETag is still checked through /hash", async () => {
    const good = img("good");
    const evil = img("evil");
    const s = await serve((req, res) => {
      if (req.url === "/job/j/build/u1/main-binary") return void res.end(Buffer.from(evil));
      // the builder knows only `good` for u1
      if (req.url === `/hash?sha256=${createHash("sha256").update(good).digest("hex")}`) {
        res.writeHead(302, { location: "/job/j/build/u1" });
        return void res.end();
      }
      res.writeHead(404);
      res.end();
    });
    try {
      await assert.rejects(new Builder({ base: s.url }).mainBinary({ job: "j", build: "u1" }), /the builder does not know the downloaded binary/);
    } finally {
      await s.close();
    }
  });

  test("redirects only within the builder's origin", async () => {
    const u = sb.addBuild("job3", { image: img("r"), packages: {} });
    const other = await serve((_q, res) => res.end("x"));
    sb.knobs.foreignRedirect = other.url;
    try {
      await assert.rejects(new Builder({ base: sb.url }).mainBinary({ job: "job3", build: u }), /refusing to leave the builder's origin/);
    } finally {
      sb.knobs.foreignRedirect = null;
      await other.close();
    }
  });

  test("size limit and timeout", async () => {
    const big = await serve((_q, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(64 * 1024));
      res.end(Buffer.alloc(64 * 1024));
    });
    const silent = await serve(() => undefined); // never answers
    try {
      await assert.rejects(new Builder({ base: big.url, maxBinaryBytes: 100_000 }).mainBinary({ job: "j", build: "u" }), /exceeds the limit of 100000 bytes/);
      await assert.rejects(
        new Builder({ base: silent.url, timeoutMs: 200 }).latest("j"),
        (e: Error) => e instanceof HttpFailure && /no answer from .* within 0.2 s/.test(e.message),
      );
    } finally {
      await big.close();
      await silent.close();
    }
  });

  test("Location must be a build path; job and build names are checked", () => {
    assert.deepEqual(jobAndBuild("/job/hello/build/abc/"), { job: "hello", build: "abc" });
    assert.throws(() => jobAndBuild("http://x/job/hello/build/abc"), /expected '\/job\/<jobname>\/build\/<uuid>'/);
    assert.throws(() => jobAndBuild("/job/../build/abc"), /unexpected job or build name/);
    assert.throws(() => jobAndBuild("/job/a/build/a%2f"), /unexpected job or build name/);
  });

  test("the diff: compare JSON as builder-web sends it, and the opam-switch fallback", async () => {
    const u1 = sb.addBuild("job4", { image: img("d1"), packages: { a: "1", b: "2", c: "3" }, env: { X: "1" }, system: { gcc: "12" } });
    const u2 = sb.addBuild("job4", { image: img("d2"), packages: { a: "1", b: "2.1", d: "4" }, env: { X: "2", Y: "y" }, system: {} });
    const c = new Builder({ base: sb.url });
    const d = await c.diff({ job: "job4", build: u1 }, { job: "job4", build: u2 });
    assert.ok(!(d instanceof Error));
    assert.equal(d.source, "compare");
    assert.deepEqual(d.added, [{ name: "d", version: "4" }]);
    assert.deepEqual(d.removed, [{ name: "c", version: "3" }]);
    assert.deepEqual(d.changed, [{ name: "b", from: "2", to: "2.1" }]);
    assert.deepEqual(d.env, { added: [{ name: "Y", version: "y" }], removed: [], changed: [{ name: "X", from: "1", to: "2" }] });
    assert.deepEqual(d.system.removed, [{ name: "gcc", version: "12" }]);
    sb.knobs.compareJson = false;
    try {
      const f = await c.diff({ job: "job4", build: u1 }, { job: "job4", build: u2 });
      assert.ok(!(f instanceof Error));
      assert.equal(f.source, "opam-switch");
      assert.deepEqual([f.added, f.removed, f.changed], [d.added, d.removed, d.changed]);
    } finally {
      sb.knobs.compareJson = true;
    }
    // neither: an explanation, not an exception
    const none = await c.diff({ job: "job4", build: "x1" }, { job: "job4", build: "x2" });
    assert.ok(none instanceof Error);
    assert.match(none.message, /compare: HTTP 404; opam-switch: not found/);
  });
});

describe("diff (pure)", () => {
  test("opam-switch export", () => {
    assert.deepEqual(parseOpamSwitch(opamSwitchText({ "mirage-crypto": "1.1.0", ocaml: "4.14.2" })), [
      { name: "mirage-crypto", version: "1.1.0" },
      { name: "ocaml", version: "4.14.2" },
    ]);
    assert.deepEqual(parseOpamSwitch('installed: ["a.1" "b.2.0~beta"]\n'), [
      { name: "a", version: "1" },
      { name: "b", version: "2.0~beta" },
    ]);
    assert.throws(() => parseOpamSwitch("roots: []"), /no 'installed/);
    assert.throws(() => parseOpamSwitch('installed: ["nodot"]'), /not name\.version/);
    assert.deepEqual(renderDiff(diffFromSwitches('installed: ["a.1"]', 'installed: ["a.1"]')), ["no package or environment changes"]);
  });

  test("hostile compare JSON: clear errors, control characters not printed", () => {
    assert.throws(() => diffFromCompare([]), /compare JSON: the reply is not an object/);
    assert.throws(() => diffFromCompare({ opam_diff: { only_in_right: [{ name: 1 }] } }), /only_in_right\[0\]\.name is not a string/);
    const d = diffFromCompare({ opam_diff: { only_in_right: [{ name: "evil\x1b[2J", version: "1" }] } });
    assert.deepEqual(renderDiff(d), ["opam packages added (1):", "  evil?[2J 1"]);
  });
});

describe("fleet file", () => {
  const host = { name: "a", destination: "10.0.0.1", "server-ca": "cacert.pem", ca: "ca.pem", "ca-key": "ca.key", groups: ["web"] };
  test("paths relative to the file, default port, groups", () => {
    const f = parseFleet(
      JSON.stringify({ builder: "http://b.example/", hosts: [host, { ...host, name: "b", destination: "h.example:2000", groups: [] }] }),
      "/etc/fleet/fleet.json",
    );
    assert.equal(f.builder, "http://b.example");
    assert.deepEqual(f.hosts[0], {
      name: "a",
      host: "10.0.0.1",
      port: 1025,
      serverCa: "/etc/fleet/cacert.pem",
      ca: "/etc/fleet/ca.pem",
      caKey: "/etc/fleet/ca.key",
      keyType: "ed25519",
      groups: ["web"],
    });
    assert.equal(f.hosts[1]!.port, 2000);
    assert.deepEqual(
      selectHosts(f, "web").map((h) => h.name),
      ["a"],
    );
    assert.throws(() => selectHosts(f, "db"), /no host in group "db"/);
  });

  test("strict: typos, duplicates, bad values are errors naming the host", () => {
    const bad: [unknown, RegExp][] = [
      ["[", /not JSON/],
      [{ hosts: [{ ...host, desitnation: "x" }] }, /hosts\[0\]: unknown key "desitnation"/],
      [{ hosts: [host, host] }, /host name "a" appears twice/],
      [{ hosts: [{ ...host, destination: "h.example:99999" }] }, /\(a\): destination: failed to parse port/],
      [{ hosts: [{ ...host, ca: "" }] }, /"ca" must be a non-empty string/],
      [{ hosts: [{ ...host, groups: "web" }] }, /"groups" must be a list of names/],
      [{ hosts: {} }, /"hosts" must be a list/],
      [{ hosts: [], extra: 1 }, /unknown key "extra"/],
    ];
    for (const [doc, re] of bad)
      assert.throws(
        () => parseFleet(typeof doc === "string" ? doc : JSON.stringify(doc), "/x/f.json"),
        (e: Error) => e instanceof FleetFileError && re.test(e.message),
        String(re),
      );
  });

  test("bounded concurrency keeps the order and the bound", async () => {
    let active = 0;
    let peak = 0;
    const r = await bounded([...Array(20).keys()], 4, async (x) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((res) => setTimeout(res, 5));
      active--;
      return x * 2;
    });
    assert.deepEqual(
      r,
      [...Array(20).keys()].map((x) => x * 2),
    );
    assert.equal(peak, 4);
  });
});

describe("health check", () => {
  const digest = new Uint8Array(32).fill(7);
  const info = (started: Date) => ({
    typ: "solo5" as const,
    failBehaviour: { kind: "quit" as const },
    cpuids: [0],
    memory: 32,
    digest,
    blockDevices: [],
    bridges: [],
    started,
    numcpus: 1,
  });
  /** A host whose info answers come from `next` (one call per info). */
  const target = (next: () => ReturnType<typeof info> | null): Target => ({
    label: "t",
    send: async () => {
      const i = next();
      return { kind: "unikernel-info", unikernels: i ? [{ name: parseName("hello"), info: i }] : [] };
    },
  });
  const d = "07".repeat(32);
  const steady = target(() => info(new Date(1000)));

  test("running the whole time, with an HTTP URL answering 2xx / not, a TCP port", async () => {
    let status = 503;
    const s = await serve((_q, res) => {
      res.writeHead(status);
      res.end();
    });
    try {
      assert.deepEqual(await checkHealth(steady, parseName("hello"), d, { seconds: 0.3, url: `${s.url}/health` }), {
        ok: false,
        reason: `within 0.3 s: ${s.url}/health answered HTTP 503`,
      });
      status = 204;
      assert.deepEqual(await checkHealth(steady, parseName("hello"), d, { seconds: 0.3, url: `${s.url}/health` }), { ok: true });
      const port = Number(new URL(s.url).port);
      assert.deepEqual(await checkHealth(steady, parseName("hello"), d, { seconds: 0.3, tcp: { host: "127.0.0.1", port } }), { ok: true });
    } finally {
      await s.close();
    }
    const closed = await checkHealth(steady, parseName("hello"), d, { seconds: 0.3, tcp: { host: "127.0.0.1", port: 1 } });
    assert.ok(!closed.ok && /127\.0\.0\.1:1: ECONNREFUSED/.test(closed.reason));
  });

  test("gone, restarted, or another image: failed at once", async () => {
    assert.deepEqual(
      await checkHealth(
        target(() => null),
        parseName("hello"),
        d,
        { seconds: 5 },
      ),
      { ok: false, reason: "the unikernel is no longer running" },
    );
    let n = 0;
    const restarted = target(() => info(new Date(n++ === 0 ? 1000 : 2000)));
    assert.deepEqual(await checkHealth(restarted, parseName("hello"), d, { seconds: 5 }), { ok: false, reason: "the unikernel was restarted (it exited)" });
    const other = await checkHealth(steady, parseName("hello"), "00".repeat(32), { seconds: 5 });
    assert.ok(!other.ok && /runs another image/.test(other.reason));
  });
});
