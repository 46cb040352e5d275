// Fleet management end to end: three hosts (hostd + console daemon in their own network
// namespaces and tmpdirs with the stand-in tender, `dromedary endpoint` on its own loopback
// port each), the builder-web stand-in on loopback, and every client step a `dromedary`
// process: fleet info (outdated and up to date, an unreachable host), the package diff,
// --dryrun changing nothing, a manifest mismatch refused, a build failing its health check
// rolled back and stopping the rollout, a good build rolled out, and a manual rollback.
// Skipped without root/netns.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { startBuilder } from "../support/builder.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { withHostd, type Env } from "../support/hostd.js";
import { CLI, dromedary, ok, startEndpoint, type RunningEndpoint } from "../e2e/support.js";

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

const image = (tag: string, devices: { name: string; type: "net" | "block" }[] = []): Uint8Array =>
  buildSolo5Elf({ target: "hvt", devices, text: new TextEncoder().encode(`\xf4${tag}`) }).bytes;
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

interface Host {
  readonly name: string;
  readonly env: Env;
  readonly ep: RunningEndpoint;
}

/** `n` hosts, each hostd in its own namespace with its own endpoint; all torn down afterwards. */
async function withHosts<T>(dir: string, names: string[], fn: (hosts: Host[]) => Promise<T>, acc: Host[] = []): Promise<T> {
  if (names.length === 0) return fn(acc);
  return withNetns((ns) =>
    withHostd(ns, async (env) => {
      const ep = await startEndpoint(dir, env.tmpdir);
      try {
        return await withHosts(dir, names.slice(1), fn, [...acc, { name: names[0]!, env, ep }]);
      } finally {
        ep.stop();
      }
    }),
  );
}

interface InfoJson {
  hosts: {
    host: string;
    reachable: boolean;
    error?: string;
    unikernels: { name: string; digest: string; outdated: boolean | null; build: { build: string } | null; latest: string | null }[];
  }[];
}

