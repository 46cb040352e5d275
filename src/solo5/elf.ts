// Solo5 ELF inspection: the ABI and manifest notes of a unikernel image
// (daemon.md §2.5; equivalent of robur's ocaml-solo5-elftool as used by albatross).
// Pure: no I/O (the bytes come from a driver, see "Reading"). Every read is bounds-checked
// against the image; hostile input only ever yields an ElfError, and the work is linear in
// the size of the image.
//
// Upstream behaviour that is deliberately reproduced:
// * notes are found through the SECTION headers (the tenders use PT_NOTE program
//   headers instead; real images have both);
// * the name of EVERY section must resolve to a NUL-terminated string inside the
//   section-name string table (a single broken name fails the whole lookup);
// * the first section with the wanted name is used; a note whose type or owner does
//   not match, and a missing section, both mean "manifest not found" (also for the
//   ABI note: upstream uses the same text);
// * the note descriptor is located by padding the ABSOLUTE file offset to 4 bytes,
//   and the note is bounded by the file, not by the section size (only
//   sh_size >= 12 is required);
// * descriptor fields are always little endian.
//
// Deviations (all about inputs no real image has): big-endian images are rejected up
// front (upstream reads their e_shoff from the wrong half and fails later anyway);
// e_shoff is read as the full 64-bit field (upstream reads its low 32 bits only); a
// bad e_shstrndx is an ElfError (upstream raises an uncaught Invalid_argument).

export type Solo5Target = "hvt" | "spt" | "virtio" | "muen" | "genode" | "xen";

export interface Solo5Abi {
  readonly target: Solo5Target;
  /** ABI version as upstream sees it (the u32 field read as a signed int32). */
  readonly version: number;
}

type Solo5DeviceType = "block" | "net";

export interface Solo5Device {
  readonly name: string;
  readonly type: Solo5DeviceType;
}

export interface Solo5Info {
  readonly abi: Solo5Abi;
  /** Manifest entries in manifest order, without the reserved first entry. */
  readonly devices: Solo5Device[];
}

/** Generic text albatross reports for any structural ELF problem. */
export const UPSTREAM_ELF_ERROR = "error during ELF parsing";
const MANIFEST_NOT_FOUND = "manifest not found";

export class ElfError extends Error {
  /**
   * The text albatross 2.7.2 would report for the same image: equal to `message` for
   * note/manifest content errors and "manifest not found"; `error during ELF parsing`
   * for structural problems, where `message` is more precise.
   */
  readonly upstream: string;
  constructor(message: string, upstream: string = message) {
    super(message);
    this.name = "ElfError";
    this.upstream = upstream;
  }
}

const structural = (message: string): ElfError => new ElfError(message, UPSTREAM_ELF_ERROR);

const SECTION_ABI = ".note.solo5.abi";
const SECTION_MANIFEST = ".note.solo5.manifest";
const NOTE_TYPE_ABI1 = 0x31494241; // "ABI1"
const NOTE_TYPE_MFT1 = 0x3154464d; // "MFT1"
const NOTE_OWNER = [0x53, 0x6f, 0x6c, 0x6f, 0x35, 0x00]; // "Solo5\0"

const MFT_ENTRY_SIZE = 104;
const MFT_NAME_SIZE = 68;
const MFT_MAX_ENTRIES = 64;
const MFT_BLOCK_BASIC = 1;
const MFT_NET_BASIC = 2;
const MFT_RESERVED_FIRST = 1 << 30;

const TARGETS: readonly Solo5Target[] = ["hvt", "spt", "virtio", "muen", "genode", "xen"];

/** Upstream rejects 64-bit values above OCaml's max_int (2^62 - 1). */
const MAX_OCAML_INT = (1n << 62n) - 1n;

interface Section {
  readonly nameOff: number;
  readonly offset: number;
  readonly size: number;
}

// ---------------------------------------------------------------------------------------
// Reading. The parser never holds the image: it asks for the bytes it needs (a few hundred
// for a real image) as ReadRequests, and a driver answers them — from a Uint8Array
// (`readSolo5Abi(image)`), or from a file (hostd reads the inflated image it has just
// written; src/hostd/image.ts). Each request is at most READ_MAX bytes, whatever the input.

/** `len` bytes at `off` (always within the image: the parser checks bounds first). */
interface ReadRequest {
  readonly off: number;
  readonly len: number;
}

/** A parse that yields read requests and receives their bytes. */
type Reads<T> = Generator<ReadRequest, T, Uint8Array>;

/** The largest single read the parser asks for. */
export const READ_MAX = 64 * 1024;

/** The largest descriptor that can be valid (a manifest of MFT_MAX_ENTRIES). */
const DESC_MAX = 12 + MFT_MAX_ENTRIES * MFT_ENTRY_SIZE;

