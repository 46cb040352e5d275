// Console daemon bookkeeping: paths, labels, budgets, subscribers (daemon.md §3).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConsoleState, SUBSCRIBED, WAITING_FOR_VM } from "../../src/console/state.js";
import { nameToString } from "../../src/core/name.js";
import type { Path } from "../../src/core/name.js";

const ROOT: Path = [];
const FOO: Path = ["foo"];

describe("console state: Console_add", () => {
  it("a new path gets the budget and an active label with a fresh ring", () => {
    const st = new ConsoleState<string>();
    const d = st.add(FOO, "a", 3n);
    assert.deepEqual(d.close, []);
    const l = st.label(FOO, "a")!;
    assert.equal(l.active, true);
    assert.equal(l.ring, d.ring);
    assert.equal(st.budget(FOO), 3n);
  });

  it("an existing label becomes active again and keeps ring and subscribers; budget follows the request", () => {
    const st = new ConsoleState<string>();
    const first = st.add(FOO, "a", 3n);
    first.ring.push(1, Uint8Array.of(0x41));
    st.subscribe(FOO, "a", "s1", 5);
    st.readerEnded(FOO, "a", first.reader, 3n);
    assert.equal(st.label(FOO, "a")!.active, false);
    const again = st.add(FOO, "a", 7n);
    assert.equal(again.ring, first.ring);
    assert.equal(again.ring.size, 1);
    assert.equal(st.label(FOO, "a")!.active, true);
    assert.deepEqual(
      st.subscribers(FOO, "a").map((s) => s.conn),
      ["s1"],
    );
    assert.equal(st.budget(FOO), 7n);
  });

  it("an existing label without ring (subscribed before the VM) gets one", () => {
    const st = new ConsoleState<string>();
    assert.equal(st.subscribe(FOO, "a", "s1", 5).reply, WAITING_FOR_VM);
    assert.equal(st.label(FOO, "a")!.ring, null);
    const d = st.add(FOO, "a", 2n);
    assert.equal(st.label(FOO, "a")!.ring, d.ring);
    assert.deepEqual(
      st.subscribers(FOO, "a").map((s) => s.conn),
      ["s1"],
    );
  });

  it("budget drop rule: labels may exceed n by one, then the smallest inactive label is dropped", () => {
    const st = new ConsoleState<string>();
    const ends: Array<[string, number]> = [];
    for (const l of ["d", "b", "c"]) ends.push([l, st.add(FOO, l, 2n).reader]);
    // 3 labels > 2 but all active: nothing to drop, an error is logged, all kept
    assert.deepEqual(st.labels(FOO), ["b", "c", "d"]);
    for (const [l, r] of ends) st.readerEnded(FOO, l, r, 2n);
    st.subscribe(FOO, "b", "sub-b", 5);
    st.subscribe(FOO, "c", "sub-c", 5);
    const d = st.add(FOO, "e", 2n); // 4 labels > 2: drop the smallest inactive one: b
    assert.deepEqual(d.close, ["sub-b"]);
    assert.deepEqual(d.log, ["dropping foo:b"]);
    assert.deepEqual(st.labels(FOO), ["c", "d", "e"]);
  });

  it("budget drop rule logs when nothing inactive can be dropped", () => {
    const st = new ConsoleState<string>();
    st.add(FOO, "a", 1n);
    const d = st.add(FOO, "b", 1n);
    assert.deepEqual(d.close, []);
    assert.deepEqual(d.log, ["adding a ringbuffer to foo:b, but found nothing inactive to drop"]);
    assert.deepEqual(st.labels(FOO), ["a", "b"]);
  });

  it("n labels within the budget are all kept (> n, not >= n)", () => {
    const st = new ConsoleState<string>();
    const a = st.add(FOO, "a", 2n);
    st.readerEnded(FOO, "a", a.reader, 2n);
    const d = st.add(FOO, "b", 2n);
    assert.deepEqual(d.log, []);
    assert.deepEqual(st.labels(FOO), ["a", "b"]);
  });

  it("root budget 2^62-1 never drops", () => {
    const st = new ConsoleState<string>();
    for (let i = 0; i < 50; i++) {
      const d = st.add(ROOT, `u${i}`, (1n << 62n) - 1n);
      st.readerEnded(ROOT, `u${i}`, d.reader, (1n << 62n) - 1n);
    }
    assert.equal(st.labels(ROOT).length, 50);
  });

  it("the end of an old reader does not deactivate the label a newer Console_add owns", () => {
    const st = new ConsoleState<string>();
    const old = st.add(FOO, "a", 2n);
    const fresh = st.add(FOO, "a", 2n);
    st.readerEnded(FOO, "a", old.reader, 2n);
    assert.equal(st.label(FOO, "a")!.active, true);
    st.readerEnded(FOO, "a", fresh.reader, 2n);
    assert.equal(st.label(FOO, "a")!.active, false);
  });

  it("upstream quirk: the end of a reader resets the path budget to that add's n", () => {
    const st = new ConsoleState<string>();
    const a = st.add(FOO, "a", 2n);
    st.add(FOO, "b", 5n);
    assert.equal(st.budget(FOO), 5n);
    st.readerEnded(FOO, "a", a.reader, 2n);
    assert.equal(st.budget(FOO), 2n);
  });
});