describe("fleet info and fleet update against three hosts", () => {
  it("what runs where, outdated, diff, dryrun, manifest, health-check rollback, rollout, rollback", async (t) => {
    if (skip !== false) return t.skip(skip);
    const dir = mkdtempSync(join(tmpdir(), "dromedary-fleet-"));
    const builder = await startBuilder();
    try {
      // the builds: hello 1 on a and b, web 1 (latest) on c
      const hello1 = image("hello-1");
      const web1 = image("web-1");
      const pkgs1 = { mirage: "4.5.0", tcpip: "8.0.0", "mirage-crypto": "1.1.0", hello: "1.0.0" };
      const u1 = builder.addBuild("hello", { image: hello1, packages: pkgs1, env: { PATH: "/usr/bin" }, system: { gcc: "12.2" } });
      builder.addBuild("web", { image: web1, packages: { mirage: "4.5.0", web: "2.0" } });
      writeFileSync(join(dir, "hello-1.hvt"), hello1);
      writeFileSync(join(dir, "web-1.hvt"), web1);

      await ok(dir, ["generate", "ca", "db"]);
      await ok(dir, ["add-policy", "user", "16", "--mem", "1024", "--cpu", "0", "--csr"]);
      await ok(dir, ["sign", "cacert.pem", "db", "ca.key", "user.req"]);

      await withHosts(dir, ["a", "b", "c"], async (hosts) => {
        const [a, b, c] = hosts as [Host, Host, Host];
        const creds = ["--ca=user.pem", "--ca-key=user.key", "--server-ca=cacert.pem"];
        for (const [h, name, file] of [
          [a, "hello", "hello-1.hvt"],
          [b, "hello", "hello-1.hvt"],
          [c, "web", "web-1.hvt"],
        ] as const) {
          assert.match(await ok(dir, ["create", name, file, "--destination", h.ep.dest, ...creds, "--arg=--standin-run"]), /success: created unikernel/);
        }
        const host = (h: Host, groups: string[]) => ({
          name: h.name,
          destination: h.ep.dest,
          "server-ca": "cacert.pem",
          ca: "user.pem",
          "ca-key": "user.key",
          groups,
        });
        writeFileSync(
          join(dir, "fleet.json"),
          JSON.stringify({
            builder: builder.url,
            hosts: [
              host(a, ["hello"]),
              host(b, ["hello"]),
              host(c, ["web"]),
              { name: "gone", destination: "127.0.0.1:1", "server-ca": "cacert.pem", ca: "user.pem", "ca-key": "user.key", groups: ["old"] },
            ],
          }),
        );
        const stateDir = join(dir, "state");
        const fleet = (...args: string[]) => dromedary(dir, ["fleet", ...args, "--fleet", "fleet.json", "--state-dir", stateDir]);
        const infoJson = async (): Promise<InfoJson> => JSON.parse((await fleet("info", "--json")).stdout) as InfoJson;
        const running = async (): Promise<Record<string, string>> => {
          const out: Record<string, string> = {};
          for (const hr of (await infoJson()).hosts) for (const u of hr.unikernels) out[`${hr.host}/${u.name.replace(/^:/, "")}`] = u.digest;
          return out;
        };

        await t.test("fleet info: one table, up to date everywhere, the unreachable host with its reason", async () => {
          const r = await fleet("info");
          assert.equal(r.code, 122, r.stderr); // not every host answered
          const lines = r.stdout.trimEnd().split("\n");
          assert.match(lines[0]!, /^HOST\s+UNIKERNEL\s+DIGEST\s+MEMORY\s+CPUS\s+UPTIME\s+OUTDATED$/);
          const row = (h: string) => lines.find((l) => l.startsWith(`${h} `))!;
          assert.match(row("a"), new RegExp(`^a\\s+:?hello\\s+${sha(hello1).slice(0, 12)}\\s+32 MB\\s+0\\s+\\S+\\s+no$`));
          assert.match(row("c"), new RegExp(`^c\\s+:?web\\s+${sha(web1).slice(0, 12)}\\s+32 MB\\s+0\\s+\\S+\\s+no$`));
          assert.match(r.stdout, /^gone \(127\.0\.0\.1:1\): unreachable: .*ECONNREFUSED/m);
        });

        // a newer hello whose manifest wants a network device the running one does not have
        const bad = image("hello-2-bad", [{ name: "service", type: "net" }]);
        const u2 = builder.addBuild("hello", { image: bad, packages: { ...pkgs1, hello: "1.1.0" } });

        await t.test("outdated detected (json), the group selection", async () => {
          const j = await infoJson();
          const by = Object.fromEntries(j.hosts.flatMap((h) => h.unikernels.map((u) => [`${h.host}/${u.name.replace(/^:/, "")}`, u])));
          assert.equal(by["a/hello"]!.outdated, true);
          assert.equal(by["a/hello"]!.build!.build, u1);
          assert.equal(by["a/hello"]!.latest, u2);
          assert.equal(by["b/hello"]!.outdated, true);
          assert.equal(by["c/web"]!.outdated, false);
          const gone = j.hosts.find((h) => h.host === "gone")!;
          assert.equal(gone.reachable, false);
          assert.match(gone.error!, /ECONNREFUSED/);
          const web = await fleet("info", "--group", "web");
          assert.equal(web.code, 0, web.stderr);
          assert.deepEqual(
            web.stdout
              .trimEnd()
              .split("\n")
              .slice(1)
              .map((l) => l.split(/\s+/)[0]),
            ["c"],
          );
        });

        await t.test("a manifest mismatch is refused before anything is touched", async () => {
          const before = await running();
          const r = await fleet("update", "--group", "hello", "--yes", "--health-timeout", "1");
          assert.equal(r.code, 125, r.stdout + r.stderr);
          assert.match(r.stderr, /a: :?hello: manifest failed: specified bridge\(s\) does not match/);
          assert.match(r.stdout, /summary:\n {2}a :?hello: failed \(manifest: .*still the old image\)\)\n {2}b: not-started/);
          assert.deepEqual(await running(), before);
          assert.equal(existsSync(stateDir), false); // nothing kept: nothing was touched
        });

        // a build that boots and dies (the stand-in exits for this image), with a package diff
        const broken = image("hello-3 STANDIN-GUEST-EXIT=3;");
        const pkgs3 = { mirage: "4.6.0", "mirage-crypto": "1.1.0", "dns-client": "7.0.1", hello: "1.2.0" };
        const u3 = builder.addBuild("hello", {
          image: broken,
          packages: pkgs3,
          env: { PATH: "/usr/local/bin:/usr/bin" },
          system: { gcc: "12.3", cmake: "3.25" },
        });

        await t.test("--dryrun prints the package diff and changes nothing", async () => {
          const before = await running();
          builder.requests.length = 0;
          const r = await fleet("update", "--dryrun", "--keep-going");
          assert.equal(r.code, 121, r.stderr); // the unreachable host
          assert.match(r.stdout, /\n {2}gone: failed \(unreachable: /);
          assert.match(r.stdout, new RegExp(`a: :?hello: compare at ${builder.url}/compare/${u1}/${u3}`));
          for (const l of [
            "opam packages added (1):",
            "  dns-client 7.0.1",
            "opam packages removed (1):",
            "  tcpip 8.0.0",
            "opam packages changed (2):",
            "  hello 1.0.0 -> 1.2.0",
            "  mirage 4.5.0 -> 4.6.0",
            "environment variables changed (1):",
            "  PATH /usr/bin -> /usr/local/bin:/usr/bin",
            "system packages added (1):",
            "  cmake 3.25",
            "system packages changed (1):",
            "  gcc 12.2 -> 12.3",
          ]) {
            assert.ok(r.stdout.includes(`a: :hello: ${l}\n`) || r.stdout.includes(`a: hello: ${l}\n`), `missing '${l}' in:\n${r.stdout}`);
          }
          assert.match(r.stdout, /c :?web: up-to-date/);
          assert.deepEqual(await running(), before);
          assert.equal(
            builder.requests.some((q) => q.includes("/main-binary")),
            false,
          );
        });

        await t.test("without the compare JSON the diff comes from both opam-switch files", async () => {
          builder.knobs.compareJson = false;
          try {
            const r = await fleet("update", "--dryrun", "--group", "hello");
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stdout, /a: :?hello: opam packages changed \(2\):\na: :?hello: {3}hello 1\.0\.0 -> 1\.2\.0/);
            assert.doesNotMatch(r.stdout, /system packages/);
          } finally {
            builder.knobs.compareJson = true;
          }
        });

        await t.test("a build failing its health check is rolled back and stops the rollout", async () => {
          // a long timeout costs nothing here: the check fails as soon as the unikernel is gone (under load
          // hostd may take seconds to notice the exit)
          const r = await fleet("update", "--group", "hello", "--yes", "--health-timeout", "30");
          assert.equal(r.code, 117, r.stdout + r.stderr);
          assert.match(r.stdout, /a: :?hello: health check failed: the unikernel is no longer running; rolling back/);
          assert.match(r.stdout, new RegExp(`a: :?hello: rolled back to the previous image ${sha(hello1)}`));
          assert.match(r.stdout, /summary:\n {2}a :?hello: rolled-back .*\n {2}b: not-started/);
          const now = await running();
          assert.equal(now["a/hello"], sha(hello1));
          assert.equal(now["b/hello"], sha(hello1)); // never touched
          // the previous image is kept, one per unikernel
          assert.deepEqual(readdirSync(stateDir), ["a"]);
        });

        const good = image("hello-4");
        const u4 = builder.addBuild("hello", { image: good, packages: { ...pkgs3, hello: "1.3.0" } });

        await t.test("a good build is rolled out host by host with the health check", async () => {
          const r = await fleet("update", "--yes", "--health-timeout", "1", "--keep-going");
          assert.equal(r.code, 121, r.stdout + r.stderr); // the unreachable host; the rest went on
          assert.match(r.stdout, /a: :?hello: health check passed/);
          assert.match(
            r.stdout,
            new RegExp(
              `summary:\\n {2}a :?hello: updated \\(${u1} -> ${u4}\\)\\n {2}b :?hello: updated \\(${u1} -> ${u4}\\)\\n {2}c :?web: up-to-date\\n {2}gone: failed \\(unreachable: `,
            ),
          );
          const j = await infoJson();
          for (const h of j.hosts.filter((x) => x.reachable)) for (const u of h.unikernels) assert.equal(u.outdated, false, `${h.host} ${u.name}`);
          assert.equal((await running())["a/hello"], sha(good));
        });

        await t.test("rollback NAME puts the previous image back, once", async () => {
          const r = await dromedary(dir, ["rollback", "hello", "--fleet", "fleet.json", "--host", "b", "--state-dir", stateDir]);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.match(r.stdout, new RegExp(`rolled back to the previous image ${sha(hello1)}`));
          const now = await running();
          assert.equal(now["b/hello"], sha(hello1));
          assert.equal(now["a/hello"], sha(good));
          const again = await dromedary(dir, ["rollback", "hello", "--fleet", "fleet.json", "--host", "b", "--state-dir", stateDir]);
          assert.equal(again.code, 0);
          assert.match(again.stdout, /already running the previous image/);
        });

        await t.test("an interrupted rollout finishes the host in progress and stops: each host on its old or new image", async () => {
          const five = image("hello-5");
          builder.addBuild("hello", { image: five, packages: { ...pkgs3, hello: "1.4.0" } });
          const p = spawn(
            process.execPath,
            [CLI, "fleet", "update", "--fleet", "fleet.json", "--state-dir", stateDir, "--group", "hello", "--yes", "--health-timeout", "3"],
            {
              cwd: dir,
              stdio: ["ignore", "pipe", "pipe"],
            },
          );
          let out = "";
          let err = "";
          let interrupted = false;
          p.stderr.on("data", (d: Buffer) => (err += d.toString()));
          const code = await new Promise<number | null>((resolve) => {
            p.stdout.on("data", (d: Buffer) => {
              out += d.toString();
              if (!interrupted && /a: :?hello: health check: 3 s/.test(out)) {
                interrupted = true; // once: a second Ctrl-C quits at once
                p.kill("SIGINT");
              }
            });
            p.on("close", (c) => resolve(c));
          });
          assert.equal(code, 0, out + err);
          assert.match(err, /interrupted: finishing the update in progress/);
          assert.match(out, /summary:\n {2}a :?hello: updated .*\n {2}b: not-started/);
          const now = await running();
          assert.equal(now["a/hello"], sha(five));
          assert.equal(now["b/hello"], sha(hello1));
        });
      });
    } finally {
      await builder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
