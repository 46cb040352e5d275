// A small runtime record of the processes and taps hostd owns: `<tmpdir>/hostd.running`.
//
// Not upstream. When albatrossd is killed hard (SIGKILL, crash), its tenders keep running
// and keep their taps; the next start re-creates every unikernel of the state file next to
// them (new taps, a second process per unikernel). hostd records each running unikernel's
// pid, the process start time (so a recycled pid is never killed) and its taps here; at
// start it kills what is left of a previous incarnation and removes those taps before the
// unikernels are brought back.
import { promises as fsp, readFileSync } from "node:fs";
import { join } from "node:path";

export interface RuntimeEntry {
  readonly name: string;
  readonly pid: number;
  /** field 22 of /proc/<pid>/stat (clock ticks since boot); null if unknown */
  readonly starttime: string | null;
  readonly taps: readonly string[];
  readonly image: string;
  readonly fifo: string;
}

export const runtimeFile = (tmpdir: string): string => join(tmpdir, "hostd.running");

/** Start time and state of a process from /proc, or null if there is no such process. */
export async function procStat(pid: number): Promise<{ starttime: string; state: string } | null> {
  try {
    const s = await fsp.readFile(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); field 22 is rest[19]
    return { state: rest[0] ?? "?", starttime: rest[19] ?? "" };
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat, read synchronously (a few µs), or null. */
export function procStartTime(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

export async function writeRuntime(tmpdir: string, entries: readonly RuntimeEntry[]): Promise<void> {
  const file = runtimeFile(tmpdir);
  const tmp = `${file}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(entries), { mode: 0o600 });
  await fsp.rename(tmp, file);
}

export async function readRuntime(tmpdir: string): Promise<RuntimeEntry[]> {
  let text: string;
  try {
    text = await fsp.readFile(runtimeFile(tmpdir), "utf8");
  } catch {
    return [];
  }
  try {
    const v: unknown = JSON.parse(text);
    if (!Array.isArray(v)) return [];
    return v.filter(
      (e): e is RuntimeEntry =>
        typeof e === "object" &&
        e !== null &&
        typeof (e as RuntimeEntry).name === "string" &&
        Number.isSafeInteger((e as RuntimeEntry).pid) &&
        (e as RuntimeEntry).pid > 1 &&
        Array.isArray((e as RuntimeEntry).taps) &&
        (e as RuntimeEntry).taps.every((t) => typeof t === "string" && /^vmmtap[0-9]{1,9}$/.test(t)) &&
        typeof (e as RuntimeEntry).image === "string" &&
        typeof (e as RuntimeEntry).fifo === "string",
    );
  } catch {
    return [];
  }
}

/**
 * Kill the processes of a previous incarnation (only if pid AND start time still match)
 * and wait until they are gone (a zombie counts as gone). Returns the entries handled.
 */
export async function killStale(entries: readonly RuntimeEntry[], log: (msg: string) => void): Promise<void> {
  for (const e of entries) {
    const st = await procStat(e.pid);
    if (st === null || e.starttime === null || st.starttime !== e.starttime) continue;
    log(`killing left-over unikernel ${e.name} (pid ${e.pid}) of a previous hostd`);
    try {
      process.kill(e.pid, "SIGKILL");
    } catch {
      continue;
    }
    for (let i = 0; i < 500; i++) {
      const now = await procStat(e.pid);
      if (now === null || now.state === "Z" || now.starttime !== e.starttime) break;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
