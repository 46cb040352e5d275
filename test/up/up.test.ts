// `dromedary up` as a process: the daemons started in order (each once the one before it
// accepts connections), one merged log in the one style, a unikernel run by its hostd (the
// stand-in tender in --dbdir), clean shutdown in reverse order on SIGTERM, a daemon that dies
// stops the others, a hostd that cannot start stops the console daemon; nothing left behind.
// With --user, hostd runs as root in the user's group and the other daemons as the user.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseLine, type ParsedLine } from "../../src/core/log.js";
import { plan } from "../../src/up/plan.js";
import { lookupUser, parsePasswd, searchable, type RunAs } from "../../src/up/user.js";
import { CLI, watchLines, type Watched } from "../support/cli.js";
import { netnsAvailable, withNetns, type Netns } from "../support/netns.js";
import { installStandin } from "../support/standin.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { argv, config, pidsWith, request, show, successOf, waitFor } from "../support/hostd.js";

const FIXTURES = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../fixtures/certs");
const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;

type Up = Watched;

function startUp(ns: Netns, args: string[]): Up {
  return watchLines(ns.spawn("node", [CLI, "up", ...args], { stdio: ["ignore", "pipe", "pipe"] }));
}

/** every line of the merged log is one of ours; parsed */
function parsed(up: Up): ParsedLine[] {
  return up.lines.map((l) => {
    const p = parseLine(l);
    assert.ok(p, `not a log line: ${l}\n${up.lines.join("\n")}`);
    return p;
  });
}

const upSays = (up: Up, re: RegExp): boolean =>
  up.lines.some((l) => {
    const p = parseLine(l);
    return p !== null && p.daemon === "up" && re.test(p.msg);
  });

/** index of up's first message matching re (asserted to exist) */
function at(ps: ParsedLine[], re: RegExp, daemon = "up"): number {
  const i = ps.findIndex((p) => p.daemon === daemon && re.test(p.msg));
  assert.ok(i >= 0, `no ${daemon} line matching ${re}:\n${ps.map((p) => `${p.daemon}: ${p.msg}`).join("\n")}`);
  return i;
}

const accepts = (path: string): Promise<boolean> =>
  new Promise((res) => {
    const s = createConnection({ path });
    s.once("connect", () => (s.destroy(), res(true)));
    s.once("error", () => res(false));
  });

async function withDirs<T>(fn: (base: string, run: string, db: string) => Promise<T>): Promise<T> {
  const base = await mkdtemp(join(tmpdir(), "dromedary-up-"));
  try {
    return await fn(base, join(base, "run"), join(base, "db"));
  } finally {
    for (const pid of await pidsWith(base)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await rm(base, { recursive: true, force: true });
  }
}

/** The first directory above `file` that `u` cannot enter, or null. */
function closedAncestor(file: string, u: RunAs): string | null {
  for (let d = dirname(file); ; d = dirname(d)) {
    if (!searchable(d, u)) return d;
    if (d === dirname(d)) return null;
  }
}

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  if (!a.ok) skip = a.reason;
});

