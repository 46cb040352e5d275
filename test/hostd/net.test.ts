import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { bosRunError, createTap, isValidIfName, NetError, nextTapName, parseIpLinkNames, parseTuntapShow } from "../../src/hostd/net.js";
import { netnsAvailable, withNetns, type Netns } from "../support/netns.js";

const runner = fileURLToPath(new URL("../support/net-runner.js", import.meta.url));

describe("pure helpers", () => {
  it("parses `ip tuntap show`, only vmmtap lines", () => {
    const out = [
      "vmmtap0: tap persist",
      "vmmtap12: tap one_queue vnet_hdr persist user 0",
      "tap0: tap persist",
      "vmmtap: tap",
      "vmmtapx: tap",
      "vmmtap3",
      "othertap5: tap",
      "vmmtap01: tap persist",
      "",
    ].join("\n");
    // vmmtap01 is not vmmtap1 (upstream's int_of_string would say 1; harmless either way)
    assert.deepEqual(parseTuntapShow(out), [0, 3, 12]);
    assert.deepEqual(parseTuntapShow(""), []);
  });
  it("picks the smallest free tap number", () => {
    assert.equal(nextTapName([]), "vmmtap0");
    assert.equal(nextTapName([0, 1, 3]), "vmmtap2");
    assert.equal(nextTapName([1, 2]), "vmmtap0");
    assert.equal(nextTapName([2, 0, 1]), "vmmtap3");
  });
  it("parses `ip -o link show` names", () => {
    const out =
      "2: br0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000\\    link/ether 8a:c5:b0:5e:df:36 brd ff:ff:ff:ff:ff:ff\n" +
      "7: veth0@if6: <BROADCAST,MULTICAST,UP> mtu 1500\\    link/ether aa:bb:cc:dd:ee:ff\n" +
      "garbage\n";
    assert.deepEqual(parseIpLinkNames(out), ["br0", "veth0"]);
  });
  it("validates interface names like the kernel", () => {
    for (const ok of ["br0", "service", "a", "x".repeat(15), "my-bridge.1"]) assert.ok(isValidIfName(ok), ok);
    for (const bad of ["", ".", "..", "x".repeat(16), "a/b", "a:b", "a b", "a\tb", "a\0"]) assert.ok(!isValidIfName(bad), bad);
  });
  it("words errors like upstream", () => {
    assert.equal(
      bosRunError(["ip", "tuntap", "add", "vmmtap0", "mode", "tap"], { code: 1 }),
      'run ["ip"; "tuntap"; "add"; "vmmtap0"; "mode"; "tap"]: exited with 1',
    );
  });
  it("refuses invalid bridge names before running anything", async () => {
    await assert.rejects(createTap("up down", "/nonexistent/ip"), (e: unknown) => e instanceof NetError && /invalid interface name/.test(e.message));
  });
  it("reports a missing ip binary as NetError", async () => {
    await assert.rejects(createTap("br0", "/nonexistent/ip"), (e: unknown) => e instanceof NetError && /ENOENT/.test(e.message));
  });
});

async function op(ns: Netns, ...args: string[]): Promise<{ ok: boolean; value: unknown }> {
  const r = await ns.exec(process.execPath, [runner, ...args], { allowFail: true });
  const value: unknown = JSON.parse(r.stdout);
  return { ok: r.code === 0, value };
}

async function tapsOf(ns: Netns): Promise<number[]> {
  return parseTuntapShow(await ns.ip("tuntap", "show"));
}

describe("taps and bridges in a network namespace", async () => {
  const avail = await netnsAvailable();
  const skip = avail.ok ? false : avail.reason;

  it("creates vmmtap0, vmmtap1 attached and up, reuses freed numbers, destroys", { skip }, async () => {
    await withNetns(async (ns) => {
      await ns.addBridge("br0");
      assert.deepEqual(await op(ns, "create", "br0"), { ok: true, value: ["vmmtap0"] });
      assert.deepEqual(await op(ns, "create", "br0"), { ok: true, value: ["vmmtap1"] });
      assert.deepEqual(parseIpLinkNames(await ns.ip("-o", "link", "show", "master", "br0")).sort(), ["vmmtap0", "vmmtap1"]);
      assert.match(await ns.ip("link", "show", "dev", "vmmtap0"), /<[^>]*\bUP\b[^>]*>/);
      assert.deepEqual(await op(ns, "destroy", "vmmtap0"), { ok: true, value: null });
      assert.deepEqual(await tapsOf(ns), [1]);
      assert.deepEqual(await op(ns, "create", "br0"), { ok: true, value: ["vmmtap0"] });
      assert.deepEqual(await op(ns, "create", "br0"), { ok: true, value: ["vmmtap2"] });
      assert.deepEqual(await tapsOf(ns), [0, 1, 2]);
    });
  });

  it("serialises concurrent creations in one process", { skip }, async () => {
    await withNetns(async (ns) => {
      await ns.addBridge("br0");
      const r = await op(ns, "create", "br0", "4");
      assert.equal(r.ok, true);
      assert.deepEqual([...(r.value as string[])].sort(), ["vmmtap0", "vmmtap1", "vmmtap2", "vmmtap3"]);
    });
  });

  it("removes the tap again when attaching to the bridge fails", { skip }, async () => {
    await withNetns(async (ns) => {
      await ns.addBridge("br0");
      const r = await op(ns, "create", "nobridge");
      assert.equal(r.ok, false);
      const v = r.value as { error: string; upstream: string };
      assert.match(v.error, /^ip link set dev vmmtap0 master nobridge: /);
      assert.match(v.upstream, /^run \["ip"; "link"; "set"; "dev"; "vmmtap0"; "master"; "nobridge"\]: exited with \d+$/);
      assert.deepEqual(await tapsOf(ns), []);
      // a non-bridge device as "bridge" fails the same way
      assert.equal((await op(ns, "create", "lo")).ok, false);
      assert.deepEqual(await tapsOf(ns), []);
    });
  });

  it("finds bridges and tells existing interfaces apart", { skip }, async () => {
    await withNetns(async (ns) => {
      assert.deepEqual(await op(ns, "bridges"), { ok: true, value: [] });
      await ns.addBridge("br0");
      await ns.addBridge("service");
      await ns.ip("tuntap", "add", "plain0", "mode", "tap");
      assert.deepEqual(await op(ns, "bridges"), { ok: true, value: ["br0", "service"] });
      assert.deepEqual(await op(ns, "exists", "plain0"), { ok: true, value: true });
      assert.deepEqual(await op(ns, "exists", "br0"), { ok: true, value: true });
      assert.deepEqual(await op(ns, "exists", "nope"), { ok: true, value: false });
      // `ip link show up` would list every up link; we never let a name become a keyword
      assert.deepEqual(await op(ns, "exists", "up"), { ok: true, value: false });
      assert.deepEqual(await op(ns, "exists", "a/b"), { ok: true, value: false });
    });
  });
});
