import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkManifest,
  ElfError,
  ocamlQuoted,
  READ_MAX,
  readSolo5Abi,
  readSolo5AbiFrom,
  readSolo5Info,
  readSolo5Manifest,
  readSolo5ManifestFrom,
  type ImageSource,
  renderManifestEntries,
  UPSTREAM_ELF_ERROR,
  type Solo5Device,
} from "../../src/solo5/elf.js";
import { buildSolo5Elf, TEST_IMAGES, type BuiltElf, type ElfBuildOptions } from "../support/elf-builder.js";

const RESERVED = 1 << 30;

function patch(img: BuiltElf, f: (v: DataView, b: Uint8Array) => void): Uint8Array {
  const b = img.bytes.slice();
  f(new DataView(b.buffer), b);
  return b;
}

function throwsElf(fn: () => unknown, message: string | RegExp, upstream?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ElfError, `expected ElfError, got ${String(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    if (upstream !== undefined) assert.equal(e.upstream, upstream);
    assert.ok(!e.message.includes("\n"), "one-line message");
    return true;
  });
}

const netblk = (): BuiltElf => buildSolo5Elf(TEST_IMAGES["netblk.hvt"]);

describe("readSolo5Info on built images", () => {
  it("parses each named test image to exactly its ABI and devices", () => {
    for (const [name, opts] of Object.entries(TEST_IMAGES)) {
      const info = readSolo5Info(buildSolo5Elf(opts).bytes);
      assert.deepEqual(info.devices, opts.devices ?? [], name);
      assert.equal(info.abi.target, opts.target, name);
    }
    assert.deepEqual(readSolo5Info(netblk().bytes), {
      abi: { target: "hvt", version: 2 },
      devices: [
        { name: "service", type: "net" },
        { name: "storage", type: "block" },
      ],
    });
  });

  it("reports every target and the ABI version", () => {
    for (const target of ["hvt", "spt", "virtio", "muen", "genode", "xen"] as const) {
      assert.deepEqual(readSolo5Abi(buildSolo5Elf({ target, abiVersion: 7 }).bytes), { target, version: 7 });
    }
    // the u32 field is read as a signed int32, like upstream's Int32.to_int
    assert.equal(readSolo5Abi(buildSolo5Elf({ abiVersion: 0xffffffff }).bytes).version, -1);
  });

  it("accepts the maximum of 64 entries and 67-character names", () => {
    const devices: Solo5Device[] = Array.from({ length: 63 }, (_, i) => ({
      name: i === 0 ? "n".repeat(67) : `dev${i}`,
      type: i % 2 === 0 ? "net" : "block",
    }));
    assert.deepEqual(readSolo5Manifest(buildSolo5Elf({ devices }).bytes), devices);
  });

  it("keeps manifest order and duplicate names as they are", () => {
    const devices: Solo5Device[] = [
      { name: "b", type: "block" },
      { name: "a", type: "net" },
      { name: "a", type: "block" },
    ];
    assert.deepEqual(readSolo5Manifest(buildSolo5Elf({ devices }).bytes), devices);
  });
});

describe("readSolo5Info on malformed images", () => {
  it("rejects non-ELF input", () => {
    throwsElf(() => readSolo5Info(new Uint8Array(0)), "not an ELF file", UPSTREAM_ELF_ERROR);
    throwsElf(() => readSolo5Info(Uint8Array.of(0x7f, 0x45, 0x4c)), "not an ELF file");
    throwsElf(() => readSolo5Info(new TextEncoder().encode("#!/bin/sh\necho hello\n")), "not an ELF file");
  });

  it("rejects every truncation of a valid image", () => {
    const img = netblk();
    // only the first 40 bytes of a section header are read (like upstream), so
    // cutting the tail of the last one is harmless
    const needed = img.layout.shoff + (img.layout.shnum - 1) * 64 + 40;
    const full = readSolo5Info(img.bytes);
    for (let len = 0; len < img.bytes.length; len++) {
      if (len < needed) assert.throws(() => readSolo5Info(img.bytes.subarray(0, len)), ElfError, `length ${len}`);
      else assert.deepEqual(readSolo5Info(img.bytes.subarray(0, len)), full);
    }
  });

  it("rejects 32-bit, big-endian, bad data encoding and non-zero identification padding", () => {
    const img = netblk();
    throwsElf(() => readSolo5Info(patch(img, (_v, b) => (b[4] = 1))), "only 64-bit ELF is supported", UPSTREAM_ELF_ERROR);
    throwsElf(() => readSolo5Info(patch(img, (_v, b) => (b[5] = 2))), "big-endian ELF is not supported");
    throwsElf(() => readSolo5Info(patch(img, (_v, b) => (b[5] = 0))), /data encoding/);
    throwsElf(() => readSolo5Info(patch(img, (_v, b) => (b[12] = 1))), /padding/);
  });

  it("rejects section header tables outside the file", () => {
    const img = netblk();
    throwsElf(() => readSolo5Info(patch(img, (v) => v.setBigUint64(0x28, BigInt(img.bytes.length), true))), /out of bounds/);
    throwsElf(() => readSolo5Info(patch(img, (v) => v.setBigUint64(0x28, 0xffffffffffffff00n, true))), /too large/);
    throwsElf(() => readSolo5Info(patch(img, (v) => v.setUint16(0x3c, img.layout.shnum + 1, true))), /out of bounds/);
  });

  it("rejects a bad e_shstrndx (also with zero sections)", () => {
    const img = netblk();
    throwsElf(() => readSolo5Info(patch(img, (v) => v.setUint16(0x3e, img.layout.shnum, true))), /e_shstrndx/, UPSTREAM_ELF_ERROR);
    throwsElf(() => readSolo5Info(patch(img, (v) => v.setUint16(0x3c, 0, true))), /e_shstrndx/);
  });

  it("rejects when any section name falls outside the string table", () => {
    const img = netblk();
    const textHeader = img.layout.shoff + 64; // section 1 (.text)
    throwsElf(() => readSolo5Info(patch(img, (v) => v.setUint32(textHeader, 0x1000, true))), "section name out of bounds");
    // a string table without any NUL
    const strHeader = img.layout.shoff + img.layout.shstrndx * 64;
    throwsElf(
      () =>
        readSolo5Info(
          patch(img, (v, b) => {
            const off = Number(v.getBigUint64(strHeader + 24, true));
            const size = Number(v.getBigUint64(strHeader + 32, true));
            b.fill(0x41, off, off + size);
          }),
        ),
      "section name out of bounds",
    );
  });

  it("treats a wrong note owner, type or name size as a missing manifest", () => {
    const img = netblk();
    const m = img.layout.manifestOffset;
    throwsElf(() => readSolo5Manifest(patch(img, (_v, b) => (b[m + 16] = 0x36))), "manifest not found", "manifest not found");
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setUint32(m + 8, 0x31494241, true))), "manifest not found");
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setUint32(m, 5, true))), "manifest not found");
    const a = img.layout.abiOffset;
    throwsElf(() => readSolo5Abi(patch(img, (_v, b) => (b[a + 12] = 0x73))), "manifest not found");
    // the section name must match exactly
    throwsElf(() => readSolo5Manifest(patch(img, (_v, b) => (b[img.layout.shstrtabOffset + 1 + ".text\0".length + 5] = 0x78))), "manifest not found");
  });

  it("reports missing sections as manifest not found (ABI too, as upstream)", () => {
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ omitManifest: true }).bytes), "manifest not found");
    throwsElf(() => readSolo5Info(buildSolo5Elf({ omitManifest: true }).bytes), "manifest not found");
    throwsElf(() => readSolo5Abi(buildSolo5Elf({ omitAbi: true }).bytes), "manifest not found");
    assert.deepEqual(readSolo5Manifest(buildSolo5Elf({ omitAbi: true, devices: [{ name: "x", type: "net" }] }).bytes), [{ name: "x", type: "net" }]);
  });

  it("rejects note sections smaller than a note header and descriptors past the end", () => {
    const img = netblk();
    const mh = img.layout.shoff + img.layout.manifestIndex * 64;
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setBigUint64(mh + 32, 11n, true))), /too small/, UPSTREAM_ELF_ERROR);
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setUint32(img.layout.manifestOffset + 4, 0xfffffff0, true))), /out of bounds/);
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setBigUint64(mh + 24, BigInt(img.bytes.length - 4), true))), /out of bounds/);
  });

  it("checks the manifest header like upstream", () => {
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ manifestVersion: 2 }).bytes), "unsupported manifest version");
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ entriesField: 0 }).bytes), "zero manifest entries");
    const devices: Solo5Device[] = Array.from({ length: 64 }, (_, i) => ({ name: `d${i}`, type: "net" }));
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ devices }).bytes), "too many manifest entries");
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ entriesField: 65 }).bytes), "too many manifest entries");
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ entriesField: 0x80000000 }).bytes), "too many manifest entries");
    throwsElf(() => readSolo5Manifest(buildSolo5Elf({ devices: [{ name: "a", type: "net" }], entriesField: 3 }).bytes), "unexpected note size");
    // descsz one record short / too small for even one record
    const img = netblk();
    const dsz = img.layout.manifestOffset + 4;
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setUint32(dsz, v.getUint32(dsz, true) - 104, true))), "unexpected note size");
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setUint32(dsz, v.getUint32(dsz, true) - 1, true))), "unexpected note size");
    throwsElf(() => readSolo5Manifest(patch(img, (v) => v.setUint32(dsz, 115, true))), "manifest too small");
  });

  it("checks manifest entries like upstream", () => {
    const dev = { name: "service", type: 2 };
    const first = { name: "", type: RESERVED };
    const m = (rawEntries: NonNullable<ElfBuildOptions["rawEntries"]>): Uint8Array => buildSolo5Elf({ rawEntries }).bytes;
    throwsElf(() => readSolo5Manifest(m([dev])), "expected RESERVED_FIRST");
    throwsElf(() => readSolo5Manifest(m([{ name: "x", type: RESERVED }])), "expected RESERVED_FIRST");
    throwsElf(() => readSolo5Manifest(m([{ ...first, attached: 1 }])), "expected RESERVED_FIRST");
    throwsElf(() => readSolo5Manifest(m([first, dev, first])), "found RESERVED_FIRST not as first entry");
    throwsElf(() => readSolo5Manifest(m([first, { name: "a", type: 3 }])), "unknown manifest entry type: 3");
    throwsElf(() => readSolo5Manifest(m([first, { name: "a", type: 0x80000000 }])), "unknown manifest entry type: -2147483648");
    throwsElf(() => readSolo5Manifest(m([first, { ...dev, attached: 1 }])), "non-zero mft_entry.attached");
    throwsElf(() => readSolo5Manifest(m([first, { name: "x".repeat(68), type: 2 }])), "unterminated device name");
    const img = buildSolo5Elf({ rawEntries: [first, dev] });
    const e1 = img.layout.manifestDescOffset + 12 + 104;
    throwsElf(() => readSolo5Manifest(patch(img, (_v, b) => (b[e1 + 72] = 1))), "non-zero mft_entry.u");
    throwsElf(() => readSolo5Manifest(patch(img, (_v, b) => (b[e1 + 95] = 1))), "non-zero mft_entry.b");
    // bytes after the `attached` flag are padding and ignored, as upstream
    assert.deepEqual(readSolo5Manifest(patch(img, (_v, b) => (b[e1 + 100] = 1))), [{ name: "service", type: "net" }]);
    // garbage after the NUL of a name is ignored
    assert.deepEqual(readSolo5Manifest(patch(img, (_v, b) => (b[e1 + 40] = 0x41))), [{ name: "service", type: "net" }]);
    // "non-zero RESERVED_FIRST": a reserved entry with garbage after its NUL
    const img0 = buildSolo5Elf({ rawEntries: [first] });
    throwsElf(() => readSolo5Manifest(patch(img0, (_v, b) => (b[img0.layout.manifestDescOffset + 12 + 10] = 1))), "expected RESERVED_FIRST");
  });

  it("checks the ABI note like upstream", () => {
    const img = netblk();
    const d = img.layout.abiDescOffset;
    throwsElf(() => readSolo5Abi(patch(img, (v) => v.setUint32(d, 7, true))), "unknown abi target: 7");
    throwsElf(() => readSolo5Abi(patch(img, (v) => v.setUint32(d, 0, true))), "unknown abi target: 0");
    throwsElf(() => readSolo5Abi(patch(img, (v) => v.setUint32(d + 8, 1, true))), "non-zero reserved0");
    throwsElf(() => readSolo5Abi(patch(img, (v) => v.setUint32(d + 12, 1, true))), "non-zero reserved1");
    throwsElf(() => readSolo5Abi(patch(img, (v) => v.setUint32(img.layout.abiOffset + 4, 12, true))), "abi manifest size mismatch");
  });

  it("handles 65535 overlapping section headers", () => {
    const img = netblk();
    // e_shentsize 0 and e_shoff at the .shstrtab header: 65535 copies of a section
    // whose name resolves but is not wanted
    const b = patch(img, (v) => {
      v.setBigUint64(0x28, BigInt(img.layout.shoff + img.layout.shstrndx * 64), true);
      v.setUint16(0x3a, 0, true);
      v.setUint16(0x3c, 0xffff, true);
      v.setUint16(0x3e, 0, true);
    });
    throwsElf(() => readSolo5Info(b), "manifest not found");
  });
});

describe("mutation fuzz", () => {
  const base = netblk().bytes;
  it("yields a value or an ElfError for mutated images (seeded)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ pos: fc.nat({ max: base.length - 1 }), val: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
        fc.option(fc.nat({ max: base.length }), { nil: undefined }),
        (muts, cut) => {
          const b = base.slice(0, cut ?? base.length);
          for (const { pos, val } of muts) if (pos < b.length) b[pos] = val;
          try {
            const info = readSolo5Info(b);
            assert.ok(Array.isArray(info.devices));
          } catch (e) {
            if (!(e instanceof ElfError)) throw e;
          }
        },
      ),
      { seed: 0x5010_5, numRuns: 4000 },
    );
  });

  it("yields a value or an ElfError for structured field mutations (seeded)", () => {
    const img = netblk();
    // offsets of all header and note fields, mutated with interesting 32-bit values
    const fields = [0x28, 0x2c, 0x3a, 0x3c, 0x3e, img.layout.manifestOffset, img.layout.manifestOffset + 4, img.layout.abiOffset + 4];
    for (let i = 0; i < img.layout.shnum; i++) for (const f of [0, 24, 28, 32, 36]) fields.push(img.layout.shoff + i * 64 + f);
    for (let k = 0; k < 12; k += 4) fields.push(img.layout.manifestDescOffset + k);
    fc.assert(
      fc.property(
        fc.constantFrom(...fields),
        fc.constantFrom(0, 1, 2, 11, 12, 64, 104, 0x7fffffff, 0x80000000, 0xffffffff, base.length, base.length - 1),
        (off, val) => {
          const b = base.slice();
          new DataView(b.buffer).setUint32(off, val, true);
          try {
            readSolo5Info(b);
          } catch (e) {
            if (!(e instanceof ElfError)) throw e;
          }
        },
      ),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe("checkManifest", () => {
  const devices: Solo5Device[] = [
    { name: "storage", type: "block" },
    { name: "service", type: "net" },
  ];
  it("accepts equal sets, in any order and with duplicates", () => {
    assert.equal(checkManifest(devices, ["storage"], ["service"]), null);
    assert.equal(checkManifest(devices, ["storage", "storage"], ["service"]), null);
    assert.equal(checkManifest([], [], []), null);
    const two: Solo5Device[] = [
      { name: "a", type: "net" },
      { name: "b", type: "net" },
    ];
    assert.equal(checkManifest(two, [], ["b", "a"]), null);
  });
  it("gives the exact upstream texts, block devices checked first", () => {
    assert.equal(
      checkManifest(devices, [], ["service"]),
      'specified block device(s) does not match with manifest. Devices present in manifest: block "storage", net "service"',
    );
    assert.equal(
      checkManifest(devices, ["storage"], ["other"]),
      'specified bridge(s) does not match with the manifest. Devices present in manifest: block "storage", net "service"',
    );
    assert.equal(
      checkManifest(devices, ["x"], []),
      'specified block device(s) does not match with manifest. Devices present in manifest: block "storage", net "service"',
    );
    assert.equal(checkManifest([], [], ["service"]), "specified bridge(s) does not match with the manifest. Devices present in manifest: ");
    // a net name does not satisfy a block device of the same name
    assert.match(checkManifest([{ name: "x", type: "net" }], ["x"], ["x"]) ?? "", /^specified block device/);
  });
  it("renders names with OCaml's %S escaping", () => {
    assert.equal(ocamlQuoted("a\"b\\c\n\t\r\b\x01\x7f é'"), '"a\\"b\\\\c\\n\\t\\r\\b\\001\\127 \\195\\169\'"');
    assert.equal(renderManifestEntries([{ name: 'q"', type: "net" }]), 'net "q\\""');
  });
});

describe("reading piecewise (an image that is never held whole)", () => {
  /** `image` followed by zeros up to `length`, recording every read */
  const source = (image: Uint8Array, length = image.length): ImageSource & { reads: { off: number; len: number }[] } => {
    const reads: { off: number; len: number }[] = [];
    return {
      length,
      reads,
      read: async (off, len) => {
        reads.push({ off, len });
        const out = new Uint8Array(len);
        if (off < image.length) out.set(image.subarray(off, Math.min(off + len, image.length)));
        return out;
      },
    };
  };
  const outcome = async <T>(f: () => Promise<T> | T): Promise<unknown> => {
    try {
      return { value: await f() };
    } catch (e) {
      if (!(e instanceof ElfError)) throw e;
      return { error: e.message, upstream: e.upstream };
    }
  };

  it("a 1 GiB image (a real one followed by zeros): the same notes, a few small reads", async () => {
    const img = netblk().bytes;
    const src = source(img, 1 << 30);
    assert.deepEqual(await readSolo5AbiFrom(src), readSolo5Abi(img));
    assert.deepEqual(await readSolo5ManifestFrom(src), readSolo5Manifest(img));
    const total = src.reads.reduce((a, r) => a + r.len, 0);
    assert.ok(total < 16 * 1024, `read ${total} bytes`);
  });

  it("a string table without a NUL over 8 MiB is scanned in bounded reads", async () => {
    const img = netblk();
    // the section-name table runs to the end of a 8 MiB image of 0xff bytes
    const big = new Uint8Array(8 << 20).fill(0xff);
    big.set(img.bytes);
    const v = new DataView(big.buffer);
    const sh = img.layout.shoff + img.layout.shstrndx * 64;
    const strOff = Number(v.getBigUint64(sh + 24, true));
    v.setBigUint64(sh + 32, BigInt(big.length - strOff), true);
    // the name of section 1 starts in the 0xff bytes behind the real image: no NUL ends it
    v.setUint32(img.layout.shoff + 64, img.bytes.length - strOff, true);
    const src = source(big);
    await assert.rejects(readSolo5AbiFrom(src), (e: unknown) => e instanceof ElfError && e.message === "section name out of bounds");
    assert.ok(src.reads.every((r) => r.len <= READ_MAX));
    throwsElf(() => readSolo5Abi(big), "section name out of bounds");
  });

  it("gives the same value or error as the in-memory parse on mutated images (seeded)", async () => {
    const base = netblk().bytes;
    const rnd = fc.sample(
      fc.tuple(
        fc.array(fc.record({ pos: fc.nat({ max: base.length - 1 }), val: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
        fc.nat({ max: base.length }),
      ),
      { seed: 7, numRuns: 1500 },
    );
    for (const [muts, cut] of rnd) {
      const b = base.slice(0, cut);
      for (const { pos, val } of muts) if (pos < b.length) b[pos] = val;
      assert.deepEqual(await outcome(() => readSolo5AbiFrom(source(b))), await outcome(() => readSolo5Abi(b)));
      assert.deepEqual(await outcome(() => readSolo5ManifestFrom(source(b))), await outcome(() => readSolo5Manifest(b)));
    }
  });
});
