// The stats daemon's decisions (albatross-stats, daemon.md §4): which unikernels are
// registered, who subscribed to what, what each request is answered, and after a sampling
// round who gets which message. Pure: "state + input -> new state + effects"; the shell
// (daemon.ts) does the reading, writing and closing the effects ask for.
//
// `C` is the shell's connection type; the core only stores and compares it.
//
// Differences from upstream, none visible on the wire to a well-behaved peer:
// * a Stats_add for a name that is already registered replaces the registration (upstream
//   hits an assertion and dies);
// * registrations, subscriptions and the interfaces of one registration are bounded; a
//   registration over the bound is answered with a success text saying it was ignored (a
//   Failure would make hostd drop its stats connection, and with it every registration);
// * a subscriber whose connection closed is unsubscribed at once (upstream waits for the
//   next failing write); a pid that is not positive is refused;
// * losing hostd drops the registrations but keeps the subscribers (upstream forgets them
//   too, leaving their connections open and silent): after hostd re-registers its
//   unikernels the data flows to them again;
// * a subscription for a path (`foo:bar:`) gets nothing for the unikernel of the same
//   labels (`foo:bar`), where upstream's name arithmetic raises and kills the daemon;
// * a /proc file that does not parse is reported once and the unikernel skipped until it
//   parses again (upstream unregisters it as if it had exited).

import type { Header, StatsData, Wire } from "../commands/types.js";
import { dropPrefix, isPrefix, nameToString, type Name } from "../core/name.js";
import { Trie } from "../core/trie.js";

/** One (unikernel netif, host tap) pair of a registration. */
export interface Nic {
  readonly netif: string;
  readonly tap: string;
}

export interface Registration {
  readonly name: Name;
  readonly pid: number;
  readonly vmmdev: string;
  /** the taps that could be resolved at registration, in the order given */
  readonly nics: readonly Nic[];
}

interface Subscription<C> {
  readonly name: Name;
  /** wire version of the subscribe request (the data is sent with it) */
  readonly version: number;
  readonly conn: C;
}

export interface StatsState<C> {
  readonly units: Trie<Registration>;
  readonly subs: Trie<Subscription<C>>;
}

export interface Limits {
  /** registered unikernels */
  readonly maxUnikernels: number;
  /** subscriptions (distinct names) */
  readonly maxSubscribers: number;
  /** (netif, tap) pairs of one registration */
  readonly maxNics: number;
}

export const initialStatsState = <C>(): StatsState<C> => ({ units: Trie.empty(), subs: Trie.empty() });

/** A request as the shell hands it over (taps of an add already resolved: I/O). */
export type Input =
  | { readonly kind: "add"; readonly vmmdev: string; readonly pid: number; readonly nics: readonly Nic[]; readonly requested: number }
  | { readonly kind: "remove" }
  | { readonly kind: "subscribe" }
  | { readonly kind: "initial" }
  | { readonly kind: "other"; readonly what: string };

type Reply = { readonly kind: "success"; readonly text: string } | { readonly kind: "failure"; readonly text: string };

export interface Decision<C> {
  readonly state: StatsState<C>;
  readonly reply: Reply;
  /** connections to close after the reply was written (a replaced subscriber) */
  readonly close: readonly C[];
  /** registrations that ended (the shell releases what it holds for them) */
  readonly removed: readonly Registration[];
  readonly added: Registration | null;
  readonly log: readonly string[];
}

const success = (text: string): Reply => ({ kind: "success", text });
const failure = (text: string): Reply => ({ kind: "failure", text });

/** One request from any connection (hostd's or a client's). */
export function handle<C>(s: StatsState<C>, limits: Limits, conn: C, header: Header, input: Input): Decision<C> {
  const name = header.name;
  const nameText = nameToString(name);
  const none = { close: [], removed: [], added: null } as const;
  switch (input.kind) {
    case "initial":
      return { ...none, state: s, reply: failure("unexpected message initial"), log: ["unexpected message initial"] };
    case "other":
      return { ...none, state: s, reply: failure("unexpected command"), log: [`unexpected wire (${input.what}) for ${nameText}`] };
    case "add": {
      if (!Number.isSafeInteger(input.pid) || input.pid <= 0)
        return { ...none, state: s, reply: failure(`invalid pid ${input.pid}`), log: [`${nameText}: refusing pid ${input.pid}`] };
      if (input.requested > limits.maxNics)
        return {
          ...none,
          state: s,
          reply: failure(`too many network interfaces (${input.requested}, at most ${limits.maxNics})`),
          log: [`${nameText}: refusing ${input.requested} interfaces`],
        };
      const previous = s.units.find(name);
      if (previous === undefined && s.units.size >= limits.maxUnikernels) {
        return {
          ...none,
          state: s,
          reply: success(`not added: already ${limits.maxUnikernels} unikernels registered (--max-unikernels)`),
          log: [`${nameText}: not registered, at the limit of ${limits.maxUnikernels} unikernels`],
        };
      }
      const reg: Registration = { name, pid: input.pid, vmmdev: input.vmmdev, nics: input.nics };
      const log = [`adding ${nameText} ${input.pid} ${input.nics.map((n) => `${n.netif}: ${n.tap}`).join(", ")}`];
      if (previous !== undefined) log.push(`${nameText} was registered (pid ${previous.pid}), replacing the registration`);
      const units = s.units.insert(name, reg).trie;
      return { state: { ...s, units }, reply: success("added"), close: [], removed: previous ? [previous] : [], added: reg, log };
    }
    case "remove": {
      const previous = s.units.find(name);
      if (previous === undefined) return { ...none, state: s, reply: success("removed"), log: [`no pid found for ${nameText}`] };
      return {
        ...none,
        state: { ...s, units: s.units.remove(name) },
        reply: success("removed"),
        removed: [previous],
        log: [`removing ${nameText} (pid ${previous.pid})`],
      };
    }
    case "subscribe": {
      const previous = s.subs.find(name);
      if (previous === undefined && s.subs.size >= limits.maxSubscribers)
        return {
          ...none,
          state: s,
          reply: failure(`too many subscribers (at most ${limits.maxSubscribers})`),
          log: [`${nameText}: subscription refused, at the limit of ${limits.maxSubscribers}`],
        };
      const subs = s.subs.insert(name, { name, version: header.version, conn }).trie;
      const close = previous !== undefined && previous.conn !== conn ? [previous.conn] : [];
      return { ...none, state: { ...s, subs }, reply: success("subscribed"), close, log: [] };
    }
  }
}

