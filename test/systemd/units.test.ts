// The systemd units (packaging/systemd/) and `dromedary install-units`: what the plan decides
// (pure), what the command writes and refuses to overwrite, the privilege split of the units,
// and systemd's own checks of the written files: `systemd-analyze verify` (and `security`),
// `systemd-sysusers` into a scratch root. Those need systemd's tools (Debian's systemd
// package; .ci/run installs it); without them the tests that use them are skipped, saying why.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runCli } from "../support/cli.js";
import { execCommand, planFiles, renderUnit, TEMPLATE_BIN, untouchedSinceWritten, withHeader } from "../../src/systemd/units.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const TEMPLATES = join(ROOT, "packaging", "systemd");
/** A real executable for ExecStart= (verify checks that it exists). */
const BIN = join(ROOT, "bin", "dromedary.cjs");

function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}
const ANALYZE = which("systemd-analyze");
const SYSUSERS = which("systemd-sysusers");
const NO_ANALYZE = ANALYZE === null ? "systemd-analyze not found (Debian package systemd; .ci/run installs it)" : false;

/** The [Section] Key=value lines of a unit, later values appended (as systemd reads lists). */
function parseUnit(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const eq = line.indexOf("=");
    const key = `${section}.${line.slice(0, eq)}`;
    m.set(key, [...(m.get(key) ?? []), line.slice(eq + 1)]);
  }
  return m;
}
const one = (u: Map<string, string[]>, key: string): string | undefined => u.get(key)?.at(-1);

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "dromedary-units-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("units.ts (pure)", () => {
  const template = "[Service]\nExecStartPre=/bin/mkdir -p x\nExecStart=/usr/local/bin/dromedary hostd --x\n# ExecStart=/usr/local/bin/dromedary\n";

  test("renderUnit puts the binary into ExecStart= only, and a header with the checksum first", () => {
    const u = renderUnit("a.service", template, "/opt/bin/dromedary", "9.9.9");
    assert.match(u, /^# Written by dromedary install-units 9\.9\.9 from packaging\/systemd\/a\.service\./);
    assert.match(u, /\nExecStart=\/opt\/bin\/dromedary hostd --x\n/);
    assert.match(u, /\nExecStartPre=\/bin\/mkdir -p x\n/);
    assert.match(u, /\n# ExecStart=\/usr\/local\/bin\/dromedary\n$/, "comments stay as they are");
    assert.equal(TEMPLATE_BIN, "/usr/local/bin/dromedary");
  });

  test("a written file is recognised as untouched until its body changes", () => {
    const u = renderUnit("a.service", template, "/opt/bin/dromedary", "1");
    assert.equal(untouchedSinceWritten(u), true);
    assert.equal(untouchedSinceWritten(u.replace("--x", "--y")), false);
    assert.equal(untouchedSinceWritten(`${u}Nice=5\n`), false);
    assert.equal(untouchedSinceWritten(template), false, "no header: not ours");
    assert.equal(untouchedSinceWritten(withHeader("b.sysusers", "u x -\n", "1")), true);
  });

  test("planFiles: create, unchanged, update an untouched file, keep an edited or foreign one (or --force)", () => {
    const v1 = renderUnit("a.service", template, "/a", "1");
    const v2 = renderUnit("a.service", template, "/b", "2");
    const edited = v1.replace("--x", "--x --edited");
    const plan = (existing: string | null, force = false) => planFiles([{ path: "/x/a.service", content: v2, existing }], force)[0]!.action;
    assert.deepEqual(plan(null), { kind: "create" });
    assert.deepEqual(plan(v2), { kind: "unchanged" });
    assert.deepEqual(plan(v1), { kind: "update" });
    assert.deepEqual(plan(edited), { kind: "conflict", why: "changed since install-units wrote it" });
    assert.deepEqual(plan("[Service]\n"), { kind: "conflict", why: "not written by install-units" });
    assert.deepEqual(plan(edited, true), { kind: "overwrite" });
  });

  test("execCommand: node goes first only when systemd's PATH has none", () => {
    assert.equal(execCommand("/usr/bin/dromedary", true, "/opt/node/bin/node"), "/usr/bin/dromedary");
    assert.equal(execCommand("/usr/bin/dromedary", false, "/opt/node/bin/node"), "/opt/node/bin/node /usr/bin/dromedary");
  });
});

