// `dromedary console-daemon` as a process: options, start-up errors, systemd activation.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { systemdListenFd } from "../../src/cli/options.js";
import { CliError } from "../../src/core/exit.js";
import { oneShot, replyText, tempTmpdir, wire } from "./support.js";

// dist/test/hostd -> repository root
const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const dist = join(root, "dist");

// A program with only this command registered (src/cli/daemons.ts wires it into the real
// `dromedary` binary; this keeps the test independent of the other daemons).
const entry = `
import { Command } from "commander";
import { registerConsoleDaemonCommand } from ${JSON.stringify(join(dist, "src/cli/console-daemon.js"))};
import { runMain } from ${JSON.stringify(join(dist, "src/cli/output.js"))};
const program = new Command("dromedary");
registerConsoleDaemonCommand(program);
await runMain(program, ["node", "dromedary", ...process.argv.slice(1)]);
`;
const nodeArgs = (args: string[]): string[] => ["--input-type=module", "-e", entry, "--", "console-daemon", ...args];

function runSync(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, nodeArgs(args), { cwd: root, env, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

async function waitForSocket(path: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 500 && child.exitCode === null; i++) {
    if (existsSync(path)) {
      try {
        await oneShot(path, wire(":", { kind: "console-list-inactive" }));
        return;
      } catch {
        // not accepting yet
      }
    }
    await sleep(20);
  }
  throw new Error(`daemon did not come up at ${path} (exit ${child.exitCode})`);
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    child.once("exit", () => res());
    child.kill("SIGTERM");
  });
}

describe("console-daemon command", () => {
  it("systemd activation needs LISTEN_PID = own pid and exactly one fd", () => {
    assert.equal(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "1" }, 42), 3);
    for (const env of [{}, { LISTEN_PID: "41", LISTEN_FDS: "1" }, { LISTEN_PID: "42", LISTEN_FDS: "2" }, { LISTEN_PID: "42" }]) {
      assert.throws(
        () => systemdListenFd(env, 42),
        (e: unknown) => e instanceof CliError && e.message === "Systemd socket activation error" && e.exitCode === 125,
      );
    }
  });

  it("rejects --max-subscribers below 1 and a missing --tmpdir (exit 124)", () => {
    const zero = runSync(["--max-subscribers", "0", "--tmpdir", "/tmp"]);
    assert.equal(zero.status, 124, zero.stderr);
    assert.match(zero.stderr, /max subscribers must be greater than or equal to 1/);
    const missing = runSync(["--tmpdir", "/nonexistent/dromedary"]);
    assert.equal(missing.status, 124, missing.stderr);
    assert.match(missing.stderr, /--tmpdir/);
  });

  it("--systemd-socket-activation without a socket from systemd fails (exit 125)", () => {
    const tmp = tempTmpdir();
    try {
      const r = runSync(["--tmpdir", tmp.dir, "--systemd-socket-activation"], { ...process.env, LISTEN_PID: "1", LISTEN_FDS: "1" });
      assert.equal(r.status, 125, r.stderr);
      assert.match(r.stderr, /Systemd socket activation error/);
    } finally {
      tmp.cleanup();
    }
  });

  it("serves on <tmpdir>/util/console.sock", async () => {
    const tmp = tempTmpdir();
    const child = spawn(process.execPath, nodeArgs(["--tmpdir", tmp.dir, "--max-subscribers", "2"]), { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      const sock = join(tmp.dir, "util", "console.sock");
      await waitForSocket(sock, child);
      const r = await oneShot(sock, wire("x:", { kind: "console-list-inactive" }));
      assert.deepEqual(r.map(replyText), ["consoles: "]);
      assert.match(stderr, /listening on .*console\.sock/);
    } finally {
      await stop(child);
      tmp.cleanup();
    }
  });

  it("uses the socket passed by systemd (fd 3, LISTEN_PID/LISTEN_FDS)", async () => {
    const tmp = tempTmpdir();
    const sock = join(tmp.dir, "activated.sock");
    // Python creates and binds the listening socket, puts it at fd 3, sets LISTEN_PID to its
    // own pid and execs node in the same process — exactly what systemd does.
    const py = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid()); os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], sys.argv[2:])
`;
    const child = spawn("python3", ["-c", py, sock, process.execPath, ...nodeArgs(["--tmpdir", tmp.dir, "--systemd-socket-activation"])], {
      cwd: root,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await waitForSocket(sock, child);
      const r = await oneShot(sock, wire(":", { kind: "console-list-inactive" }));
      assert.deepEqual(r.map(replyText), ["consoles: "]);
      assert.equal(existsSync(join(tmp.dir, "util", "console.sock")), false, "no socket of its own");
    } finally {
      await stop(child);
      tmp.cleanup();
    }
    assert.doesNotMatch(stderr, /error/i);
  });
});
