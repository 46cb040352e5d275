// policy.md §13.2 (T1–T6) plus persistence, removal and a model-based property.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Trie } from "../../src/core/trie.js";
import { compareLabels, nameLabels, nameToString, parseName, parsePath, rootName, type Name } from "../../src/core/name.js";

const N = parseName;
const show = (xs: Array<[Name, number]>): Array<[string, number]> => xs.map(([k, v]) => [nameToString(k), v]);

function build(entries: Array<[string, number]>): Trie<number> {
  let t = Trie.empty<number>();
  for (const [k, v] of entries) {
    const r = t.insert(N(k), v);
    assert.equal(r.previous, undefined, `no previous value for ${k}`);
    t = r.trie;
  }
  return t;
}

function foldList(t: Trie<number>, path: string): Array<[string, number]> {
  return t.fold<Array<[string, number]>>(parsePath(path), (name, v, acc) => (acc.push([nameToString(name), v]), acc), []);
}

test("T1 empty trie equals empty trie", () => {
  const a = Trie.empty<number>();
  const b = Trie.empty<number>();
  assert.ok(a.equals(b));
  assert.equal(a.size, 0);
  assert.deepEqual(a.all(), []);
  assert.ok(!a.equals(build([["foo", 1]])));
});

test("T2 one element: insert, find, all, fold, collect", () => {
  const { trie: t, previous } = Trie.empty<number>().insert(N("foo"), 1);
  assert.equal(previous, undefined);
  assert.equal(t.find(N("foo")), 1);
  assert.equal(Trie.empty<number>().find(N("foo")), undefined);
  for (const k of ["bar", "foo.bar", "foo:foo"]) assert.equal(t.find(N(k)), undefined, k);
  assert.deepEqual(show(t.all()), [[":foo", 1]]);
  assert.deepEqual(foldList(t, ""), [[":foo", 1]]);
  assert.deepEqual(show(t.collect(N("foo"))), [[":foo", 1]]);
  assert.equal(t.size, 1);
});

test("T3 flat trie alpha, beta, caesar", () => {
  const t = build([
    ["alpha", 1],
    ["beta", 2],
    ["caesar", 3],
  ]);
  assert.equal(t.find(N("alpha")), 1);
  assert.equal(t.find(N("beta")), 2);
  assert.equal(t.find(N("caesar")), 3);
  const expected: Array<[string, number]> = [
    [":alpha", 1],
    [":beta", 2],
    [":caesar", 3],
  ];
  assert.deepEqual(show(t.all()), expected);
  assert.deepEqual(foldList(t, ""), expected);
});

test("T4 nested trie alpha:a, alpha:b, alpha:c, beta:d", () => {
  const t = build([
    ["alpha:a", 1],
    ["alpha:b", 2],
    ["alpha:c", 3],
    ["beta:d", 4],
  ]);
  for (const [k, v] of [
    ["alpha:a", 1],
    ["alpha:b", 2],
    ["alpha:c", 3],
    ["beta:d", 4],
  ] as const)
    assert.equal(t.find(N(k)), v);
  const expected: Array<[string, number]> = [
    ["alpha:a", 1],
    ["alpha:b", 2],
    ["alpha:c", 3],
    ["beta:d", 4],
  ];
  assert.deepEqual(show(t.all()), expected);
  assert.deepEqual(foldList(t, ""), expected);
  assert.deepEqual(foldList(t, "alpha"), [
    [":a", 1],
    [":b", 2],
    [":c", 3],
  ]);
});

test("T5 nested trie with dotted labels", () => {
  const t = build([
    ["alpha:a.b.c", 1],
    ["alpha:b.c", 2],
    ["alpha:c", 3],
    ["beta:d", 4],
  ]);
  const expected: Array<[string, number]> = [
    ["alpha:a.b.c", 1],
    ["alpha:b.c", 2],
    ["alpha:c", 3],
    ["beta:d", 4],
  ];
  assert.deepEqual(show(t.all()), expected);
  assert.deepEqual(foldList(t, ""), expected);
  assert.deepEqual(foldList(t, "alpha"), [
    [":a.b.c", 1],
    [":b.c", 2],
    [":c", 3],
  ]);
});

test("T6 paths and names mixed: all pre-order, collect longest first", () => {
  const t = build([
    ["alpha:beta:a", 1],
    ["alpha:beta:", 2],
    ["alpha:", 3],
    [":", 4],
    ["beta:", 5],
  ]);
  assert.deepEqual(show(t.all()), [
    [":", 4],
    ["alpha:", 3],
    ["alpha:beta:", 2],
    ["alpha:beta:a", 1],
    ["beta:", 5],
  ]);
  assert.deepEqual(show(t.collect(N("alpha:beta:a"))), [
    ["alpha:beta:a", 1],
    ["alpha:beta:", 2],
    ["alpha:", 3],
    [":", 4],
  ]);
  // fold: children ascending, node after its children, names relative to the start path
  assert.deepEqual(foldList(t, ""), [
    ["alpha:beta:a", 1],
    ["alpha:beta:", 2],
    ["alpha:", 3],
    ["beta:", 5],
    [":", 4],
  ]);
  assert.deepEqual(foldList(t, "alpha"), [
    ["beta:a", 1],
    ["beta:", 2],
    [":", 3],
  ]);
  assert.deepEqual(foldList(t, "nope"), []);
  assert.deepEqual(show(t.subtree(parsePath("alpha"))), [
    ["alpha:", 3],
    ["alpha:beta:", 2],
    ["alpha:beta:a", 1],
  ]);
  assert.deepEqual(show(t.subtree(parsePath("gamma"))), []);
});

