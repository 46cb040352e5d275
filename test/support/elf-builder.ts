// Builds minimal, well-formed x86_64 ELF executables carrying real Solo5 notes
// (`.note.solo5.manifest` and `.note.solo5.abi`, each both as a section and as a
// PT_NOTE program header, as real Solo5 images have them). Test support only: the
// images are not runnable guests, but every structure a tender or albatross inspects
// is laid out as solo5's own toolchain does (mft_abi.h / elf_abi.h).
//
// The returned `layout` gives the file offsets of the interesting structures so tests
// can corrupt exactly one field.

import type { Solo5Device, Solo5Target } from "../../src/solo5/elf.js";

export const TARGET_NUMBERS: Record<Solo5Target, number> = { hvt: 1, spt: 2, virtio: 3, muen: 4, genode: 5, xen: 6 };

/** Current Solo5 (v0.12) ABI versions per target. */
export const DEFAULT_ABI_VERSION: Record<Solo5Target, number> = { hvt: 2, spt: 2, virtio: 1, muen: 3, genode: 1, xen: 1 };

export interface RawEntry {
  /** Up to 68 bytes; NUL-padded (a 68-byte name has no terminator). */
  readonly name: string | Uint8Array;
  readonly type: number;
  readonly attached?: number;
}

export interface ElfBuildOptions {
  readonly target?: Solo5Target;
  readonly abiVersion?: number;
  readonly devices?: readonly Solo5Device[];
  /** Replace the manifest records entirely (default: RESERVED_FIRST + devices). */
  readonly rawEntries?: readonly RawEntry[];
  readonly manifestVersion?: number;
  /** Override the `entries` field (default: number of records). */
  readonly entriesField?: number;
  readonly omitAbi?: boolean;
  readonly omitManifest?: boolean;
  /** Extra bytes of machine code for .text (default: `hlt; jmp .-1`). */
  readonly text?: Uint8Array;
}

export interface ElfLayout {
  readonly phoff: number;
  readonly phnum: number;
  readonly shoff: number;
  readonly shnum: number;
  readonly shstrndx: number;
  /** Section header index and file offset of each note section (-1 when omitted). */
  readonly manifestIndex: number;
  readonly manifestOffset: number;
  readonly manifestDescOffset: number;
  readonly abiIndex: number;
  readonly abiOffset: number;
  readonly abiDescOffset: number;
  readonly shstrtabOffset: number;
}

export interface BuiltElf {
  readonly bytes: Uint8Array;
  readonly layout: ElfLayout;
}

const BASE_VADDR = 0x100000;
const MFT_ENTRY_SIZE = 104;
const NOTE_TYPE_MFT1 = 0x3154464d;
const NOTE_TYPE_ABI1 = 0x31494241;
const MFT_RESERVED_FIRST = 1 << 30;

class Buf {
  bytes = new Uint8Array(0);
  private view = new DataView(this.bytes.buffer);
  ensure(n: number): void {
    if (n <= this.bytes.length) return;
    const b = new Uint8Array(Math.max(n, this.bytes.length * 2));
    b.set(this.bytes);
    this.bytes = b;
    this.view = new DataView(b.buffer);
  }
  u8(off: number, v: number): void {
    this.ensure(off + 1);
    this.view.setUint8(off, v);
  }
  u16(off: number, v: number): void {
    this.ensure(off + 2);
    this.view.setUint16(off, v, true);
  }
  u32(off: number, v: number): void {
    this.ensure(off + 4);
    this.view.setUint32(off, v >>> 0, true);
  }
  u64(off: number, v: number): void {
    this.ensure(off + 8);
    this.view.setBigUint64(off, BigInt(v), true);
  }
  set(off: number, data: Uint8Array): void {
    this.ensure(off + data.length);
    this.bytes.set(data, off);
  }
}

const align = (n: number, a: number): number => (n + a - 1) & ~(a - 1);
const enc = (s: string | Uint8Array): Uint8Array => (typeof s === "string" ? new TextEncoder().encode(s) : s);

