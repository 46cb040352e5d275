// hostd against a disk that fills up: --dbdir on a 3 MB tmpfs (the reported data loss), the
// FIFO directory out of inodes, a full disk under policy changes and destroys. Each time:
// every client gets one answer, nothing acknowledged is lost (also across kill -9 and
// restarts), nothing leaks, the state file always parses, and the daemon keeps serving.
// The tmpfs mounts live in a private mount namespace (test/support/hostd.ts `privateMounts`).
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeState } from "../../src/commands/codec.js";
import { readStored } from "../../src/hostd/store.js";
import { encodeRecord } from "../../src/hostd/journal.js";
import { parseName } from "../../src/core/name.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { argv, config, exists, pidsWith, request, show, successOf, taps, waitFor, withHostd, type Env, type HostdTestOptions } from "../support/hostd.js";

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

function scenario(name: string, fn: (env: Env) => Promise<void>, opts: HostdTestOptions): void {
  it(name, async (t) => {
    if (skip !== false) return t.skip(skip);
    await withNetns((ns) => withHostd(ns, fn, opts));
  });
}

/** A stand-in image of about `kb` KiB that does not compress. */
const bigImage = (kb: number): Uint8Array => buildSolo5Elf({ target: "hvt", devices: [], text: randomBytes(kb * 1024) }).bytes;
const NET = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;

const running = async (env: Env): Promise<string[]> =>
  successOf(await request(env.socket, ":", { kind: "unikernel-info" }), "unikernel-info")
    .unikernels.map((u) => `:${u.name.label}`)
    .sort();

/** `state` and `state.bak` (where present) parse; returns the names in `state`. */
async function stateParses(env: Env): Promise<string[] | null> {
  let names: string[] | null = null;
  for (const f of ["state", "state.bak"]) {
    let b: Buffer;
    try {
      b = await readFile(env.view(join(env.dbdir, f)));
    } catch {
      continue;
    }
    const st = decodeState(new Uint8Array(b)); // throws if it does not parse
    if (f === "state") names = st.state.unikernels.map((u) => `:${u.name.label}`).sort();
  }
  return names;
}

const noTemps = async (env: Env): Promise<void> => {
  assert.deepEqual(
    (await readdir(env.view(env.dbdir))).filter((f) => f.startsWith(".")),
    [],
  );
};

