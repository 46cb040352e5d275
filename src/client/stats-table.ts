// `dromedary stats` on a terminal: each `Data statistics` message as a small table under the
// unikernel's plain name (tables.ts: `web`, `tenant:hello`), with rates computed from the
// previous message of the same unikernel. (Piped, the client
// prints albatross' text; with --json, one JSON object per message.)

import type { Ifdata, StatsData, Wire } from "../commands/types.js";
import { nameToString } from "../core/name.js";
import { plainName } from "./tables.js";

/** albatross reports memory in pages (Linux); solo5 hosts use 4 KiB pages. */
const PAGE = 4096;

const sec = (t: { seconds: bigint; microseconds: number }): number => Number(t.seconds) + t.microseconds / 1e6;

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m ${Math.floor(s % 60)}s` : `${s.toFixed(0)}s`;
}

function table(rows: readonly (readonly string[])[], rightFrom = 1): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows.map((r) =>
    r
      .map((c, i) => (i >= rightFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

interface Previous {
  readonly stats: StatsData;
  readonly atMs: number;
}

/** Renders messages one after the other; remembers each unikernel's previous sample. */
export class StatsTable {
  private readonly previous = new Map<string, Previous>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  render(w: Wire): string {
    const p = w.payload;
    if (p.kind !== "data" || p.data.kind !== "statistics") throw new Error("not a statistics message");
    const s = p.data.stats;
    const key = nameToString(w.header.name);
    const at = this.now();
    const prev = this.previous.get(key);
    this.previous.set(key, { stats: s, atMs: at });
    const dt = prev === undefined ? 0 : (at - prev.atMs) / 1000;
    const rate = (cur: number, old: number | undefined): string => (old === undefined || dt <= 0 ? "" : `${bytes(Math.max(0, (cur - old) / dt))}/s`);

    const r = s.rusage;
    const cpu = sec(r.utime) + sec(r.stime);
    const prevCpu = prev === undefined ? undefined : sec(prev.stats.rusage.utime) + sec(prev.stats.rusage.stime);
    const share = prevCpu === undefined || dt <= 0 ? "" : `  ${(((cpu - prevCpu) / dt) * 100).toFixed(1)} % of a core`;
    const out = [`${plainName(w.header.name)}  ${new Date(at).toISOString().replace(/\.\d+Z$/, "Z")}`];
    out.push(`  cpu       user ${sec(r.utime).toFixed(2)} s  system ${sec(r.stime).toFixed(2)} s${share}`);
    const k = s.kinfoMem;
    if (k !== undefined) {
      out.push(`  memory    resident ${bytes(Number(k.rss) * PAGE)}  virtual ${bytes(Number(k.vsize))}  data+stack ${bytes(Number(k.dsize) * PAGE)}`);
      out.push(`  uptime    ${duration(at / 1000 - sec(k.start))}`);
    } else {
      out.push(`  memory    resident ${bytes(Number(r.maxrss) * PAGE)}`);
    }
    out.push(`  faults    minor ${r.minflt}  major ${r.majflt}    context switches ${r.nvcsw} voluntary, ${r.nivcsw} involuntary`);
    if (s.ifdata.length > 0) {
      const old = new Map<string, Ifdata>((prev?.stats.ifdata ?? []).map((i) => [i.bridge, i]));
      const rows: string[][] = [["  interface", "received", "packets", "rate", "sent", "packets", "rate", "errors", "drops"]];
      for (const i of s.ifdata) {
        const o = old.get(i.bridge);
        // the unikernel's view: it receives what the tap sends ("output"), sends its "input"
        rows.push([
          `  ${i.bridge}`,
          bytes(Number(i.outputBytes)),
          String(i.outputPackets),
          rate(Number(i.outputBytes), o && Number(o.outputBytes)),
          bytes(Number(i.inputBytes)),
          String(i.inputPackets),
          rate(Number(i.inputBytes), o && Number(o.inputBytes)),
          String(i.inputErrors + i.outputErrors),
          String(i.inputDropped + i.outputDropped),
        ]);
      }
      out.push(...table(rows));
    }
    if (s.vmm !== undefined && s.vmm.length > 0) out.push(`  vmm       ${s.vmm.map((v) => `${v.key} ${v.value}`).join(", ")}`);
    return out.join("\n");
  }
}
