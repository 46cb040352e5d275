// hostd's stored state in <dbdir>: albatross's `state` file plus hostd's journal (not
// upstream; the formats are in statefile.ts and journal.ts).
//
// - A change is acknowledged once its journal record is durable (`record`: written in
//   full, fdatasync'ed; the journal file and its directory were synced when it was
//   created). If that fails, `record` throws and nothing is considered stored: the caller
//   fails the command and rolls its in-memory change back.
// - A large image does not go into the record: a create hands it to `stageImage` first,
//   which writes it into an image file of the journal (journal.ts) and fsyncs it and the
//   directory while the create goes on; the record then names the file, and is written
//   only once the file is durable. The record stays small (its fdatasync is short) and the
//   image's write overlaps the rest of the create. An image file belongs to the journal
//   generation whose record names it and goes with it; one that no record names (a create
//   that failed, or a crash before its record) is removed.
// - The journal is folded into `state` in the background: at most `foldDelayMs` (1 s)
//   after the first change that is not in `state` yet, one fold at a time, and at
//   shutdown. A fold takes the durable snapshot, starts a new journal generation, writes
//   the state file (statefile.ts: temporary file, `state.bak`, rename, directory sync)
//   and then removes the journal generations it covered. It gives way to creates and
//   records between the pieces it writes and flushes as it goes, so that a create costs
//   the same with a state file of hundreds of MiB (bench/hostd.bench.ts). A failed fold
//   (e.g. a full disk) keeps the generations and is retried later; nothing is lost,
//   `state` is only behind. A change that grows the state is refused while the disk has
//   no room for it and the next fold (checkRoom), so the state file never falls behind
//   for good.
// - At start the state file is read and every journal generation replayed over it, so the
//   dbdir stays readable by albatross: after a crash `state` is at worst the last fold
//   behind (albatross would not see the changes of the last second or so); hostd itself
//   loses nothing that was acknowledged.
// - A `state` that does not parse, or a journal that is corrupt (other than a torn last
//   record, which was never acknowledged), stops the start with a StoreCorrupt error naming
//   the newest intact snapshot; `--restore-backup` starts from it and moves the unusable
//   files into `<dbdir>/set-aside.<time>/`.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { crc32 } from "node:zlib";
import { decodeState, encodeStatePieces } from "../commands/codec.js";
import type { State, UnikernelConfig } from "../commands/types.js";
import { errnoOf, errText, F, IoError, nodeFileOps, syncDir, unlinkQuiet, writeFully, type FileOps } from "./fsio.js";
import {
  applyOps,
  diffState,
  emptySnapshot,
  encodeRecord,
  imageFile,
  imageFileNumber,
  JournalCorrupt,
  JOURNAL_MAGIC,
  JournalFile,
  journalFile,
  journalGeneration,
  parseJournal,
  resolveImages,
  snapshotOf,
  stateOf,
  type ImageRef,
  type Op,
  type Snapshot,
} from "./journal.js";
import { installStateFrom, isStateTemp, readStateFile, STATE_BACKUP, STATE_FILE, writeStateFile } from "./statefile.js";

export type FoldStep = "fold-written" | "fold-renamed";

export interface StoreOptions {
  readonly dbdir: string;
  readonly ops?: FileOps;
  readonly log: (level: "debug" | "info" | "warn" | "error", msg: string) => void;
  /** the longest a change waits before a fold starts (ms) */
  readonly foldDelayMs?: number;
  /** the longest wait between retries of a failed fold (ms) */
  readonly maxRetryMs?: number;
  /** test hook, awaited at these steps of every fold */
  readonly pause?: (step: FoldStep) => Promise<void>;
  /** images of at least this many bytes are staged into image files (default 1 MiB) */
  readonly imageFileFrom?: number;
}

const DEFAULT_FOLD_DELAY_MS = 1000;
/** The smallest image stageImage puts into a file: a smaller one costs less in the record. */
const IMAGE_FILE_FROM = 1024 * 1024;

