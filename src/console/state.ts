// The bookkeeping of the console daemon (daemon.md §3, upstream albatross_console.ml):
// for every path a ring-buffer budget and a map label -> (subscribers, active flag,
// optional ring buffer).
//
// Deterministic and free of I/O: every operation updates the bookkeeping and returns what
// the shell has to do (reply text, connections to close, log lines). Subscriber
// connections are opaque handles of type S (the shell's connection object; tests use
// strings). The rings are mutable objects shared with the FIFO readers — copying a
// 1024-entry ring per line would be absurd — so this is a state machine, not a persistent
// value.

import { compareLabel, makeName, nameToString, pathToString } from "../core/name.js";
import type { Label, Name, Path } from "../core/name.js";
import { Ring } from "./ring.js";

const DEFAULT_MAX_SUBSCRIBERS = 5;

/** Reply texts (daemon.md §8). */
export const WAITING_FOR_VM = "waiting for VM";
export const SUBSCRIBED = "subscribed";
export const PATH_USED = "path used instead of name";
export const NAME_USED = "name used";
export const OPENING = "opening";

export interface Subscriber<S> {
  readonly conn: S;
  /** wire version of the subscribe request; data messages use it */
  readonly version: number;
}

export interface ConsoleLabel<S> {
  /** newest first */
  subscribers: Subscriber<S>[];
  /** a FIFO reader is running */
  active: boolean;
  ring: Ring | null;
  /** generation of the reader that currently owns `active` (0 = none) */
  reader: number;
}

interface PathEntry<S> {
  readonly path: Path;
  /** the n of the last Console_add (or 1 for a path created by a subscribe) */
  budget: bigint;
  readonly labels: Map<Label, ConsoleLabel<S>>;
}

export interface AddDecision<S> {
  /** the ring the new reader appends to */
  readonly ring: Ring;
  /** pass back to `readerEnded` */
  readonly reader: number;
  /** connections of a dropped label, to be closed */
  readonly close: S[];
  readonly log: string[];
}

export interface SubscribeDecision<S> {
  readonly reply: typeof WAITING_FOR_VM | typeof SUBSCRIBED;
  /** set iff reply = subscribed: the ring to send the history from */
  readonly ring: Ring | null;
  /** connections to close: the dropped oldest subscriber or a dropped label's subscribers
   * (which may include the new subscriber itself) */
  readonly close: S[];
  readonly log: string[];
}

const pathKey = (p: Path): string => pathToString(p);

export class ConsoleState<S> {
  private readonly paths = new Map<string, PathEntry<S>>();
  private generation = 0;

  constructor(readonly maxSubscribers: number = DEFAULT_MAX_SUBSCRIBERS) {
    if (!Number.isSafeInteger(maxSubscribers) || maxSubscribers < 1) throw new RangeError("max subscribers must be greater than or equal to 1");
  }

  /** Read-only view for the shell and for tests. */
  label(path: Path, label: Label): Readonly<ConsoleLabel<S>> | undefined {
    return this.paths.get(pathKey(path))?.labels.get(label);
  }

  budget(path: Path): bigint | undefined {
    return this.paths.get(pathKey(path))?.budget;
  }

  /** Labels known on a path, ascending. */
  labels(path: Path): Label[] {
    const e = this.paths.get(pathKey(path));
    return e ? [...e.labels.keys()].sort(compareLabel) : [];
  }

  get pathCount(): number {
    return this.paths.size;
  }

  /** Current subscribers of a label, newest first (the list to deliver new lines to). */
  subscribers(path: Path, label: Label): readonly Subscriber<S>[] {
    return this.label(path, label)?.subscribers ?? [];
  }

  /**
   * Console_add n, after the FIFO was opened successfully (a failed open changes nothing
   * and is answered `opening`).
   */
  add(path: Path, label: Label, budget: bigint): AddDecision<S> {
    const reader = ++this.generation;
    const key = pathKey(path);
    const entry = this.paths.get(key);
    if (entry === undefined) {
      const ring = new Ring();
      this.paths.set(key, { path, budget, labels: new Map([[label, { subscribers: [], active: true, ring, reader }]]) });
      return { ring, reader, close: [], log: [] };
    }
    const existing = entry.labels.get(label);
    if (existing !== undefined) {
      // Keeps ring and subscribers (a restarted unikernel continues its history).
      existing.active = true;
      existing.ring ??= new Ring();
      existing.reader = reader;
      entry.budget = budget;
      return { ring: existing.ring, reader, close: [], log: [] };
    }
    const ring = new Ring();
    entry.labels.set(label, { subscribers: [], active: true, ring, reader });
    const dropped = this.maybeDrop(entry, budget, makeName(path, label));
    entry.budget = budget;
    return { ring, reader, ...dropped };
  }

  /**
   * The reader started by the add that returned `reader` hit EOF or an error: the label
   * becomes inactive, ring and subscribers are kept (subscribers are not notified).
   * Upstream quirk kept: the path's budget is reset to that add's n.
   * Deviation (race only): upstream marks the label inactive even when a newer Console_add
   * for the same name already started another reader; here only the reader that currently
   * owns the label may do so.
   */
  readerEnded(path: Path, label: Label, reader: number, budget: bigint): void {
    const entry = this.paths.get(pathKey(path));
    const l = entry?.labels.get(label);
    if (entry === undefined || l === undefined || l.reader !== reader) return;
    l.active = false;
    l.reader = 0;
    entry.budget = budget;
  }

