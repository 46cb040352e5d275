// `dromedary endpoint` and `dromedary certificate` as processes: option rules of daemon.md §6,
// TCP, inetd and systemd socket activation modes, and the client printing replies.
import "reflect-metadata";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { FakeDaemons, cmds, defaultBehaviour, keyPem, leaf, makePki, pem, tempDir, writeFiles, type Pki } from "../support/endpoint.js";
import { runCertificate } from "../../src/client/remote.js";

const MAIN = fileURLToPath(new URL("./cli-main.js", import.meta.url));
const JUMP = fileURLToPath(new URL("./remote-jump-main.js", import.meta.url));

interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdio0?: net.Socket } = {},
): { child: ChildProcess; done: Promise<Done>; stderrHas: (re: RegExp) => Promise<void> } {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...opts.env }, stdio: [opts.stdio0 ?? "ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const watchers: Array<{ re: RegExp; resolve: () => void }> = [];
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => {
    stderr += d;
    for (const w of [...watchers])
      if (w.re.test(stderr)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
  });
  const done = new Promise<Done>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return {
    child,
    done,
    stderrHas: (re) =>
      re.test(stderr)
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`stderr never matched ${re}: ${stderr}`)), 10_000);
            watchers.push({ re, resolve: () => (clearTimeout(t), resolve()) });
          }),
  };
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

let pki: Pki;
let tmp: string;
let fake: FakeDaemons;
let f: Record<string, string>;

before(async () => {
  pki = await makePki();
  tmp = tempDir();
  fake = await FakeDaemons.start(tmp);
  const l = await leaf(pki.root, "foo", cmds.info);
  f = writeFiles(tempDir(), {
    "cacert.pem": pem(pki.root),
    "two.pem": pem(pki.root, pki.arc),
    "server.pem": pem(pki.server),
    "server.key": keyPem(pki.server),
    "foo.pem": pem(l),
    "foo.key": keyPem(l),
    "arc.pem": pem(pki.arc),
    "arc.key": keyPem(pki.arc),
    "disk.img": "block contents",
  });
});

after(() => fake.close());

describe("dromedary endpoint: command line", () => {
  it("--port and --systemd-socket-activation are not compatible (124)", async () => {
    const r = await run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--port", "1234", "--systemd-socket-activation"]).done;
    assert.equal(r.code, 124);
    assert.match(r.stderr, /Options --port and --systemd-socket-activation are not compatible/);
  });

  it("--inetd without --syslog or -q exits 3 at once, printing nothing", async () => {
    const r = await run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--inetd"]).done;
    assert.deepEqual(r, { code: 3, stdout: "", stderr: "" });
  });

  it("a CA file with two certificates: expect single ca as cacert (125)", async () => {
    const r = await run(["endpoint", f["two.pem"]!, f["server.pem"]!, f["server.key"]!, "--tmpdir", tmp]).done;
    assert.equal(r.code, 125);
    assert.match(r.stderr, /expect single ca as cacert/);
  });

  it("a certificate as KEY: one line saying it is not a private key (125, as any TLS set-up failure)", async () => {
    const r = await run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.pem"]!, "--tmpdir", tmp]).done;
    assert.equal(r.code, 125);
    assert.equal(r.stderr, `dromedary: cannot set up TLS: ${f["server.pem"]}: not a private key (found a CERTIFICATE PEM block); give the .key file\n`);
  });

  it("`certificate` with the certificate as KEY: the same line (124)", async () => {
    const c = await run(["certificate", f["foo.pem"]!, f["foo.pem"]!, "-d", "127.0.0.1:1", "--server-ca", f["cacert.pem"]!]).done;
    assert.equal(c.code, 124);
    assert.equal(c.stderr, `dromedary: ${f["foo.pem"]}: not a private key (found a CERTIFICATE PEM block); give the .key file\n`);
  });

  it("a --tmpdir that does not exist (124)", async () => {
    const r = await run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--tmpdir", "/nonexistent/x"]).done;
    assert.equal(r.code, 124);
  });

  it("--max-chain-size and --chain-memory: bounds checked, the worst case in --help", async () => {
    const files = [f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--tmpdir", tmp];
    const tooBig = await run(["endpoint", ...files, "--max-chain-size", "17M"]).done;
    assert.equal(tooBig.code, 124);
    assert.match(tooBig.stderr, /invalid --max-chain-size '17M', expected 1 to 16777216 bytes/);
    const tooSmall = await run(["endpoint", ...files, "--chain-memory", "1M"]).done;
    assert.equal(tooSmall.code, 124);
    assert.match(tooSmall.stderr, /--chain-memory \(1048576\) must be at least --max-chain-size \(16777216\)/);
    const help = await run(["endpoint", "--help"]).done;
    assert.match(help.stdout.replace(/\s+/g, " "), /about 5 × \(BYTES \+ max-connections × 100 KiB\) at most .* 445 MiB with the defaults/);
  });

  it("systemd socket activation without LISTEN_FDS fails", async () => {
    const r = await run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--systemd-socket-activation", "--tmpdir", tmp], {
      env: { LISTEN_FDS: "", LISTEN_PID: "" },
    }).done;
    assert.equal(r.code, 125);
    assert.match(r.stderr, /Systemd socket activation error/);
  });
});

