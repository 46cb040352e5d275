// What hostd has made on the host, written down before it is made: intent records in
// `<tmpdir>/hostd.intent/<id>.json`, one per create (not upstream).
//
// When albatrossd is killed hard (SIGKILL, crash), its tenders keep running and keep their
// taps, and a create that was under way leaves its image, FIFO and taps; the next start
// re-creates every unikernel of the state file next to them (a second tender with the same
// MAC on the same bridge). hostd writes an intent record before each effect of a create
// — the image and FIFO paths before either is made, each tap's name before `ip tuntap
// add`, the tender's pid (and start time, so a recycled pid is never killed) right after
// the spawn — and removes the record once the unikernel's resources are freed again. At
// start it reaps what every record names: the tender is killed (by pid and start time, and
// also found by its command line `-- <tmpdir>/<name>.img`, which covers a kill between
// the spawn and the pid's record), the taps destroyed, the image and FIFO removed. A
// create that was never recorded in the journal is thereby gone without a trace; one that
// was is started again by the restore.
//
// A record is replaced atomically (temporary file, rename) but not synced: what it guards
// against is the death of hostd, and the page cache outlives the process. A power loss
// takes the tenders and taps with it (and the tmpdir, /run, is a tmpfs); syncing would
// cost every create several device flushes where tmpdir is on a disk.
import { promises as fsp, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errnoOf, errText } from "./fsio.js";

export interface Intent {
  /** the unikernel's name text */
  readonly name: string;
  readonly image: string;
  readonly fifo: string;
  /** taps, each recorded before it is created */
  readonly taps: readonly string[];
  /** the tender's pid, once spawned */
  readonly pid: number | null;
  /** field 22 of /proc/<pid>/stat (clock ticks since boot); null if unknown */
  readonly starttime: string | null;
}

const intentDir = (tmpdir: string): string => join(tmpdir, "hostd.intent");
/** The record of hostd versions before the intent records (read once at start, then removed). */
const legacyRuntimeFile = (tmpdir: string): string => join(tmpdir, "hostd.running");

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

const TAP = /^vmmtap[0-9]{1,9}$/;

/** A parsed record, or null for anything that is not one (hostile or foreign content). */
function parseIntent(v: unknown): Intent | null {
  if (typeof v !== "object" || v === null) return null;
  const e = v as Record<string, unknown>;
  const pid = e["pid"] ?? null;
  const starttime = e["starttime"] ?? null;
  if (typeof e["name"] !== "string" || typeof e["image"] !== "string" || typeof e["fifo"] !== "string") return null;
  if (!Array.isArray(e["taps"]) || !e["taps"].every((t) => typeof t === "string" && TAP.test(t))) return null;
  if (pid !== null && !(Number.isSafeInteger(pid) && (pid as number) > 1)) return null;
  if (starttime !== null && typeof starttime !== "string") return null;
  return { name: e["name"], image: e["image"], fifo: e["fifo"], taps: e["taps"] as string[], pid: pid as number | null, starttime: starttime as string | null };
}

/** One create's record: rewritten durably on every update, removed at the end. */
export class IntentRecord {
  private current: Intent;
  private gone = false;
  constructor(
    readonly path: string,
    first: Intent,
  ) {
    this.current = first;
  }

  get intent(): Intent {
    return this.current;
  }

