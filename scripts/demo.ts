// `npm run demo`: the albatross README walkthrough with `dromedary`, on embedded defaults, in a
// temporary workspace that is removed afterwards. Nothing here needs root or the network
// beyond loopback:
//
//   1. an admin makes a root CA and delegates a policy to a tenant (add-policy --csr, sign);
//   2. the tenant writes a command request offline (create --csr) that the tenant CA signs;
//   3. `verify` shows what the chain grants; a widening delegation is refused at `sign`;
//   4. console-daemon, hostd and the TLS endpoint run on loopback; the tenant drives them
//      with `--destination` (policy info, block devices, info) — policies come only from
//      the chain, so a second tenant cannot see the first one's devices;
//   5. a real unikernel is started when a Solo5 tender and an image are at hand
//      (DROMEDARY_DEMO_IMAGE=/path/to/test_hello.hvt, solo5-hvt on PATH, and root);
//   6. `inspect` decodes a wire message produced by the real albatross-client.

import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTestImages } from "./make-test-images.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = join(ROOT, "dist/src/cli/main.js");
const work = mkdtempSync(join(tmpdir(), "dromedary-demo-"));
const children: ChildProcess[] = [];

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string): void => void process.stdout.write(`\n${bold(s)}\n`);

interface Ran {
  code: number;
  out: string;
}

/**
 * Run `dromedary ARGS` in `cwd`, echo the command line and its (indented) output. A
 * subscription (console, stats) never ends by itself: `stopAfterMs` ends it.
 */
function dromedary(args: string[], cwd = work, expectFailure = false, stopAfterMs?: number): Promise<Ran> {
  process.stdout.write(`$ dromedary ${args.join(" ")}\n`);
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    if (stopAfterMs !== undefined) setTimeout(() => p.kill("SIGTERM"), stopAfterMs);
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", fail);
    p.on("close", (code) => {
      const text = out.trimEnd();
      if (text) process.stdout.write(text.replace(/^/gm, "    ") + "\n");
      const c = stopAfterMs !== undefined && code === null ? 0 : (code ?? 1);
      if ((c !== 0) !== expectFailure) {
        fail(new Error(`dromedary ${args[0]} exited with ${c}${expectFailure ? " (a failure was expected)" : ""}`));
      } else {
        done({ code: c, out });
      }
    });
  });
}