/** Bounds-checked little-endian reads of an image of `length` bytes. */
class Reader {
  constructor(readonly length: number) {}
  inBounds(off: number, len: number): boolean {
    return Number.isSafeInteger(off) && off >= 0 && len >= 0 && off + len <= this.length;
  }
  private need(off: number, len: number, what: string): void {
    if (!this.inBounds(off, len)) throw structural(`${what} out of bounds`);
  }
  *bytes(off: number, len: number, what: string): Reads<Uint8Array> {
    this.need(off, len, what);
    if (len > READ_MAX) throw new RangeError(`read of ${len} bytes`); // (a parser bug)
    const b = yield { off, len };
    if (b.length !== len) throw structural(`${what}: short read`);
    return b;
  }
  *u16(off: number, what: string): Reads<number> {
    const b = yield* this.bytes(off, 2, what);
    return b[0]! | (b[1]! << 8);
  }
  *u32(off: number, what: string): Reads<number> {
    return le32(yield* this.bytes(off, 4, what), 0);
  }
  *u64(off: number, what: string): Reads<number> {
    const b = yield* this.bytes(off, 8, what);
    const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    if (v > MAX_OCAML_INT) throw structural(`${what} too large`);
    // Values above 2^53 lose precision here, but are then far beyond any image and
    // fail every later bounds check, which is all that matters.
    return Number(v);
  }
}

function* readSections(r: Reader): Reads<{ sections: Section[]; shstr: Section }> {
  const head = r.length === 0 ? new Uint8Array(0) : yield* r.bytes(0, Math.min(64, r.length), "ELF header");
  if (head.length < 4 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) throw structural("not an ELF file");
  if (head.length < 64) throw structural("ELF header truncated");
  const cls = head[4]!;
  const data = head[5]!;
  for (let i = 9; i < 16; i++) if (head[i] !== 0) throw structural("non-zero ELF identification padding");
  if (cls !== 2) throw structural("only 64-bit ELF is supported");
  if (data === 2) throw structural("big-endian ELF is not supported");
  if (data !== 1) throw structural(`bad ELF data encoding ${data}`);
  const shoff = yield* r.u64(0x28, "e_shoff");
  const shentsize = yield* r.u16(0x3a, "e_shentsize");
  const shnum = yield* r.u16(0x3c, "e_shnum");
  const shstrndx = yield* r.u16(0x3e, "e_shstrndx");
  // shnum <= 65535, so this loop is bounded; each entry is checked individually
  // (upstream does not validate e_shentsize; overlapping entries are harmless).
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const off = shoff + i * shentsize;
    sections.push({
      nameOff: yield* r.u32(off, "section header"),
      offset: yield* r.u64(off + 24, "section header"),
      size: yield* r.u64(off + 32, "section header"),
    });
  }
  const shstr = sections[shstrndx];
  if (shstr === undefined) throw structural(`bad e_shstrndx ${shstrndx} (${shnum} sections)`);
  return { sections, shstr };
}

/**
 * Find the first section called `wanted`, checking (like upstream) that every
 * section's name is a NUL-terminated string inside the string table. Linear: the
 * string table is scanned once, from the highest name offset to its first NUL (a name
 * ends inside the table iff a NUL follows it there; the highest one decides for all);
 * each name is compared bytewise against `wanted` only.
 */
function* findSection(r: Reader, sections: Section[], shstr: Section, wanted: string): Reads<Section | null> {
  const tabStart = shstr.offset;
  // A name must end (its NUL) strictly before tabStart + size and inside the file.
  const tabEnd = Math.min(tabStart + shstr.size, r.length);
  let maxOff = -1;
  for (const s of sections) {
    const off = tabStart + s.nameOff;
    if (!(off < tabEnd)) throw structural("section name out of bounds");
    maxOff = Math.max(maxOff, off);
  }
  let terminated = sections.length === 0;
  for (let at = maxOff; !terminated && at < tabEnd; at += READ_MAX) {
    const chunk = yield* r.bytes(at, Math.min(READ_MAX, tabEnd - at), "section name");
    terminated = chunk.indexOf(0) >= 0;
  }
  if (!terminated) throw structural("section name out of bounds");
  const want = new TextEncoder().encode(wanted + "\0");
  for (const s of sections) {
    const off = tabStart + s.nameOff;
    if (off + want.length > tabEnd) continue;
    const name = yield* r.bytes(off, want.length, "section name");
    let eq = true;
    for (let i = 0; i < want.length; i++) {
      if (name[i] !== want[i]) {
        eq = false;
        break;
      }
    }
    if (eq) return s;
  }
  return null;
}

