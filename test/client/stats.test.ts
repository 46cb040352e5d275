// `dromedary stats`: a table per sample on a terminal (src/client/stats-table.ts), albatross'
// text when piped, JSON lines with --json; NAME as argument or -n.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rusage } from "../support/rusage.js";
import type { StatsData, Wire } from "../../src/commands/types.js";
import { parseName } from "../../src/core/name.js";
import { encodeWire } from "../../src/commands/codec.js";
import { processReplies, type Sink } from "../../src/client/replies.js";
import type { FrameEvent } from "../../src/transport/local.js";
import { StatsTable } from "../../src/client/stats-table.js";
import { runCli } from "../support/cli.js";

function stats(utimeS: number, txBytes: bigint): StatsData {
  return {
    rusage: rusage({
      utime: { seconds: BigInt(Math.floor(utimeS)), microseconds: Math.round((utimeS % 1) * 1e6) },
      stime: { seconds: 0n, microseconds: 0 },
      maxrss: 512n,
      minflt: 10n,
      nvcsw: 3n,
      nivcsw: 1n,
    }),
    ifdata: [
      {
        bridge: "service",
        flags: 0x11043,
        sendLength: 0,
        maxSendLength: 0,
        sendDrops: 0,
        mtu: 1500,
        baudrate: 0n,
        inputPackets: 5n,
        inputErrors: 0n,
        outputPackets: 6n,
        outputErrors: 0n,
        collisions: 0n,
        inputBytes: 490n,
        outputBytes: txBytes,
        inputMcast: 0n,
        outputMcast: 0n,
        inputDropped: 0n,
        outputDropped: 1n,
      },
    ],
    kinfoMem: { vsize: 3n << 20n, rss: 512n, tsize: 5n, dsize: 89n, ssize: 89n, runtime: 0n, cow: 0, start: { seconds: 0n, microseconds: 0 } },
  };
}

const data = (name: string, s: StatsData): Wire => ({
  header: { version: 5, sequence: 0n, name: parseName(name) },
  payload: { kind: "data", data: { kind: "statistics", stats: s } },
});

describe("dromedary stats output", () => {
  it("a table: CPU share and rates from the previous sample of the same unikernel", () => {
    let now = 1_000_000;
    const t = new StatsTable(() => now);
    const first = t.render(data(":web", stats(1, 1000n)));
    assert.match(first, /^web {2}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n/);
    assert.match(first, /cpu {7}user 1\.00 s {2}system 0\.00 s\n/);
    assert.match(first, /memory {4}resident 2\.0 MiB {2}virtual 3\.0 MiB/);
    assert.match(first, /uptime {4}16m 40s/);
    assert.match(first, /interface +received +packets +rate +sent +packets +rate +errors +drops\n +service +1000 B +6 +490 B +5 +0 +1/);
    now += 2000;
    const second = t.render(data(":web", stats(1.5, 1000n + 4096n)));
    assert.match(second, /user 1\.50 s {2}system 0\.00 s {2}25\.0 % of a core/);
    assert.match(second, /service +5\.0 KiB +6 +2\.0 KiB\/s +490 B +5 +0 B\/s/);
    // another unikernel has no previous sample yet
    assert.doesNotMatch(t.render(data(":db", stats(1, 0n))), /% of a core/);
    // a tenant's unikernel under its plain name, with rates of its own (not the root's `web`)
    const tenant = t.render(data("tenant:web", stats(1, 0n)));
    assert.match(tenant, /^tenant:web {2}\d{4}/);
    assert.doesNotMatch(tenant, /% of a core/);
  });

  it("tables only on a terminal; albatross' text when piped; JSON lines with --json", async () => {
    const frames = [
      encodeWire({
        header: { version: 5, sequence: 0n, name: parseName("foo:") },
        payload: { kind: "reply", reply: { kind: "string", text: new TextEncoder().encode("subscribed") } },
      }),
      encodeWire(data(":web", stats(1, 1n))),
    ];
    const render = async (sink: Partial<Sink>): Promise<string[]> => {
      const out: string[] = [];
      const events: FrameEvent[] = [...frames.map((payload) => ({ kind: "frame" as const, payload })), { kind: "end" }];
      const code = await processReplies(async () => events.shift()!, "read", {
        sink: { json: false, out: (l) => out.push(l), err: (l) => out.push(`ERR ${l}`), ...sink },
        startedAt: new Date(),
      });
      assert.equal(code, 0);
      return out;
    };
    const tty = await render({ tty: true });
    assert.equal(tty[0], "foo: subscribed"); // a terminal: plain names (src/client/tables.ts)
    assert.equal((await render({}))[0], "host [unikernel: foo:]: success: subscribed");
    assert.match(tty[1]!, /^web {2}.*\n {2}cpu /); // a root unikernel: its plain name
    const piped = await render({});
    assert.match(piped[1]!, /^stats: utime 1\.000000 stime 0\.000000 maxrss 512 /);
    const json = await render({ json: true, tty: true });
    assert.equal((JSON.parse(json[1]!) as { header: { name: string } }).header.name, ":web");
  });

  it("NAME as an argument or with -n, not both", async () => {
    const both = await runCli(["stats", "foo:", "-n", "bar:", "--socket", "-"]);
    assert.equal(both.code, 124);
    assert.match(both.stderr, /either as NAME or with -n, not both/);
    const pos = await runCli(["stats", "foo:bar", "--socket", "-"]);
    const opt = await runCli(["stats", "-n", "foo:bar", "--socket", "-"]);
    assert.equal(pos.code, 121);
    assert.equal(pos.stdout, opt.stdout);
    assert.notEqual(pos.stdout, (await runCli(["stats", "--socket", "-"])).stdout);
  });
});