describe("hostd: a full dbdir (3 MB tmpfs)", () => {
  scenario(
    "creates until the disk is full: each answered, failures clean, every acknowledged one survives kill -9 and restarts; freeing space recovers",
    async (env) => {
      // the operator's own file on the same disk (removed later to free space)
      await writeFile(env.view(join(env.dbdir, "filler")), new Uint8Array(1024 * 1024));
      const image = bigImage(160);
      const acked: string[] = [];
      const failures: string[] = [];
      for (let i = 0; i < 40 && failures.length < 4; i++) {
        const name = `:u${i}`;
        const r = await request(env.socket, name, { kind: "unikernel-create", config: config(image, { argv: argv("--standin-run") }) });
        assert.equal(r.length, 1, "exactly one answer");
        const text = show(r);
        if (text === "success: created unikernel") acked.push(name);
        else {
          // refused while the disk still has room to fold the state file (store.ts checkRoom)
          assert.match(text, /^failure: could not record the change: ENOSPC: /);
          failures.push(name);
          // nothing of it is left
          assert.deepEqual(await pidsWith(join(env.tmpdir, `${name}.img`)), []);
          assert.equal(await exists(join(env.tmpdir, `${name}.img`)), false);
          assert.equal(await exists(join(env.tmpdir, "fifo", name)), false);
        }
        await stateParses(env);
      }
      assert.ok(acked.length >= 5, `acknowledged: ${acked.join()}`);
      assert.ok(failures.length >= 1, "the disk never filled up");
      acked.sort();
      assert.deepEqual(await running(env), acked);
      assert.deepEqual((await readStored(env.view(env.dbdir))).unikernels.map((u) => `:${u.name.label}`).sort(), acked);
      // the daemon keeps serving: policies (small records) may or may not fit, but are answered
      const p = show(await request(env.socket, "t:", { kind: "policy-add", policy: { unikernels: 1n, cpuids: [0], memory: 64, block: 0, bridges: [] } }));
      assert.ok(p === "success: added policy" || /^failure: could not record the change: ENOSPC/.test(p), p);
      const policies = successOf(await request(env.socket, "t:", { kind: "policy-info" }), "policies").policies;
      assert.equal(policies.length, p.startsWith("success") ? 1 : 0, "a failed policy add is rolled back");
      // kill -9: every acknowledged unikernel comes back, nothing else
      await env.stopHostd("SIGKILL");
      await env.startHostd();
      assert.deepEqual(await running(env), acked);
      for (const f of failures) assert.deepEqual(await pidsWith(join(env.tmpdir, `${f}.img`)), []);
      assert.equal((await pidsWith(join(env.tmpdir, ":u0.img"))).length, 1);
      await stateParses(env);
      await noTemps(env); // the fold at start failed (full) or is done: no temporary file either way
      // and a clean restart
      await env.stopHostd("SIGTERM");
      await env.startHostd();
      assert.deepEqual(await running(env), acked);
      await noTemps(env);
      // the operator frees space: creates work again, and the journal is folded (the next
      // successful change makes hostd retry the fold at once)
      await rm(env.view(join(env.dbdir, "filler")));
      assert.equal(
        show(await request(env.socket, ":after", { kind: "unikernel-create", config: config(image, { argv: argv("--standin-run") }) })),
        "success: created unikernel",
      );
      const all = [...acked, ":after"].sort();
      try {
        await waitFor("the fold after space was freed", async () => (await stateParses(env))?.join() === all.join());
      } catch (e) {
        const files = await readdir(env.view(env.dbdir));
        const sizes = await Promise.all(files.map(async (f) => `${f}=${(await stat(env.view(join(env.dbdir, f)))).size}`));
        throw new Error(`${(e as Error).message}\n${sizes.join(" ")}\n${env.hostdLog.join("\n")}`);
      }
      assert.ok(!env.hostdLog.some((l) => /could not record/.test(l) && l.includes(":after")));
    },
    { privateMounts: [{ dir: "db", options: "size=3m" }], hostdArgs: ["--fold-delay", "100"] },
  );

  scenario(
    "at 0 bytes free: a create, a policy change and a destroy each get a clear failure and are rolled back; nothing leaks",
    async (env) => {
      const journal = env.view(join(env.dbdir, "state.journal.1"));
      const netCfg = config(NET, { bridges: [{ netif: "service", bridge: "br0" }], argv: argv("--standin-run") });
      assert.equal(show(await request(env.socket, ":a", { kind: "unikernel-create", config: netCfg })), "success: created unikernel");
      // :b's record is sized so that the journal ends exactly at a page boundary: then even
      // the smallest record needs a new page, which a full disk does not have
      const j = (await stat(journal)).size;
      let bCfg = config(bigImage(16), { argv: argv("--standin-run") });
      for (let pad = 0; ; pad++) {
        bCfg = { ...bCfg, argv: argv("--standin-run", `--pad=${"x".repeat(pad)}`) };
        if ((j + encodeRecord([{ kind: "put-unikernel", name: parseName(":b"), config: bCfg }]).length) % 4096 === 0) break;
      }
      assert.equal(show(await request(env.socket, ":b", { kind: "unikernel-create", config: bCfg })), "success: created unikernel");
      assert.equal((await stat(journal)).size % 4096, 0);
      // fill the disk to the last byte
      const fill = env.view(join(env.dbdir, "fill"));
      const fh = await open(fill, "w");
      try {
        for (const size of [64 * 1024, 1]) {
          try {
            for (;;) await fh.write(new Uint8Array(size));
          } catch (e) {
            assert.equal((e as NodeJS.ErrnoException).code, "ENOSPC");
          }
        }
      } finally {
        await fh.close();
      }
      const c = show(await request(env.socket, ":c", { kind: "unikernel-create", config: netCfg }));
      assert.match(c, /^failure: could not record the change: ENOSPC: /);
      assert.deepEqual(await taps(env.ns), ["vmmtap0"]); // :c's tap is gone again
      assert.deepEqual(await pidsWith(join(env.tmpdir, ":c.img")), []);
      assert.equal(await exists(join(env.tmpdir, ":c.img")), false);
      const p = show(await request(env.socket, "t:", { kind: "policy-add", policy: { unikernels: 1n, cpuids: [0], memory: 64, block: 0, bridges: [] } }));
      assert.match(p, /^failure: could not record the change: ENOSPC/);
      assert.deepEqual(successOf(await request(env.socket, "t:", { kind: "policy-info" }), "policies").policies, []);
      const d = show(await request(env.socket, ":b", { kind: "unikernel-destroy" }));
      assert.match(d, /^failure: could not record the change: ENOSPC.*\(the unikernel is stopped but stays in the stored state/);
      assert.deepEqual(await running(env), [":a"]);
      assert.equal((await stat(journal)).size % 4096, 0, "failed records are cut off again");
      await noTemps(env);
      assert.deepEqual((await readStored(env.view(env.dbdir))).unikernels.map((u) => `:${u.name.label}`).sort(), [":a", ":b"]);
      // space again: the destroy is recorded by the next change (here: destroying again)
      await rm(fill);
      assert.equal(show(await request(env.socket, ":b", { kind: "unikernel-destroy" })), "success: destroyed: removed from restarting");
      assert.deepEqual(
        (await readStored(env.view(env.dbdir))).unikernels.map((u) => `:${u.name.label}`),
        [":a"],
      );
      assert.equal(show(await request(env.socket, ":c", { kind: "unikernel-create", config: netCfg })), "success: created unikernel");
    },
    { privateMounts: [{ dir: "db", options: "size=3m" }], hostdArgs: ["--fold-delay", "60000"] },
  );
});

describe("hostd: the FIFO directory out of inodes", () => {
  scenario(
    "mkfifo's ENOSPC fails the create with its reason; nothing is left; after a destroy there is room again",
    async (env) => {
      const c = config(NET, { bridges: [{ netif: "service", bridge: "br0" }], argv: argv("--standin-run") });
      const acked: string[] = [];
      let failed: string | null = null;
      for (let i = 0; i < 12 && failed === null; i++) {
        const r = show(await request(env.socket, `:f${i}`, { kind: "unikernel-create", config: c }));
        if (r === "success: created unikernel") acked.push(`:f${i}`);
        else {
          assert.match(r, new RegExp(`^failure: file ${join(env.tmpdir, "fifo", `:f${i}`).replace(/[.]/g, "\\.")} error in mkfifo: .*No space left on device`));
          failed = `:f${i}`;
        }
      }
      assert.ok(failed !== null, "the FIFO directory never ran out of inodes");
      assert.ok(acked.length >= 1);
      assert.equal(await exists(join(env.tmpdir, `${failed}.img`)), false);
      assert.equal((await taps(env.ns)).length, acked.length);
      assert.equal((await readdir(join(env.tmpdir, "hostd.intent"))).length, acked.length);
      assert.deepEqual(await running(env), acked.sort());
      assert.equal(show(await request(env.socket, acked[0]!, { kind: "unikernel-destroy" })), "success: destroyed unikernel");
      assert.equal(show(await request(env.socket, failed, { kind: "unikernel-create", config: c })), "success: created unikernel");
      await env.stopHostd("SIGKILL");
      await env.startHostd();
      assert.deepEqual(await running(env), [...acked.slice(1), failed].sort());
    },
    { privateMounts: [{ dir: "fifo", options: "size=1m,nr_inodes=6,mode=2770" }] },
  );
});