/** Start a daemon (`dromedary ARGS`) in the background; resolves once it is ready. */
async function daemon(args: string[], ready: () => boolean, probe?: () => Promise<boolean>): Promise<ChildProcess> {
  process.stdout.write(`$ dromedary ${args.join(" ")} &\n`);
  const p = spawn(process.execPath, [CLI, ...args], { cwd: work, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  children.push(p);
  const isReady = async (): Promise<boolean> => ready() || (probe !== undefined && (await probe()));
  for (let i = 0; i < 200 && !(await isReady()); i++) {
    if (p.exitCode !== null) throw new Error(`dromedary ${args[0]} exited with ${p.exitCode}: ${err.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!(await isReady())) throw new Error(`dromedary ${args[0]} did not start: ${err.trim()}`);
  return p;
}

/** Does something accept TCP connections on 127.0.0.1:port? */
function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      done(true);
    });
    s.once("error", () => done(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? done(a.port) : fail(new Error("no port"))));
    });
  });
}

function onPath(exe: string): string | undefined {
  for (const d of (process.env["PATH"] ?? "").split(delimiter)) {
    const p = join(d, exe);
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

async function main(): Promise<void> {
  process.stdout.write(`Dromedary demo — workspace ${work}\n`);
  const admin = join(work, "admin");
  const tenant = join(work, "tenant");
  const other = join(work, "other");
  for (const d of [admin, tenant, other]) mkdirSync(d);
  await makeTestImages(join(work, "images"));

  say("1. The admin creates a root CA and a server certificate (albatross-client generate)");
  await dromedary(["generate", "demo-ca", "db"], admin);

  say("2. Delegation: the tenant asks for a policy, the admin signs it into an intermediate CA");
  await dromedary(["add-policy", "tenant", "2", "--mem", "256", "--cpu", "0", "--block", "64", "--csr"], tenant);
  copyFileSync(join(tenant, "tenant.req"), join(admin, "tenant.req"));
  await dromedary(["sign", "cacert.pem", "db", "demo-ca.key", "tenant.req"], admin);
  copyFileSync(join(admin, "tenant.pem"), join(tenant, "tenant.pem"));
  copyFileSync(join(admin, "cacert.pem"), join(tenant, "cacert.pem"));
  say("   The tenant checks what it was handed: the delegation, its path and policy");
  await dromedary(["verify", "tenant.pem", "--ca", "cacert.pem"], tenant);

  say("3. Offline, the tenant writes a command request carrying a unikernel image, and signs it");
  copyFileSync(join(work, "images", "hello.hvt"), join(tenant, "hello.hvt"));
  await dromedary(["create", "hello", "hello.hvt", "--mem", "32", "--csr"], tenant);
  await dromedary(["sign", "tenant.pem", "db", "tenant.key", "hello.req"], tenant);
  await dromedary(["verify", "hello.pem", "--ca", "cacert.pem"], tenant);

  say("   A delegation that widens the tenant's policy is refused at sign:");
  await dromedary(["add-policy", "greedy", "5", "--mem", "256", "--cpu", "0", "--csr"], tenant);
  await dromedary(["sign", "tenant.pem", "db", "tenant.key", "greedy.req"], tenant, true);

  say("4. The daemons on loopback: console-daemon, hostd, and the TLS 1.3 endpoint");
  const tmp = join(work, "run");
  const db = join(work, "db");
  mkdirSync(join(tmp, "util"), { recursive: true });
  mkdirSync(join(db, "block"), { recursive: true });
  const sock = (n: string): string => join(tmp, "util", n);
  await daemon(["console-daemon", "--tmpdir", tmp], () => existsSync(sock("console.sock")));
  await daemon(["hostd", "--tmpdir", tmp, "--dbdir", db, "-q"], () => existsSync(sock("vmmd.sock")));
  const port = await freePort();
  const a = (f: string): string => join(admin, f);
  await daemon(
    ["endpoint", a("cacert.pem"), a("server.pem"), a("server.key"), "--ip", "127.0.0.1", "--port", String(port), "--tmpdir", tmp],
    () => false,
    () => accepts(port),
  );

  const remote = ["--destination", `127.0.0.1:${port}`, "--ca", "tenant.pem", "--ca-key", "tenant.key", "--server-ca", "cacert.pem"];
  say("   The tenant, through TLS with a leaf signed on the fly by its own CA:");
  await dromedary(["policy", ...remote], tenant);
  await dromedary(["create-block", "data", "16", ...remote], tenant);
  await dromedary(["block", ...remote], tenant);
  await dromedary(["create-block", "toobig", "100", ...remote], tenant, true);

  say("   With a ready-made certificate (albatross-client certificate): an offline request, signed, then sent");
  await dromedary(["destroy-block", "data", "--csr"], tenant);
  await dromedary(["sign", "tenant.pem", "db", "tenant.key", "data.req"], tenant);
  await dromedary(["certificate", "data.pem", "data.key", "--destination", `127.0.0.1:${port}`, "--server-ca", "cacert.pem"], tenant);
  await dromedary(["block", ...remote], tenant);

  say("   Another tenant sees nothing of the first one:");
  await dromedary(["add-policy", "other", "1", "--mem", "64", "--cpu", "0", "--block", "16", "--csr"], other);
  copyFileSync(join(other, "other.req"), join(admin, "other.req"));
  await dromedary(["sign", "cacert.pem", "db", "demo-ca.key", "other.req"], admin);
  copyFileSync(join(admin, "other.pem"), join(other, "other.pem"));
  copyFileSync(join(admin, "cacert.pem"), join(other, "cacert.pem"));
  await dromedary(["block", "--destination", `127.0.0.1:${port}`, "--ca", "other.pem", "--ca-key", "other.key", "--server-ca", "cacert.pem"], other);

  say("   The admin, locally on hostd's socket:");
  await dromedary(["policy", "--socket", sock("vmmd.sock")]);

  say("5. A real unikernel");
  const image = process.env["DROMEDARY_DEMO_IMAGE"];
  const tender = onPath("solo5-hvt") ?? onPath("solo5-spt");
  if (image && tender && process.getuid?.() === 0) {
    copyFileSync(resolve(image), join(tenant, "real.hvt"));
    await dromedary(["create", "real", "real.hvt", "--mem", "32", ...remote], tenant);
    await new Promise((r) => setTimeout(r, 500));
    await dromedary(["console", "real", ...remote], tenant, false, 2000);
  } else {
    process.stdout.write(
      "    skipped: set DROMEDARY_DEMO_IMAGE to a Solo5 unikernel (e.g. Solo5's test_hello.hvt),\n" +
        "    put solo5-hvt on PATH and run as root to start it through the endpoint.\n",
    );
  }

  say("6. Decoding what the real albatross-client sent (fixtures/vectors)");
  await dromedary(["inspect", join(ROOT, "fixtures/vectors/wire-console-subscribe-foo.hex")]);
  writeFileSync(join(work, "done"), "");
}

async function cleanup(): Promise<void> {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGTERM");
      await new Promise((r) => {
        const t = setTimeout(() => {
          c.kill("SIGKILL");
          r(undefined);
        }, 3000);
        c.once("exit", () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
  }
  rmSync(work, { recursive: true, force: true });
}

try {
  await main();
  say("Demo complete.");
} catch (e) {
  process.stderr.write(`demo failed: ${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
