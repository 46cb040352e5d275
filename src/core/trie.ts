// A persistent (immutable) trie keyed by albatross names — upstream's Vmm_trie.
//
// Keys are the flattened label list of a name (`nameLabels`: path labels followed by the
// label, if any). Upstream quirk, mirrored on purpose: `:foo` (root path, label foo) and
// `foo:` (path foo, no label) are the SAME key `[foo]`; inserting one replaces the other.
// Like upstream, each entry remembers whether it was inserted as a path name, so that
// `all`/`fold`/`collect` rebuild `foo:` for a policy and `:foo` for a unikernel.
//
// Children are kept in a persistent AVL map (avl.ts), so insert/remove/find cost
// O(depth · log(children)) and share everything off the updated spine. All walks are
// iterative: hostile names may be very deep (paths have no depth limit).
import { avlAdd, avlEntries, avlFind, avlRemove, type Avl } from "./avl.js";
import { nameEquals, nameLabels, type Label, type Name, type Path } from "./name.js";

interface Entry<V> {
  readonly value: V;
  /** inserted under a name without label (a path) */
  readonly isPath: boolean;
}

interface TNode<V> {
  readonly entry: Entry<V> | undefined;
  readonly children: Avl<TNode<V>>;
}

const EMPTY_NODE: TNode<never> = Object.freeze({ entry: undefined, children: null });

/** Build the name of an entry from its (absolute or relative) label list. */
function entryName(labels: readonly Label[], isPath: boolean): Name {
  if (labels.length === 0) return { path: [], label: null };
  if (isPath) return { path: labels.slice(), label: null };
  return { path: labels.slice(0, -1), label: labels[labels.length - 1]! };
}

/** The node reached by following `labels` from `node`, if any. */
function descend<V>(node: TNode<V>, labels: readonly Label[]): TNode<V> | undefined {
  let cur: TNode<V> | undefined = node;
  for (let i = 0; i < labels.length && cur !== undefined; i++) cur = avlFind(cur.children, labels[i]!);
  return cur;
}

/**
 * Depth-first walk below `start` with ascending children. `labels` is a shared stack of
 * the labels from `start` to the current node (copy it to keep it). `pre` runs before a
 * node's children, `post` after them.
 */
function walk<V>(
  start: TNode<V>,
  pre: ((labels: readonly Label[], e: Entry<V>) => void) | null,
  post: ((labels: readonly Label[], e: Entry<V>) => void) | null,
): void {
  interface Frame {
    readonly node: TNode<V>;
    readonly kids: Array<[Label, TNode<V>]>;
    next: number;
  }
  const labels: Label[] = [];
  const enter = (node: TNode<V>): Frame => {
    if (pre && node.entry) pre(labels, node.entry);
    return { node, kids: avlEntries(node.children), next: 0 };
  };
  const stack: Frame[] = [enter(start)];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next < top.kids.length) {
      const [label, child] = top.kids[top.next++]!;
      labels.push(label);
      stack.push(enter(child));
    } else {
      stack.pop();
      if (post && top.node.entry) post(labels, top.node.entry);
      labels.pop(); // no-op for the start frame (labels is empty then)
    }
  }
}

export class Trie<V> {
  private constructor(
    private readonly root: TNode<V>,
    /** number of entries */
    readonly size: number,
  ) {}

  static empty<V>(): Trie<V> {
    return new Trie<V>(EMPTY_NODE, 0);
  }

  /** Insert (or replace) the value at `name`; `previous` is the replaced value, if any. */
  insert(name: Name, v: V): { trie: Trie<V>; previous: V | undefined } {
    const labels = nameLabels(name);
    // Walk down, remembering the spine, then rebuild it bottom-up.
    const spine: TNode<V>[] = [this.root];
    let cur: TNode<V> = this.root;
    for (const l of labels) {
      cur = avlFind(cur.children, l) ?? EMPTY_NODE;
      spine.push(cur);
    }
    const previous = cur.entry?.value;
    let node: TNode<V> = { entry: { value: v, isPath: name.label === null }, children: cur.children };
    for (let i = labels.length - 1; i >= 0; i--) {
      const parent = spine[i]!;
      node = { entry: parent.entry, children: avlAdd(parent.children, labels[i]!, node) };
    }
    return { trie: new Trie(node, cur.entry ? this.size : this.size + 1), previous };
  }

  /** Remove the value at `name` (the same trie if there is none); empty nodes are pruned. */
  remove(name: Name): Trie<V> {
    const labels = nameLabels(name);
    const spine: TNode<V>[] = [this.root];
    let cur: TNode<V> = this.root;
    for (const l of labels) {
      const next = avlFind(cur.children, l);
      if (next === undefined) return this;
      cur = next;
      spine.push(next);
    }
    if (!cur.entry) return this;
    let node: TNode<V> | null = cur.children === null ? null : { entry: undefined, children: cur.children };
    for (let i = labels.length - 1; i >= 0; i--) {
      const parent = spine[i]!;
      const children = node === null ? avlRemove(parent.children, labels[i]!) : avlAdd(parent.children, labels[i]!, node);
      node = children === null && !parent.entry ? null : { entry: parent.entry, children };
    }
    return new Trie(node ?? EMPTY_NODE, this.size - 1);
  }

  /** The value at `name` (by label list: `:foo` finds what `foo:` stored). */
  find(name: Name): V | undefined {
    return descend(this.root, nameLabels(name))?.entry?.value;
  }

  /**
   * Every entry in pre-order (node before its children, children ascending bytewise),
   * with absolute names. Entries inserted under a path name come back as path names
   * (`foo:`), others with their last label as label (`:foo`, `foo:bar`).
   */
  all(): Array<[Name, V]> {
    return this.subtree([]);
  }

  /** Like `all`, restricted to the subtree of `path` (absolute names, pre-order). */
  subtree(path: Path): Array<[Name, V]> {
    const start = descend(this.root, path);
    const out: Array<[Name, V]> = [];
    if (start === undefined) return out;
    walk(start, (rel, e) => out.push([entryName([...path, ...rel], e.isPath), e.value]), null);
    return out;
  }

  /**
   * Upstream `Vmm_trie.fold path`: visits the subtree of `path`, children ascending and each
   * node AFTER its children (post-order), with names relative to `path` (an entry at `path`
   * itself is reported as the root name `:`).
   */
  fold<A>(path: Path, f: (name: Name, v: V, acc: A) => A, acc: A): A {
    const start = descend(this.root, path);
    if (start === undefined) return acc;
    let a = acc;
    walk(start, null, (rel, e) => {
      a = f(entryName(rel, e.isPath), e.value, a);
    });
    return a;
  }

  /** The values at every prefix of `name` (including `name` itself), longest first. */
  collect(name: Name): Array<[Name, V]> {
    const labels = nameLabels(name);
    const out: Array<[Name, V]> = [];
    let cur: TNode<V> | undefined = this.root;
    for (let i = 0; cur !== undefined; i++) {
      if (cur.entry) out.push([entryName(labels.slice(0, i), cur.entry.isPath), cur.entry.value]);
      if (i === labels.length) break;
      cur = avlFind(cur.children, labels[i]!);
    }
    return out.reverse();
  }

  /** Same entries (names compared with `nameEquals`, values with `eq`) in the same order. */
  equals(other: Trie<V>, eq: (a: V, b: V) => boolean = Object.is): boolean {
    if (this.size !== other.size) return false;
    const a = this.all();
    const b = other.all();
    return a.every(([n, v], i) => nameEquals(n, b[i]![0]) && eq(v, b[i]![1]));
  }
}