describe("the shipped units: albatross' privilege split", () => {
  const units = new Map(
    readdirSync(TEMPLATES)
      .filter((f) => /\.(service|socket)$/.test(f))
      .map((f) => [f, parseUnit(readFileSync(join(TEMPLATES, f), "utf8"))] as const),
  );

  test("a socket and a service per daemon, influx a service", () => {
    assert.deepEqual([...units.keys()].sort(), [
      "dromedary-console.service",
      "dromedary-console.socket",
      "dromedary-endpoint.service",
      "dromedary-endpoint.socket",
      "dromedary-hostd.service",
      "dromedary-hostd.socket",
      "dromedary-influx.service",
      "dromedary-stats.service",
      "dromedary-stats.socket",
    ]);
  });

  test("only hostd runs as root; every other daemon as user and group dromedary", () => {
    for (const [name, u] of units) {
      if (!name.endsWith(".service")) continue;
      const hostd = name === "dromedary-hostd.service";
      assert.equal(one(u, "Service.User"), hostd ? "root" : "dromedary", name);
      assert.equal(one(u, "Service.Group"), "dromedary", name);
      assert.equal(one(u, "Service.NoNewPrivileges"), "yes", name);
      assert.equal(one(u, "Service.ProtectSystem"), "strict", name);
      assert.equal(one(u, "Service.ProtectHome"), "yes", name);
      assert.equal(one(u, "Service.PrivateTmp"), "yes", name);
      // no capabilities at all, except hostd's
      assert.equal(one(u, "Service.CapabilityBoundingSet"), hostd ? "CAP_NET_ADMIN CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER CAP_KILL" : "", name);
      assert.match(one(u, "Service.ExecStart") ?? "", /^\/usr\/local\/bin\/dromedary [a-z-]+ .*--tmpdir=%t\/albatross( |$)/, name);
    }
  });

  test("address families: the console daemon AF_UNIX only, stats AF_NETLINK as albatross-stats", () => {
    const families = (n: string) => one(units.get(n)!, "Service.RestrictAddressFamilies");
    assert.equal(families("dromedary-console.service"), "AF_UNIX");
    assert.equal(families("dromedary-stats.service"), "AF_UNIX AF_NETLINK AF_INET AF_INET6");
    assert.equal(families("dromedary-endpoint.service"), "AF_UNIX AF_INET AF_INET6");
    assert.equal(families("dromedary-influx.service"), "AF_UNIX AF_INET AF_INET6");
    assert.equal(families("dromedary-hostd.service"), "AF_UNIX AF_NETLINK AF_INET AF_INET6");
  });

  test("sockets in /run/albatross/util, group dromedary, mode 0660; systemd socket activation", () => {
    const expect: Record<string, [string, string | undefined]> = {
      "dromedary-console.socket": ["%t/albatross/util/console.sock", "dromedary"],
      "dromedary-hostd.socket": ["%t/albatross/util/vmmd.sock", undefined],
      "dromedary-stats.socket": ["%t/albatross/util/stat.sock", "dromedary"],
    };
    for (const [name, [path, user]] of Object.entries(expect)) {
      const u = units.get(name)!;
      assert.equal(one(u, "Socket.ListenStream"), path, name);
      assert.equal(one(u, "Socket.SocketUser"), user, name);
      assert.equal(one(u, "Socket.SocketGroup"), "dromedary", name);
      assert.equal(one(u, "Socket.SocketMode"), "0660", name);
      const service = units.get(name.replace(".socket", ".service"))!;
      assert.match(one(service, "Service.ExecStart")!, / --systemd-socket-activation /, name);
    }
    assert.equal(one(units.get("dromedary-endpoint.socket")!, "Socket.ListenStream"), "1025");
  });

  test("hostd makes the setgid fifo/ directory (group dromedary) the console daemon reads", () => {
    const pre = units.get("dromedary-hostd.service")!.get("Service.ExecStartPre") ?? [];
    assert.deepEqual(pre, [
      "/bin/mkdir -p %t/albatross/fifo %t/albatross/util",
      "/bin/chgrp -R dromedary %t/albatross/fifo",
      "/bin/chmod 2770 %t/albatross/fifo",
    ]);
  });
});

