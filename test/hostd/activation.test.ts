// `dromedary hostd --systemd-socket-activation`: hostd serves on the listening socket it
// inherits as fd 3 (LISTEN_PID = its pid, LISTEN_FDS = 1), exactly as systemd passes it, and
// binds no socket of its own. Runs in a network namespace (hostd needs root); skipped without.
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { MAIN, request, show, waitFor, withHostd } from "../support/hostd.js";

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

// Python binds the listening socket, puts it at fd 3, sets LISTEN_PID to its own pid and execs
// node in the same process — what systemd does for a socket unit.
const ACTIVATE = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid()); os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], sys.argv[2:])
`;

describe("hostd: systemd socket activation", () => {
  it("serves on the inherited fd 3 and binds nothing itself", async (t) => {
    if (skip !== false) return t.skip(skip);
    await withNetns((ns) =>
      withHostd(ns, async (env) => {
        await env.stopHostd("SIGTERM");
        rmSync(env.socket, { force: true });
        const activated = join(env.tmpdir, "activated.sock");
        const child = ns.spawn(
          "python3",
          ["-c", ACTIVATE, activated, process.execPath, MAIN, "hostd", "--tmpdir", env.tmpdir, "--dbdir", env.dbdir, "--systemd-socket-activation"],
          {
            stdio: ["ignore", "ignore", "pipe"],
          },
        );
        let stderr = "";
        child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
        try {
          const replies = await waitFor("hostd on the activated socket", async () => {
            if (child.exitCode !== null) throw new Error(`hostd exited ${child.exitCode}: ${stderr}`);
            try {
              return await request(activated, ":", { kind: "policy-info" });
            } catch {
              return null;
            }
          });
          assert.match(show(replies), /policies/);
          assert.equal(existsSync(env.socket), false, "no vmmd.sock of its own");
        } finally {
          child.kill("SIGTERM");
          await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
        }
      }),
    );
  });

  it("without LISTEN_PID/LISTEN_FDS from systemd: start-up failure, exit 125", async () => {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(process.execPath, [MAIN, "hostd", "--tmpdir", "/tmp", "--dbdir", "/tmp", "--systemd-socket-activation"], {
      env: { ...process.env, LISTEN_PID: "1", LISTEN_FDS: "1" },
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(r.status, 125, r.stderr);
    assert.match(r.stderr, /Systemd socket activation error/);
  });
});
