// End-to-end test support: `dromedary` as a separate process (as a user runs it) and
// `dromedary endpoint` on loopback in front of a test hostd (test/support/hostd.ts).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { waitFor } from "../support/hostd.js";

import { CLI } from "../support/cli.js";

export { CLI };

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export function dromedary(cwd: string, args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Run and expect exit 0; its stdout. */
export async function ok(cwd: string, args: string[]): Promise<string> {
  const r = await dromedary(cwd, args);
  assert.equal(r.code, 0, `dromedary ${args.join(" ")} -> ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A client subscription (read mode never ends by itself): collect stdout until `until` shows up. */
export function readUntil(cwd: string, args: string[], until: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`no ${until} within ${timeoutMs} ms in: ${out}`));
    }, timeoutMs);
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (until.test(out)) {
        clearTimeout(t);
        p.kill("SIGTERM");
        resolve(out);
      }
    });
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
  });
}

export const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

export interface RunningEndpoint {
  /** HOST:PORT for --destination */
  readonly dest: string;
  /** its log so far (stderr) */
  log(): string;
  stop(): void;
}

/**
 * `dromedary endpoint cacert.pem server.pem server.key` (files in `cwd`) on 127.0.0.1, in front
 * of the daemons in `tmpdir`; resolves once it accepts connections.
 */
export async function startEndpoint(cwd: string, tmpdir: string, extra: string[] = []): Promise<RunningEndpoint> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const ep = spawn(
    process.execPath,
    [CLI, "endpoint", "cacert.pem", "server.pem", "server.key", "--ip", "127.0.0.1", "--port", String(port), "--tmpdir", tmpdir, ...extra],
    {
      cwd,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let log = "";
  ep.stderr.on("data", (d: Buffer) => (log += d.toString()));
  try {
    await waitFor("the endpoint to listen", async () => {
      if (ep.exitCode !== null) throw new Error(`endpoint exited ${ep.exitCode}: ${log}`);
      return accepts(port);
    });
  } catch (e) {
    ep.kill("SIGTERM");
    throw e;
  }
  return { dest: `127.0.0.1:${port}`, log: () => log, stop: () => void ep.kill("SIGTERM") };
}