  /** Console_subscribe: register `conn` (before any reply is written). */
  subscribe(path: Path, label: Label, conn: S, version: number): SubscribeDecision<S> {
    const sub: Subscriber<S> = { conn, version };
    const key = pathKey(path);
    const entry = this.paths.get(key);
    if (entry === undefined) {
      this.paths.set(key, { path, budget: 1n, labels: new Map([[label, { subscribers: [sub], active: false, ring: null, reader: 0 }]]) });
      return { reply: WAITING_FOR_VM, ring: null, close: [], log: [] };
    }
    const l = entry.labels.get(label);
    if (l === undefined) {
      entry.labels.set(label, { subscribers: [sub], active: false, ring: null, reader: 0 });
      // The new label itself may be the one dropped (then `close` holds `conn`).
      const dropped = this.maybeDrop(entry, entry.budget, makeName(path, label));
      return { reply: WAITING_FOR_VM, ring: null, ...dropped };
    }
    const close: S[] = [];
    const log: string[] = [];
    // Upstream's comparison is `List.length subs - 1 >= maximum`: with the new subscriber
    // that lets maximum + 1 coexist, and at most one (the oldest) is dropped per subscribe.
    if (l.subscribers.length - 1 >= this.maxSubscribers) {
      const oldest = l.subscribers.pop()!;
      close.push(oldest.conn);
      log.push(`dropping subscriber of ${nameToString(makeName(path, label))}`);
    }
    l.subscribers.unshift(sub);
    return l.ring === null ? { reply: WAITING_FOR_VM, ring: null, close, log } : { reply: SUBSCRIBED, ring: l.ring, close, log };
  }

  /**
   * A write to `conn` failed (or it was dropped): forget the subscription. A label that is
   * then inactive, without ring and without subscribers is removed, and so is a path
   * without labels.
   */
  unsubscribe(path: Path, label: Label, conn: S): void {
    const key = pathKey(path);
    const entry = this.paths.get(key);
    const l = entry?.labels.get(label);
    if (entry === undefined || l === undefined) return;
    const i = l.subscribers.findIndex((s) => s.conn === conn);
    if (i < 0) return;
    l.subscribers.splice(i, 1);
    if (!l.active && l.ring === null && l.subscribers.length === 0) {
      entry.labels.delete(label);
      if (entry.labels.size === 0) this.paths.delete(key);
    }
  }

  /**
   * Deviation, for hostile input: a subscriber connection of a label that has no ring and no
   * reader closed. Upstream keeps such a subscription until a write to it fails — which
   * never happens while no VM of that name runs — so every subscribe to a made-up name
   * leaks an entry forever. When `conn` was subscribed to such a "waiting" label it is
   * unsubscribed now. Returns whether it was.
   */
  waitingClosed(path: Path, label: Label, conn: S): boolean {
    const l = this.label(path, label);
    if (l === undefined || l.active || l.ring !== null || !l.subscribers.some((s) => s.conn === conn)) return false;
    this.unsubscribe(path, label, conn);
    return true;
  }

  /**
   * Console_list_inactive on `path`: every label in the subtree that is inactive and has a
   * ring, named relative to `path`. Order as upstream's `Vmm_trie.fold` + cons produces it:
   * the reverse of a post-order walk (children ascending, each node's labels ascending
   * after its children) — i.e. a node's labels descending, then its children descending.
   */
  listInactive(path: Path): Name[] {
    const found: Array<{ rel: Path; label: Label }> = [];
    for (const e of this.paths.values()) {
      if (e.path.length < path.length || !path.every((l, i) => e.path[i] === l)) continue;
      const rel = e.path.slice(path.length);
      for (const [label, l] of e.labels) if (!l.active && l.ring !== null) found.push({ rel, label });
    }
    found.sort((a, b) => {
      const c = comparePostOrder(a.rel, b.rel);
      return c !== 0 ? c : compareLabel(a.label, b.label);
    });
    return found.reverse().map(({ rel, label }) => makeName(rel, label));
  }

  /**
   * Upstream `maybe_drop`: the label count may exceed the budget by one (`> n`, not `>= n`);
   * beyond that one inactive label — the smallest label name (OCaml `Map.choose` is the
   * minimum binding) — is dropped and its subscribers' connections are closed.
   */
  private maybeDrop(entry: PathEntry<S>, n: bigint, name: Name): { close: S[]; log: string[] } {
    if (BigInt(entry.labels.size) <= n) return { close: [], log: [] };
    let victim: Label | null = null;
    for (const [label, l] of entry.labels) if (!l.active && (victim === null || compareLabel(label, victim) < 0)) victim = label;
    if (victim === null) return { close: [], log: [`adding a ringbuffer to ${nameToString(name)}, but found nothing inactive to drop`] };
    const subs = entry.labels.get(victim)!.subscribers;
    entry.labels.delete(victim);
    return { close: subs.map((s) => s.conn), log: [`dropping ${pathToString(entry.path)}:${victim}`] };
  }
}

/** Post-order over label lists: a node after all of its descendants, siblings ascending. */
function comparePostOrder(a: Path, b: Path): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareLabel(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return b.length - a.length;
}
