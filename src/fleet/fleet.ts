// `fleet info` and `fleet update` over the hosts of a fleet file.
//
// info: every host is asked in parallel (at most `concurrency` at a time), the builder once
// per running image and once per job (memoised, equally bounded); one row per unikernel,
// hosts that do not answer are reported with the reason and do not hold up the rest.
// update: host by host, unikernel by unikernel (updateOne, with the health check); the first
// failure (rolled back or not) stops the rollout unless keepGoing; a stop request (SIGINT)
// lets the running update finish — so each host is left on its old or its new image.

import { hex } from "../core/hex.js";
import type { UnikernelInfoEntry } from "../commands/types.js";
import { nameToString, rootName, type Name } from "../core/name.js";
import type { Build, Builder } from "./builder.js";
import type { FleetHost } from "./file.js";
import type { HealthSpec } from "./health.js";
import type { RollbackStore } from "./store.js";
import { infos, remoteTarget, type Target } from "./target.js";
import { outcomeExit, updateOne, type UpdateOutcome } from "./update.js";

/** Default and upper bound of parallel hosts (--concurrency). */
export const DEFAULT_CONCURRENCY = 16;
export const MAX_CONCURRENCY = 256;

export const targetOf = (h: FleetHost): Target =>
  remoteTarget({ label: h.name, host: h.host, port: h.port, ca: h.ca, caKey: h.caKey, serverCa: h.serverCa, keyType: h.keyType });