test("quirk: `:foo` and `foo:` are the same key; the last insertion's shape is kept", () => {
  const a = Trie.empty<number>().insert(N(":foo"), 1).trie;
  assert.equal(a.find(N("foo:")), 1);
  const { trie: b, previous } = a.insert(N("foo:"), 2);
  assert.equal(previous, 1);
  assert.equal(b.size, 1);
  assert.deepEqual(show(b.all()), [["foo:", 2]]);
  assert.equal(b.remove(N(":foo")).size, 0);
});

test("insert replaces and reports the previous value; tries are persistent", () => {
  const t1 = build([
    ["a:b", 1],
    ["a:c", 2],
  ]);
  const { trie: t2, previous } = t1.insert(N("a:b"), 10);
  assert.equal(previous, 1);
  assert.equal(t2.size, 2);
  assert.equal(t1.find(N("a:b")), 1, "old version unchanged");
  assert.equal(t2.find(N("a:b")), 10);
  const t3 = t2.remove(N("a:c"));
  assert.equal(t2.find(N("a:c")), 2, "old version unchanged by remove");
  assert.equal(t3.find(N("a:c")), undefined);
  assert.equal(t3.size, 1);
});

test("remove prunes empty nodes, keeps inner values, ignores absent names", () => {
  const t = build([
    ["a:b:c", 1],
    ["a:", 2],
  ]);
  const r = t.remove(N("a:b:c"));
  assert.deepEqual(show(r.all()), [["a:", 2]]);
  assert.deepEqual(show(r.remove(N("a:")).all()), []);
  assert.ok(r.remove(N("a:")).equals(Trie.empty()));
  assert.equal(t.remove(N("x:y")), t);
  assert.equal(t.remove(N("a:b:")), t, "inner node without value");
  assert.equal(t.remove(N("a:b:c:d")), t);
  // removing an inner value keeps the subtree
  const s = t.remove(N("a:"));
  assert.deepEqual(show(s.all()), [["a:b:c", 1]]);
  assert.deepEqual(show(s.insert(rootName, 0).trie.all()), [
    [":", 0],
    ["a:b:c", 1],
  ]);
});

test("very deep names do not overflow the stack", () => {
  const deep = Array.from({ length: 20000 }, (_, i) => `l${i % 7}`);
  const name: Name = { path: deep, label: "end" };
  const t = Trie.empty<number>()
    .insert(name, 1)
    .trie.insert({ path: deep.slice(0, 5), label: null }, 2).trie;
  assert.equal(t.find(name), 1);
  assert.equal(t.all().length, 2);
  assert.equal(
    t.fold(deep.slice(0, 3), (_n, v, acc) => acc + v, 0),
    3,
  );
  assert.equal(t.collect(name).length, 2);
  assert.equal(t.remove(name).size, 1);
});

test("many siblings stay ordered (AVL balancing)", () => {
  let t = Trie.empty<number>();
  const labels = Array.from({ length: 500 }, (_, i) => `x${(i * 7919) % 500}`);
  labels.forEach((l, i) => {
    t = t.insert({ path: ["p"], label: l }, i).trie;
  });
  for (let i = 0; i < 500; i += 2) t = t.remove({ path: ["p"], label: labels[i]! });
  const got = t.all().map(([k]) => k.label!);
  assert.deepEqual(got, [...got].sort());
  assert.equal(got.length, 250);
  labels.forEach((l, i) => {
    assert.equal(t.find({ path: ["p"], label: l }), i % 2 === 0 ? undefined : i);
  });
});

test("property: trie behaves like a map keyed by label lists, all() in label-list order", () => {
  const label = fc.constantFrom("a", "b", "c", "a.b", "B", "-x");
  const nameArb = fc.record({ path: fc.array(label, { maxLength: 3 }), label: fc.option(label, { nil: null }) });
  const op = fc.oneof(
    fc.record({ kind: fc.constant("ins" as const), name: nameArb, v: fc.integer() }),
    fc.record({ kind: fc.constant("del" as const), name: nameArb }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      let t = Trie.empty<number>();
      const model = new Map<string, { labels: string[]; v: number }>();
      for (const o of ops) {
        const labels = nameLabels(o.name);
        const key = JSON.stringify(labels);
        if (o.kind === "ins") {
          const r = t.insert(o.name, o.v);
          assert.equal(r.previous, model.get(key)?.v);
          t = r.trie;
          model.set(key, { labels, v: o.v });
        } else {
          t = t.remove(o.name);
          model.delete(key);
        }
        assert.equal(t.find(o.name), model.get(key)?.v);
      }
      assert.equal(t.size, model.size);
      const expected = [...model.values()].sort((x, y) => compareLabels(x.labels, y.labels)).map((e) => [e.labels, e.v]);
      assert.deepEqual(
        t.all().map(([k, v]) => [nameLabels(k), v]),
        expected,
      );
    }),
  );
});