function noteBytes(type: number, desc: Uint8Array): { bytes: Uint8Array; descOffset: number } {
  const name = enc("Solo5\0");
  const descOffset = align(12 + name.length, 4);
  const b = new Buf();
  b.u32(0, name.length);
  b.u32(4, desc.length);
  b.u32(8, type);
  b.set(12, name);
  b.set(descOffset, desc);
  b.ensure(align(descOffset + desc.length, 4));
  return { bytes: b.bytes.slice(0, align(descOffset + desc.length, 4)), descOffset };
}

export function manifestDescriptor(opts: ElfBuildOptions = {}): Uint8Array {
  const entries: RawEntry[] = opts.rawEntries
    ? [...opts.rawEntries]
    : [{ name: "", type: MFT_RESERVED_FIRST }, ...(opts.devices ?? []).map((d) => ({ name: d.name, type: d.type === "block" ? 1 : 2 }))];
  const b = new Buf();
  b.ensure(12 + entries.length * MFT_ENTRY_SIZE);
  b.u32(0, 0); // padding: 8-byte alignment of struct mft after the 20-byte note header
  b.u32(4, opts.manifestVersion ?? 1);
  b.u32(8, opts.entriesField ?? entries.length);
  entries.forEach((e, i) => {
    const off = 12 + i * MFT_ENTRY_SIZE;
    const name = enc(e.name);
    if (name.length > 68) throw new RangeError("manifest name longer than 68 bytes");
    b.set(off, name);
    b.u32(off + 68, e.type);
    b.u8(off + 96, e.attached ?? 0);
  });
  return b.bytes.slice(0, 12 + entries.length * MFT_ENTRY_SIZE);
}

export function abiDescriptor(target: Solo5Target, version: number): Uint8Array {
  const b = new Buf();
  b.u32(0, TARGET_NUMBERS[target]);
  b.u32(4, version);
  b.u32(8, 0);
  b.u32(12, 0);
  return b.bytes.slice(0, 16);
}