/** An image being written into an image file ahead of its record (Store.stageImage). */
export interface StagedImage {
  /** Done with it: the file is removed unless a record names it (call once the create is over). */
  release(): Promise<void>;
}

interface Staged {
  readonly ref: ImageRef;
  /** resolves with null once the file is durable, or with the error */
  readonly written: Promise<unknown>;
  /** a record names it (the file now belongs to that journal generation) */
  owned: boolean;
}
/** The longest a fold waits for pending records before it writes its next piece. */
const GIVE_WAY_MS = 200;

/** The stored state cannot be used as it is; the message says what to do. */
export class StoreCorrupt extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreCorrupt";
  }
}

/** A change could not be made durable (`message` is the reason, e.g. Node's ENOSPC text). */
export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordError";
  }
}

export interface FoldStats {
  folds: number;
  failed: number;
  lastMs: number;
  lastBytes: number;
  /** the longest synchronous step (encoding one entry) of the last fold */
  lastMaxStepMs: number;
}

interface Loaded {
  readonly file: string;
  /** null: no such file */
  readonly state: State | null;
  readonly error: string | null;
  readonly mtime: string | null;
}

async function loadState(ops: FileOps, dbdir: string, file: string): Promise<Loaded> {
  let bytes: Uint8Array | null;
  try {
    bytes = await readStateFile(ops, dbdir, file);
  } catch (e) {
    return { file, state: null, error: `while reading: ${errText(e)}`, mtime: null };
  }
  if (bytes === null) return { file, state: null, error: null, mtime: null };
  const mtime = await stat(join(dbdir, file)).then(
    (s) => s.mtime.toISOString(),
    () => null,
  );
  try {
    return { file, state: decodeState(bytes).state, error: null, mtime };
  } catch (e) {
    return { file, state: null, error: errText(e), mtime };
  }
}

const describeFile = (l: Loaded, dbdir: string): string => {
  const p = join(dbdir, l.file);
  if (l.error !== null) return `${p} does not parse either (${l.error})`;
  if (l.state === null) return `there is no ${p}`;
  return `${p} parses (${l.state.unikernels.length} unikernels, ${l.state.policies.length} policies, written ${l.mtime ?? "at an unknown time"})`;
};

export interface OpenResult {
  readonly store: Store;
  /** the state file with the journal replayed */
  readonly state: State;
  readonly warnings: string[];
}

/**
 * Read `<dbdir>/state` and replay the journal (see the module comment). Removes the
 * temporary files of a dead hostd. `restoreBackup`: start from the newest intact snapshot
 * (`state` without its journal if only the journal is corrupt, else `state.bak`).
 */
