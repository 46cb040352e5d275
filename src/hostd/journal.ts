// The journal of hostd's stored state: `<dbdir>/state.journal.<generation>` (not upstream).
//
// albatross rewrites its whole state file — every stored image — on every change. hostd
// makes a change durable as one small journal record instead (the change alone: a create
// carries its configuration with the image once, a destroy only the name), and folds the
// journal into albatross's own `state` file in the background (store.ts). This module is
// the record format (pure) and the append-only journal file (I/O through FileOps).
//
// File: the 8 bytes `DRMJRNL1`, then records. Record: u32 BE payload length, u32 BE CRC-32
// of the payload, the payload: one batch of operations that is applied all or nothing.
// Operation: u8 kind, u32 BE name length, the name text (UTF-8), u32 BE value length, the
// value — the albatross DER of a UnikernelConfig (`U`) or Policy (`P`), empty for the
// removals (`u`, `p`). Operations set or remove one key, so replaying a record that the
// state file already holds changes nothing: a crash between a fold and the removal of the
// folded journal is harmless.
//
// A large image is not copied into the record: it is written (and fsynced, with the
// directory) into an image file of the journal, `state.image.<n>`, while the create runs,
// and the record (`I`) names that file: value = u32 BE image length, u32 BE CRC-32 of the
// image, u16 BE file name length, the file name, then the DER of the configuration with
// an empty image. The file is durable before the record that names it is written; it is
// removed with the journal generation that names it (after the fold), or at start when no
// record names it (a create that was never acknowledged).
//
// A record cut short by a crash (the file ends inside it, or its checksum fails and only
// zeros or nothing follow) is a "torn tail": it was never acknowledged and is ignored.
// Anything else that does not parse is corruption, reported with its offset.
import { crc32 } from "node:zlib";
import { decodePolicy, decodeUnikernelConfig, encodePolicy, encodeUnikernelConfig } from "../commands/codec.js";
import type { Policy, State, StatePolicy, StateUnikernel, UnikernelConfig } from "../commands/types.js";
import { nameToString, parseName, type Name } from "../core/name.js";
import { policyEquals } from "../policy/policy.js";
import { F, IoError, syncDir, unlinkQuiet, writeFully, type FileOps } from "./fsio.js";

// ---------------------------------------------------------------------------------------
// Operations and snapshots (pure)

/** An image kept in an image file of the journal instead of in the record. */
export interface ImageRef {
  /** `state.image.<n>` in the journal's directory */
  readonly file: string;
  readonly length: number;
  /** CRC-32 of the image */
  readonly crc: number;
}

export type Op =
  /**
   * With `image`, the record names the image file and `config.image` is not written (when
   * parsed: `config.image` is empty until the file is read, resolveImages)
   */
  | { readonly kind: "put-unikernel"; readonly name: Name; readonly config: UnikernelConfig; readonly image?: ImageRef }
  | { readonly kind: "remove-unikernel"; readonly name: Name }
  | { readonly kind: "put-policy"; readonly name: Name; readonly policy: Policy }
  | { readonly kind: "remove-policy"; readonly name: Name };

/** A state keyed by name text (unikernels: full names; policies: path names). */
export interface Snapshot {
  readonly unikernels: ReadonlyMap<string, StateUnikernel>;
  readonly policies: ReadonlyMap<string, StatePolicy>;
}

export const emptySnapshot: Snapshot = { unikernels: new Map(), policies: new Map() };

export function snapshotOf(st: State): Snapshot {
  return {
    unikernels: new Map(st.unikernels.map((u) => [nameToString(u.name), u])),
    policies: new Map(st.policies.map((p) => [nameToString(p.name), p])),
  };
}

export const stateOf = (s: Snapshot): State => ({ unikernels: [...s.unikernels.values()], policies: [...s.policies.values()] });

/**
 * The operations that turn `from` into `to`. A unikernel counts as unchanged while its
 * configuration is the same object (configs are immutable; a re-created unikernel keeps
 * its config object), so an unchanged image is never compared or written again.
 */
export function diffState(from: Snapshot, to: State): Op[] {
  const ops: Op[] = [];
  const seen = new Set<string>();
  for (const u of to.unikernels) {
    const k = nameToString(u.name);
    seen.add(k);
    if (from.unikernels.get(k)?.config !== u.config) ops.push({ kind: "put-unikernel", name: u.name, config: u.config });
  }
  for (const [k, u] of from.unikernels) if (!seen.has(k)) ops.push({ kind: "remove-unikernel", name: u.name });
  seen.clear();
  for (const p of to.policies) {
    const k = nameToString(p.name);
    seen.add(k);
    const old = from.policies.get(k);
    if (old === undefined || !policyEquals(old.policy, p.policy)) ops.push({ kind: "put-policy", name: p.name, policy: p.policy });
  }
  for (const [k, p] of from.policies) if (!seen.has(k)) ops.push({ kind: "remove-policy", name: p.name });
  return ops;
}