/**
 * The descriptor of the Solo5 note in `section`, or null when type/owner differ. A
 * descriptor longer than any valid one is read only up to DESC_MAX + 1 bytes: its
 * parse fails on the length all the same (with the same message).
 */
function* noteDescriptor(r: Reader, section: Section, type: number): Reads<Uint8Array | null> {
  const off = section.offset;
  if (section.size < 12) throw structural("note section too small");
  const namesz = yield* r.u32(off, "note header");
  const descsz = yield* r.u32(off + 4, "note header");
  const ntype = yield* r.u32(off + 8, "note header");
  if (ntype !== type || namesz !== NOTE_OWNER.length) return null;
  const owner = yield* r.bytes(off + 12, namesz, "note owner");
  for (let i = 0; i < namesz; i++) if (owner[i] !== NOTE_OWNER[i]) return null;
  let d = off + 12 + namesz;
  d += (4 - (d & 3)) & 3; // upstream pads the absolute file offset
  if (!r.inBounds(d, descsz)) throw structural("note descriptor out of bounds");
  return yield* r.bytes(d, Math.min(descsz, DESC_MAX + 1), "note descriptor");
}

function* findNote(length: number, sectionName: string, type: number): Reads<Uint8Array> {
  const r = new Reader(length);
  const { sections, shstr } = yield* readSections(r);
  const section = yield* findSection(r, sections, shstr, sectionName);
  const desc = section === null ? null : yield* noteDescriptor(r, section, type);
  if (desc === null) throw new ElfError(MANIFEST_NOT_FOUND);
  return desc;
}

/** Run a parse against an image in memory. */
function fromMemory<T>(g: Reads<T>, image: Uint8Array): T {
  let step = g.next();
  while (!step.done) step = g.next(image.subarray(step.value.off, step.value.off + step.value.len));
  return step.value;
}

/** Run a parse against any random-access source (e.g. a file): `read` must return exactly `len` bytes. */
async function fromSource<T>(g: Reads<T>, read: (off: number, len: number) => Promise<Uint8Array>): Promise<T> {
  let step = g.next();
  while (!step.done) step = g.next(await read(step.value.off, step.value.len));
  return step.value;
}

/** An image the parser reads piecewise: its length and a positioned read. */
export interface ImageSource {
  readonly length: number;
  read(off: number, len: number): Promise<Uint8Array>;
}

function le32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}
const signed32 = (v: number): number => v | 0;

/** Parse the descriptor of the ABI1 note (16 bytes). */
function parseAbiDescriptor(desc: Uint8Array): Solo5Abi {
  if (desc.length !== 16) throw new ElfError("abi manifest size mismatch");
  const target = le32(desc, 0);
  const version = le32(desc, 4);
  const t = target >= 1 && target <= TARGETS.length ? TARGETS[target - 1] : undefined;
  // Int32.to_string: upstream prints the field signed.
  if (t === undefined) throw new ElfError(`unknown abi target: ${signed32(target)}`);
  if (le32(desc, 8) !== 0) throw new ElfError("non-zero reserved0");
  if (le32(desc, 12) !== 0) throw new ElfError("non-zero reserved1");
  return { target: t, version: signed32(version) };
}

const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const allZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

type Entry = { kind: "reserved" } | { kind: "device"; device: Solo5Device };

function parseEntry(e: Uint8Array): Entry {
  const nameRaw = e.subarray(0, MFT_NAME_SIZE);
  const typ = le32(e, 68);
  const nul = nameRaw.indexOf(0);
  // Checks in upstream's order.
  if (nul < 0) throw new ElfError("unterminated device name");
  if (!allZero(e.subarray(72, 88))) throw new ElfError("non-zero mft_entry.u");
  if (!allZero(e.subarray(88, 96))) throw new ElfError("non-zero mft_entry.b");
  if (e[96] !== 0) throw new ElfError("non-zero mft_entry.attached");
  switch (typ) {
    case MFT_RESERVED_FIRST:
      if (!allZero(nameRaw)) throw new ElfError("non-zero RESERVED_FIRST");
      return { kind: "reserved" };
    case MFT_BLOCK_BASIC:
      return { kind: "device", device: { name: utf8.decode(nameRaw.subarray(0, nul)), type: "block" } };
    case MFT_NET_BASIC:
      return { kind: "device", device: { name: utf8.decode(nameRaw.subarray(0, nul)), type: "net" } };
    default:
      throw new ElfError(`unknown manifest entry type: ${signed32(typ)}`);
  }
}