/** Run `f` over `items` with at most `limit` at a time; results in order. */
export async function bounded<T, R>(items: readonly T[], limit: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** A tiny semaphore (the builder lookups share one bound across hosts). */
function limiter(limit: number): <R>(f: () => Promise<R>) => Promise<R> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (f) => {
    if (active >= limit) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await f();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

interface UnikernelRow {
  readonly name: string;
  readonly digest: string;
  readonly memory: number;
  readonly cpuids: readonly number[];
  readonly numcpus: number;
  readonly started: string;
  readonly uptimeSeconds: number;
  readonly typ: string;
  /** the build running, the job's latest, and whether it is outdated (null = unknown) */
  readonly build: Build | null;
  readonly latest: string | null;
  readonly outdated: boolean | null;
  readonly note?: string;
}

export interface HostReport {
  readonly host: string;
  readonly destination: string;
  readonly reachable: boolean;
  readonly error?: string;
  readonly unikernels: readonly UnikernelRow[];
}

export interface InfoOptions {
  readonly hosts: readonly FleetHost[];
  /** null: no builder lookups (outdated unknown) */
  readonly builder: Builder | null;
  readonly concurrency: number;
  readonly now?: () => Date;
  /** for tests/bench: how a host is reached (default: its TLS endpoint) */
  readonly targetOf?: (h: FleetHost) => Target;
}

export async function fleetInfo(o: InfoOptions): Promise<HostReport[]> {
  const limit = limiter(o.concurrency);
  const builds = new Map<string, Promise<Build | Error>>();
  const latests = new Map<string, Promise<Build | Error>>();
  const memo = <K>(m: Map<K, Promise<Build | Error>>, k: K, f: () => Promise<Build>): Promise<Build | Error> => {
    let p = m.get(k);
    if (!p) {
      p = limit(f).catch((e: Error) => e);
      m.set(k, p);
    }
    return p;
  };
  const now = o.now ?? (() => new Date());
  const toTarget = o.targetOf ?? targetOf;
  return bounded(o.hosts, o.concurrency, async (h): Promise<HostReport> => {
    const destination = `${h.host}:${h.port}`;
    let list: readonly UnikernelInfoEntry[];
    try {
      list = await infos(toTarget(h), rootName);
    } catch (e) {
      return { host: h.name, destination, reachable: false, error: (e as Error).message, unikernels: [] };
    }
    const rows = await Promise.all(
      list.map(async ({ name, info }): Promise<UnikernelRow> => {
        const digest = hex(info.digest);
        let build: Build | null = null;
        let latest: string | null = null;
        let outdated: boolean | null = null;
        let note: string | undefined;
        if (info.typ !== "solo5") note = "not a solo5 unikernel";
        else if (o.builder !== null) {
          const b = o.builder;
          const r = await memo(builds, digest, () => b.buildOfHash(digest));
          if (r instanceof Error) note = r.message;
          else {
            build = r;
            const l = await memo(latests, r.job, () => b.latest(r.job));
            if (l instanceof Error) note = `latest build: ${l.message}`;
            else {
              latest = l.build;
              outdated = l.build !== r.build;
            }
          }
        }
        const t = now();
        return {
          name: nameToString(name),
          digest,
          memory: info.memory,
          cpuids: info.cpuids,
          numcpus: info.numcpus,
          started: info.started.toISOString(),
          uptimeSeconds: Math.max(0, Math.floor((t.getTime() - info.started.getTime()) / 1000)),
          typ: info.typ,
          build,
          latest,
          outdated,
          ...(note !== undefined ? { note } : {}),
        };
      }),
    );
    return { host: h.name, destination, reachable: true, unikernels: rows };
  });
}

function uptimeText(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

const clean = (s: string): string => s.replace(/[^\x20-\x7e]/g, "?");

/** The table: one row per unikernel, unreachable hosts below it. */
export function renderInfo(reports: readonly HostReport[]): string {
  const header = ["HOST", "UNIKERNEL", "DIGEST", "MEMORY", "CPUS", "UPTIME", "OUTDATED"];
  const rows: string[][] = [];
  for (const r of reports) {
    if (!r.reachable) continue;
    if (r.unikernels.length === 0) rows.push([r.host, "-", "-", "-", "-", "-", "-"]);
    for (const u of r.unikernels) {
      const outdated =
        u.outdated === null
          ? `unknown${u.note !== undefined ? ` (${clean(u.note).slice(0, 80)})` : ""}`
          : u.outdated
            ? `yes (${u.build!.build} -> ${u.latest})`
            : "no";
      rows.push([r.host, u.name, u.digest.slice(0, 12), `${u.memory} MB`, u.cpuids.join(","), uptimeText(u.uptimeSeconds), outdated]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  const out = [line(header), ...rows.map(line)];
  for (const r of reports) if (!r.reachable) out.push(`${r.host} (${r.destination}): unreachable: ${clean(r.error ?? "")}`);
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------
// fleet update

export interface FleetUpdateOptions {
  readonly hosts: readonly FleetHost[];
  readonly builder: Builder;
  readonly store: RollbackStore;
  /** `:` = every unikernel the host's certificate sees */
  readonly name: Name;
  readonly level: number;
  readonly dryRun: boolean;
  readonly keepGoing: boolean;
  readonly health: HealthSpec;
  readonly confirm?: (question: string) => Promise<boolean>;
  /** a line for one host (prefixed by the caller) */
  readonly say: (host: string, text: string, event: Record<string, unknown>) => void;
  readonly warn: (host: string, text: string) => void;
  /** true once the rollout should stop after the running update (SIGINT) */
  readonly stopRequested: () => boolean;
  readonly targetOf?: (h: FleetHost) => Target;
}

export interface FleetUpdateEntry {
  readonly host: string;
  readonly unikernel: string | null;
  readonly result: "updated" | "up-to-date" | "available" | "declined" | "rolled-back" | "failed" | "skipped" | "not-started";
  readonly detail?: string;
  readonly exitCode: number;
}

/** A unikernel the builder does not know is skipped by `fleet update`, not a failure. */
const unknownToBuilder = (o: UpdateOutcome): boolean => o.kind === "failed" && o.stage === "builder" && /couldn't find the unikernel/.test(o.message);

export async function fleetUpdate(o: FleetUpdateOptions): Promise<FleetUpdateEntry[]> {
  const out: FleetUpdateEntry[] = [];
  const toTarget = o.targetOf ?? targetOf;
  let stopped = false;
  for (const h of o.hosts) {
    if (stopped || o.stopRequested()) {
      out.push({ host: h.name, unikernel: null, result: "not-started", exitCode: 0 });
      continue;
    }
    const target = toTarget(h);
    let list: readonly UnikernelInfoEntry[];
    try {
      list = await infos(target, o.name);
    } catch (e) {
      out.push({ host: h.name, unikernel: null, result: "failed", detail: `unreachable: ${(e as Error).message}`, exitCode: 121 });
      o.warn(h.name, `unreachable: ${(e as Error).message}`);
      if (!o.keepGoing) stopped = true;
      continue;
    }
    if (list.length === 0) out.push({ host: h.name, unikernel: null, result: "skipped", detail: "no unikernel", exitCode: 0 });
    for (const { name, info } of list) {
      const label = nameToString(name);
      if (stopped || o.stopRequested()) {
        out.push({ host: h.name, unikernel: label, result: "not-started", exitCode: 0 });
        continue;
      }
      if (info.typ !== "solo5") {
        out.push({ host: h.name, unikernel: label, result: "skipped", detail: "not a solo5 unikernel", exitCode: 0 });
        continue;
      }
      const outcome = await updateOne({
        target,
        builder: o.builder,
        store: o.store,
        name,
        level: o.level,
        dryRun: o.dryRun,
        health: o.health,
        ...(o.confirm ? { confirm: o.confirm } : {}),
        say: (text, ev) =>
          o.say(
            h.name,
            text
              .split("\n")
              .map((l) => `${label}: ${l}`)
              .join("\n"),
            { host: h.name, unikernel: label, ...ev },
          ),
        warn: (text) => o.warn(h.name, `${label}: ${text}`),
      });
      if (unknownToBuilder(outcome)) {
        out.push({ host: h.name, unikernel: label, result: "skipped", detail: "not a build the builder knows", exitCode: 0 });
        continue;
      }
      const code = outcomeExit(outcome);
      const detail =
        outcome.kind === "failed"
          ? `${outcome.stage}: ${outcome.message} (${outcome.state === "old" ? "still the old image" : outcome.state === "new" ? "the new image" : "state unknown"})`
          : outcome.kind === "rolled-back"
            ? `health check failed: ${outcome.reason}; rolled back`
            : outcome.kind === "updated"
              ? `${outcome.from.build} -> ${outcome.to.build}`
              : outcome.kind === "available"
                ? `${outcome.from.build} -> ${outcome.to.build} available`
                : undefined;
      if (outcome.kind === "failed") o.warn(h.name, `${label}: ${outcome.message}`);
      out.push({ host: h.name, unikernel: label, result: outcome.kind, ...(detail !== undefined ? { detail } : {}), exitCode: code });
      if (code !== 0 && !o.keepGoing) stopped = true;
    }
  }
  return out;
}

export function renderSummary(entries: readonly FleetUpdateEntry[]): string {
  const lines = ["summary:"];
  for (const e of entries)
    lines.push(`  ${e.host}${e.unikernel !== null ? ` ${e.unikernel}` : ""}: ${e.result}${e.detail !== undefined ? ` (${clean(e.detail)})` : ""}`);
  return lines.join("\n");
}