describe("dromedary endpoint: serving", () => {
  it("TCP: `certificate` prints the reply (text and --json)", async () => {
    const port = await freePort();
    const ep = run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--ip", "127.0.0.1", "--port", String(port), "--tmpdir", tmp, "-v"]);
    try {
      await ep.stderrHas(/listening on 127\.0\.0\.1:\d+/);
      const c = await run(["certificate", f["foo.pem"]!, f["foo.key"]!, "-d", `127.0.0.1:${port}`, "--server-ca", f["cacert.pem"]!]).done;
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.stdout, "host [unikernel: :foo]: no unikernels\n");
      const j = await run(["certificate", f["foo.pem"]!, f["foo.key"]!, "-d", `127.0.0.1:${port}`, "--server-ca", f["cacert.pem"]!, "--json"]).done;
      assert.equal(j.code, 0);
      assert.equal(JSON.parse(j.stdout).payload.kind, "reply");
      await ep.stderrHas(/\[INFO\] 127\.0\.0\.1:\d+: :foo unikernel-info/);
      const none = await run(["certificate", f["foo.pem"]!, f["foo.key"]!, "--server-ca", f["cacert.pem"]!]).done;
      assert.equal(none.code, 124);
      assert.match(none.stderr, /no destination provided/);
    } finally {
      ep.child.kill("SIGTERM");
      await ep.done;
    }
  });

  it("a connection to the daemon is opened ahead of the next request; --no-spare-connections opens none", async () => {
    for (const spares of [true, false]) {
      const port = await freePort();
      const ep = run([
        "endpoint",
        f["cacert.pem"]!,
        f["server.pem"]!,
        f["server.key"]!,
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--tmpdir",
        tmp,
        "-v",
        ...(spares ? [] : ["--no-spare-connections"]),
      ]);
      try {
        await ep.stderrHas(/listening on 127\.0\.0\.1:\d+/);
        const before = fake.accepted.vmmd;
        const c = await run(["certificate", f["foo.pem"]!, f["foo.key"]!, "-d", `127.0.0.1:${port}`, "--server-ca", f["cacert.pem"]!]).done;
        assert.equal(c.code, 0, c.stderr);
        // the request's own connection, then (by default) the spare
        const end = Date.now() + (spares ? 5000 : 300);
        while (fake.accepted.vmmd - before < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        assert.equal(fake.accepted.vmmd - before, spares ? 2 : 1);
        // and the next request is served (on the spare, when there is one)
        const again = await run(["certificate", f["foo.pem"]!, f["foo.key"]!, "-d", `127.0.0.1:${port}`, "--server-ca", f["cacert.pem"]!]).done;
        assert.equal(again.stdout, "host [unikernel: :foo]: no unikernels\n");
      } finally {
        ep.child.kill("SIGTERM");
        await ep.done;
      }
    }
  });

  it("remoteJump (client --destination): replies printed, exit codes, set-block upload", async () => {
    const port = await freePort();
    const ep = run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--ip", "127.0.0.1", "--port", String(port), "--tmpdir", tmp, "-v"]);
    try {
      await ep.stderrHas(/listening on/);
      const jump = (...args: string[]) => {
        const c = spawn(process.execPath, [JUMP, `127.0.0.1:${port}`, f["arc.pem"]!, f["arc.key"]!, f["cacert.pem"]!, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        c.stdout.on("data", (d) => (stdout += d));
        c.stderr.on("data", (d) => (stderr += d));
        return new Promise<Done>((resolve) => c.on("close", (code) => resolve({ code, stdout, stderr })));
      };
      const info = await jump("unikernel-info", "web");
      assert.equal(info.code, 0, info.stderr);
      assert.equal(info.stdout, "host [unikernel: arc:web]: no unikernels\n");
      fake.behaviour = (w) =>
        w.payload.kind === "command" && w.payload.command.kind === "unikernel-destroy"
          ? { replies: [{ kind: "failure", message: new TextEncoder().encode("destroy: not found") }], close: true }
          : defaultBehaviour(w, "vmmd");
      const destroy = await jump("unikernel-destroy", "web");
      assert.equal(destroy.code, 117);
      assert.match(destroy.stderr, /host \[unikernel: arc:web\]: command failed destroy: not found/);
      fake.behaviour = defaultBehaviour;
      fake.received.length = 0;
      const blk = await jump("block-set", "disk", f["disk.img"]!);
      assert.equal(blk.code, 0, blk.stderr);
      assert.equal(Buffer.concat(fake.received.filter((r) => r.raw).map((r) => r.raw!)).toString(), "block contents");
      const none = await jump("unikernel-info", "a:b");
      assert.equal(none.code, 124);
    } finally {
      ep.child.kill("SIGTERM");
      await ep.done;
    }
  });

  it("inetd: one connection on stdin, then exit", async () => {
    const children: Array<Promise<Done>> = [];
    const server = net.createServer((sock) => {
      const p = run(["endpoint", f["cacert.pem"]!, f["server.pem"]!, f["server.key"]!, "--inetd", "-q", "--tmpdir", tmp], { stdio0: sock });
      children.push(p.done);
      sock.destroy(); // the child has its own copy
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const got: string[] = [];
      const code = await runCertificate({
        cert: f["foo.pem"]!,
        key: f["foo.key"]!,
        serverCa: f["cacert.pem"]!,
        destination: { host: "127.0.0.1", port },
        onMessage: (w) => void got.push(w.payload.kind),
      });
      assert.equal(code, 0);
      assert.deepEqual(got, ["reply"]);
      const d = await children[0]!;
      assert.equal(d.code, 0);
      assert.equal(d.stderr, "");
    } finally {
      server.close();
    }
  });

  it("systemd socket activation: serves on the inherited fd 3", async () => {
    const listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", () => r()));
    const port = (listener.address() as net.AddressInfo).port;
    const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
    const ep = (() => {
      const child = spawn(
        "sh",
        [
          "-c",
          `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${MAIN}" endpoint "${f["cacert.pem"]}" "${f["server.pem"]}" "${f["server.key"]}" --systemd-socket-activation --tmpdir "${tmp}" -v`,
        ],
        {
          stdio: ["ignore", "pipe", "pipe", fd],
        },
      );
      let stderr = "";
      child.stderr!.on("data", (d) => (stderr += d));
      return { child, stderr: () => stderr, done: new Promise((r) => child.on("close", r)) };
    })();
    listener.close(); // the child keeps its copy
    try {
      for (let i = 0; i < 100 && !/listening on the systemd socket/.test(ep.stderr()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(ep.stderr(), /listening on the systemd socket/);
      const got: string[] = [];
      const code = await runCertificate({
        cert: f["foo.pem"]!,
        key: f["foo.key"]!,
        serverCa: f["cacert.pem"]!,
        destination: { host: "127.0.0.1", port },
        onMessage: (w) => void got.push(w.payload.kind),
      });
      assert.equal(code, 0);
      assert.deepEqual(got, ["reply"]);
    } finally {
      ep.child.kill("SIGTERM");
      await ep.done;
    }
  });
});
