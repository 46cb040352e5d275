// `npm run demo`: the albatross README walkthrough with `dromedary`, on embedded defaults, in a
// temporary workspace that is removed afterwards. Nothing here needs root or the network
// beyond loopback:
//
//   1. an admin makes a root CA and delegates a policy to a tenant (add-policy --csr, sign);
//   2. the tenant writes a command request offline (create --csr) that the tenant CA signs;
//   3. `verify` shows what the chain grants; a widening delegation is refused at `sign`;
//   4. `dromedary up` runs console-daemon, hostd, stats-daemon and the TLS endpoint on
//      loopback; the tenant drives them with `--destination` (policy info, block devices,
//      info) — policies come only from the chain, so a second tenant cannot see the first
//      one's devices;
//   5. the tenant deploys a unikernel through the endpoint and looks at its console and
//      statistics: with Solo5's solo5-hvt/solo5-spt when one is on PATH and
//      DROMEDARY_DEMO_IMAGE names a unikernel built for it (e.g. Solo5's test_hello.hvt),
//      otherwise with the stand-in tender of the tests (test/support/standin-tender.c,
//      compiled into the workspace with cc), which prints console lines and keeps running;
//      the demo says which;
//   6. `inspect` decodes a wire message produced by the real albatross-client.
// Everything (processes, sockets, files) is gone when it ends, also after a failure or Ctrl-C.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTestImages } from "./make-test-images.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** the installed command: bin/dromedary.cjs, as `dromedary` on PATH runs it */
const CLI = join(ROOT, "bin/dromedary.cjs");
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
  // its own process group: Ctrl-C reaches the demo, whose cleanup stops it (up: in order)
  const p = spawn(process.execPath, [CLI, ...args], { cwd: work, stdio: ["ignore", "ignore", "pipe"], detached: true });
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

/** The stand-in tender (test/support/standin-tender.c) compiled into `dir` as solo5-hvt (and .2, first in hostd's lookup). */
function installStandin(dir: string): void {
  const src = join(ROOT, "test/support/standin-tender.c");
  const out = join(dir, "solo5-hvt.2");
  try {
    execFileSync(process.env["CC"] ?? "cc", ["-O2", "-o", out, src], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    throw new Error(`compiling the stand-in tender (${src}) needs a C compiler (cc, or CC=...): ${(e as Error).message.split("\n")[0]}`);
  }
  copyFileSync(out, join(dir, "solo5-hvt"));
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

  say("4. The daemons on loopback, with one command: console-daemon, hostd, stats-daemon and the TLS 1.3 endpoint");
  const tmp = join(work, "run");
  const db = join(work, "db");
  mkdirSync(join(db, "block"), { recursive: true });
  const sock = (n: string): string => join(tmp, "util", n);
  const image = process.env["DROMEDARY_DEMO_IMAGE"];
  const tender = onPath("solo5-hvt") ?? onPath("solo5-spt");
  const real = image !== undefined && image !== "" && tender !== undefined;
  if (!real) installStandin(db);
  const port = await freePort();
  const a = (f: string): string => join(admin, f);
  await daemon(
    [
      "up",
      "--tmpdir",
      tmp,
      "--dbdir",
      db,
      "--cacert",
      a("cacert.pem"),
      "--cert",
      a("server.pem"),
      "--key",
      a("server.key"),
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--stats-interval",
      "1",
      // the workspace and its keys are the invoking user's alone: as root, no privilege split
      // (up would otherwise run the daemons but hostd as the dromedary user, where it exists)
      ...(process.getuid?.() === 0 ? ["--user", "root"] : []),
    ],
    () => false,
    async () => (await accepts(port)) && existsSync(sock("stat.sock")),
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

  say("5. A unikernel, deployed through the endpoint: its console and its statistics");
  if (real) {
    process.stdout.write(`    with the real Solo5 tender ${tender} and ${image}\n`);
    copyFileSync(resolve(image), join(tenant, "hello.hvt"));
    await dromedary(["create", "hello", "hello.hvt", "--mem", "32", ...remote], tenant);
  } else {
    process.stdout.write(
      `    with the STAND-IN tender of the tests (${join(db, "solo5-hvt")}), not Solo5: ` +
        (tender === undefined ? "no solo5-hvt or solo5-spt on PATH" : `${tender} is on PATH, but DROMEDARY_DEMO_IMAGE names no unikernel for it`) +
        ".\n    It checks the image's Solo5 notes as a tender would, prints console lines and keeps running.\n",
    );
    await dromedary(["create", "hello", "hello.hvt", "--mem", "32", "--arg=--standin-lines=3", "--arg=--standin-run", ...remote], tenant);
  }
  await dromedary(["info", ...remote], tenant);
  await new Promise((r) => setTimeout(r, 500));
  await dromedary(["console", "hello", ...remote], tenant, false, 1500);
  await dromedary(["stats", "hello", ...remote], tenant, false, 2500);
  await dromedary(["destroy", "hello", ...remote], tenant);

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
        }, 40_000);
        c.once("exit", () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
  }
  rmSync(work, { recursive: true, force: true });
}

// Ctrl-C: clean up as at the end (the daemons are in their own process groups)
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    process.stderr.write(`demo: ${sig}, cleaning up\n`);
    void cleanup().then(() => process.exit(130));
  });
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