describe("dromedary up", () => {
  it("--user: a passwd line gives the name, uid and primary gid; a user that does not exist is null", () => {
    assert.deepEqual(parsePasswd("dromedary:x:998:997:Dromedary unikernel daemons:/:/usr/sbin/nologin\n"), { name: "dromedary", uid: 998, gid: 997 });
    assert.equal(parsePasswd("dromedary:x:998"), null);
    assert.equal(parsePasswd("dromedary:x:-1:997:::"), null);
    assert.deepEqual(lookupUser("root"), { name: "root", uid: 0, gid: 0 });
    assert.equal(lookupUser("no-such-user-here"), null);
    assert.equal(lookupUser("../etc"), null);
  });

  it("--user: an unknown user, or up not run as root, is a usage error before anything starts", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("needs root");
    const nobody = lookupUser("nobody");
    if (nobody === null) return t.skip("no nobody user");
    if (closedAncestor(CLI, nobody) !== null) return t.skip("nobody cannot reach the code");
    await withDirs(async (base, run, db) => {
      await chmod(base, 0o755);
      const unknown = watchLines(
        spawn(process.execPath, [CLI, "up", "--user", "no-such-user-here", "--tmpdir", run, "--dbdir", db], { stdio: ["ignore", "ignore", "pipe"] }),
      );
      assert.equal(await unknown.exit, 124);
      assert.deepEqual(unknown.lines, ["dromedary: --user no-such-user-here: no such user"]);
      const notRoot = watchLines(
        spawn(process.execPath, [CLI, "up", "--user", "nobody", "--tmpdir", run, "--dbdir", db], {
          stdio: ["ignore", "ignore", "pipe"],
          uid: nobody.uid,
          gid: nobody.gid,
        }),
      );
      assert.equal(await notRoot.exit, 124);
      assert.deepEqual(notRoot.lines, ["dromedary: --user needs up to run as root (only root can start daemons as another user)"]);
      assert.equal(existsSync(run), false, "nothing was made");
    });
  });

  it("plan: console-daemon, hostd, stats-daemon, endpoint; each daemon logs at least info", () => {
    const p = plan({
      tmpdir: "/r",
      dbdir: "/d",
      stats: true,
      verbosity: "warning",
      format: "json",
      endpoint: { cacert: "c", cert: "s", key: "k", ip: "::", port: 1025 },
    });
    assert.deepEqual(
      p.map((c) => c.label),
      ["console-daemon", "hostd", "stats-daemon", "endpoint"],
    );
    assert.deepEqual(p[0]!.ready, { kind: "socket", path: "/r/util/console.sock" });
    assert.deepEqual(p[1]!.args.slice(0, 5), ["hostd", "--tmpdir", "/r", "--dbdir", "/d"]);
    for (const c of p) assert.deepEqual(c.args.slice(-4), ["--verbosity", "info", "--log-format", "json"]);
    // only hostd keeps root (--user)
    assert.deepEqual(
      p.filter((c) => c.privileged).map((c) => c.label),
      ["hostd"],
    );
    assert.deepEqual(
      plan({ tmpdir: "/r", dbdir: "/d", stats: false, verbosity: "debug", format: "text" }).map((c) => c.label),
      ["console-daemon", "hostd"],
    );
  });

  it("runs the host: in order, one merged log, a unikernel, SIGTERM stops all in reverse order and leaves nothing", async (t) => {
    if (skip !== false) return t.skip(skip);
    await withNetns((ns) =>
      withDirs(async (base, run, db) => {
        await installStandin(db, ["solo5-hvt", "solo5-spt"]); // dbdir is created by up; this makes it first
        const f = (n: string): string => join(FIXTURES, n);
        const port = randomInt(20000, 60000);
        const up = startUp(ns, [
          "--tmpdir",
          run,
          "--dbdir",
          db,
          "--cacert",
          f("cacert.pem"),
          "--cert",
          f("server.pem"),
          "--key",
          f("server.key"),
          "--ip",
          "127.0.0.1",
          "--port",
          String(port),
        ]);
        await waitFor(
          "up to be running",
          async () => {
            if (up.child.exitCode !== null) throw new Error(`up exited ${up.child.exitCode}:\n${up.lines.join("\n")}`);
            return upSays(
              up,
              /^running: console-daemon \(pid \d+\), hostd \(pid \d+\), stats-daemon \(pid \d+\), endpoint \(pid \d+\); Ctrl-C or SIGTERM stops them$/,
            );
          },
          60_000,
        );
        const util = join(run, "util");
        for (const s of ["console.sock", "vmmd.sock", "stat.sock"]) assert.ok(await accepts(join(util, s)), s);
        // the host works: a unikernel, its console output reaches the console daemon
        const sock = join(util, "vmmd.sock");
        const c = config(HELLO, { argv: argv("--standin-lines=2", "--standin-run") });
        assert.equal(show(await request(sock, ":hello", { kind: "unikernel-create", config: c })), "success: created unikernel");
        const info = successOf(await request(sock, ":", { kind: "unikernel-info" }), "unikernel-info");
        assert.deepEqual(
          info.unikernels.map((u) => u.name.label),
          ["hello"],
        );
        await waitFor("the stats daemon to get the unikernel", async () =>
          up.lines.some((l) => parseLine(l)?.daemon === "stats-daemon" && /adding :hello \d+/.test(l)),
        );

        up.child.kill("SIGTERM");
        assert.equal(await up.exit, 0, up.lines.join("\n"));
        if (process.env.DROMEDARY_TEST_SHOW_LOG) console.log(up.lines.join("\n"));
        const ps = parsed(up);
        // started in order, each once the one before was ready
        const order = ["console-daemon", "hostd", "stats-daemon", "endpoint"];
        let last = -1;
        for (const d of order) {
          const started = at(ps, new RegExp(`^started ${d} \\(pid \\d+\\)`));
          const ready = at(ps, new RegExp(`^${d} is ready$`));
          assert.ok(last < started && started < ready, `${d}: ${last} < ${started} < ${ready}`);
          last = ready;
        }
        at(ps, /^listening on .*console\.sock$/, "console-daemon");
        assert.ok(at(ps, /^listening on 127\.0\.0\.1:\d+$/, "endpoint") < at(ps, /^endpoint is ready$/));
        assert.ok(at(ps, /^created :hello: /, "hostd") > 0);
        // stopped in reverse order, each waited for
        const stopping = at(ps, /^stopping \(SIGTERM\)$/);
        let prev = stopping;
        for (const d of [...order].reverse()) {
          const i = at(ps, new RegExp(`^stopped ${d} \\((exited with status 0|was killed by SIGTERM)\\)$`));
          assert.ok(i > prev, `${d} stopped after the one before it`);
          prev = i;
        }
        assert.ok(at(ps, /^shut down$/, "hostd") < at(ps, /^stopped hostd/));
        assert.equal(ps.at(-1)!.msg, "all stopped");
        assert.deepEqual(new Set(ps.map((p) => p.daemon)), new Set(["up", ...order]));
        assert.ok(!ps.some((p) => p.level === "error"), up.lines.join("\n"));
        // nothing left: sockets, daemons, the tender
        assert.deepEqual(
          (await readdir(util)).filter((n) => n.endsWith(".sock")),
          [],
        );
        assert.deepEqual(await pidsWith(base), []);
      }),
    );
  });

  it("a daemon that dies is reported and the others are stopped (exit 1); its socket is removed", async (t) => {
    if (skip !== false) return t.skip(skip);
    await withNetns((ns) =>
      withDirs(async (_base, run, db) => {
        await installStandin(db);
        const up = startUp(ns, ["--tmpdir", run, "--dbdir", db, "--log-format", "json"]);
        await waitFor(
          "up to be running",
          async () => {
            if (up.child.exitCode !== null) throw new Error(`up exited ${up.child.exitCode}:\n${up.lines.join("\n")}`);
            return upSays(up, /^running: .*Ctrl-C or SIGTERM stops them$/);
          },
          60_000,
        );
        for (const l of up.lines) assert.ok(l.startsWith("{"), l);
        const hostdPid = Number(/^started hostd \(pid (\d+)\)/.exec(parsed(up).find((p) => p.daemon === "up" && p.msg.startsWith("started hostd"))!.msg)![1]);
        process.kill(hostdPid, "SIGKILL");
        assert.equal(await up.exit, 1);
        const ps = parsed(up);
        const died = at(ps, new RegExp(`^hostd \\(pid ${hostdPid}\\) was killed by SIGKILL: stopping the others$`));
        assert.equal(ps[died]!.level, "error");
        assert.ok(died < at(ps, /^stopped stats-daemon/) && at(ps, /^stopped stats-daemon/) < at(ps, /^stopped console-daemon/));
        at(ps, /^removed .*vmmd\.sock \(left by hostd\)$/);
        assert.equal(ps.at(-1)!.msg, "all stopped, not cleanly (see above)");
        assert.deepEqual(
          (await readdir(join(run, "util"))).filter((n) => n.endsWith(".sock")),
          [],
        );
      }),
    );
  });

  it("a hostd that cannot start: its error in the log, the console daemon stopped, exit 1", async (t) => {
    if (skip !== false) return t.skip(skip);
    await withNetns((ns) =>
      withDirs(async (_base, run, db) => {
        await mkdir(db);
        await writeFile(join(db, "state"), "not a state file");
        const up = startUp(ns, ["--tmpdir", run, "--dbdir", db, "--no-stats"]);
        assert.equal(await up.exit, 1);
        const ps = parsed(up);
        const bail = ps.findIndex((p) => p.daemon === "hostd" && p.level === "error" && /bailing out: couldn't parse/.test(p.msg));
        assert.ok(bail >= 0, up.lines.join("\n"));
        assert.ok(bail < at(ps, /^stopped console-daemon \(exited with status 0\)$/));
        assert.ok(!ps.some((p) => /stats-daemon/.test(p.msg)));
        assert.equal(existsSync(join(run, "util", "console.sock")), false);
      }),
    );
  });

  it("refuses to start over running daemons, and an endpoint without all three files", async (t) => {
    if (skip !== false) return t.skip(skip);
    await withNetns((ns) =>
      withDirs(async (_base, run, db) => {
        const first = startUp(ns, ["--tmpdir", run, "--dbdir", db, "--no-stats"]);
        try {
          await installStandin(db);
          await waitFor("up to be running", async () => upSays(first, /Ctrl-C or SIGTERM stops them$/), 60_000);
          const second = startUp(ns, ["--tmpdir", run, "--dbdir", db]);
          assert.equal(await second.exit, 1);
          assert.match(second.lines.join("\n"), /console\.sock accepts connections: the daemons of this --tmpdir run already/);
          assert.ok(await accepts(join(run, "util", "console.sock")), "the first one's sockets are untouched");
          // with --user, the running daemons' directories are not made another group's either
          if (lookupUser("nobody") !== null) {
            const before = await stat(join(run, "fifo"));
            const third = startUp(ns, ["--user", "nobody", "--tmpdir", run, "--dbdir", db]);
            assert.equal(await third.exit, 1, third.lines.join("\n"));
            const after = await stat(join(run, "fifo"));
            assert.deepEqual([after.gid, after.mode], [before.gid, before.mode]);
          }
        } finally {
          first.child.kill("SIGINT");
          assert.equal(await first.exit, 0, first.lines.join("\n"));
        }
        const half = spawn(process.execPath, [CLI, "up", "--tmpdir", run, "--dbdir", db, "--cacert", join(FIXTURES, "cacert.pem")], {
          stdio: ["ignore", "ignore", "pipe"],
        });
        let err = "";
        half.stderr!.on("data", (d: Buffer) => (err += d.toString()));
        const code = await new Promise((r) => half.once("exit", r));
        assert.equal(code, 124);
        assert.match(err, /the endpoint needs all three of --cacert, --cert and --key/);
      }),
    );
  });

  it("--user: hostd as root in the user's group, the others as the user; sockets and FIFOs the group's; the host works through the endpoint", async (t) => {
    if (skip !== false) return t.skip(skip);
    const nobody = lookupUser("nobody");
    if (nobody === null) return t.skip("no nobody user");
    // nobody has to reach the code it runs and the temp dir
    const blocked = [CLI, join(tmpdir(), "x")].map((f) => closedAncestor(f, nobody)).find((d) => d !== null);
    if (blocked !== undefined) return t.skip(`nobody cannot enter ${blocked}`);
    await withNetns((ns) =>
      withDirs(async (base, run, db) => {
        await chmod(base, 0o755); // mkdtemp's 0700 would keep nobody out of --tmpdir
        await installStandin(db, ["solo5-hvt", "solo5-spt"]);
        // the endpoint's files, readable by the user it runs as
        for (const n of ["cacert.pem", "server.pem", "server.key"]) {
          await copyFile(join(FIXTURES, n), join(base, n));
          await chmod(join(base, n), 0o644);
        }
        const port = randomInt(20000, 60000);
        const up = startUp(ns, [
          ...["--user", "nobody", "--tmpdir", run, "--dbdir", db],
          ...["--cacert", join(base, "cacert.pem"), "--cert", join(base, "server.pem"), "--key", join(base, "server.key")],
          ...["--ip", "127.0.0.1", "--port", String(port)],
        ]);
        try {
          await waitFor(
            "up to be running",
            async () => {
              if (up.child.exitCode !== null) throw new Error(`up exited ${up.child.exitCode}:\n${up.lines.join("\n")}`);
              return upSays(up, /Ctrl-C or SIGTERM stops them$/);
            },
            60_000,
          );
          assert.ok(
            upSays(up, new RegExp(`^hostd runs as root in group ${nobody.gid}, the other daemons as nobody \\(uid ${nobody.uid}\\)$`)),
            up.lines.join("\n"),
          );
          // who runs as whom (real, effective, saved, file system ids)
          const ids = async (pid: number): Promise<{ uid: string; gid: string }> => {
            const st = await readFile(`/proc/${pid}/status`, "utf8");
            return { uid: /^Uid:\s+(.*)$/m.exec(st)![1]!.trim(), gid: /^Gid:\s+(.*)$/m.exec(st)![1]!.trim() };
          };
          const all = (n: number): string => [n, n, n, n].join("\t");
          for (const d of ["console-daemon", "hostd", "stats-daemon", "endpoint"]) {
            const m = up.lines.map((l) => parseLine(l)).find((p) => p?.daemon === "up" && p.msg.startsWith(`started ${d} (pid `));
            const pid = Number(/\(pid (\d+)\)/.exec(m!.msg)![1]);
            assert.deepEqual(await ids(pid), { uid: all(d === "hostd" ? 0 : nobody.uid), gid: all(nobody.gid) }, d);
          }
          // the runtime directories and hostd's socket are the group's
          const util = join(run, "util");
          for (const dir of [util, join(run, "fifo")]) {
            const st = await stat(dir);
            assert.equal(st.gid, nobody.gid, dir);
            assert.equal(st.mode & 0o7777, 0o2770, dir);
          }
          const vmmd = await stat(join(util, "vmmd.sock"));
          assert.equal(vmmd.gid, nobody.gid);
          assert.equal(vmmd.mode & 0o060, 0o060, "the group may connect to hostd");
          // a unikernel: the console daemon (nobody) opened the FIFO hostd (root) made, or the create would fail
          const sock = join(util, "vmmd.sock");
          const c = config(HELLO, { argv: argv("--standin-lines=2", "--standin-run") });
          assert.equal(show(await request(sock, ":hello", { kind: "unikernel-create", config: c })), "success: created unikernel");
          const fifos = await readdir(join(run, "fifo"));
          assert.ok(
            fifos.some((f) => f.includes("hello")),
            fifos.join(" "),
          );
          for (const f of fifos) assert.equal((await stat(join(run, "fifo", f))).gid, nobody.gid, f);
          // the endpoint (nobody) reaches hostd: info through TLS
          const client = ns.spawn(
            "node",
            [
              CLI,
              "info",
              ...["--destination", `127.0.0.1:${port}`, "--ca", join(FIXTURES, "cacert.pem"), "--ca-key", join(FIXTURES, "ca.key")],
              ...["--server-ca", join(FIXTURES, "cacert.pem")],
            ],
            { stdio: ["ignore", "pipe", "pipe"] },
          );
          const seen = watchLines(client);
          assert.equal(await seen.exit, 0, seen.lines.join("\n"));
          assert.match(seen.lines.join("\n"), /:hello/);
        } finally {
          up.child.kill("SIGTERM");
        }
        assert.equal(await up.exit, 0, up.lines.join("\n"));
        assert.ok(!parsed(up).some((p) => p.level === "error"), up.lines.join("\n"));
        assert.deepEqual(
          (await readdir(join(run, "util"))).filter((n) => n.endsWith(".sock")),
          [],
        );
      }),
    );
  });
});