export async function openStore(o: StoreOptions, restoreBackup: boolean): Promise<OpenResult> {
  const ops = o.ops ?? nodeFileOps;
  const dbdir = o.dbdir;
  const warnings: string[] = [];
  const files = await ops.readdir(dbdir);
  for (const f of files.filter(isStateTemp)) {
    await unlinkQuiet(ops, join(dbdir, f));
    warnings.push(`removed ${join(dbdir, f)}, left behind by an earlier hostd`);
  }
  const gens = files
    .map((f) => journalGeneration(f))
    .filter((g): g is number => g !== null)
    .sort((a, b) => a - b);
  const imageFiles = files.filter((f) => imageFileNumber(f) !== null);
  /** the image files named by each generation's records */
  const imagesOf = new Map<number, string[]>();

  const state = await loadState(ops, dbdir, STATE_FILE);
  let corruptJournal: { file: string; error: string } | null = null;
  let snap: Snapshot = state.state === null ? emptySnapshot : snapshotOf(state.state);
  const withRecords: number[] = [];
  const useless: number[] = [];
  for (const g of gens) {
    const file = journalFile(g);
    let bytes: Uint8Array | null;
    try {
      bytes = await readStateFile(ops, dbdir, file);
    } catch (e) {
      corruptJournal = { file, error: `while reading: ${errText(e)}` };
      break;
    }
    try {
      const j = parseJournal(bytes ?? new Uint8Array(0));
      const records = await resolveImages(j.records, (f) => readStateFile(ops, dbdir, f));
      for (const r of records) snap = applyOps(snap, r);
      const named = imagesNamed(records);
      if (named.length > 0) imagesOf.set(g, named);
      (j.records.length > 0 ? withRecords : useless).push(g);
      if (j.torn !== null) warnings.push(`${join(dbdir, file)}: ignored a torn record at byte ${j.end} (${j.torn}): a change that was never acknowledged`);
    } catch (e) {
      corruptJournal = { file, error: e instanceof JournalCorrupt ? e.message : errText(e) };
      break;
    }
  }

  const statePath = join(dbdir, STATE_FILE);
  if (state.error === null && corruptJournal === null) {
    if (restoreBackup) warnings.push(`--restore-backup: ${statePath} and its journal are intact, starting from them`);
    // generations without a record (empty, or only a torn tail) hold nothing: removed
    for (const g of useless) await unlinkQuiet(ops, join(dbdir, journalFile(g)));
    // image files no record names: a create that was never acknowledged, or a folded
    // generation's whose removal was cut short
    const named = new Set([...imagesOf.values()].flat());
    const orphans = imageFiles.filter((f) => !named.has(f));
    for (const f of orphans) await unlinkQuiet(ops, join(dbdir, f));
    if (useless.length > 0 || orphans.length > 0) await syncDir(ops, dbdir);
    const lastImage = Math.max(0, ...imageFiles.map((f) => imageFileNumber(f)!));
    const store = new Store(o, ops, snap, withRecords, gens[gens.length - 1] ?? 0, imagesOf, lastImage);
    return { store, state: stateOf(snap), warnings };
  }

  const bak = await loadState(ops, dbdir, STATE_BACKUP);
  if (!restoreBackup) {
    if (state.error !== null) {
      const hint =
        bak.state !== null
          ? `; start hostd with --restore-backup to start from it (changes made after it are lost; the unreadable files are kept)`
          : "; there is no intact state to start from: move the files away to start empty";
      throw new StoreCorrupt(`couldn't parse ${statePath}: ${state.error}. The backup: ${describeFile(bak, dbdir)}${hint}`);
    }
    const j = corruptJournal!;
    throw new StoreCorrupt(
      `journal ${join(dbdir, j.file)} is ${j.error.startsWith("while reading") ? "unreadable" : "corrupt"}: ${j.error}. ` +
        `The backup: the last fold, ${describeFile(state, dbdir)}; start hostd with --restore-backup to start from it without the journal (changes recorded after it are lost; the journal is kept)`,
    );
  }

  // --restore-backup: set the unusable files aside, never delete them.
  const source = state.error === null ? state : bak;
  if (source.error !== null || source.state === null)
    throw new StoreCorrupt(`--restore-backup: nothing intact to start from: ${describeFile(state, dbdir)}; ${describeFile(bak, dbdir)}`);
  const aside = join(dbdir, `set-aside.${new Date().toISOString().replace(/[:.]/g, "-")}`);
  await ops.mkdir(aside, 0o700);
  const moved: string[] = [];
  const move = async (f: string): Promise<void> => {
    await ops.rename(join(dbdir, f), join(aside, f));
    moved.push(f);
  };
  for (const g of gens) await move(journalFile(g));
  // the journal's image files go with it
  for (const f of imageFiles) await move(f);
  if (source === bak) {
    if (state.state !== null || state.error !== null) await move(STATE_FILE);
    await installStateFrom(ops, dbdir, STATE_BACKUP);
  }
  await syncDir(ops, aside);
  await syncDir(ops, dbdir);
  warnings.push(
    `--restore-backup: starting from ${join(dbdir, source.file)} (written ${source.mtime ?? "at an unknown time"}); moved ${moved.join(", ") || "nothing"} to ${aside}`,
  );
  const lastImage = Math.max(0, ...imageFiles.map((f) => imageFileNumber(f)!));
  return { store: new Store(o, ops, snapshotOf(source.state), [], gens[gens.length - 1] ?? 0, new Map(), lastImage), state: source.state, warnings };
}

