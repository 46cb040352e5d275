// Every daemon logs one way (src/core/log.ts): the real `dromedary` processes, their stderr
// parsed line by line; --log-format json; --syslog through logger(1) (a stand-in logger on
// PATH that records what it is given); the console and stats daemons remove their sockets
// on SIGTERM.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseLine, type ParsedLine } from "../../src/core/log.js";
import { CLI, tempDir, watchLines, type Watched } from "../support/cli.js";

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../fixtures/certs");

type Daemon = Watched;

function start(args: string[], env: NodeJS.ProcessEnv = process.env): Daemon {
  return watchLines(spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "ignore", "pipe"] }));
}

async function waitFor(what: string, d: Daemon, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (ok()) return;
    if (d.child.exitCode !== null) break;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}: ${d.lines.join("\n")}`);
}

async function stop(d: Daemon, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill(signal);
  return d.exit;
}

/** every line parses, from this daemon; the parsed lines */
function parsedAll(d: Daemon, daemon: string): ParsedLine[] {
  return d.lines.map((l) => {
    const p = parseLine(l);
    assert.ok(p, `not a log line: ${l}`);
    assert.equal(p.daemon, daemon, l);
    assert.ok(!Number.isNaN(Date.parse(p.time)), l);
    return p;
  });
}

describe("daemon logs: one style", () => {
  it("console-daemon: text lines; SIGTERM logs, closes and removes console.sock", async () => {
    const tmp = tempDir("dromedary-logs-");
    try {
      const d = start(["console-daemon", "--tmpdir", tmp.dir]);
      const sock = path.join(tmp.dir, "util", "console.sock");
      await waitFor("listening", d, () => d.lines.some((l) => l.includes("listening on")));
      assert.ok(existsSync(sock));
      assert.equal(await stop(d), 0);
      assert.equal(existsSync(sock), false, "console.sock left behind");
      const p = parsedAll(d, "console-daemon");
      assert.deepEqual(
        p.map((x) => [x.level, x.msg]),
        [
          ["info", `listening on ${sock}`],
          ["info", "SIGTERM: shutting down"],
        ],
      );
      assert.match(d.lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z console-daemon: \[INFO\] listening on /);
    } finally {
      tmp.cleanup();
    }
  });

  it("stats-daemon --log-format json: one object per line; -q drops info; SIGINT removes stat.sock", async () => {
    const tmp = tempDir("dromedary-logs-");
    try {
      const d = start(["stats-daemon", "--tmpdir", tmp.dir, "--log-format", "json"]);
      const sock = path.join(tmp.dir, "util", "stat.sock");
      // no hostd here: it says so (a warning) and keeps trying
      await waitFor("the hostd warning", d, () => d.lines.some((l) => l.includes("cannot connect to hostd")));
      for (const l of d.lines) {
        const o = JSON.parse(l) as Record<string, unknown>;
        assert.deepEqual(Object.keys(o), ["time", "level", "daemon", "pid", "msg"]);
        assert.equal(o.daemon, "stats-daemon");
        assert.equal(o.pid, d.child.pid);
      }
      const p = parsedAll(d, "stats-daemon");
      assert.ok(
        p.some((x) => x.level === "info" && x.msg === `listening on ${sock}`),
        d.lines.join("\n"),
      );
      assert.ok(
        p.some((x) => x.level === "warn" && x.msg.startsWith("cannot connect to hostd")),
        d.lines.join("\n"),
      );
      assert.equal(await stop(d, "SIGINT"), 0);
      assert.equal(existsSync(sock), false, "stat.sock left behind");

      const q = start(["stats-daemon", "--tmpdir", tmp.dir, "-q"]);
      await waitFor("the hostd warning", q, () => q.lines.some((l) => l.includes("cannot connect to hostd")));
      assert.equal(await stop(q), 0);
      assert.deepEqual(
        parsedAll(q, "stats-daemon").map((x) => x.level),
        ["warn"],
        q.lines.join("\n"),
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("endpoint: the same text lines (-v: info)", async () => {
    const tmp = tempDir("dromedary-logs-");
    try {
      const f = (n: string): string => path.join(FIXTURES, n);
      const d = start(["endpoint", f("cacert.pem"), f("server.pem"), f("server.key"), "--ip", "127.0.0.1", "--port", "0", "--tmpdir", tmp.dir, "-v"]);
      await waitFor("listening", d, () => d.lines.some((l) => l.includes("listening on")));
      await stop(d);
      const p = parsedAll(d, "endpoint");
      assert.ok(
        p.some((x) => x.level === "info" && /^listening on 127\.0\.0\.1:\d+$/.test(x.msg)),
        d.lines.join("\n"),
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("--syslog: lines go to logger(1) with a priority prefix (facility daemon), tagged dromedary-<daemon>; nothing on stderr", async () => {
    const tmp = tempDir("dromedary-logs-");
    try {
      const bin = path.join(tmp.dir, "bin");
      mkdirSync(bin);
      const record = path.join(tmp.dir, "syslog.txt");
      // a stand-in logger(1): its arguments, then what it reads
      writeFileSync(path.join(bin, "logger"), `#!/bin/sh\necho "args: $*" > '${record}'\nexec cat >> '${record}'\n`);
      chmodSync(path.join(bin, "logger"), 0o755);
      const run = path.join(tmp.dir, "run");
      mkdirSync(run);
      const d = start(["console-daemon", "--tmpdir", run, "--syslog", "-v"], { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` });
      const sock = path.join(run, "util", "console.sock");
      await waitFor("the socket", d, () => existsSync(sock));
      await waitFor("the syslog lines", d, () => existsSync(record) && readFileSync(record, "utf8").includes("listening on"));
      assert.equal(await stop(d), 0);
      assert.deepEqual(d.lines, []);
      const got = readFileSync(record, "utf8").split("\n");
      assert.match(got[0]!, new RegExp(`^args: --prio-prefix -t dromedary-console-daemon --id=${d.child.pid}$`));
      // daemon (3) * 8 + info (6) = 30
      assert.equal(got[1], `<30>[INFO] listening on ${sock}`);
    } finally {
      tmp.cleanup();
    }
  });

  it("--syslog without logger(1): albatross's message, exit 2", async () => {
    const tmp = tempDir("dromedary-logs-");
    try {
      const d = start(["console-daemon", "--tmpdir", tmp.dir, "--syslog"], { ...process.env, PATH: path.join(tmp.dir, "nothing-here") });
      assert.equal(await d.exit, 2);
      assert.match(d.lines.join("\n"), /^ERROR: couldn't install syslog reporter: .*ENOENT/m);
    } finally {
      tmp.cleanup();
    }
  });
});
