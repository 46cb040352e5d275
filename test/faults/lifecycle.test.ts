// Concurrent lifecycle commands on one unikernel name (issue 10, "every request is
// answered"): destroys, force-creates and restarts racing each other, over hostd's Unix
// socket and through the TLS endpoint — each client answered within a deadline, exactly one
// tender afterwards (or none), nothing leaked, the daemon serving. Repeated: the hangs this
// guards against showed in about one round of three.
import { describe } from "node:test";
import assert from "node:assert/strict";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { argv, config, pidsWith, request, show, successOf, taps, type Env } from "../support/hostd.js";
import { parseName } from "../../src/core/name.js";
import { allLeftovers, deadline, leftovers, scenario, withEndpoint } from "./support.js";
import { join } from "node:path";

const NET = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;
const ROUNDS = 3;
/** every request must be answered within this (a create or destroy takes well under 1 s) */
const DEADLINE_MS = 30_000;

const running = { kind: "unikernel-create", config: config(NET, { bridges: [{ netif: "service", bridge: "br0" }], argv: argv("--standin-run") }) } as const;
const force = (memory: number) =>
  ({ kind: "unikernel-force-create", config: config(NET, { bridges: [{ netif: "service", bridge: "br0" }], argv: argv("--standin-run"), memory }) }) as const;

const ask = (env: Env, name: string, cmd: Parameters<typeof request>[2]): Promise<string> =>
  deadline(request(env.socket, name, cmd, DEADLINE_MS + 5_000).then(show), DEADLINE_MS, `${cmd.kind} ${name}`);

async function infoMemory(env: Env, name: string): Promise<number[]> {
  return successOf(await request(env.socket, name, { kind: "unikernel-info" }), "unikernel-info").unikernels.map((u) => u.info.memory);
}

describe("concurrent lifecycle commands over the Unix socket", () => {
  scenario("5 concurrent destroys of one running unikernel: all answered, one destroys it, nothing left", async (env) => {
    for (let round = 0; round < ROUNDS; round++) {
      assert.equal(await ask(env, ":d", running), "success: created unikernel");
      const replies = await Promise.all(Array.from({ length: 5 }, () => ask(env, ":d", { kind: "unikernel-destroy" })));
      // one owner at a time: the first destroys it, the others find it gone (upstream's
      // not-running texts: the woken waiter leaves the name in the restarting set once)
      assert.equal(replies.filter((r) => r === "success: destroyed unikernel").length, 1, replies.join(" | "));
      for (const r of replies)
        assert.ok(["success: destroyed unikernel", "success: destroyed: removed from restarting", "failure: destroy: not found"].includes(r), r);
      assert.deepEqual(await leftovers(env, ":d"), []);
      assert.deepEqual(await taps(env.ns), []);
      await ask(env, ":d", { kind: "unikernel-destroy" }); // clear the restarting set for the next round
    }
    assert.deepEqual(await allLeftovers(env), []);
  });

  scenario("10 concurrent force-creates of one name: each answered, each replaced it, one tender and one tap in the end", async (env) => {
    for (let round = 0; round < ROUNDS; round++) {
      const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(env, ":m1", force(32 + i))));
      assert.deepEqual(replies, Array(10).fill("success: created unikernel"));
      assert.equal((await pidsWith(join(env.tmpdir, ":m1.img"))).length, 1);
      assert.deepEqual(await taps(env.ns), ["vmmtap0"]);
      assert.equal((await infoMemory(env, ":m1")).length, 1);
    }
    assert.equal(await ask(env, ":m1", { kind: "unikernel-destroy" }), "success: destroyed unikernel");
    assert.deepEqual(await allLeftovers(env), []);
  });

  scenario("destroys, force-creates and restarts mixed: all answered, the end state is consistent", async (env) => {
    for (let round = 0; round < ROUNDS; round++) {
      assert.equal(await ask(env, ":mix", running), "success: created unikernel");
      const cmds = [
        force(40),
        { kind: "unikernel-restart" } as const,
        { kind: "unikernel-destroy" } as const,
        force(48),
        { kind: "unikernel-restart" } as const,
        { kind: "unikernel-destroy" } as const,
        force(56),
      ];
      const replies = await Promise.all(cmds.map((c) => ask(env, ":mix", c)));
      for (const r of replies) assert.match(r, /^(success|failure): /);
      // the last one in line decides: here a force-create, so it runs (exactly once)
      const mem = await infoMemory(env, ":mix");
      const tenders = (await pidsWith(join(env.tmpdir, ":mix.img"))).length;
      assert.equal(tenders, mem.length);
      assert.ok(tenders <= 1);
      assert.deepEqual(await taps(env.ns), tenders === 1 ? ["vmmtap0"] : []);
      await ask(env, ":mix", { kind: "unikernel-destroy" });
      await ask(env, ":mix", { kind: "unikernel-destroy" });
      assert.deepEqual(await leftovers(env, ":mix"), []);
    }
    // still serving
    assert.equal(await ask(env, ":", { kind: "unikernel-info" }), "success unikernel-info");
  });
});

describe("concurrent lifecycle commands through the TLS endpoint", () => {
  scenario("5 destroys and 10 force-creates of one name, repeated: every client answered", async (env) => {
    await withEndpoint(env, async (r) => {
      const name = parseName("m1");
      const remote = (c: Parameters<typeof r.as>[0]) => deadline(r.as(c, name), DEADLINE_MS, c.kind);
      for (let round = 0; round < ROUNDS; round++) {
        const created = await Promise.all(Array.from({ length: 10 }, (_, i) => remote(force(32 + i))));
        assert.deepEqual(
          created.map((x) => x.texts),
          Array(10).fill(["success: created unikernel"]),
        );
        assert.equal((await pidsWith(join(env.tmpdir, "arc:m1.img"))).length, 1);
        const destroyed = await Promise.all(Array.from({ length: 5 }, () => remote({ kind: "unikernel-destroy" })));
        for (const d of destroyed) assert.equal(d.texts.length, 1);
        assert.equal(destroyed.filter((d) => d.texts[0] === "success: destroyed unikernel").length, 1);
        assert.deepEqual(await leftovers(env, "arc:m1"), []);
        await remote({ kind: "unikernel-destroy" });
      }
      assert.deepEqual(await allLeftovers(env), []);
    });
  });
});
