// zlib bombs (issue 10): a small compressed image or block upload that inflates to far more
// than allowed — over hostd's Unix socket and through the TLS endpoint. Each is refused
// with the limit named, `info` keeps being answered meanwhile, nothing is left (image,
// FIFO, tap, tender, upload file, device), and hostd keeps serving. (Memory and latency
// figures: bench/bomb.bench.ts.)
import { describe } from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { encodeWire } from "../../src/commands/codec.js";
import { parseName } from "../../src/core/name.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { argv, commandWire, config, exchange, frameOf, request, show, successOf, type Env } from "../support/hostd.js";
import { allLeftovers, deadline, scenario, withEndpoint, zeroBomb } from "./support.js";

const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
const MiB = 1 << 20;
/** 512 MiB of zeros: about 500 KB of zlib */
const BOMB = await zeroBomb(512 * MiB);
const LIMIT = ["--max-image-size", String(32 * MiB)];

/** Ask `info` in a loop until `p` settles; how many were answered (each within a deadline). */
async function infoWhile(env: Env, p: Promise<unknown>): Promise<number> {
  let done = false;
  void p.finally(() => (done = true));
  let n = 0;
  while (!done) {
    assert.equal(show(await deadline(request(env.socket, ":", { kind: "unikernel-info" }), 10_000, "info during a bomb")), "success unikernel-info");
    n++;
  }
  return n;
}

describe("zlib bombs over the Unix socket", () => {
  scenario(
    "a create whose image inflates to 512 MiB: refused at --max-image-size, info answered meanwhile, nothing left",
    async (env: Env) => {
      assert.ok(BOMB.length < MiB);
      const create = request(env.socket, ":bomb", { kind: "unikernel-create", config: config(BOMB, { compressed: true }) }, 60_000).then(show);
      const infos = await infoWhile(env, create);
      assert.equal(await create, "failure: failed to uncompress: image exceeds the limit of 32 MiB");
      assert.ok(infos >= 1);
      assert.deepEqual(await allLeftovers(env), []);
      // a force-create and a restart with new arguments of a running unikernel meet the same bound
      const ok = config(HELLO, { argv: argv("--standin-run") });
      assert.equal(show(await request(env.socket, ":run", { kind: "unikernel-create", config: ok })), "success: created unikernel");
      assert.equal(
        show(await request(env.socket, ":run", { kind: "unikernel-force-create", config: config(BOMB, { compressed: true }) }, 60_000)),
        "failure: failed to uncompress: image exceeds the limit of 32 MiB",
      );
      // (the force-create stopped the old instance first, as upstream: nothing runs now)
      assert.deepEqual(await allLeftovers(env), []);
      assert.equal(show(await request(env.socket, ":run", { kind: "unikernel-create", config: ok })), "success: created unikernel");
      assert.equal(show(await request(env.socket, ":run", { kind: "unikernel-destroy" })), "success: destroyed unikernel");
      assert.deepEqual(await allLeftovers(env), []);
    },
    { hostdArgs: LIMIT },
  );

  scenario("block data bombs: a streamed set and the old inline add are cut at the device size", async (env: Env) => {
    assert.equal(show(await request(env.socket, ":disk", { kind: "block-add", size: 8 })), "success: added block device");
    const chunks: Buffer[] = [];
    for (let i = 0; i < BOMB.length; i += 4096) chunks.push(frameOf(BOMB.subarray(i, i + 4096)));
    const set = exchange(
      env.socket,
      [encodeWire(commandWire(":disk", { kind: "block-set", compressed: true }))],
      60_000,
      Buffer.concat([...chunks, Buffer.alloc(4)]),
      1,
    ).then(show);
    await infoWhile(env, set);
    assert.equal(await set, "failure: stream exceeds size");
    const add = request(env.socket, ":inline", { kind: "block-add-old", size: 8, compressed: true, data: BOMB }, 60_000).then(show);
    await infoWhile(env, add);
    assert.equal(await add, "failure: data exceeds block size");
    const devices = successOf(await request(env.socket, ":", { kind: "block-info" }), "block-devices").devices.map((d) => d.name.label);
    assert.deepEqual(devices, ["disk"]);
    assert.deepEqual(await readdir(join(env.dbdir, "block")), [":disk"]);
  });
});

describe("zlib bombs through the TLS endpoint", () => {
  scenario(
    "a remote create with a bomb image (streamed after the handshake): the limit in the reply, hostd serves on",
    async (env: Env) => {
      await withEndpoint(env, async (r) => {
        const reply = await deadline(
          r.as({ kind: "unikernel-create", config: config(BOMB, { compressed: true }) }, parseName("bomb")),
          60_000,
          "remote bomb create",
        );
        assert.equal(reply.code, 117);
        assert.deepEqual(reply.texts, ["failure: failed to uncompress: image exceeds the limit of 32 MiB"]);
        assert.deepEqual(await allLeftovers(env), []);
        const ok = await r.as({ kind: "unikernel-create", config: config(HELLO, { argv: argv("--standin-run") }) }, parseName("fine"));
        assert.deepEqual(ok.texts, ["success: created unikernel"]);
        assert.deepEqual((await r.as({ kind: "unikernel-destroy" }, parseName("fine"))).texts, ["success: destroyed unikernel"]);
      });
      assert.deepEqual(await allLeftovers(env), []);
    },
    { hostdArgs: LIMIT },
  );
});
