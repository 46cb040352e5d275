import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeTestImages } from "../../scripts/make-test-images.js";
import { readSolo5Info } from "../../src/solo5/elf.js";
import { parseTenderVersion } from "../../src/solo5/tender.js";
import { TEST_IMAGES } from "./elf-builder.js";
import { netnsAvailable, withNetns, type Netns } from "./netns.js";
import { installStandin, standinTender } from "./standin.js";

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      if (error === null) return resolve({ code: 0, signal: null, stdout, stderr });
      const e = error as NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null };
      if (typeof e.code !== "number" && !e.signal) return reject(error);
      resolve({ code: typeof e.code === "number" ? e.code : null, signal: e.signal ?? null, stdout, stderr });
    });
  });
}

let dir = "";
let hvt = "";
let spt = "";
const img = (name: string): string => join(dir, name);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dromedary-standin-test-"));
  await makeTestImages(dir);
  const [h, s] = await installStandin(join(dir, "bin"));
  if (h === undefined || s === undefined) throw new Error("installStandin: a path for each of the two default names");
  [hvt, spt] = [h, s];
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("test images and the stand-in binary", () => {
  it("make-test-images writes parseable images with their devices", async () => {
    for (const [name, opts] of Object.entries(TEST_IMAGES)) {
      const info = readSolo5Info(await readFile(img(name)));
      assert.deepEqual(info.devices, opts.devices, name);
      assert.equal(info.abi.target, opts.target, name);
    }
  });
  it("is compiled once and cached", async () => {
    const a = await standinTender();
    assert.equal(await standinTender(), a);
    assert.ok(((await stat(a)).mode & 0o111) !== 0);
  });
});