/** Build an image; see ElfBuildOptions. */
export function buildSolo5Elf(opts: ElfBuildOptions = {}): BuiltElf {
  const target = opts.target ?? "hvt";
  const version = opts.abiVersion ?? DEFAULT_ABI_VERSION[target];
  const text = opts.text ?? Uint8Array.of(0xf4, 0xeb, 0xfd); // hlt; jmp back to hlt
  const mft = opts.omitManifest ? null : noteBytes(NOTE_TYPE_MFT1, manifestDescriptor(opts));
  const abi = opts.omitAbi ? null : noteBytes(NOTE_TYPE_ABI1, abiDescriptor(target, version));

  interface Sec {
    name: string;
    type: number;
    flags: number;
    data: Uint8Array;
    align: number;
    off: number;
  }
  const secs: Sec[] = [{ name: ".text", type: 1, flags: 0x6, data: text, align: 16, off: 0 }];
  // real images: both note sections and their PT_NOTE headers are 4-aligned
  if (mft) secs.push({ name: ".note.solo5.manifest", type: 7, flags: 0x2, data: mft.bytes, align: 4, off: 0 });
  if (abi) secs.push({ name: ".note.solo5.abi", type: 7, flags: 0x2, data: abi.bytes, align: 4, off: 0 });
  const notes = secs.filter((s) => s.type === 7);

  const phoff = 64;
  const phnum = 1 + notes.length;
  let off = phoff + phnum * 56;
  for (const s of secs) {
    off = align(off, s.align);
    s.off = off;
    off += s.data.length;
  }
  // .shstrtab: "\0" then each name NUL-terminated
  const names = ["", ...secs.map((s) => s.name), ".shstrtab"];
  const nameOffsets: number[] = [];
  let strtab = "";
  for (const n of names) {
    nameOffsets.push(n === "" ? 0 : strtab.length);
    if (n !== "" || strtab.length === 0) strtab += n + "\0";
  }
  const shstrtab = enc(strtab);
  const shstrtabOffset = off;
  off += shstrtab.length;
  const shoff = align(off, 8);
  const shnum = secs.length + 2; // null + sections + .shstrtab
  const size = shoff + shnum * 64;
  const loadSize = shstrtabOffset; // everything before the string table is loaded

  const b = new Buf();
  b.ensure(size);
  // ELF header
  b.set(0, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0)); // 64-bit, LE, EV_CURRENT, SYSV
  b.u16(16, 2); // ET_EXEC
  b.u16(18, 62); // EM_X86_64
  b.u32(20, 1);
  b.u64(24, BASE_VADDR + secs[0]!.off); // e_entry
  b.u64(32, phoff);
  b.u64(40, shoff);
  b.u32(48, 0);
  b.u16(52, 64); // e_ehsize
  b.u16(54, 56); // e_phentsize
  b.u16(56, phnum);
  b.u16(58, 64); // e_shentsize
  b.u16(60, shnum);
  b.u16(62, shnum - 1); // e_shstrndx
  // program headers: PT_LOAD over [0, loadSize), then one PT_NOTE per note section
  const ph = (i: number, type: number, flags: number, o: number, sz: number, al: number): void => {
    const p = phoff + i * 56;
    b.u32(p, type);
    b.u32(p + 4, flags);
    b.u64(p + 8, o);
    b.u64(p + 16, BASE_VADDR + o);
    b.u64(p + 24, BASE_VADDR + o);
    b.u64(p + 32, sz);
    b.u64(p + 40, sz);
    b.u64(p + 48, al);
  };
  ph(0, 1, 0x5, 0, loadSize, 0x1000);
  notes.forEach((s, i) => {
    ph(1 + i, 4, 0x4, s.off, s.data.length, s.align);
  });
  for (const s of secs) b.set(s.off, s.data);
  b.set(shstrtabOffset, shstrtab);
  // section headers (index 0 is the null section)
  const sh = (i: number, nameOff: number, type: number, flags: number, addr: number, o: number, sz: number, al: number): void => {
    const p = shoff + i * 64;
    b.u32(p, nameOff);
    b.u32(p + 4, type);
    b.u64(p + 8, flags);
    b.u64(p + 16, addr);
    b.u64(p + 24, o);
    b.u64(p + 32, sz);
    b.u32(p + 40, 0);
    b.u32(p + 44, 0);
    b.u64(p + 48, al);
    b.u64(p + 56, 0);
  };
  secs.forEach((s, i) => {
    sh(i + 1, nameOffsets[i + 1]!, s.type, s.flags, BASE_VADDR + s.off, s.off, s.data.length, s.align);
  });
  sh(shnum - 1, nameOffsets[names.length - 1]!, 3, 0, 0, shstrtabOffset, shstrtab.length, 1);

  const mIdx = secs.findIndex((s) => s.name === ".note.solo5.manifest");
  const aIdx = secs.findIndex((s) => s.name === ".note.solo5.abi");
  return {
    bytes: b.bytes.slice(0, size),
    layout: {
      phoff,
      phnum,
      shoff,
      shnum,
      shstrndx: shnum - 1,
      manifestIndex: mIdx < 0 ? -1 : mIdx + 1,
      manifestOffset: mIdx < 0 ? -1 : secs[mIdx]!.off,
      manifestDescOffset: mIdx < 0 || !mft ? -1 : secs[mIdx]!.off + mft.descOffset,
      abiIndex: aIdx < 0 ? -1 : aIdx + 1,
      abiOffset: aIdx < 0 ? -1 : secs[aIdx]!.off,
      abiDescOffset: aIdx < 0 || !abi ? -1 : secs[aIdx]!.off + abi.descOffset,
      shstrtabOffset,
    },
  };
}

/** The named images written by scripts/make-test-images.ts. */
export const TEST_IMAGES: Readonly<Record<string, ElfBuildOptions>> = {
  "hello.hvt": { target: "hvt", devices: [] },
  "hello.spt": { target: "spt", devices: [] },
  "net.hvt": { target: "hvt", devices: [{ name: "service", type: "net" }] },
  "blk.hvt": { target: "hvt", devices: [{ name: "storage", type: "block" }] },
  "netblk.hvt": {
    target: "hvt",
    devices: [
      { name: "service", type: "net" },
      { name: "storage", type: "block" },
    ],
  },
  "hello.virtio": { target: "virtio", devices: [] },
};
