// `dromedary stats-daemon` and `dromedary influx` as processes: systemd socket activation
// (the socket inherited as fd 3, nothing bound of its own), and the usage errors.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { MAIN } from "../support/hostd.js";
import { ask, connectSocket, sleep, waitFor, wire, withDir, WireConn } from "./support.js";

// What systemd does for a socket unit: bind, put the socket at fd 3, set LISTEN_PID to the
// process' own pid and exec the daemon in it.
const ACTIVATE = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid()); os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], sys.argv[2:])
`;

describe("dromedary stats-daemon and influx, the processes", () => {
  it("serves on the socket systemd passes and binds nothing itself", async () => {
    await withDir(async (dir) => {
      const tmp = join(dir, "run");
      mkdirSync(join(tmp, "util"), { recursive: true });
      const activated = join(dir, "activated.sock");
      const child = spawn("python3", ["-c", ACTIVATE, activated, process.execPath, MAIN, "stats-daemon", "--tmpdir", tmp, "--systemd-socket-activation"], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      try {
        const r = await waitFor("the daemon on the activated socket", async () => {
          if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stderr}`);
          return ask(activated, wire(":", { kind: "stats-initial" })).catch(() => null);
        });
        assert.equal(r, "failure: unexpected message initial");
        assert.equal(existsSync(join(tmp, "util", "stat.sock")), false);
        // one log format: RFC 3339 time, daemon, level, message
        assert.match(stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stats-daemon: \[INFO\] listening on /m);
      } finally {
        child.kill("SIGTERM");
        await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
      }
      assert.equal(child.exitCode, 0, stderr);
    });
  });

  it("SIGTERM with a subscriber, a kept-alive /metrics connection and --cpu-prof: exit 0, the socket removed", async () => {
    await withDir(async (dir) => {
      const tmp = join(dir, "run");
      mkdirSync(join(tmp, "util"), { recursive: true });
      const sock = join(tmp, "util", "stat.sock");
      const child = spawn(
        process.execPath,
        ["--cpu-prof", "--cpu-prof-dir", dir, MAIN, "stats-daemon", "--tmpdir", tmp, "--interval", "0.2", "--metrics-listen", "127.0.0.1:0"],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      try {
        const port = await waitFor("the metrics address", () => /serving metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(stderr)?.[1]);
        const sub = new WireConn(await connectSocket(sock));
        sub.send(wire(":", { kind: "stats-subscribe" }));
        await waitFor("the subscription", () => sub.messages.length > 0);
        const agent = new http.Agent({ keepAlive: true });
        const body = await new Promise<string>((resolve, reject) =>
          http
            .get(`http://127.0.0.1:${port}/metrics`, { agent }, (res) => {
              let t = "";
              res.on("data", (d: Buffer) => (t += d.toString()));
              res.on("end", () => resolve(t));
            })
            .on("error", reject),
        );
        assert.match(body, /^# HELP dromedary_stats_hostd_connected /m);
        child.kill("SIGTERM");
        const code = await Promise.race([exited, sleep(10_000).then(() => "still running")]);
        assert.equal(code, 0, stderr);
        assert.equal(existsSync(sock), false);
        assert.ok(
          readdirSync(dir).some((f) => f.endsWith(".cpuprofile")),
          "the CPU profile was written at exit",
        );
        agent.destroy();
        sub.close();
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
        await exited;
      }
    });
  });

  it("usage errors: exit 124 with a one-line reason", () => {
    const run = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
      spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 20_000, env });
    const cases: Array<[string[], RegExp]> = [
      [["influx"], /influx host not provided/],
      [["influx", "--influx", "influx.example.org"], /--influx: expected an IP address literal/],
      [["influx", "--influx", "127.0.0.1", "-n", "a/b"], /--name: /],
      [["stats-daemon", "--interval", "0"], /invalid interval '0'/],
      [["stats-daemon", "--max-subscribers", "0"], /--max-subscribers/],
      [["stats-daemon", "--tmpdir", "/tmp", "--metrics-listen", "localhost"], /--metrics-listen: expected HOST:PORT/],
    ];
    for (const [args, re] of cases) {
      const r = run(args);
      assert.equal(r.status, 124, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(" "));
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    const act = run(["stats-daemon", "--tmpdir", "/tmp", "--systemd-socket-activation"], { ...process.env, LISTEN_PID: "1", LISTEN_FDS: "1" });
    assert.equal(act.status, 125, act.stderr);
    assert.match(act.stderr, /Systemd socket activation error/);
  });
});
