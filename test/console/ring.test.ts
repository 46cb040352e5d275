// The 1024-entry console ring (daemon.md §3, upstream Vmm_ring).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Ring, RING_SIZE } from "../../src/console/ring.js";
import type { ConsoleEntry } from "../../src/console/ring.js";

const line = (i: number): Uint8Array => new TextEncoder().encode(`line ${i}`);
const text = (e: ConsoleEntry): string => new TextDecoder().decode(e.line);

function filled(n: number, ts: (i: number) => number = (i) => 1000 + i): Ring {
  const r = new Ring();
  for (let i = 0; i < n; i++) r.push(ts(i), line(i));
  return r;
}

describe("console ring", () => {
  it("holds 1024 entries", () => {
    assert.equal(RING_SIZE, 1024);
    assert.equal(new Ring().capacity, 1024);
  });

  it("count: the most recent lines, oldest first", () => {
    const r = filled(10);
    assert.deepEqual(r.last(3).map(text), ["line 7", "line 8", "line 9"]);
    assert.deepEqual(
      r.last(3).map((e) => e.timestamp),
      [1007, 1008, 1009],
    );
  });

  it("count 0 gives nothing; more than buffered gives what is buffered", () => {
    const r = filled(10);
    assert.deepEqual(r.last(0), []);
    assert.equal(r.last(11).length, 10);
    assert.equal(r.last(1_000_000).length, 10);
    assert.deepEqual(new Ring().last(5), []);
  });

  it("negative count gives every buffered line (upstream: all if not full, endless loop if full)", () => {
    assert.deepEqual(filled(5).last(-1).map(text), ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    const full = filled(1500);
    const all = full.last(-20);
    assert.equal(all.length, 1024);
    assert.equal(text(all[0]!), "line 476");
  });

  it("wraps at 1024: the oldest lines are overwritten", () => {
    const r = filled(1030);
    assert.equal(r.size, 1024);
    const all = r.last(2000);
    assert.equal(all.length, 1024);
    assert.equal(text(all[0]!), "line 6");
    assert.equal(text(all[1023]!), "line 1029");
    assert.deepEqual(r.last(1).map(text), ["line 1029"]);
    // exactly full, no wrap yet
    const exact = filled(1024);
    assert.equal(text(exact.last(1024)[0]!), "line 0");
    // one past full
    const one = filled(1025);
    assert.equal(text(one.last(1024)[0]!), "line 1");
  });

  it("since: every line not earlier than t, oldest first", () => {
    const r = filled(10); // timestamps 1000..1009
    assert.deepEqual(r.since(1007).map(text), ["line 7", "line 8", "line 9"]);
    assert.equal(r.since(0).length, 10);
    assert.deepEqual(r.since(1010), []);
    // equal timestamps are included ("not earlier")
    const same = filled(4, () => 5000);
    assert.equal(same.since(5000).length, 4);
    assert.equal(same.since(5001).length, 0);
  });

  it("since stops at the first earlier line going backwards (clock stepped back)", () => {
    const ts = [100, 200, 50, 300, 400];
    const r = filled(ts.length, (i) => ts[i]!);
    assert.deepEqual(r.since(150).map(text), ["line 3", "line 4"]);
  });

  it("since returns at most 1024 lines after wrapping", () => {
    const r = filled(3000);
    const got = r.since(0);
    assert.equal(got.length, 1024);
    assert.equal(text(got[0]!), "line 1976");
    assert.equal(text(got[1023]!), "line 2999");
  });

  it("rejects a bad capacity", () => {
    assert.throws(() => new Ring(0), RangeError);
    assert.throws(() => new Ring(1.5), RangeError);
  });
});