  /**
   * Replace the record (temporary file, rename). Synchronous on purpose: a small file on
   * the tmpdir's tmpfs takes microseconds, less than a round trip through the thread pool,
   * and a create writes it two or more times.
   */
  async write(next: Intent): Promise<void> {
    if (this.gone) throw new Error(`intent record ${this.path} was removed`);
    const tmp = join(this.path, "..", `.${this.path.slice(this.path.lastIndexOf("/") + 1)}.tmp`);
    try {
      writeFileSync(tmp, JSON.stringify(next), { mode: 0o600 }); // loops until all is written
      renameSync(tmp, this.path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    this.current = next;
  }

  /** Record a tap before it is created. */
  addTap(tap: string): Promise<void> {
    return this.write({ ...this.current, taps: [...this.current.taps, tap] });
  }

  setPid(pid: number, starttime: string | null): Promise<void> {
    return this.write({ ...this.current, pid, starttime });
  }

  /** Everything it names is freed. (Not synced: a record that comes back is reaped harmlessly.) */
  async remove(): Promise<void> {
    this.gone = true;
    rmSync(this.path, { force: true });
  }
}

/** The intent records of this hostd. */
export class Intents {
  private counter = 0;
  readonly dir: string;
  constructor(tmpdir: string) {
    this.dir = intentDir(tmpdir);
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Write the first record of a create (before its image and FIFO are made). */
  async begin(name: string, image: string, fifo: string): Promise<IntentRecord> {
    const r = new IntentRecord(join(this.dir, `${process.pid}-${++this.counter}.json`), { name, image, fifo, taps: [], pid: null, starttime: null });
    await r.write(r.intent);
    return r;
  }
}

export interface Found {
  readonly file: string;
  readonly intent: Intent;
}

/** The records left in `<tmpdir>` (also the legacy `hostd.running`); temporary files removed. */
export async function readIntents(tmpdir: string, log: (msg: string) => void): Promise<Found[]> {
  const out: Found[] = [];
  const dir = intentDir(tmpdir);
  let files: string[] = [];
  try {
    files = await fsp.readdir(dir);
  } catch (e) {
    if (errnoOf(e) !== "ENOENT") log(`reading ${dir}: ${errText(e)}`);
  }
  for (const f of files) {
    const p = join(dir, f);
    if (f.startsWith(".") && f.endsWith(".tmp")) {
      await fsp.rm(p, { force: true });
      continue;
    }
    if (!f.endsWith(".json")) continue;
    let v: unknown = null;
    try {
      v = JSON.parse(await fsp.readFile(p, "utf8"));
    } catch {
      /* unreadable: dropped below */
    }
    const i = parseIntent(v);
    if (i === null) {
      log(`ignoring ${p}: not an intent record`);
      await fsp.rm(p, { force: true });
      continue;
    }
    out.push({ file: p, intent: i });
  }
  const legacy = legacyRuntimeFile(tmpdir);
  try {
    const v: unknown = JSON.parse(await fsp.readFile(legacy, "utf8"));
    if (Array.isArray(v))
      for (const e of v) {
        const i = parseIntent({ starttime: null, ...(e as object) });
        if (i !== null) out.push({ file: legacy, intent: i });
      }
  } catch {
    /* none */
  }
  return out;
}

/** pids of processes whose command line holds `--` directly followed by one of `images`. */
async function tendersOf(images: ReadonlySet<string>): Promise<Map<string, number[]>> {
  const found = new Map<string, number[]>();
  if (images.size === 0) return found;
  let entries: string[];
  try {
    entries = await fsp.readdir("/proc");
  } catch {
    return found;
  }
  for (const d of entries) {
    if (!/^[0-9]+$/.test(d) || Number(d) === process.pid) continue;
    let args: string[];
    try {
      args = (await fsp.readFile(`/proc/${d}/cmdline`, "utf8")).split("\0");
    } catch {
      continue;
    }
    for (let i = 0; i + 1 < args.length; i++) {
      if (args[i] === "--" && images.has(args[i + 1]!)) {
        const list = found.get(args[i + 1]!) ?? [];
        list.push(Number(d));
        found.set(args[i + 1]!, list);
        break;
      }
    }
  }
  return found;
}

const alive = async (pid: number, starttime: string): Promise<boolean> => {
  const st = await procStat(pid);
  return st !== null && st.state !== "Z" && st.starttime === starttime;
};

/**
 * Reap what the records name: kill their tenders (and wait until they are gone; a zombie
 * counts as gone), destroy their taps, remove their images and FIFOs, then the records.
 * Returns the names whose tender could not be killed (their records are kept).
 */
export async function reapIntents(found: readonly Found[], destroyTap: (tap: string) => Promise<void>, log: (msg: string) => void): Promise<string[]> {
  if (found.length === 0) return [];
  const byImage = await tendersOf(new Set(found.map((f) => f.intent.image)));
  const victims = new Map<number, { name: string; starttime: string }>();
  for (const { intent: i } of found) {
    const pids = new Set(byImage.get(i.image) ?? []);
    if (i.pid !== null && i.starttime !== null && (await alive(i.pid, i.starttime))) pids.add(i.pid);
    for (const pid of pids) {
      const st = await procStat(pid);
      if (st !== null && st.state !== "Z") victims.set(pid, { name: i.name, starttime: st.starttime });
    }
  }
  for (const [pid, v] of victims) {
    log(`killing left-over tender of ${v.name} (pid ${pid}) of an earlier hostd`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone meanwhile */
    }
  }
  const survivors = new Set<string>();
  for (const [pid, v] of victims) {
    let gone = false;
    for (let t = 0; t < 500 && !gone; t++) {
      gone = !(await alive(pid, v.starttime));
      if (!gone) await new Promise((r) => setTimeout(r, 10));
    }
    if (!gone) {
      log(`left-over tender of ${v.name} (pid ${pid}) did not die`);
      survivors.add(v.name);
    }
  }
  const done = new Set<string>();
  for (const { file, intent: i } of found) {
    if (survivors.has(i.name)) continue;
    for (const tap of i.taps) {
      try {
        await destroyTap(tap);
        log(`removed left-over tap ${tap} of ${i.name}`);
      } catch {
        /* never made, or already gone */
      }
    }
    for (const p of [i.image, i.fifo]) {
      try {
        await fsp.rm(p);
        log(`removed left-over ${p}`);
      } catch {
        /* not there */
      }
    }
    done.add(file);
  }
  for (const f of done) await fsp.rm(f, { force: true });
  return [...survivors];
}