/** Parse the descriptor of the MFT1 note (4 bytes padding, version, entries, records). */
function parseManifestDescriptor(desc: Uint8Array): Solo5Device[] {
  if (desc.length < 12 + MFT_ENTRY_SIZE) throw new ElfError("manifest too small");
  const version = le32(desc, 4);
  const entries = le32(desc, 8);
  if (version !== 1) throw new ElfError("unsupported manifest version");
  if (entries === 0) throw new ElfError("zero manifest entries");
  if (entries > MFT_MAX_ENTRIES) throw new ElfError("too many manifest entries");
  if (desc.length !== 12 + entries * MFT_ENTRY_SIZE) throw new ElfError("unexpected note size");
  const entry = (i: number): Uint8Array => desc.subarray(12 + i * MFT_ENTRY_SIZE, 12 + (i + 1) * MFT_ENTRY_SIZE);
  let first: Entry | null;
  try {
    first = parseEntry(entry(0));
  } catch {
    first = null; // upstream maps any problem with entry 0 to this text
  }
  if (first === null || first.kind !== "reserved") throw new ElfError("expected RESERVED_FIRST");
  const devices: Solo5Device[] = [];
  for (let i = 1; i < entries; i++) {
    const e = parseEntry(entry(i));
    if (e.kind === "reserved") throw new ElfError("found RESERVED_FIRST not as first entry");
    devices.push(e.device);
  }
  return devices;
}

/** The ABI note (`.note.solo5.abi`) of an image. */
export function readSolo5Abi(image: Uint8Array): Solo5Abi {
  return parseAbiDescriptor(fromMemory(findNote(image.length, SECTION_ABI, NOTE_TYPE_ABI1), image));
}

/** The manifest devices (`.note.solo5.manifest`) of an image, in manifest order. */
export function readSolo5Manifest(image: Uint8Array): Solo5Device[] {
  return parseManifestDescriptor(fromMemory(findNote(image.length, SECTION_MANIFEST, NOTE_TYPE_MFT1), image));
}

/** readSolo5Abi of an image read piecewise (never held whole). */
export async function readSolo5AbiFrom(src: ImageSource): Promise<Solo5Abi> {
  return parseAbiDescriptor(await fromSource(findNote(src.length, SECTION_ABI, NOTE_TYPE_ABI1), (o, l) => src.read(o, l)));
}

/** readSolo5Manifest of an image read piecewise (never held whole). */
export async function readSolo5ManifestFrom(src: ImageSource): Promise<Solo5Device[]> {
  return parseManifestDescriptor(await fromSource(findNote(src.length, SECTION_MANIFEST, NOTE_TYPE_MFT1), (o, l) => src.read(o, l)));
}

/**
 * ABI and manifest of an image (ABI errors first). Note for the daemon: upstream
 * checks the target (`unsupported solo5 target`) and the tender BEFORE reading the
 * manifest; use readSolo5Abi/readSolo5Manifest separately to keep that order.
 */
export function readSolo5Info(image: Uint8Array): Solo5Info {
  const abi = readSolo5Abi(image);
  return { abi, devices: readSolo5Manifest(image) };
}

/** OCaml's `%S`: double-quoted, with String.escaped applied to the UTF-8 bytes. */
export function ocamlQuoted(s: string): string {
  let out = '"';
  for (const b of new TextEncoder().encode(s)) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += "\\\\";
    else if (b === 0x0a) out += "\\n";
    else if (b === 0x09) out += "\\t";
    else if (b === 0x0d) out += "\\r";
    else if (b === 0x08) out += "\\b";
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += "\\" + b.toString(10).padStart(3, "0");
  }
  return out + '"';
}

/** `block "storage", net "service"` — manifest entries as albatross prints them. */
export function renderManifestEntries(devices: readonly Solo5Device[]): string {
  return devices.map((d) => `${d.type} ${ocamlQuoted(d.name)}`).join(", ");
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  if (sa.size !== sb.size) return false;
  for (const x of sa) if (!sb.has(x)) return false;
  return true;
}

/**
 * daemon.md §2.4 step 5: the configured block device names (unikernel-side names) and
 * netif names must equal, as sets, the manifest's BLOCK_BASIC and NET_BASIC entries.
 * Returns null when they match, else the exact upstream error text (block checked first).
 */
export function checkManifest(devices: readonly Solo5Device[], blockNames: readonly string[], netNames: readonly string[]): string | null {
  const mBlock = devices.filter((d) => d.type === "block").map((d) => d.name);
  const mNet = devices.filter((d) => d.type === "net").map((d) => d.name);
  const present = renderManifestEntries(devices);
  if (!sameSet(mBlock, blockNames)) return `specified block device(s) does not match with manifest. Devices present in manifest: ${present}`;
  if (!sameSet(mNet, netNames)) return `specified bridge(s) does not match with the manifest. Devices present in manifest: ${present}`;
  return null;
}