describe("stand-in tender behaviour", () => {
  it("--version: both lines on stderr, exit 0; STANDIN_ABI changes the ABI", async () => {
    const r = await run(hvt, ["--version"]);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "solo5-hvt tender, version v0.12.1\nABI version 2\n");
    assert.equal(parseTenderVersion(r.stdout + r.stderr, 2), null);
    const s = await run(spt, ["--version"], { STANDIN_ABI: "3" });
    assert.equal(s.stderr, "solo5-spt tender, version v0.12.1\nABI version 3\n");
    assert.equal((await run(hvt, ["--help"])).code, 1);
  });

  it("runs hello: banner, Hello World, guest command line, exit 0", async () => {
    const r = await run(hvt, ["--mem=32", "--", img("hello.hvt"), "--name=hello", "a", "b"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {12}\| {6}___\|\n/);
    assert.match(r.stdout, /Solo5: Bindings version v0\.12\.1\n/);
    assert.match(r.stdout, /Solo5: Memory map: 32 MB addressable:\n/);
    assert.match(r.stdout, /\nHello, World\nCommand line is: '--name=hello a b'\n/);
    assert.match(r.stdout, /Solo5: solo5_exit\(0\) called\n$/);
    assert.equal((await run(spt, [img("hello.spt")])).code, 0);
  });

  it("exit codes, lines, long lines, crash and old mirage", async () => {
    assert.equal((await run(hvt, [img("hello.hvt"), "--standin-exit=7"])).code, 7);
    const slept = await run(hvt, [img("hello.hvt"), "--standin-sleep=20", "--standin-exit=2"]);
    assert.equal(slept.code, 2);
    assert.match(slept.stdout, /Solo5: solo5_exit\(2\) called\n$/);
    const lines = await run(hvt, [img("hello.hvt"), "--standin-lines=3"]);
    assert.match(lines.stdout, /\nline 1\nline 2\nline 3\n/);
    const long = await run(hvt, [img("hello.hvt"), "--standin-line-bytes=10000"]);
    assert.match(long.stdout, /\nx{10000}\n/);
    const crash = await run(hvt, [img("hello.hvt"), "--standin-crash"]);
    assert.equal(crash.signal, "SIGSEGV");
    assert.equal((await run(hvt, [img("hello.hvt"), "--name=x", "--standin-old-mirage"])).code, 64);
    assert.equal((await run(hvt, [img("hello.hvt"), "--standin-old-mirage"])).code, 0);
  });

  it("fails like the tender on bad kernels and options", async () => {
    const expectFail = async (bin: string, args: string[], re: RegExp, env: NodeJS.ProcessEnv = {}): Promise<void> => {
      const r = await run(bin, args, env);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
    };
    await expectFail(hvt, [], /^solo5-hvt: Missing KERNEL operand\n/);
    await expectFail(hvt, [join(dir, "nope.hvt")], /^solo5-hvt: .*nope\.hvt: Could not open: No such file or directory\n/);
    await expectFail(spt, [img("hello.hvt")], /^solo5-spt: .*: Executable is not for the solo5-spt target\n/);
    await expectFail(hvt, [img("hello.virtio")], /Executable is not for the solo5-hvt target/);
    await expectFail(hvt, [img("hello.hvt")], /Executable requests unsupported ABI version 2/, { STANDIN_ABI: "3" });
    await writeFile(join(dir, "junk"), "#!/bin/sh\n".repeat(20));
    await expectFail(hvt, [join(dir, "junk")], /^solo5-hvt: .*junk: Invalid or unsupported executable/);
    await expectFail(hvt, [process.execPath], /^solo5-hvt: .*: No Solo5 ABI information found in executable\n/);
    await expectFail(hvt, ["--bogus", img("hello.hvt")], /^solo5-hvt: Invalid option: `--bogus'\n/);
    await expectFail(hvt, ["--mem=x", img("hello.hvt")], /Malformed argument to --mem/);
    await expectFail(hvt, [img("net.hvt")], /Device 'service' of type NET_BASIC declared but not attached\.\n.*All declared devices must be attached/s);
    await expectFail(hvt, ["--net:other=tap0", img("net.hvt")], /Resource not declared in manifest: 'other'/);
    await expectFail(hvt, ["--block:service=/dev/null", img("net.hvt")], /Resource not declared in manifest: 'service'/);
    await expectFail(hvt, ["--net:service=nosuchtap0", img("net.hvt")], /Could not attach interface: nosuchtap0: No such file or directory/);
  });

  it("opens block devices read-write and checks their size", async () => {
    const blk = join(dir, "disk");
    const data = Buffer.alloc(1024);
    data.write("first line\nsecond line\n");
    await writeFile(blk, data);
    const ok = await run(hvt, [`--block:storage=${blk}`, img("blk.hvt"), "--standin-read-block=storage"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Standin: block storage=.*disk sector 512\n/);
    assert.match(ok.stdout, /\nBlock storage: first line\n/);
    const sized = await run(hvt, [`--block:storage=${blk}`, "--block-sector-size:storage=4096", img("blk.hvt")]);
    assert.equal(sized.code, 1);
    assert.match(sized.stderr, /storage: Backing storage size must be block aligned \(4096 bytes\)/);
    await writeFile(blk, Buffer.alloc(1000));
    const odd = await run(hvt, [`--block:storage=${blk}`, img("blk.hvt")]);
    assert.equal(odd.code, 1);
    assert.match(odd.stderr, /Backing storage size must be block aligned \(512 bytes\)/);
    const bad = await run(hvt, [`--block:storage=${blk}`, "--block-sector-size:storage=1000", img("blk.hvt")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Block size must be a multiple of 2/);
    const missing = await run(hvt, [`--block:storage=${join(dir, "none")}`, img("blk.hvt")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Could not open block device: /);
  });

  it("SIGTERM: hvt prints 'Exiting on signal 15' and exits 1, spt dies by the signal", async () => {
    for (const [bin, expectCode, expectSignal] of [
      [hvt, 1, null],
      [spt, null, "SIGTERM"],
    ] as const) {
      const image = bin === hvt ? img("hello.hvt") : img("hello.spt");
      const c = spawn(bin, [image, "--standin-run"], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      c.stderr.on("data", (d: Buffer) => (err += d.toString()));
      await new Promise<void>((resolve) =>
        c.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("Hello, World")) resolve();
        }),
      );
      const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => c.on("exit", (code, sig) => resolve([code, sig])));
      c.kill("SIGTERM");
      assert.deepEqual(await exit, [expectCode, expectSignal]);
      if (bin === hvt) assert.equal(err, "solo5-hvt: Exiting on signal 15\n");
    }
  });
});

async function waitFor(c: ReturnType<Netns["spawn"]>, text: string): Promise<string> {
  let out = "";
  return new Promise((resolve, reject) => {
    c.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes(text)) resolve(out);
    });
    c.once("exit", (code) => reject(new Error(`exited with ${code} before printing ${text}: ${out}`)));
  });
}

describe("stand-in tender with real taps (netns)", async () => {
  const avail = await netnsAvailable();
  const skip = avail.ok ? false : avail.reason;

  it("attaches an up tap, holds it (second tender gets EBUSY), rejects a down tap", { skip }, async () => {
    await withNetns(async (ns) => {
      await ns.addBridge("br0");
      for (const tap of ["vmmtap0", "vmmtap1"]) await ns.ip("tuntap", "add", tap, "mode", "tap");
      await ns.ip("link", "set", "dev", "vmmtap0", "up");
      await ns.ip("link", "set", "dev", "vmmtap0", "master", "br0");
      const first = ns.spawn(hvt, ["--net:service=vmmtap0", "--net-mac:service=00:80:41:9a:6f:39", img("net.hvt"), "--standin-run"]);
      const out = await waitFor(first, "Hello, World");
      assert.match(out, /Standin: net service=vmmtap0 mac 00:80:41:9a:6f:39\n/);
      const second = await ns.exec(hvt, ["--net:service=vmmtap0", img("net.hvt")], { allowFail: true });
      assert.equal(second.code, 1);
      assert.match(second.stderr, /Could not attach interface: vmmtap0: Device or resource busy/);
      const down = await ns.exec(hvt, ["--net:service=vmmtap1", img("net.hvt")], { allowFail: true });
      assert.equal(down.code, 1);
      assert.match(down.stderr, /Could not attach interface: vmmtap1: Network is down/);
      const exited = new Promise<number | null>((resolve) => first.once("exit", (code) => resolve(code)));
      first.kill("SIGTERM");
      assert.equal(await exited, 1);
      // the tap is free again
      const again = await ns.exec(hvt, ["--net:service=vmmtap0", img("net.hvt")], { allowFail: true });
      assert.equal(again.code, 0, again.stderr);
    });
  });
});
