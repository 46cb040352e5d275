// hostd's stored state without hostd: the journal format (torn tails, corruption), the
// piecewise state encoding, and the store (record, fold, replay, --restore-backup) on a
// real directory through a fault-injecting file layer: short writes, writes that make no
// progress, ENOSPC at any byte, failing fdatasync and rename, and "crashes" at each step
// of a fold.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { decodeState, encodeState, encodeStatePieces } from "../../src/commands/codec.js";
import type { Policy, State, UnikernelConfig } from "../../src/commands/types.js";
import { parseName } from "../../src/core/name.js";
import { F, IoError, nodeFileOps, writeFully, type FileOps } from "../../src/hostd/fsio.js";
import { applyOps, diffState, encodeRecord, JournalCorrupt, JOURNAL_MAGIC, parseJournal, snapshotOf, stateOf, type Op } from "../../src/hostd/journal.js";
import { openStore, readStored, RecordError, StoreCorrupt, type FoldStep } from "../../src/hostd/store.js";
import { config } from "../support/hostd.js";

let dir: string;
let count = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dromedary-store-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
const fresh = async (): Promise<string> => {
  const d = join(dir, `db${++count}`);
  await mkdir(d);
  return d;
};

const img = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);
const uk = (name: string, over: Partial<UnikernelConfig> = {}) => ({ name: parseName(name), config: config(img(64, name.length), over) });
const pol = (path: string, over: Partial<Policy> = {}) => ({
  name: parseName(path),
  policy: { unikernels: 2n, cpuids: [0], memory: 64, block: 0, bridges: ["br0"], ...over },
});
const bytesOf = (st: State): Buffer => Buffer.from(encodeState(st));
const sameState = (a: State, b: State): void => assert.deepEqual(bytesOf(a), bytesOf(b));

// ---------------------------------------------------------------------------------------
// A file layer that misbehaves on request.

interface Faults {
  /** at most this many bytes per write call */
  maxWrite?: number;
  /** the n-th write call (1-based, counted from now) returns 0 */
  zeroAt?: number;
  /** bytes that still fit on the "disk" (writes beyond: partial, then ENOSPC) */
  space?: number | undefined; // undefined again: the fault is lifted
  /** fdatasync fails with EIO */
  syncFails?: boolean;
  /** rename fails with EIO */
  renameFails?: boolean;
  /** link fails with ENOSPC */
  linkFails?: boolean;
  /** what statfs says is free */
  free?: number | undefined;
}

