// A full disk (issue 10): hostd's --tmpdir (images) and --dbdir (block devices) on small
// tmpfs mounts, filled up. Every write failure is answered with a clear failure, nothing
// half-written is left (image, FIFO, tap, upload file, a partially written device), what
// was there before is kept, and hostd keeps serving.
import { describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { encodeWire } from "../../src/commands/codec.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { argv, commandWire, config, exchange, frameOf, MAIN, request, show, successOf, taps, type Env } from "../support/hostd.js";
import { allLeftovers, scenario } from "./support.js";

const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
const MiB = 1 << 20;

/** A runnable image padded with `bytes` of random data (takes that much disk, compresses to no less). */
const padded = (bytes: number): Uint8Array => {
  const b = new Uint8Array(HELLO.length + bytes);
  b.set(HELLO);
  b.set(randomBytes(bytes), HELLO.length);
  return b;
};

async function blocks(env: Env): Promise<string[]> {
  const r = successOf(await request(env.socket, ":", { kind: "block-info" }), "block-devices");
  return r.devices.map((d) => `${d.name.label}:${d.size}`).sort();
}

/** `dromedary <args>` against env's hostd; exit code and stderr. */
function cli(env: Env, args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn("node", [MAIN, ...args, "--socket", env.socket], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.once("exit", (code) => resolve({ code, stderr, stdout }));
  });
}

describe("a full --tmpdir: the image write fails", () => {
  scenario(
    "a 6 MB image on a 4 MB tmpdir: 'error writing image ...: ENOSPC', nothing left; zeros cost no space; hostd serves on",
    async (env: Env) => {
      const big = padded(6 * MiB);
      const c = (image: Uint8Array, compressed = false) => config(image, { compressed, argv: argv("--standin-run"), bridges: [] });
      assert.equal(
        show(await request(env.socket, ":big", { kind: "unikernel-create", config: c(big) })),
        `failure: error writing image ${join(env.tmpdir, ":big.img")}: ENOSPC`,
      );
      assert.equal(
        show(await request(env.socket, ":bigz", { kind: "unikernel-create", config: c(deflateSync(big), true) })),
        `failure: error writing image ${join(env.tmpdir, ":bigz.img")}: ENOSPC`,
      );
      assert.deepEqual(await allLeftovers(env), []);
      assert.deepEqual(await taps(env.ns), []);
      // the space is free again: a 64 MiB image of zeros (holes) fits the 4 MB tmpfs
      const sparse = new Uint8Array(64 * MiB);
      sparse.set(HELLO);
      assert.equal(
        show(await request(env.socket, ":sparse", { kind: "unikernel-create", config: c(deflateSync(sparse), true) })),
        "success: created unikernel",
      );
      assert.equal((await stat(join(env.tmpdir, ":sparse.img"))).size, 64 * MiB);
      assert.equal(show(await request(env.socket, ":sparse", { kind: "unikernel-destroy" })), "success: destroyed unikernel");
      assert.equal(show(await request(env.socket, ":ok", { kind: "unikernel-create", config: c(HELLO) })), "success: created unikernel");
      assert.equal(show(await request(env.socket, ":ok", { kind: "unikernel-destroy" })), "success: destroyed unikernel");
      assert.deepEqual(await allLeftovers(env), []);
    },
    { mounts: { tmpdir: "4m" } },
  );
});

describe("a full --dbdir: block data writes fail", () => {
  scenario(
    "set, create-block --data and the old inline forms on a full disk: failures, no partial device, the old content kept",
    async (env: Env) => {
      assert.equal(show(await request(env.socket, ":disk", { kind: "block-add", size: 4 })), "success: added block device");
      const first = randomBytes(64 * 1024);
      assert.equal(show(await request(env.socket, ":disk", { kind: "block-set-old", compressed: false, data: first })), "success: set block device");
      // fill the file system
      const filler = join(env.dbdir, "filler");
      await writeFile(filler, Buffer.alloc(0));
      for (;;) {
        try {
          await writeFile(filler, randomBytes(256 * 1024), { flag: "a" });
        } catch {
          break;
        }
      }
      const data = randomBytes(3 * MiB);
      // a streamed set: refused, the device keeps its content and size, no upload file left
      const chunks: Buffer[] = [];
      for (let i = 0; i < data.length; i += 4096) chunks.push(frameOf(data.subarray(i, i + 4096)));
      const set = await exchange(
        env.socket,
        [encodeWire(commandWire(":disk", { kind: "block-set", compressed: false }))],
        20_000,
        Buffer.concat([...chunks, Buffer.alloc(4)]),
        1,
      );
      assert.equal(show(set), "failure: error writing to file descriptor");
      const f = join(env.dbdir, "block", ":disk");
      assert.equal((await stat(f)).size, 4 * MiB);
      assert.deepEqual((await readFile(f)).subarray(0, first.length), first);
      assert.deepEqual(await readdir(join(env.dbdir, "block")), [":disk"]);
      // the old inline set: the same
      assert.equal(show(await request(env.socket, ":disk", { kind: "block-set-old", compressed: false, data })), "failure: error writing to file descriptor");
      assert.deepEqual((await readFile(f)).subarray(0, first.length), first);
      // the old add with inline data: not registered, no file
      assert.equal(
        show(await request(env.socket, ":inl", { kind: "block-add-old", size: 3, compressed: true, data: deflateSync(data) })),
        "failure: error writing to file descriptor",
      );
      // create-block --data: the add succeeds, the data does not fit, the device is removed again
      const file = join(env.tmpdir, "data.img");
      await writeFile(file, data.subarray(0, 2 * MiB));
      const r = await cli(env, ["create-block", "new", "2", "--data", file]);
      assert.equal(r.code, 117, r.stderr);
      assert.match(r.stderr, /removing the block device again/);
      assert.deepEqual(await blocks(env), ["disk:4"]);
      assert.deepEqual(await readdir(join(env.dbdir, "block")), [":disk"]);
      // space again: everything works
      await rm(filler);
      const r2 = await cli(env, ["create-block", "new", "2", "--data", file]);
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(await blocks(env), ["disk:4", "new:2"]);
      assert.deepEqual((await readFile(join(env.dbdir, "block", ":new"))).subarray(0, 2 * MiB), data.subarray(0, 2 * MiB));
      assert.equal(show(await request(env.socket, ":", { kind: "unikernel-info" })), "success unikernel-info");
    },
    { mounts: { dbdir: "8m" } },
  );
});