/** A subscriber's connection is gone (closed, or a write failed): drop its subscription. */
export function unsubscribe<C>(s: StatsState<C>, name: Name, conn: C): StatsState<C> {
  const cur = s.subs.find(name);
  return cur !== undefined && cur.conn === conn ? { ...s, subs: s.subs.remove(name) } : s;
}

/** The hostd connection broke: every registration ends (hostd sends them again). */
export function hostdLost<C>(s: StatsState<C>): { state: StatsState<C>; removed: Registration[] } {
  return { state: { ...s, units: Trie.empty() }, removed: s.units.all().map(([, r]) => r) };
}

/** A unikernel to sample this round, and who wants it. */
export interface Target<C> {
  readonly reg: Registration;
  readonly subscribers: readonly Subscription<C>[];
}

/**
 * Who is sampled this round: every registration with a subscription on its trie path
 * (daemon.md §4: a subscription P[:L] matches when its labels are a prefix of the
 * unikernel's), or all of them when `everything` (Prometheus needs every unikernel).
 */
export function planRound<C>(s: StatsState<C>, everything: boolean): Target<C>[] {
  const out: Target<C>[] = [];
  for (const [, reg] of s.units.all()) {
    const subscribers = s.subs.size === 0 ? [] : s.subs.collect(reg.name).map(([, sub]) => sub);
    if (subscribers.length > 0 || everything) out.push({ reg, subscribers });
  }
  return out;
}

export type Outcome =
  | { readonly kind: "ok"; readonly stats: StatsData }
  /** the process is gone (its /proc files vanished): unregistered */
  | { readonly kind: "gone"; readonly why: string }
  /** a file did not parse: reported (once per registration), skipped this round */
  | { readonly kind: "malformed"; readonly error: string; readonly firstTime: boolean };

export interface Delivery<C> {
  readonly conn: C;
  /** the subscription's name (to unsubscribe it if the write fails) */
  readonly subscription: Name;
  readonly wire: Wire;
}

/**
 * After a round: the messages to send (header: the subscriber's version, sequence 0, the
 * unikernel's name without the subscription's path), and the registrations that ended.
 */
export function finishRound<C>(
  s: StatsState<C>,
  results: ReadonlyArray<{ readonly target: Target<C>; readonly outcome: Outcome }>,
): { state: StatsState<C>; deliveries: Delivery<C>[]; removed: Registration[]; log: string[] } {
  let units = s.units;
  const deliveries: Delivery<C>[] = [];
  const removed: Registration[] = [];
  const log: string[] = [];
  for (const { target, outcome } of results) {
    const { reg } = target;
    if (outcome.kind === "gone") {
      // only if it is still this registration (a replacing add may have come in between)
      if (units.find(reg.name) === reg) {
        units = units.remove(reg.name);
        removed.push(reg);
        log.push(`${nameToString(reg.name)}: process ${reg.pid} is gone (${outcome.why}), unregistered`);
      }
      continue;
    }
    if (outcome.kind === "malformed") {
      if (outcome.firstTime) log.push(`${nameToString(reg.name)} (pid ${reg.pid}): ${outcome.error}; skipping it while this lasts`);
      continue;
    }
    for (const sub of target.subscribers) {
      // A subscription for the path `foo:bar:` shares its trie key with the unikernel
      // `foo:bar`, which is not below that path: upstream's drop_prefix_exn raises there
      // (and the daemon dies); it gets nothing here.
      if (!isPrefix(sub.name.path, reg.name.path)) continue;
      const header: Header = { version: sub.version, sequence: 0n, name: dropPrefix(sub.name.path, reg.name) };
      deliveries.push({
        conn: sub.conn,
        subscription: sub.name,
        wire: { header, payload: { kind: "data", data: { kind: "statistics", stats: outcome.stats } } },
      });
    }
  }
  return { state: { ...s, units }, deliveries, removed, log };
}