/** `s` with `ops` applied (a new snapshot; `s` is not changed). */
export function applyOps(s: Snapshot, ops: readonly Op[]): Snapshot {
  const unikernels = new Map(s.unikernels);
  const policies = new Map(s.policies);
  for (const op of ops) {
    const k = nameToString(op.name);
    switch (op.kind) {
      case "put-unikernel":
        unikernels.set(k, { name: op.name, config: op.config });
        break;
      case "remove-unikernel":
        unikernels.delete(k);
        break;
      case "put-policy":
        policies.set(k, { name: op.name, policy: op.policy });
        break;
      case "remove-policy":
        policies.delete(k);
        break;
    }
  }
  return { unikernels, policies };
}

// ---------------------------------------------------------------------------------------
// Record format (pure)

export const JOURNAL_MAGIC = new TextEncoder().encode("DRMJRNL1");
const HEADER = 8;
/** The largest record accepted when reading (a bigger length is corruption or a torn tail). */
const MAX_RECORD = 2 ** 31 - 1;

export class JournalCorrupt extends Error {
  constructor(
    readonly offset: number,
    readonly why: string,
  ) {
    super(`corrupt at byte ${offset}: ${why}`);
    this.name = "JournalCorrupt";
  }
}

const KIND = { "put-unikernel": 0x55, "remove-unikernel": 0x75, "put-policy": 0x50, "remove-policy": 0x70 } as const;
/** put-unikernel with its image in an image file (ImageRef) */
const KIND_IMAGE_FILE = 0x49;
const NO_IMAGE = new Uint8Array(0);