describe("console state: Console_subscribe", () => {
  it("unknown path: created with budget 1, inactive label without ring, waiting for VM", () => {
    const st = new ConsoleState<string>();
    const d = st.subscribe(FOO, "a", "s", 5);
    assert.equal(d.reply, WAITING_FOR_VM);
    assert.equal(d.ring, null);
    assert.equal(st.budget(FOO), 1n);
    const l = st.label(FOO, "a")!;
    assert.equal(l.active, false);
    assert.deepEqual(l.subscribers, [{ conn: "s", version: 5 }]);
  });

  it("known label with ring: subscribed and the ring for the history", () => {
    const st = new ConsoleState<string>();
    const a = st.add(FOO, "a", 1n);
    const d = st.subscribe(FOO, "a", "s", 5);
    assert.equal(d.reply, SUBSCRIBED);
    assert.equal(d.ring, a.ring);
    // also after the VM stopped: the ring stays
    st.readerEnded(FOO, "a", a.reader, 1n);
    assert.equal(st.subscribe(FOO, "a", "t", 5).reply, SUBSCRIBED);
  });

  it("unknown label on a known path applies the drop rule with the stored budget; it may drop itself", () => {
    const st = new ConsoleState<string>();
    st.add(FOO, "x", 1n); // active
    const d = st.subscribe(FOO, "a", "me", 5); // labels {a (inactive), x} > 1: drop smallest inactive = a
    assert.equal(d.reply, WAITING_FOR_VM);
    assert.deepEqual(d.close, ["me"]);
    assert.deepEqual(d.log, ["dropping foo:a"]);
    assert.deepEqual(st.labels(FOO), ["x"]);
  });

  it("unknown label on a known path drops another smaller inactive label", () => {
    const st = new ConsoleState<string>();
    const a = st.add(FOO, "a", 1n);
    st.subscribe(FOO, "a", "old", 5);
    st.readerEnded(FOO, "a", a.reader, 1n);
    const d = st.subscribe(FOO, "b", "new", 5);
    assert.deepEqual(d.close, ["old"]);
    assert.deepEqual(st.labels(FOO), ["b"]);
  });

  it("subscriber limit off-by-one: with the default 5, six subscribers coexist", () => {
    const st = new ConsoleState<string>();
    assert.equal(st.maxSubscribers, 5);
    st.add(FOO, "a", 1n);
    for (let i = 1; i <= 6; i++) assert.deepEqual(st.subscribe(FOO, "a", `s${i}`, 5).close, []);
    assert.deepEqual(
      st.subscribers(FOO, "a").map((s) => s.conn),
      ["s6", "s5", "s4", "s3", "s2", "s1"],
    );
    // the seventh drops the oldest one only
    const d = st.subscribe(FOO, "a", "s7", 5);
    assert.deepEqual(d.close, ["s1"]);
    assert.equal(d.log.length, 1);
    assert.deepEqual(
      st.subscribers(FOO, "a").map((s) => s.conn),
      ["s7", "s6", "s5", "s4", "s3", "s2"],
    );
    assert.deepEqual(st.subscribe(FOO, "a", "s8", 5).close, ["s2"]);
  });

  it("subscriber limit with --max-subscribers 1: two coexist", () => {
    const st = new ConsoleState<string>(1);
    st.add(FOO, "a", 1n);
    assert.deepEqual(st.subscribe(FOO, "a", "s1", 5).close, []);
    assert.deepEqual(st.subscribe(FOO, "a", "s2", 5).close, []);
    assert.deepEqual(st.subscribe(FOO, "a", "s3", 5).close, ["s1"]);
  });

  it("the subscriber that created the entry counts from then on", () => {
    const st = new ConsoleState<string>();
    st.subscribe(FOO, "a", "s1", 5); // new path branch
    for (let i = 2; i <= 6; i++) assert.deepEqual(st.subscribe(FOO, "a", `s${i}`, 5).close, []);
    assert.deepEqual(st.subscribe(FOO, "a", "s7", 5).close, ["s1"]);
  });

  it("rejects max subscribers < 1", () => {
    assert.throws(() => new ConsoleState<string>(0), /greater than or equal to 1/);
  });
});