/** The image files the records name. */
const imagesNamed = (records: readonly Op[][]): string[] =>
  records.flatMap((r) => r.flatMap((op) => (op.kind === "put-unikernel" && op.image !== undefined ? [op.image.file] : [])));

/**
 * The stored state as a restart would see it (`state` with the journal replayed), read
 * without changing anything. Throws on a state or journal that does not parse (torn tails
 * are ignored, as at start).
 */
export async function readStored(dbdir: string, ops: FileOps = nodeFileOps): Promise<State> {
  const bytes = await readStateFile(ops, dbdir);
  let snap = bytes === null ? emptySnapshot : snapshotOf(decodeState(bytes).state);
  const gens = (await ops.readdir(dbdir))
    .map((f) => journalGeneration(f))
    .filter((g): g is number => g !== null)
    .sort((a, b) => a - b);
  for (const g of gens) {
    const j = parseJournal((await readStateFile(ops, dbdir, journalFile(g))) ?? new Uint8Array(0));
    for (const r of await resolveImages(j.records, (f) => readStateFile(ops, dbdir, f))) snap = applyOps(snap, r);
  }
  return stateOf(snap);
}

/** The durable state and its journal; see the module comment. */
export class Store {
  private durable: Snapshot;
  /** journal generations on disk that `state` may not hold yet (oldest first) */
  private pending: number[];
  private journal: JournalFile | null = null;
  private nextGen: number;
  /** appends, rotations and removals of journal files, one at a time, in order */
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private folding: Promise<void> | null = null;
  /** when the oldest change not folded into `state` yet was recorded (null: none) */
  private unfoldedSince: number | null;
  private retryMs: number;
  private lastFoldError: string | null = null;
  /** records asked for and not settled yet, and a promise for when there are none */
  private recording = 0;
  private recordsDone: Promise<void> = Promise.resolve();
  private allRecorded: () => void = () => undefined;
  private lastFoldErrno: string | null = null;
  private closed = false;
  readonly stats: FoldStats = { folds: 0, failed: 0, lastMs: 0, lastBytes: 0, lastMaxStepMs: 0 };
  private readonly delay: number;
  private readonly maxRetry: number;
  /** images being written ahead of their records, by the config that carries them */
  private readonly staged = new Map<UnikernelConfig, Staged>();
  private nextImage: number;
  private readonly imageFileFrom: number;

  constructor(
    private readonly o: StoreOptions,
    private readonly ops: FileOps,
    snapshot: Snapshot,
    generations: readonly number[],
    lastGeneration: number,
    /** the image files named by the records of each journal generation on disk */
    private readonly imagesOf: Map<number, string[]> = new Map(),
    lastImage = 0,
  ) {
    this.durable = snapshot;
    this.nextImage = lastImage + 1;
    this.imageFileFrom = o.imageFileFrom ?? IMAGE_FILE_FROM;
    this.pending = [...generations];
    this.nextGen = lastGeneration + 1;
    this.unfoldedSince = generations.length > 0 ? performance.now() : null;
    this.delay = o.foldDelayMs ?? DEFAULT_FOLD_DELAY_MS;
    this.maxRetry = o.maxRetryMs ?? 30_000;
    this.retryMs = this.delay;
  }

  /** The acknowledged state (for tests). */
  get snapshot(): State {
    return stateOf(this.durable);
  }

  /** Whether the journal holds changes `state` does not have yet. */
  get unfolded(): boolean {
    return this.unfoldedSince !== null;
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const r = this.queue.then(job);
    this.queue = r.catch(() => undefined);
    return r;
  }