function encodeImageRef(ref: ImageRef, config: UnikernelConfig): Uint8Array {
  const file = enc.encode(ref.file);
  const der = encodeUnikernelConfig({ ...config, image: NO_IMAGE });
  const out = new Uint8Array(10 + file.length + der.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(0, ref.length);
  view.setUint32(4, ref.crc);
  view.setUint16(8, file.length);
  out.set(file, 10);
  out.set(der, 10 + file.length);
  return out;
}

function decodeImageRef(value: Uint8Array): { ref: ImageRef; config: UnikernelConfig } {
  if (value.length < 10) throw new Error("an image file reference is cut short");
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const fileLen = view.getUint16(8);
  if (10 + fileLen > value.length) throw new Error("an image file reference is cut short");
  const file = dec.decode(value.subarray(10, 10 + fileLen));
  if (imageFileNumber(file) === null) throw new Error(`bad image file name ${JSON.stringify(file)}`);
  const config = decodeUnikernelConfig(value.subarray(10 + fileLen));
  if (config.image.length !== 0) throw new Error("an image file reference carries an image");
  return { ref: { file, length: view.getUint32(0), crc: view.getUint32(4) }, config };
}
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** One framed record (length, CRC-32, payload) for a batch of operations, in one buffer. */
export function encodeRecord(ops: readonly Op[]): Uint8Array {
  const parts = ops.map((op) => {
    const name = enc.encode(nameToString(op.name));
    if (op.kind === "put-unikernel" && op.image !== undefined) return { kind: KIND_IMAGE_FILE, name, value: encodeImageRef(op.image, op.config) };
    const value = op.kind === "put-unikernel" ? encodeUnikernelConfig(op.config) : op.kind === "put-policy" ? encodePolicy(op.policy) : new Uint8Array(0);
    return { kind: KIND[op.kind], name, value };
  });
  let size = 0;
  for (const p of parts) size += 9 + p.name.length + p.value.length;
  if (size > MAX_RECORD) throw new RangeError(`journal record of ${size} bytes is too large`);
  const out = new Uint8Array(HEADER + size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let o = HEADER;
  for (const p of parts) {
    out[o] = p.kind;
    view.setUint32(o + 1, p.name.length);
    out.set(p.name, o + 5);
    o += 5 + p.name.length;
    view.setUint32(o, p.value.length);
    out.set(p.value, o + 4);
    o += 4 + p.value.length;
  }
  view.setUint32(0, size);
  view.setUint32(4, crc32(out.subarray(HEADER)) >>> 0);
  return out;
}

function decodePayload(b: Uint8Array, base: number): Op[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ops: Op[] = [];
  let o = 0;
  const need = (n: number, what: string): void => {
    if (o + n > b.length) throw new JournalCorrupt(base + o, `record ends inside ${what}`);
  };
  while (o < b.length) {
    need(5, "an operation header");
    const kind = b[o]!;
    const nameLen = view.getUint32(o + 1);
    o += 5;
    need(nameLen, "a name");
    let name: Name;
    try {
      name = parseName(dec.decode(b.subarray(o, o + nameLen)));
    } catch (e) {
      throw new JournalCorrupt(base + o, `bad name: ${(e as Error).message}`);
    }
    o += nameLen;
    need(4, "a value length");
    const valueLen = view.getUint32(o);
    o += 4;
    need(valueLen, "a value");
    const value = b.subarray(o, o + valueLen);
    const at = base + o;
    o += valueLen;
    try {
      switch (kind) {
        case KIND["put-unikernel"]:
          if (name.label === null) throw new Error("a unikernel name must have a label");
          ops.push({ kind: "put-unikernel", name, config: decodeUnikernelConfig(value) });
          break;
        case KIND_IMAGE_FILE: {
          if (name.label === null) throw new Error("a unikernel name must have a label");
          const { ref, config } = decodeImageRef(value);
          ops.push({ kind: "put-unikernel", name, config, image: ref });
          break;
        }
        case KIND["put-policy"]:
          if (name.label !== null) throw new Error("a policy name must be a path");
          ops.push({ kind: "put-policy", name, policy: decodePolicy(value) });
          break;
        case KIND["remove-unikernel"]:
        case KIND["remove-policy"]:
          if (valueLen !== 0) throw new Error("a removal carries no value");
          ops.push({ kind: kind === KIND["remove-unikernel"] ? "remove-unikernel" : "remove-policy", name });
          break;
        default:
          throw new Error(`unknown operation 0x${kind.toString(16)}`);
      }
    } catch (e) {
      throw new JournalCorrupt(at, (e as Error).message);
    }
  }
  return ops;
}

export interface ParsedJournal {
  /** the records, in order, each a batch of operations */
  readonly records: Op[][];
  /** end of the last good record (where a torn tail starts) */
  readonly end: number;
  /** a torn tail: what it looked like; null if the file ends after a good record */
  readonly torn: string | null;
}

const allZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/** Parse a journal file. Throws JournalCorrupt for anything but a torn tail. */
export function parseJournal(b: Uint8Array): ParsedJournal {
  if (b.length < JOURNAL_MAGIC.length) {
    // a crash while the file was being created; nothing in it was ever acknowledged
    if (JOURNAL_MAGIC.subarray(0, b.length).every((x, i) => b[i] === x)) return { records: [], end: 0, torn: b.length === 0 ? null : "a cut-off file header" };
    throw new JournalCorrupt(0, "not a journal file (bad magic)");
  }
  if (!JOURNAL_MAGIC.every((x, i) => b[i] === x)) throw new JournalCorrupt(0, "not a journal file (bad magic)");
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const records: Op[][] = [];
  let o = JOURNAL_MAGIC.length;
  while (o < b.length) {
    const rest = b.length - o;
    if (rest < HEADER) return { records, end: o, torn: allZero(b.subarray(o)) ? "zeros" : `a cut-off record header (${rest} bytes)` };
    const len = view.getUint32(o);
    const sum = view.getUint32(o + 4);
    if (len === 0 && sum === 0 && allZero(b.subarray(o))) return { records, end: o, torn: "zeros" };
    if (len > rest - HEADER) {
      if (len > MAX_RECORD && !allZero(b.subarray(o + HEADER))) throw new JournalCorrupt(o, `record length ${len} is out of range`);
      return { records, end: o, torn: `a record of ${len} bytes cut off after ${rest - HEADER}` };
    }
    const payload = b.subarray(o + HEADER, o + HEADER + len);
    if (crc32(payload) >>> 0 !== sum) {
      // The last record with its tail zero-filled or garbage from a crash: torn. A bad
      // record with good data after it is corruption.
      if (o + HEADER + len === b.length || allZero(b.subarray(o + HEADER + len)))
        return { records, end: o, torn: "a record whose checksum fails at the end of the file" };
      throw new JournalCorrupt(o, "checksum mismatch");
    }
    records.push(decodePayload(payload, o + HEADER));
    o += HEADER + len;
  }
  return { records, end: o, torn: null };
}

// ---------------------------------------------------------------------------------------
// Journal files

const JOURNAL_PREFIX = "state.journal.";

/** The file name of journal generation `g`. */
export const journalFile = (g: number): string => `${JOURNAL_PREFIX}${g}`;

/** `state.journal.<n>` -> n (a positive integer), else null. */
export function journalGeneration(file: string): number | null {
  if (!file.startsWith(JOURNAL_PREFIX)) return null;
  const g = file.slice(JOURNAL_PREFIX.length);
  return /^[1-9][0-9]{0,14}$/.test(g) ? Number(g) : null;
}

const IMAGE_PREFIX = "state.image.";

/** The name of image file `n` of the journal. */
export const imageFile = (n: number): string => `${IMAGE_PREFIX}${n}`;

/** `state.image.<n>` -> n (a positive integer), else null. */
export function imageFileNumber(file: string): number | null {
  if (!file.startsWith(IMAGE_PREFIX)) return null;
  const n = file.slice(IMAGE_PREFIX.length);
  return /^[1-9][0-9]{0,14}$/.test(n) ? Number(n) : null;
}

/**
 * The images of a parsed journal's records read from their image files (I/O through
 * `read`): each op naming one gets its config with the image, and keeps the reference
 * (for the file's bookkeeping). Throws JournalCorrupt when a named file is missing or
 * does not hold the image the record describes (length, CRC-32): it was fsynced before
 * that record was written.
 */
export async function resolveImages(records: Op[][], read: (file: string) => Promise<Uint8Array | null>): Promise<Op[][]> {
  const out: Op[][] = [];
  for (const r of records) {
    const ops: Op[] = [];
    for (const op of r) {
      if (op.kind !== "put-unikernel" || op.image === undefined) {
        ops.push(op);
        continue;
      }
      const ref = op.image;
      const bytes = await read(ref.file);
      if (bytes === null) throw new Error(`the image file ${ref.file} of ${nameToString(op.name)} is missing`);
      if (bytes.length !== ref.length || crc32(bytes) >>> 0 !== ref.crc)
        throw new Error(`the image file ${ref.file} of ${nameToString(op.name)} is not the image recorded (${bytes.length} bytes, ${ref.length} recorded)`);
      ops.push({ ...op, config: { ...op.config, image: bytes } });
    }
    out.push(ops);
  }
  return out;
}

/**
 * An open journal file that records are appended to. An append is acknowledged once
 * `append` resolves: the record is written in full and fdatasync'ed (the file itself was
 * fsynced with its directory when it was created). A failed append is cut off again
 * (ftruncate to the previous end); if even that fails, the file is marked broken and the
 * owner starts the next generation: a record is never written after a failed one.
 */
export class JournalFile {
  private broken = false;
  private constructor(
    private readonly ops: FileOps,
    readonly path: string,
    readonly generation: number,
    private fd: number,
    private size: number,
  ) {}

  /** Create `path` (must not exist), with the magic, synced with its directory. */
  static async create(ops: FileOps, dir: string, generation: number): Promise<JournalFile> {
    const path = `${dir}/${journalFile(generation)}`;
    const fd = await ops.open(path, F.O_WRONLY | F.O_CREAT | F.O_EXCL, 0o600);
    try {
      await writeFully(ops, fd, JOURNAL_MAGIC, 0);
      await ops.fsync(fd);
      await syncDir(ops, dir);
    } catch (e) {
      await ops.close(fd).catch(() => undefined);
      await unlinkQuiet(ops, path).catch(() => undefined);
      throw e;
    }
    return new JournalFile(ops, path, generation, fd, JOURNAL_MAGIC.length);
  }

  get usable(): boolean {
    return !this.broken && this.fd >= 0;
  }

  get bytes(): number {
    return this.size;
  }

  /** Append one record durably; throws (with the file unchanged) if that failed. */
  async append(record: Uint8Array): Promise<void> {
    if (!this.usable) throw new IoError(`journal ${this.path} is not writable`, "EIO");
    let written = false;
    try {
      await writeFully(this.ops, this.fd, record, this.size);
      written = true;
      await this.ops.fdatasync(this.fd);
      this.size += record.length;
    } catch (e) {
      // After a failed fdatasync the kernel may have dropped the dirty pages (and the
      // error): this file is not trusted with another record.
      if (written) this.broken = true;
      try {
        await this.ops.ftruncate(this.fd, this.size);
        await this.ops.fdatasync(this.fd);
      } catch {
        // Whatever is at the end now is a torn tail; never write after it.
        this.broken = true;
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    await this.ops.close(fd);
  }
}
