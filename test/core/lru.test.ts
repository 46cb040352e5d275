import { test } from "node:test";
import * as assert from "node:assert/strict";
import { LruCache, bytesKey } from "../../src/core/lru.js";

test("LruCache evicts the least recently used entry beyond its capacity", () => {
  const c = new LruCache<string, number>(2);
  c.set("a", 1);
  c.set("b", 2);
  assert.equal(c.get("a"), 1); // b is now the oldest
  c.set("c", 3);
  assert.equal(c.size, 2);
  assert.equal(c.get("b"), undefined);
  assert.equal(c.get("a"), 1);
  assert.equal(c.get("c"), 3);
  c.set("a", 10); // replacing refreshes too
  c.set("d", 4);
  assert.equal(c.get("c"), undefined);
  assert.equal(c.get("a"), 10);
  c.clear();
  assert.equal(c.size, 0);
  assert.throws(() => new LruCache(0), RangeError);
  assert.throws(() => new LruCache(1.5), RangeError);
});

test("bytesKey: equal bytes give equal keys, different bytes or splits different keys", () => {
  const u = (...b: number[]) => Uint8Array.from(b);
  assert.equal(bytesKey(u(0, 255, 128)), bytesKey(Uint8Array.from([9, 0, 255, 128]).subarray(1)));
  assert.notEqual(bytesKey(u(0, 255, 128)), bytesKey(u(0, 255, 129)));
  assert.notEqual(bytesKey(u(1, 2), u(3)), bytesKey(u(1), u(2, 3)));
  assert.equal(bytesKey(u(1, 2), u(3)), bytesKey(u(1, 2), u(3)));
  assert.equal(bytesKey(u(0xff)).length, 1);
});