  /**
   * Start writing `config`'s image into an image file of the journal (made durable with
   * its directory), for the record of a change that puts `config` (see the module
   * comment). null when the image is small: it goes into the record. The caller releases
   * it once that change is recorded or given up.
   */
  stageImage(config: UnikernelConfig): StagedImage | null {
    if (this.closed || config.image.length < this.imageFileFrom || this.staged.has(config)) return null;
    const file = imageFile(this.nextImage++);
    const path = join(this.o.dbdir, file);
    const write = async (): Promise<void> => {
      const fd = await this.ops.open(path, F.O_WRONLY | F.O_CREAT | F.O_EXCL, 0o600);
      try {
        await writeFully(this.ops, fd, config.image, 0);
        await this.ops.fsync(fd);
      } finally {
        await this.ops.close(fd);
      }
      await syncDir(this.ops, this.o.dbdir);
    };
    const written = write().then(
      () => null,
      (e: unknown) => e,
    );
    // (computed while the file is written on the thread pool)
    const entry: Staged = { ref: { file, length: config.image.length, crc: crc32(config.image) >>> 0 }, written, owned: false };
    this.staged.set(config, entry);
    return {
      release: async () => {
        if (this.staged.get(config) !== entry) return;
        this.staged.delete(config);
        if (entry.owned) return;
        await written;
        await unlinkQuiet(this.ops, path).catch((e: unknown) => this.o.log("warn", `removing ${path}: ${errText(e)}`));
      },
    };
  }

  /**
   * Make `target` the durable state: one journal record with the difference (nothing
   * if there is none). Resolves with the number of operations once they are durable;
   * throws RecordError when they are not (then nothing changed). Callers keep the state
   * `target` describes stable until this settles (hostd: under its lock).
   */
  record(target: State): Promise<number> {
    const done = this.busy();
    const r = this.serial(async () => {
      const diff = diffState(this.durable, target);
      if (diff.length === 0) return 0;
      const next = applyOps(this.durable, diff);
      // the staged images' files are named instead of the images written
      const staged: Staged[] = [];
      const ops = diff.map((op): Op => {
        if (op.kind !== "put-unikernel") return op;
        const st = this.staged.get(op.config);
        if (st === undefined) return op;
        staged.push(st);
        return { ...op, image: st.ref };
      });
      let j: JournalFile | null = null;
      try {
        if (this.closed) throw new Error("the store is closed");
        const rec = encodeRecord(ops);
        const grows = ops.some((op) => op.kind === "put-unikernel");
        for (const st of staged) {
          const failed = await st.written;
          if (failed !== null) {
            // a full disk says so as an unstaged change would (checkRoom), else the write's error
            if (grows) await this.checkRoom(rec.length, next);
            throw failed;
          }
        }
        if (grows) await this.checkRoom(rec.length, next);
        j = await this.currentJournal();
        await j.append(rec);
      } catch (e) {
        // A journal that could not be cut back may hold the record after all: its image
        // files stay with that generation (removed with it, or at start if unnamed).
        if (j !== null && !j.usable) this.own(j.generation, staged);
        throw new RecordError(errText(e));
      }
      this.own(j.generation, staged);
      this.durable = next;
      this.unfoldedSince ??= performance.now();
      if (this.lastFoldError !== null && this.timer !== null) {
        // a write worked again (space was freed?): retry the failed fold soon
        clearTimeout(this.timer);
        this.timer = null;
        this.retryMs = this.delay;
        this.schedule(this.delay);
      } else this.schedule();
      return ops.length;
    });
    r.then(done, done);
    return r;
  }