function faulty(f: Faults): { ops: FileOps; writes: () => number } {
  let writes = 0;
  const errno = (code: string, syscall: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: injected, ${syscall}`), { code, syscall });
  const ops: FileOps = {
    ...nodeFileOps,
    write: async (fd, b, off, len, pos) => {
      writes++;
      if (f.zeroAt !== undefined && writes === f.zeroAt) return 0;
      let n = Math.min(len, f.maxWrite ?? len);
      if (f.space !== undefined) {
        if (f.space <= 0) throw errno("ENOSPC", "write");
        n = Math.min(n, f.space);
        f.space -= n;
      }
      return nodeFileOps.write(fd, b, off, n, pos);
    },
    fdatasync: async (fd) => {
      if (f.syncFails) throw errno("EIO", "fdatasync");
      return nodeFileOps.fdatasync(fd);
    },
    rename: async (a, b) => {
      if (f.renameFails) throw errno("EIO", "rename");
      return nodeFileOps.rename(a, b);
    },
    link: async (a, b) => {
      if (f.linkFails) throw errno("ENOSPC", "link");
      return nodeFileOps.link(a, b);
    },
    freeBytes: async (p) => f.free ?? nodeFileOps.freeBytes(p),
  };
  return { ops, writes: () => writes };
}

const quiet = { log: () => undefined };
const logTo = (lines: string[]) => ({ log: (_l: string, m: string) => void lines.push(m) });

// ---------------------------------------------------------------------------------------

describe("journal records", () => {
  const ops: Op[] = [
    { kind: "put-unikernel", name: parseName("foo:bar"), config: config(img(300, 7), { argv: [new TextEncoder().encode("--x")] }) },
    { kind: "remove-unikernel", name: parseName(":old") },
    { kind: "put-policy", name: parseName("foo:"), policy: pol("foo:").policy },
    { kind: "remove-policy", name: parseName("bar:baz:") },
  ];
  const file = (...records: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat([JOURNAL_MAGIC, ...records]));

  it("round trip of every operation; a batch is one record", () => {
    const j = parseJournal(file(encodeRecord(ops), encodeRecord([ops[1]!])));
    assert.equal(j.torn, null);
    assert.deepEqual(j.records, [ops, [ops[1]]]);
    assert.deepEqual(parseJournal(file()).records, []);
    assert.deepEqual(parseJournal(new Uint8Array(0)), { records: [], end: 0, torn: null });
  });

  it("a record cut off anywhere, or zero-filled, is a torn tail: the records before it count", () => {
    const first = encodeRecord([ops[3]!]);
    const last = encodeRecord(ops);
    const whole = file(first, last);
    const headerEnd = JOURNAL_MAGIC.length + first.length;
    for (let cut = headerEnd; cut < whole.length; cut++) {
      const j = parseJournal(whole.subarray(0, cut));
      assert.deepEqual(j.records, [[ops[3]]], `cut at ${cut}`);
      assert.equal(j.end, headerEnd);
      assert.equal(j.torn === null, cut === headerEnd, `cut at ${cut}`);
    }
    // the kernel may show the unwritten part of an extended file as zeros
    const zeroed = Uint8Array.from(whole);
    zeroed.fill(0, headerEnd + 20);
    assert.deepEqual(parseJournal(zeroed).records, [[ops[3]]]);
    assert.ok(parseJournal(zeroed).torn !== null);
    const allZero = Uint8Array.from(whole);
    allZero.fill(0, headerEnd);
    assert.equal(parseJournal(allZero).torn, "zeros");
    // a cut-off file header (crash while the file was made)
    assert.equal(parseJournal(JOURNAL_MAGIC.subarray(0, 3)).records.length, 0);
  });

  it("corruption before the last record, a bad magic or a bad operation is an error with its offset", () => {
    const a = encodeRecord([ops[1]!]);
    const b = encodeRecord([ops[3]!]);
    const flipped = file(a, b);
    flipped[JOURNAL_MAGIC.length + 10]! ^= 0xff; // inside a's payload
    assert.throws(
      () => parseJournal(flipped),
      (e: unknown) => e instanceof JournalCorrupt && e.offset === JOURNAL_MAGIC.length && /checksum/.test(e.message),
    );
    assert.throws(() => parseJournal(Buffer.from("NOTAJRNL")), /bad magic/);
    // a record whose checksum is right but whose content is not an operation
    const bad = Uint8Array.from(encodeRecord([ops[1]!]));
    bad[8] = 0x21;
    new DataView(bad.buffer).setUint32(4, crc32(bad.subarray(8)) >>> 0);
    assert.throws(() => parseJournal(file(bad)), /unknown operation 0x21/);
  });

  it("property: any batches round-trip; any truncation yields a prefix of them", () => {
    const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/);
    const op = fc.oneof(
      fc
        .record({ l: label, n: fc.nat(200), fill: fc.nat(255) })
        .map(({ l, n, fill }): Op => ({ kind: "put-unikernel", name: parseName(`t:${l}`), config: config(img(n, fill)) })),
      label.map((l): Op => ({ kind: "remove-unikernel", name: parseName(`:${l}`) })),
      label.map((l): Op => ({ kind: "put-policy", name: parseName(`${l}:`), policy: pol("x:").policy })),
      label.map((l): Op => ({ kind: "remove-policy", name: parseName(`${l}:`) })),
    );
    fc.assert(
      fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { maxLength: 5 }), fc.nat(), (batches, cutSeed) => {
        const whole = file(...batches.map(encodeRecord));
        assert.deepEqual(parseJournal(whole).records, batches);
        const cut = cutSeed % (whole.length + 1);
        const j = parseJournal(whole.subarray(0, cut));
        assert.deepEqual(j.records, batches.slice(0, j.records.length));
      }),
      { numRuns: 200 },
    );
  });

  it("diffState / applyOps: the difference applied gives the target; unchanged configs (same object) are not written", () => {
    const a: State = { unikernels: [uk(":a"), uk(":b")], policies: [pol(":"), pol("x:")] };
    const b: State = { unikernels: [a.unikernels[0]!, uk(":c")], policies: [pol(":"), pol("y:")] };
    const d = diffState(snapshotOf(a), b);
    assert.deepEqual(
      d.map((o) => `${o.kind} ${o.name.label ?? o.name.path.join(":")}`),
      ["put-unikernel c", "remove-unikernel b", "put-policy y", "remove-policy x"],
    );
    sameState(stateOf(applyOps(snapshotOf(a), d)), b);
    assert.deepEqual(diffState(snapshotOf(b), b), []);
    // replaying what is already there changes nothing (a fold followed by a crash)
    sameState(stateOf(applyOps(snapshotOf(b), d)), b);
  });
});

describe("state file encoding in pieces", () => {
  it("the pieces are byte for byte encodeState (albatross vectors and generated states)", async () => {
    const vectors = (await readdir(new URL("../../../fixtures/vectors/", import.meta.url))).filter((f) => f.startsWith("state-") && f.endsWith(".b64"));
    assert.equal(vectors.length, 8);
    for (const v of vectors) {
      const b = Buffer.from((await readFile(new URL(`../../../fixtures/vectors/${v}`, import.meta.url), "utf8")).trim(), "base64");
      const st = decodeState(new Uint8Array(b)).state;
      const { size, pieces } = encodeStatePieces(st);
      const joined = Buffer.concat([...pieces]);
      assert.deepEqual(joined, Buffer.from(encodeState(st)), v);
      assert.equal(size, joined.length);
    }
    for (const n of [0, 1, 3, 200]) {
      const st: State = { unikernels: Array.from({ length: n }, (_, i) => uk(`t${i % 3}:u${i}`)), policies: n > 0 ? [pol(":"), pol("t1:")] : [] };
      assert.deepEqual(Buffer.concat([...encodeStatePieces(st).pieces]), Buffer.from(encodeState(st)));
    }
    // images (and other large contents) are handed out as they are, not copied
    const image = img(100_000, 3);
    const two: State = { unikernels: [{ name: parseName(":i"), config: config(image, { argv: [img(80_000, 4), img(10, 5)] }) }], policies: [pol(":")] };
    const parts = [...encodeStatePieces(two).pieces];
    assert.ok(parts.includes(image));
    assert.deepEqual(Buffer.concat(parts), Buffer.from(encodeState(two)));
    // lengths beyond 64 KiB and 16 MiB take longer length octets
    for (const size of [70_000, 17 << 20]) {
      const st: State = { unikernels: [{ name: parseName(":big"), config: config(img(size, 1)) }], policies: [] };
      assert.deepEqual(Buffer.concat([...encodeStatePieces(st).pieces]), Buffer.from(encodeState(st)));
    }
  });
});

// ---------------------------------------------------------------------------------------

describe("checked writes", () => {
  it("short writes are continued; a write without progress is an error", async () => {
    const d = await fresh();
    const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const f = faulty({ maxWrite: 7 });
    const W = F.O_WRONLY | F.O_CREAT | F.O_TRUNC;
    const fd = await f.ops.open(join(d, "x"), W, 0o600);
    await writeFully(f.ops, fd, data, 0);
    assert.equal(f.writes(), Math.ceil(1000 / 7));
    await f.ops.close(fd);
    assert.deepEqual(new Uint8Array(await readFile(join(d, "x"))), data);
    const z = faulty({ maxWrite: 100, zeroAt: 3 });
    const fd2 = await z.ops.open(join(d, "y"), W, 0o600);
    await assert.rejects(writeFully(z.ops, fd2, data, 0), (e: unknown) => e instanceof IoError && /no progress after 200 of 1000 bytes/.test(e.message));
    await z.ops.close(fd2);
  });
});

describe("the store: record, fold, replay", () => {
  it("a change is one journal record; the fold writes albatross's state file and drops the journal; a restart replays", async () => {
    const d = await fresh();
    const { store, state } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000 }, false);
    sameState(state, { unikernels: [], policies: [] });
    const s1: State = { unikernels: [uk(":a")], policies: [pol(":")] };
    assert.equal(await store.record(s1), 2);
    assert.equal(await store.record(s1), 0); // nothing changed: nothing written
    const s2: State = { unikernels: [s1.unikernels[0]!, uk(":b")], policies: [pol(":")] };
    assert.equal(await store.record(s2), 1);
    assert.deepEqual((await readdir(d)).sort(), ["state.journal.1"]);
    // the journal holds only the changes: :a's image once, :b's once
    const j = parseJournal(new Uint8Array(await readFile(join(d, "state.journal.1"))));
    assert.deepEqual(
      j.records.map((r) => r.map((o) => o.kind)),
      [["put-unikernel", "put-policy"], ["put-unikernel"]],
    );
    sameState(await readStored(d), s2);
    // a "crash": a second store opened on the same directory sees everything
    const again = await openStore({ dbdir: d, ...quiet }, false);
    sameState(again.state, s2);
    await again.store.close();
    // close folded: state is albatross's, the journal is gone
    assert.deepEqual((await readdir(d)).sort(), ["state"]);
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s2);
    await store.close().catch(() => undefined);
  });

  it("the fold runs in the background within the fold delay; state.bak is the previous state", async () => {
    const d = await fresh();
    const { store } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 50 }, false);
    const s1: State = { unikernels: [uk(":a")], policies: [] };
    await store.record(s1);
    const t0 = Date.now();
    while (!(await readdir(d)).includes("state")) await new Promise((r) => setTimeout(r, 10));
    assert.ok(Date.now() - t0 < 2000);
    while (store.unfolded || store.stats.folds < 1) await new Promise((r) => setTimeout(r, 10));
    const s2: State = { unikernels: [], policies: [] };
    await store.record(s2);
    while (store.stats.folds < 2) await new Promise((r) => setTimeout(r, 10));
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s2);
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state.bak")))).state, s1);
    await store.close();
    assert.deepEqual((await readdir(d)).sort(), ["state", "state.bak"]);
  });

  it("a kill at each step of a fold loses nothing (replay is idempotent); temp files of the dead hostd are removed", async () => {
    for (const step of ["fold-written", "fold-renamed"] as FoldStep[]) {
      const d = await fresh();
      let hang = false;
      const pause = async (s: FoldStep): Promise<void> => {
        if (hang && s === step) await new Promise(() => undefined); // the process "dies" here
      };
      const { store } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000, pause }, false);
      const s1: State = { unikernels: [uk(":a"), uk(":b")], policies: [pol(":")] };
      await store.record(s1);
      await store.fold();
      const s2: State = { unikernels: [s1.unikernels[1]!, uk(":c")], policies: [pol(":"), pol("p:")] };
      await store.record(s2);
      hang = true;
      void store.fold();
      await new Promise((r) => setTimeout(r, 200));
      const files = await readdir(d);
      if (step === "fold-written")
        assert.ok(
          files.some((f) => f.startsWith(".state.tmp.")),
          files.join(),
        );
      const again = await openStore({ dbdir: d, ...quiet }, false);
      sameState(again.state, s2);
      assert.ok(!(await readdir(d)).some((f) => f.startsWith(".state")), step);
      if (step === "fold-written")
        assert.ok(
          again.warnings.some((l) => /removed .*\.state\.tmp\.\d+, left behind by an earlier hostd/.test(l)),
          again.warnings.join(),
        );
      await again.store.close();
      sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s2);
    }
  });
});

describe("the store under faults", () => {
  const s = (names: string[]): State => ({ unikernels: names.map((n) => uk(n)), policies: [pol(":")] });

  it("short writes everywhere: every record and fold is complete", async () => {
    const d = await fresh();
    const f = faulty({ maxWrite: 13 });
    const { store } = await openStore({ dbdir: d, ops: f.ops, ...quiet, foldDelayMs: 60_000 }, false);
    await store.record(s([":a"]));
    await store.record(s([":a", ":b"]));
    await store.fold();
    await store.record(s([":b"]));
    sameState(await readStored(d), s([":b"]));
    await store.close();
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s([":b"]));
    assert.ok(f.writes() > 50);
  });

  it("a write without progress fails the record (nothing changes) and the journal stays appendable", async () => {
    const d = await fresh();
    const f: Faults = { maxWrite: 10 };
    const { ops } = faulty(f);
    const { store } = await openStore({ dbdir: d, ops, ...quiet, foldDelayMs: 60_000 }, false);
    await store.record(s([":a"]));
    // the 3rd write of the next record returns 0
    let calls = 0;
    const orig = ops.write;
    ops.write = async (...a) => (++calls === 3 ? 0 : orig(...a));
    await assert.rejects(store.record(s([":a", ":b"])), (e: unknown) => e instanceof RecordError && /no progress/.test(e.message));
    sameState(store.snapshot, s([":a"]));
    ops.write = orig;
    await store.record(s([":a", ":c"]));
    const reopened = await openStore({ dbdir: d, ...quiet }, false);
    sameState(reopened.state, s([":a", ":c"]));
    await reopened.store.close();
  });

  it("ENOSPC at every byte of a record: the record fails cleanly, what was acknowledged stays, the journal is cut back", async () => {
    const base: State = s([":a"]);
    const next: State = s([":a", ":b"]);
    const recordSize = encodeRecord(diffState(snapshotOf(base), next)).length;
    for (let space = 0; space < recordSize; space += Math.max(1, Math.floor(recordSize / 17))) {
      const d = await fresh();
      const f: Faults = {};
      const { ops } = faulty(f);
      const { store } = await openStore({ dbdir: d, ops, ...quiet, foldDelayMs: 60_000 }, false);
      await store.record(base);
      const size = (await readFile(join(d, "state.journal.1"))).length;
      f.space = space;
      await assert.rejects(store.record(next), (e: unknown) => e instanceof RecordError && e.message.startsWith("ENOSPC"), `space ${space}`);
      assert.equal((await readFile(join(d, "state.journal.1"))).length, size, `space ${space}: cut back`);
      sameState(store.snapshot, base);
      f.space = undefined;
      await store.record(s([":a", ":c"]));
      sameState(await readStored(d), s([":a", ":c"]));
      await store.close();
    }
  });

  it("a change that grows the state is refused unless the disk keeps room for the next fold; removals always go in", async () => {
    const d = await fresh();
    const f: Faults = {};
    const { ops } = faulty(f);
    const { store } = await openStore({ dbdir: d, ops, ...quiet, foldDelayMs: 60_000 }, false);
    const ab = s([":a", ":b"]);
    await store.record(ab);
    await store.fold();
    const size = (await readFile(join(d, "state"))).length;
    const bak = 0; // the first fold had no state to keep
    f.free = 64 * 1024 + 2 * size - bak; // room for the record, not for a state twice as large
    await assert.rejects(
      store.record(s([":a", ":b", ":c"])),
      (e: unknown) =>
        e instanceof RecordError &&
        /^ENOSPC: not enough space in .* for this change and the next fold of the state file \(\d+ bytes free, \d+ needed\)$/.test(e.message),
    );
    sameState(store.snapshot, ab);
    f.free = 0;
    assert.equal(await store.record({ unikernels: [ab.unikernels[0]!], policies: ab.policies }), 1); // a removal: always recorded
    f.free = undefined;
    await store.record(s([":a", ":c"]));
    sameState(await readStored(d), s([":a", ":c"]));
    await store.close();
  });

  it("a failing fdatasync: the record fails, that journal file is not written again, a new generation takes over", async () => {
    const d = await fresh();
    const f: Faults = {};
    const { ops } = faulty(f);
    const { store } = await openStore({ dbdir: d, ops, ...quiet, foldDelayMs: 60_000 }, false);
    await store.record(s([":a"]));
    f.syncFails = true;
    await assert.rejects(store.record(s([":a", ":b"])), /EIO/);
    f.syncFails = false;
    await store.record(s([":a", ":c"]));
    assert.deepEqual((await readdir(d)).sort(), ["state.journal.1", "state.journal.2"]);
    sameState((await openStore({ dbdir: d, ...quiet }, false)).state, s([":a", ":c"]));
  });

  it("a full disk during the fold: nothing lost, no temp file left, retried until it works", async () => {
    const d = await fresh();
    const f: Faults = {};
    const { ops } = faulty(f);
    const lines: string[] = [];
    const { store } = await openStore({ dbdir: d, ops, ...logTo(lines), foldDelayMs: 20, maxRetryMs: 40 }, false);
    await store.record(s([":a"]));
    while (store.stats.folds < 1) await new Promise((r) => setTimeout(r, 5));
    f.space = encodeRecord(diffState(snapshotOf(s([":a"])), s([":a", ":b"]))).length + 50; // the record fits, the state file does not
    await store.record(s([":a", ":b"]));
    while (store.stats.failed < 2) await new Promise((r) => setTimeout(r, 5));
    assert.ok(!(await readdir(d)).some((x) => x.startsWith(".state")));
    assert.equal(lines.filter((l) => /could not fold the journal .*ENOSPC/.test(l)).length, 1, lines.join("\n")); // logged once
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s([":a"]));
    sameState(await readStored(d), s([":a", ":b"]));
    f.space = undefined;
    while (store.stats.folds < 2) await new Promise((r) => setTimeout(r, 5));
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s([":a", ":b"]));
    assert.ok(lines.some((l) => /folded the journal .* again/.test(l)));
    await store.close();
    // a rename or link failing at the last step is the same
    for (const fault of [{ renameFails: true }, { linkFails: true }] as Faults[]) {
      const { store: st2 } = await openStore({ dbdir: d, ops: faulty(fault).ops, ...quiet, foldDelayMs: 60_000 }, false);
      await st2.record(s([":z"]));
      await st2.fold();
      sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s([":a", ":b"]));
      sameState(await readStored(d), s([":z"]));
      assert.ok(!(await readdir(d)).some((x) => x.startsWith(".state")));
    }
  });
});

describe("corrupt stored state", () => {
  async function withHistory(): Promise<string> {
    const d = await fresh();
    const { store } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000 }, false);
    await store.record({ unikernels: [uk(":one")], policies: [pol(":")] });
    await store.fold();
    await store.record({ unikernels: [uk(":one"), uk(":two")], policies: [pol(":")] });
    await store.fold();
    await store.record({ unikernels: [uk(":one"), uk(":two"), uk(":three")], policies: [pol(":")] });
    await store.record({ unikernels: [uk(":one"), uk(":two"), uk(":three"), uk(":four")], policies: [pol(":")] });
    return d;
  }
  const names = (st: State): string[] => st.unikernels.map((u) => u.name.label!).sort();

  it("a state file that does not parse: the error names state.bak; --restore-backup starts from it and keeps the rest", async () => {
    const d = await withHistory();
    await writeFile(join(d, "state"), "garbage");
    await assert.rejects(
      openStore({ dbdir: d, ...quiet }, false),
      (e: unknown) =>
        e instanceof StoreCorrupt &&
        /^couldn't parse .*\/state: .*The backup: .*\/state\.bak parses \(1 unikernels, 1 policies, written .*\); start hostd with --restore-backup/.test(
          e.message,
        ),
    );
    assert.equal(await readFile(join(d, "state"), "utf8"), "garbage"); // untouched
    const lines: string[] = [];
    const r = await openStore({ dbdir: d, ...logTo(lines) }, true);
    assert.deepEqual(names(r.state), ["one"]);
    const aside = (await readdir(d)).find((f) => f.startsWith("set-aside."))!;
    assert.deepEqual((await readdir(join(d, aside))).sort(), ["state", "state.journal.3"]);
    assert.match(r.warnings.join("\n"), /starting from .*state\.bak .*moved state\.journal\.3, state to .*set-aside\./);
    await r.store.record({ unikernels: [uk(":one"), uk(":five")], policies: [pol(":")] });
    await r.store.close();
    // state.bak was never the unparsable file
    for (const f of ["state", "state.bak"]) decodeState(new Uint8Array(await readFile(join(d, f))));
    assert.deepEqual(names(decodeState(new Uint8Array(await readFile(join(d, "state")))).state), ["five", "one"]);
  });

  it("a corrupt journal record (not the last): the error names the last fold; --restore-backup starts from it", async () => {
    const d = await withHistory();
    const jf = join(d, "state.journal.3");
    const j = new Uint8Array(await readFile(jf));
    j[JOURNAL_MAGIC.length + 12]! ^= 0x55; // inside the first record
    await writeFile(jf, j);
    await assert.rejects(
      openStore({ dbdir: d, ...quiet }, false),
      (e: unknown) =>
        e instanceof StoreCorrupt &&
        /^journal .*state\.journal\.3 is corrupt: corrupt at byte 8: checksum mismatch\. The backup: the last fold, .*\/state parses \(2 unikernels/.test(
          e.message,
        ),
    );
    const r = await openStore({ dbdir: d, ...quiet }, true);
    assert.deepEqual(names(r.state), ["one", "two"]);
    await r.store.close();
  });

  it("a torn last record is ignored with a warning; neither state nor state.bak parse: --restore-backup refuses", async () => {
    const d = await withHistory();
    const jf = join(d, "state.journal.3");
    const j = await readFile(jf);
    await writeFile(jf, j.subarray(0, j.length - 5));
    const r = await openStore({ dbdir: d, ...quiet }, false);
    assert.deepEqual(names(r.state), ["one", "three", "two"]);
    assert.match(r.warnings.join("\n"), /state\.journal\.3: ignored a torn record at byte \d+ .*never acknowledged/);
    await r.store.close();
    await writeFile(join(d, "state"), "x");
    await writeFile(join(d, "state.bak"), "y");
    await assert.rejects(openStore({ dbdir: d, ...quiet }, true), /--restore-backup: nothing intact to start from/);
  });
});

describe("image files of the journal", () => {
  // images of at least 1000 bytes are staged into files here (hostd: 1 MiB)
  const big = (name: string, fill: number): { name: ReturnType<typeof parseName>; config: UnikernelConfig } => ({
    name: parseName(name),
    config: config(img(3000, fill), {}),
  });
  const files = async (d: string): Promise<string[]> => (await readdir(d)).sort();

  it("a staged image is named by a small record, replayed from its file, and removed with its generation by the fold", async () => {
    const d = await fresh();
    const { store } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000, imageFileFrom: 1000 }, false);
    const a = big(":a", 7);
    const small = uk(":s");
    assert.equal(store.stageImage(small.config), null); // small: into the record
    const staged = store.stageImage(a.config)!;
    const s1: State = { unikernels: [a, small], policies: [pol(":")] };
    assert.equal(await store.record(s1), 3);
    await staged.release(); // recorded: the file stays
    assert.deepEqual(await files(d), ["state.image.1", "state.journal.1"]);
    assert.deepEqual(new Uint8Array(await readFile(join(d, "state.image.1"))), a.config.image);
    const j = parseJournal(new Uint8Array(await readFile(join(d, "state.journal.1"))));
    const put = j.records[0]!.find((o) => o.kind === "put-unikernel" && o.name.label === "a")!;
    assert.ok(put.kind === "put-unikernel" && put.image?.file === "state.image.1" && put.config.image.length === 0);
    assert.ok((await readFile(join(d, "state.journal.1"))).length < 1000); // the image is not in the record
    sameState(await readStored(d), s1);
    const again = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000 }, false);
    sameState(again.state, s1);
    await again.store.close();
    // that close folded: albatross's state file holds the image; the journal and its image file are gone
    assert.deepEqual(await files(d), ["state"]);
    sameState(decodeState(new Uint8Array(await readFile(join(d, "state")))).state, s1);
    await store.close().catch(() => undefined);
  });

  it("an image no record names is removed: released after a failed create at once, left by a crash at the next start", async () => {
    const d = await fresh();
    const { store } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000, imageFileFrom: 1000 }, false);
    const gone = store.stageImage(big(":x", 1).config)!;
    const crashed = store.stageImage(big(":y", 2).config)!;
    await gone.release();
    await new Promise((r) => setTimeout(r, 50)); // the second one's write is done
    assert.deepEqual(await files(d), ["state.image.2"]);
    void crashed; // never released nor recorded: the process "dies"
    const again = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000, imageFileFrom: 1000 }, false);
    assert.deepEqual(await files(d), []);
    // numbers go on after the largest one seen, never reusing a name
    const b = big(":b", 3);
    const st = again.store.stageImage(b.config)!;
    await again.store.record({ unikernels: [b], policies: [] });
    await st.release();
    assert.deepEqual(await files(d), ["state.image.3", "state.journal.1"]);
    await again.store.close();
  });

  it("a failed image write fails the record, which changes nothing; a full disk says so as for an image in the record", async () => {
    const d = await fresh();
    const f = faulty({});
    const { store } = await openStore({ dbdir: d, ops: f.ops, ...quiet, foldDelayMs: 60_000, imageFileFrom: 1000 }, false);
    await store.record({ unikernels: [], policies: [pol(":")] });
    f.ops.write = async () => {
      throw Object.assign(new Error("EIO: injected, write"), { code: "EIO" });
    };
    const a = big(":a", 4);
    const st = store.stageImage(a.config)!;
    await assert.rejects(store.record({ unikernels: [a], policies: [pol(":")] }), (e: unknown) => e instanceof RecordError && /EIO: injected/.test(e.message));
    await st.release();
    sameState(store.snapshot, { unikernels: [], policies: [pol(":")] });
    assert.deepEqual(await files(d), ["state.journal.1"]);
    // ENOSPC on the image: the record fails with checkRoom's text
    const full = faulty({ space: 0, free: 0 });
    Object.assign(f.ops, { write: full.ops.write, freeBytes: full.ops.freeBytes });
    const st2 = store.stageImage(a.config)!;
    await assert.rejects(store.record({ unikernels: [a], policies: [pol(":")] }), /not enough space in .* for this change and the next fold/);
    await st2.release();
    assert.deepEqual(await files(d), ["state.journal.1"]);
    await store.close().catch(() => undefined);
  });

  it("a record naming a missing or changed image file is corruption; --restore-backup sets the journal and its images aside", async () => {
    for (const damage of ["missing", "changed"] as const) {
      const d = await fresh();
      const { store } = await openStore({ dbdir: d, ...quiet, foldDelayMs: 60_000, imageFileFrom: 1000 }, false);
      await store.record({ unikernels: [uk(":one")], policies: [pol(":")] });
      await store.fold();
      const a = big(":a", 5);
      const st = store.stageImage(a.config)!;
      await store.record({ unikernels: [uk(":one"), a], policies: [pol(":")] });
      await st.release();
      if (damage === "missing") await rm(join(d, "state.image.1"));
      else await writeFile(join(d, "state.image.1"), img(3000, 6));
      await assert.rejects(
        openStore({ dbdir: d, ...quiet }, false),
        (e: unknown) =>
          e instanceof StoreCorrupt &&
          new RegExp(
            `journal .*state\\.journal\\.2 is corrupt: the image file state\\.image\\.1 of :a ${damage === "missing" ? "is missing" : "is not the image recorded"}`,
          ).test(e.message),
      );
      const r = await openStore({ dbdir: d, ...quiet }, true);
      assert.deepEqual(
        r.state.unikernels.map((u) => u.name.label),
        ["one"],
      );
      const aside = (await readdir(d)).find((f) => f.startsWith("set-aside."))!;
      assert.deepEqual((await readdir(join(d, aside))).sort(), damage === "missing" ? ["state.journal.2"] : ["state.image.1", "state.journal.2"]);
      await r.store.close();
      await store.close().catch(() => undefined);
    }
  });
});
