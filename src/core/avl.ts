// A small persistent (immutable) AVL map from labels to values, ordered by `compareLabel`
// (bytewise). Internal building block of trie.ts: it keeps a trie node's children sorted
// (pre-/post-order walks need ascending children) and makes an update O(log k) instead
// of copying all k children — the same structure OCaml's Map gives upstream's Vmm_trie.
// The balancing scheme is OCaml's Map (heights may differ by at most 2).
import { compareLabel, type Label } from "./name.js";

export interface AvlNode<V> {
  readonly l: Avl<V>;
  readonly k: Label;
  readonly v: V;
  readonly r: Avl<V>;
  readonly h: number;
}

/** An AVL tree; `null` is the empty map. */
export type Avl<V> = AvlNode<V> | null;

const height = <V>(t: Avl<V>): number => (t === null ? 0 : t.h);

function create<V>(l: Avl<V>, k: Label, v: V, r: Avl<V>): AvlNode<V> {
  const hl = height(l);
  const hr = height(r);
  return { l, k, v, r, h: Math.max(hl, hr) + 1 };
}

function bal<V>(l: Avl<V>, k: Label, v: V, r: Avl<V>): AvlNode<V> {
  const hl = height(l);
  const hr = height(r);
  if (hl > hr + 2) {
    const L = l!; // hl > 2 so l is a node
    if (height(L.l) >= height(L.r)) return create(L.l, L.k, L.v, create(L.r, k, v, r));
    const LR = L.r!;
    return create(create(L.l, L.k, L.v, LR.l), LR.k, LR.v, create(LR.r, k, v, r));
  }
  if (hr > hl + 2) {
    const R = r!;
    if (height(R.r) >= height(R.l)) return create(create(l, k, v, R.l), R.k, R.v, R.r);
    const RL = R.l!;
    return create(create(l, k, v, RL.l), RL.k, RL.v, create(RL.r, R.k, R.v, R.r));
  }
  return create(l, k, v, r);
}

export function avlFind<V>(t: Avl<V>, k: Label): V | undefined {
  while (t !== null) {
    const c = compareLabel(k, t.k);
    if (c === 0) return t.v;
    t = c < 0 ? t.l : t.r;
  }
  return undefined;
}

/** Insert or replace the binding of `k`. Recursion depth is the tree height (O(log k)). */
export function avlAdd<V>(t: Avl<V>, k: Label, v: V): AvlNode<V> {
  if (t === null) return { l: null, k, v, r: null, h: 1 };
  const c = compareLabel(k, t.k);
  if (c === 0) return t.v === v ? t : { l: t.l, k, v, r: t.r, h: t.h };
  if (c < 0) return bal(avlAdd(t.l, k, v), t.k, t.v, t.r);
  return bal(t.l, t.k, t.v, avlAdd(t.r, k, v));
}

function minBinding<V>(t: AvlNode<V>): AvlNode<V> {
  while (t.l !== null) t = t.l;
  return t;
}

function removeMin<V>(t: AvlNode<V>): Avl<V> {
  if (t.l === null) return t.r;
  return bal(removeMin(t.l), t.k, t.v, t.r);
}

function merge<V>(a: Avl<V>, b: Avl<V>): Avl<V> {
  if (a === null) return b;
  if (b === null) return a;
  const m = minBinding(b);
  return bal(a, m.k, m.v, removeMin(b));
}

/** Remove the binding of `k` (the same tree if absent). */
export function avlRemove<V>(t: Avl<V>, k: Label): Avl<V> {
  if (t === null) return null;
  const c = compareLabel(k, t.k);
  if (c === 0) return merge(t.l, t.r);
  if (c < 0) {
    const l = avlRemove(t.l, k);
    return l === t.l ? t : bal(l, t.k, t.v, t.r);
  }
  const r = avlRemove(t.r, k);
  return r === t.r ? t : bal(t.l, t.k, t.v, r);
}

/** All bindings in ascending key order. */
export function avlEntries<V>(t: Avl<V>): Array<[Label, V]> {
  const out: Array<[Label, V]> = [];
  const stack: AvlNode<V>[] = [];
  let cur: Avl<V> = t;
  while (cur !== null || stack.length > 0) {
    while (cur !== null) {
      stack.push(cur);
      cur = cur.l;
    }
    const n = stack.pop()!;
    out.push([n.k, n.v]);
    cur = n.r;
  }
  return out;
}