describe("dromedary install-units", () => {
  test("writes every unit and the sysusers file with this binary, then prints the next steps", async () => {
    const dir = join(tmp, "fresh");
    mkdirSync(dir);
    const r = await runCli(["install-units", "--prefix", dir, "--bin", BIN]);
    assert.equal(r.code, 0, r.stderr);
    const written = readdirSync(dir).sort();
    assert.equal(written.length, 10);
    assert.ok(written.includes("dromedary.conf"));
    for (const f of written) assert.match(r.stdout, new RegExp(`^created ${join(dir, f).replace(/[.]/g, "\\.")}$`, "m"));
    assert.equal(statSync(join(dir, "dromedary-hostd.service")).mode & 0o777, 0o644);
    const hostd = readFileSync(join(dir, "dromedary-hostd.service"), "utf8");
    assert.match(hostd, new RegExp(`\\nExecStart=(\\S+ )?${BIN.replace(/[.]/g, "\\.")} hostd --systemd-socket-activation`));
    assert.match(r.stdout, /systemctl daemon-reload/);
    assert.match(r.stdout, /systemctl enable --now dromedary-console\.socket dromedary-hostd\.socket dromedary-stats\.socket/);
    assert.match(r.stdout, new RegExp(`systemd-sysusers ${join(dir, "dromedary.conf")}`));
  });

  test("--dry-run writes nothing; a second run leaves everything unchanged", async () => {
    const dir = join(tmp, "dry");
    mkdirSync(dir);
    const dry = await runCli(["install-units", "--prefix", dir, "--bin", BIN, "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^would create .*dromedary-hostd\.service$/m);
    assert.deepEqual(readdirSync(dir), []);
    assert.equal((await runCli(["install-units", "--prefix", dir, "--bin", BIN])).code, 0);
    const again = await runCli(["install-units", "--prefix", dir, "--bin", BIN]);
    assert.equal(again.code, 0);
    assert.equal(again.stdout.split("\n").filter((l) => l.startsWith("unchanged ")).length, 10);
  });

  test("an edited unit is kept and nothing is written without --force; an untouched one is updated", async () => {
    const dir = join(tmp, "edited");
    mkdirSync(dir);
    assert.equal((await runCli(["install-units", "--prefix", dir, "--bin", BIN])).code, 0);
    const hostd = join(dir, "dromedary-hostd.service");
    const edited = `${readFileSync(hostd, "utf8")}Nice=-5\n`;
    writeFileSync(hostd, edited);
    rmSync(join(dir, "dromedary-console.socket"));
    const refused = await runCli(["install-units", "--prefix", dir, "--bin", BIN]);
    assert.equal(refused.code, 124);
    assert.match(refused.stderr, /dromedary-hostd\.service: changed since install-units wrote it; kept/);
    assert.equal(readFileSync(hostd, "utf8"), edited);
    assert.equal(existsSync(join(dir, "dromedary-console.socket")), false, "nothing written at all");
    // another binary: the untouched units are updated, the edited one still refused
    const other = join(tmp, "other-dromedary");
    copyFileSync(BIN, other);
    execFileSync("chmod", ["755", other]);
    assert.equal((await runCli(["install-units", "--prefix", dir, "--bin", other])).code, 124);
    const forced = await runCli(["install-units", "--prefix", dir, "--bin", other, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /^overwrote .*dromedary-hostd\.service$/m);
    assert.match(forced.stdout, /^updated .*dromedary-stats\.service$/m);
    assert.match(forced.stdout, /^created .*dromedary-console\.socket$/m);
    assert.match(readFileSync(hostd, "utf8"), new RegExp(`ExecStart=(\\S+ )?${other} hostd`));
  });

  test("a --bin that is not an executable file, or not usable in a unit, is refused", async () => {
    const dir = join(tmp, "badbin");
    mkdirSync(dir);
    const missing = await runCli(["install-units", "--prefix", dir, "--bin", "/nonexistent/dromedary"]);
    assert.equal(missing.code, 124);
    assert.match(missing.stderr, /--bin \/nonexistent\/dromedary is not an executable file/);
    const relative = await runCli(["install-units", "--prefix", dir, "--bin", "bin/dromedary.cjs"], { cwd: ROOT });
    assert.equal(relative.code, 124);
    assert.match(relative.stderr, /must be an absolute path/);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe("systemd's checks of the written units", { skip: NO_ANALYZE }, () => {
  let dir: string;
  before(async () => {
    dir = join(tmp, "verify");
    mkdirSync(dir);
    const r = await runCli(["install-units", "--prefix", dir, "--bin", BIN]);
    assert.equal(r.code, 0, r.stderr);
  });
  const unitFiles = () =>
    readdirSync(dir)
      .filter((f) => /\.(service|socket)$/.test(f))
      .map((f) => join(dir, f));
  const verify = (files: string[]) => spawnSync(ANALYZE!, ["verify", "--man=no", ...files], { encoding: "utf8", cwd: dir });

  test("systemd-analyze verify: no error, no warning", () => {
    const r = verify(unitFiles());
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
  });

  test("systemd-analyze verify does catch a broken unit (the check above can fail)", () => {
    const bad = join(tmp, "verify-bad");
    mkdirSync(bad);
    for (const f of unitFiles()) copyFileSync(f, join(bad, f.slice(dir.length + 1)));
    const service = join(bad, "dromedary-console.service");
    writeFileSync(
      service,
      readFileSync(service, "utf8").replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes").replace(BIN, "/nonexistent/dromedary"),
    );
    const r = verify([service]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Unknown key 'ProtectHomes'/);
    assert.match(r.stderr, /\/nonexistent\/dromedary/);
  });

  test("systemd-analyze security: the unprivileged daemons well confined, hostd less so (root)", (t) => {
    const levels = new Map<string, number>();
    for (const f of unitFiles().filter((x) => x.endsWith(".service"))) {
      const r = spawnSync(ANALYZE!, ["security", "--offline=true", f], { encoding: "utf8" });
      const m = /Overall exposure level for \S+: ([0-9.]+)/.exec(r.stdout);
      if (!m) {
        t.skip(`systemd-analyze security --offline not supported here: ${r.stderr.trim().split("\n")[0]}`);
        return;
      }
      levels.set(f.slice(dir.length + 1), Number(m[1]));
    }
    for (const [name, level] of levels) {
      // measured with systemd 252: 2.9 to 3.2 for the unprivileged ones, 5.0 for hostd
      assert.ok(level <= (name === "dromedary-hostd.service" ? 5.5 : 3.5), `${name}: exposure ${level}`);
    }
  });

  test("systemd-sysusers makes the user and group dromedary from the written file", { skip: SYSUSERS === null ? "systemd-sysusers not found" : false }, () => {
    const root = join(tmp, "sysroot");
    mkdirSync(join(root, "etc"), { recursive: true });
    for (const f of ["passwd", "group"]) copyFileSync(`/etc/${f}`, join(root, "etc", f));
    const r = spawnSync(SYSUSERS!, [`--root=${root}`, join(dir, "dromedary.conf")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(join(root, "etc", "passwd"), "utf8"), /^dromedary:x:\d+:\d+:Dromedary unikernel daemons:/m);
    assert.match(readFileSync(join(root, "etc", "group"), "utf8"), /^dromedary:x:\d+:/m);
  });
});