  /**
   * Mark a change under way (a create, whose record comes at its end) until the returned
   * function is called: the fold gives way to it (see giveWay).
   */
  busy(): () => void {
    if (this.recording++ === 0) this.recordsDone = new Promise((r) => (this.allRecorded = r));
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.recording === 0) this.allRecorded();
    };
  }

  /**
   * The fold gives way to changes: before each piece of the state file it waits until no
   * change is under way (busy) and no record pending — at most GIVE_WAY_MS per piece, so
   * that a stream of changes cannot starve it. With the state file flushed as it goes
   * (statefile.ts SYNC_EVERY), a change competes with at most a few MiB of the fold's
   * writes, not with the whole state.
   */
  private async giveWay(): Promise<void> {
    if (this.recording === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.recordsDone, new Promise<void>((r) => (timer = setTimeout(r, GIVE_WAY_MS)))]);
    clearTimeout(timer);
  }

  /**
   * A change that makes the state larger is refused (ENOSPC) unless the disk keeps room
   * for it and for the next fold, which writes the whole new state file while the old one
   * and the journal are still there (state.bak may go, see foldNow). Otherwise a nearly
   * full disk would fill up with journal records that can never be folded, and `state`
   * would stay behind for good.
   */
  private async checkRoom(record: number, next: Snapshot): Promise<void> {
    const dbdir = this.o.dbdir;
    // state.bak is given up for a fold on a full disk (foldNow)
    const free = (await this.ops.freeBytes(dbdir)) + (await this.ops.reclaimable(join(dbdir, STATE_BACKUP)));
    const stateSize = encodeStatePieces(stateOf(next)).size;
    // file systems allocate in blocks, and keep some metadata: a margin
    const need = record + stateSize + Math.ceil(stateSize / 64) + 64 * 1024;
    if (free < need)
      throw new IoError(`not enough space in ${dbdir} for this change and the next fold of the state file (${free} bytes free, ${need} needed)`, "ENOSPC");
  }

  private own(generation: number, staged: readonly Staged[]): void {
    if (staged.length === 0) return;
    for (const st of staged) st.owned = true;
    this.imagesOf.set(generation, [...(this.imagesOf.get(generation) ?? []), ...staged.map((st) => st.ref.file)]);
  }

  private async currentJournal(): Promise<JournalFile> {
    if (this.journal?.usable) return this.journal;
    if (this.journal !== null) {
      // broken by a failed append: keep it for replay (its tail is torn), write on in a new one
      const old = this.journal;
      this.journal = null;
      this.pending.push(old.generation);
      await old.close().catch(() => undefined);
    }
    const j = await JournalFile.create(this.ops, this.o.dbdir, this.nextGen);
    this.nextGen++;
    this.journal = j;
    return j;
  }

  private schedule(wait?: number): void {
    if (this.closed || this.timer !== null || this.folding !== null || this.unfoldedSince === null) return;
    const ms = wait ?? Math.max(0, this.unfoldedSince + this.delay - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.fold();
    }, ms);
    this.timer.unref();
  }

  /**
   * Fold the journal into `state` now (the background job; also at start and shutdown).
   * Resolves when done; a failure is logged (and retried later unless closed), never thrown.
   */
  fold(): Promise<void> {
    if (this.folding !== null) return this.folding;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.folding = this.foldNow().finally(() => {
      this.folding = null;
      this.schedule(this.lastFoldError === null ? undefined : this.retryMs);
    });
    return this.folding;
  }

  private async foldNow(): Promise<void> {
    if (this.unfoldedSince === null) return;
    const t0 = performance.now();
    // Under the queue: the snapshot and the generations it covers, and a fresh generation
    // for the changes that come in while the state file is written.
    const { snapshot, covered } = await this.serial(async () => {
      const covered = [...this.pending];
      // a journal without records (made ahead by the last fold) stays the current one
      const rotate = this.journal !== null && this.journal.bytes > JOURNAL_MAGIC.length;
      if (this.journal !== null && rotate) {
        covered.push(this.journal.generation);
        await this.journal.close().catch(() => undefined);
        this.journal = null;
      }
      this.pending = [];
      this.unfoldedSince = null;
      if (!this.closed && this.journal === null) {
        // the next generation, made now rather than on the next change's path
        try {
          this.journal = await JournalFile.create(this.ops, this.o.dbdir, this.nextGen);
          this.nextGen++;
        } catch {
          /* the next record tries again (and fails with the reason) */
        }
      }
      return { snapshot: this.durable, covered };
    });
    let maxStep = 0;
    let bytes = 0;
    this.o.log("debug", `folding the journal: ${snapshot.unikernels.size} unikernels`);
    try {
      if (this.lastFoldErrno === "ENOSPC") {
        // The disk is full: state.bak is the one copy the fold can do without (it becomes
        // the current state again right before the rename). The stored state is intact.
        try {
          await this.ops.unlink(join(this.o.dbdir, STATE_BACKUP));
          this.o.log("warn", `disk full: removed ${join(this.o.dbdir, STATE_BACKUP)} to make room for the fold`);
        } catch (e) {
          if (errnoOf(e) !== "ENOENT") throw e;
        }
      }
      const st = stateOf(snapshot);
      bytes = await writeStateFile(this.ops, this.o.dbdir, st, {
        backup: true,
        beforeRename: async () => {
          await this.o.pause?.("fold-written");
        },
        onStep: (ms) => (maxStep = Math.max(maxStep, ms)),
        pace: () => this.giveWay(),
      });
      await this.o.pause?.("fold-renamed");
    } catch (e) {
      // Nothing is lost: the covered generations stay and are folded by the next attempt.
      this.pending = [...covered, ...this.pending];
      this.unfoldedSince ??= performance.now();
      this.stats.failed++;
      const msg = errText(e);
      this.lastFoldErrno = errnoOf(e) ?? null;
      if (msg !== this.lastFoldError)
        this.o.log(
          "error",
          `could not fold the journal into ${join(this.o.dbdir, STATE_FILE)} (retrying; nothing is lost, the journal keeps the changes): ${msg}`,
        );
      this.lastFoldError = msg;
      this.retryMs = Math.min(this.maxRetry, this.retryMs * 2);
      return;
    }
    if (this.lastFoldError !== null) this.o.log("info", `folded the journal into ${join(this.o.dbdir, STATE_FILE)} again`);
    this.lastFoldError = null;
    this.lastFoldErrno = null;
    this.retryMs = this.delay;
    await this.serial(async () => {
      try {
        for (const g of covered) await unlinkQuiet(this.ops, join(this.o.dbdir, journalFile(g)));
        // their image files: the state file holds the images now (a crash before this
        // leaves files no record names: removed at start)
        for (const g of covered) {
          for (const f of this.imagesOf.get(g) ?? []) await unlinkQuiet(this.ops, join(this.o.dbdir, f));
          this.imagesOf.delete(g);
        }
        await syncDir(this.ops, this.o.dbdir);
      } catch (e) {
        // replaying folded records again is harmless: keep them for the next fold to remove
        this.pending = [...covered, ...this.pending];
        this.o.log("warn", `removing folded journal files: ${errText(e)}`);
      }
    });
    const ms = performance.now() - t0;
    Object.assign(this.stats, { folds: this.stats.folds + 1, lastMs: ms, lastBytes: bytes, lastMaxStepMs: maxStep });
    this.o.log(
      "debug",
      `folded the journal: ${snapshot.unikernels.size} unikernels, ${bytes} bytes in ${ms.toFixed(1)} ms (longest step ${maxStep.toFixed(1)} ms)`,
    );
  }

  /** Shutdown: no more records; a last fold; the journal file closed. */
  async close(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.folding !== null) await this.folding;
    await this.serial(async () => undefined);
    this.closed = true;
    if (this.unfoldedSince !== null) await this.foldNow();
    await this.serial(async () => {
      const j = this.journal;
      this.journal = null;
      if (j === null) return;
      await j.close().catch(() => undefined);
      // a generation without records holds nothing (it was made ahead by the last fold)
      if (j.bytes === JOURNAL_MAGIC.length && this.unfoldedSince === null) {
        await unlinkQuiet(this.ops, j.path).catch(() => undefined);
        await syncDir(this.ops, this.o.dbdir).catch(() => undefined);
      }
    });
  }
}