describe("console state: unsubscribe", () => {
  it("a waiting label without subscribers disappears, and so does its empty path", () => {
    const st = new ConsoleState<string>();
    st.subscribe(FOO, "a", "s", 5);
    st.unsubscribe(FOO, "a", "s");
    assert.equal(st.label(FOO, "a"), undefined);
    assert.equal(st.pathCount, 0);
  });

  it("labels with a ring or an active reader stay", () => {
    const st = new ConsoleState<string>();
    const a = st.add(FOO, "a", 5n);
    st.subscribe(FOO, "a", "s", 5);
    st.unsubscribe(FOO, "a", "s");
    assert.ok(st.label(FOO, "a"));
    st.readerEnded(FOO, "a", a.reader, 5n);
    st.subscribe(FOO, "a", "t", 5);
    st.unsubscribe(FOO, "a", "t");
    assert.ok(st.label(FOO, "a"), "inactive but with ring");
    st.unsubscribe(FOO, "a", "nobody");
    st.unsubscribe(["nope"], "a", "t");
  });

  it("waitingClosed: only subscriptions to labels without ring and reader are dropped at close", () => {
    const st = new ConsoleState<string>();
    st.subscribe(FOO, "w", "s", 5);
    assert.equal(st.waitingClosed(FOO, "w", "s"), true);
    assert.equal(st.pathCount, 0);
    st.add(FOO, "a", 5n);
    st.subscribe(FOO, "a", "t", 5);
    assert.equal(st.waitingClosed(FOO, "a", "t"), false);
    assert.deepEqual(
      st.subscribers(FOO, "a").map((x) => x.conn),
      ["t"],
    );
  });
});

describe("console state: Console_list_inactive", () => {
  function build(): ConsoleState<string> {
    const st = new ConsoleState<string>();
    const end = (p: Path, l: string): void => st.readerEnded(p, l, st.add(p, l, 100n).reader, 100n);
    end(ROOT, "a");
    end(ROOT, "b");
    end(["x"], "c");
    end(["y"], "d");
    end(["x", "z"], "e");
    end(["xa"], "f");
    st.add(["x"], "active", 100n); // active: not listed
    st.subscribe(["x"], "waiting", "s", 5); // no ring: not listed
    return st;
  }

  it("lists inactive labels with a ring, in upstream's trie-fold order", () => {
    assert.deepEqual(build().listInactive(ROOT).map(nameToString), [":b", ":a", "y:d", "xa:f", "x:c", "x:z:e"]);
  });

  it("names are relative to the queried path, the subtree only", () => {
    assert.deepEqual(build().listInactive(["x"]).map(nameToString), [":c", "z:e"]);
    assert.deepEqual(build().listInactive(["x", "z"]).map(nameToString), [":e"]);
    assert.deepEqual(build().listInactive(["nope"]), []);
  });
});
