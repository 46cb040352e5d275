// Crash-consistent creates: hostd (a real child process, in a network namespace with a real
// bridge) is stopped at each step of a create by the test hook DROMEDARY_TEST_PAUSE_AT and
// killed with SIGKILL there; the next hostd must find and reap every tender, tap, image,
// FIFO and temporary file the dead one made, keep what was acknowledged, and bring back
// nothing that was not recorded. The same for a kill in the middle of a fold.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { encodeState } from "../../src/commands/codec.js";
import { PAUSE_STEPS } from "../../src/hostd/daemon.js";
import { readStored } from "../../src/hostd/store.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import {
  argv,
  commandWire,
  config,
  exchange,
  exists,
  foldedState,
  pidsWith,
  request,
  show,
  successOf,
  taps,
  waitFor,
  withHostd,
  type Env,
} from "../support/hostd.js";
import { encodeWire } from "../../src/commands/codec.js";

const NET = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;
const C = config(NET, { bridges: [{ netif: "service", bridge: "br0" }], argv: argv("--standin-run") });
// :victim's image is large (2 MiB): its create writes it into an image file of the journal
// (store.ts) while the create goes on, and the journal record names that file
const BIG = new Uint8Array(2 * 1024 * 1024);
BIG.set(NET);
BIG.set(randomBytes(BIG.length - NET.length), NET.length);
const CV = config(BIG, { bridges: [{ netif: "service", bridge: "br0" }], argv: argv("--standin-run") });

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

const running = async (env: Env): Promise<string[]> =>
  successOf(await request(env.socket, ":", { kind: "unikernel-info" }), "unikernel-info")
    .unikernels.map((u) => `:${u.name.label}`)
    .sort();

/** Everything a unikernel can leave behind, checked against the set that should be running. */
async function assertOnly(env: Env, expected: string[]): Promise<void> {
  assert.deepEqual(await running(env), expected);
  for (const name of [":keep", ":victim"]) {
    const want = expected.includes(name) ? 1 : 0;
    assert.equal((await pidsWith(join(env.tmpdir, `${name}.img`))).length, want, `tenders of ${name}`);
    assert.equal(await exists(join(env.tmpdir, `${name}.img`)), want === 1, `image of ${name}`);
    assert.equal(await exists(join(env.tmpdir, "fifo", name)), want === 1, `FIFO of ${name}`);
  }
  assert.equal((await taps(env.ns)).length, expected.length, "taps");
  // one intent record per running unikernel, no temporary files anywhere
  const intents = await readdir(join(env.tmpdir, "hostd.intent"));
  assert.equal(intents.filter((f) => f.endsWith(".json")).length, expected.length, intents.join());
  assert.deepEqual(
    intents.filter((f) => !f.endsWith(".json")),
    [],
  );
  assert.deepEqual(
    (await readdir(env.dbdir)).filter((f) => f.startsWith(".")),
    [],
  );
  assert.deepEqual(
    (await readdir(join(env.tmpdir, "fifo"))).filter((f) => !f.startsWith(".hostd-spare-") && !expected.includes(f)),
    [],
  );
  // the stored state (state file + journal) holds exactly what runs
  assert.deepEqual((await readStored(env.dbdir)).unikernels.map((u) => `:${u.name.label}`).sort(), expected);
}

describe("hostd: kill -9 at each step of a create", () => {
  for (const step of PAUSE_STEPS.filter((s) => !s.startsWith("fold-"))) {
    it(`killed at "${step}": nothing of an unrecorded create is left, acknowledged ones come back`, async (t) => {
      if (skip !== false) return t.skip(skip);
      await withNetns((ns) =>
        withHostd(ns, async (env) => {
          assert.equal(show(await request(env.socket, ":keep", { kind: "unikernel-create", config: C })), "success: created unikernel");
          await env.stopHostd("SIGTERM");
          await env.startHostd([], { DROMEDARY_TEST_PAUSE_AT: `${step},:victim` });
          // the create of :victim, whose reply never comes
          const pending = exchange(env.socket, [encodeWire(commandWire(":victim", { kind: "unikernel-create", config: CV }))], 60_000);
          await waitFor(`hostd to pause at ${step}`, async () => env.hostdLog.some((l) => l === `hostd: [TEST] paused at ${step}`));
          const killed = await env.stopHostd("SIGKILL");
          assert.equal(killed.signal, "SIGKILL");
          assert.deepEqual(await pending, [], "no reply");
          await env.startHostd();
          // Only a create whose journal record is durable is in the stored state; the kill
          // after that and before the reply is the one window where an unacknowledged
          // create survives (as with any commit whose reply is lost).
          const expected = step === "journal" ? [":keep", ":victim"] : [":keep"];
          await assertOnly(env, expected);
          // the start folded the journal: no image file of it is left (an unrecorded one
          // is removed, a recorded one went with its generation)
          assert.deepEqual(
            (await readdir(env.dbdir)).filter((f) => f.startsWith("state.image.")),
            [],
          );
          if (step === "tap" || step === "spawn" || step === "pid") {
            // the name is free again: one tender, one MAC on the bridge
            assert.equal(show(await request(env.socket, ":victim", { kind: "unikernel-create", config: CV })), "success: created unikernel");
            await assertOnly(env, [":keep", ":victim"]);
          }
          assert.ok(
            env.hostdLog.some((l) => /killing left-over tender|removed left-over/.test(l)) || step === "intent" || step === "journal",
            env.hostdLog.join("\n"),
          );
          for (const name of await running(env))
            assert.equal(show(await request(env.socket, name, { kind: "unikernel-destroy" })), "success: destroyed unikernel");
          await assertOnly(env, []);
        }),
      );
    });
  }

  for (const step of ["fold-written", "fold-renamed"] as const) {
    it(`killed at "${step}" of a fold: the state file and the journal together hold every acknowledged change`, async (t) => {
      if (skip !== false) return t.skip(skip);
      await withNetns((ns) =>
        withHostd(ns, async (env) => {
          await env.stopHostd("SIGTERM");
          await env.startHostd(["--fold-delay", "0"], { DROMEDARY_TEST_PAUSE_AT: step });
          const pending = request(env.socket, ":keep", { kind: "unikernel-create", config: C });
          assert.equal(show(await pending), "success: created unikernel");
          await waitFor(`hostd to pause at ${step}`, async () => env.hostdLog.some((l) => l === `hostd: [TEST] paused at ${step}`));
          await env.stopHostd("SIGKILL");
          await env.startHostd();
          await assertOnly(env, [":keep"]);
          const folded = await foldedState(env.dbdir);
          assert.deepEqual(Buffer.from(encodeState(folded.state)), Buffer.from(encodeState(await readStored(env.dbdir))));
        }),
      );
    });
  }
});
