// The image file of a create (src/hostd/image.ts): inflated as a stream, bounded, hashed on
// the way, zeros left as holes; the ELF notes read back from the file.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { DEFAULT_MAX_IMAGE_SIZE, FileImage, formatLimit, readImageNotes, SMALL_IMAGE, writeImage, writtenImageNotes } from "../../src/hostd/image.js";
import { readSolo5Manifest } from "../../src/solo5/elf.js";
import { buildSolo5Elf } from "../support/elf-builder.js";

const NET = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;
const MiB = 1 << 20;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dromedary-image-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

describe("writeImage", () => {
  it("a compressed image: inflated into the file, its digest, its notes", async () => {
    const p = join(dir, ":a.img");
    const w = await writeImage(p, { compressed: true, image: deflateSync(NET) }, DEFAULT_MAX_IMAGE_SIZE);
    assert.deepEqual(w, { ok: true, value: { digest: sha(NET), size: NET.length, small: NET } });
    assert.deepEqual(new Uint8Array(await readFile(p)), NET);
    const notes = await readImageNotes(p);
    assert.deepEqual(notes.abi, { ok: true, value: { target: "hvt", version: 2 } });
    assert.deepEqual(notes.manifest, { ok: true, value: readSolo5Manifest(NET) });
  });

  it("a plain image is written as is; a file already there is replaced", async () => {
    const p = join(dir, ":b.img");
    await writeFile(p, Buffer.alloc(3 * MiB, 1));
    assert.deepEqual(await writeImage(p, { compressed: false, image: NET }, DEFAULT_MAX_IMAGE_SIZE), {
      ok: true,
      value: { digest: sha(NET), size: NET.length, small: NET },
    });
    assert.deepEqual(new Uint8Array(await readFile(p)), NET);
  });

  it("runs of zeros become holes: a 64 MiB image of mostly zeros takes little disk, reads back whole", async () => {
    const p = join(dir, ":z.img");
    const big = new Uint8Array(64 * MiB);
    big.set(NET);
    big.set(Uint8Array.of(1, 2, 3), 40 * MiB);
    const w = await writeImage(p, { compressed: true, image: deflateSync(big) }, DEFAULT_MAX_IMAGE_SIZE);
    assert.ok(w.ok);
    if (w.ok) assert.deepEqual(w.value.digest, sha(big));
    const st = await stat(p);
    assert.equal(st.size, big.length);
    assert.ok(st.blocks * 512 < 4 * MiB, `${st.blocks} blocks`);
    assert.ok(Buffer.from(big).equals(await readFile(p)));
    assert.equal((await readImageNotes(p)).abi.ok, true);
  });

  it("a decompression bomb stops at the limit, which the reply names; nothing is left", async () => {
    const p = join(dir, ":bomb.img");
    const bomb = deflateSync(Buffer.alloc(256 * MiB), { level: 9 });
    assert.ok(bomb.length < 300 * 1024);
    assert.deepEqual(await writeImage(p, { compressed: true, image: bomb }, 16 * MiB), {
      ok: false,
      error: "failed to uncompress: image exceeds the limit of 16 MiB",
    });
    assert.deepEqual(await writeImage(p, { compressed: false, image: new Uint8Array(16 * MiB + 1) }, 16 * MiB), {
      ok: false,
      error: "image exceeds the limit of 16 MiB",
    });
    // exactly at the limit is fine
    assert.equal((await writeImage(p, { compressed: true, image: deflateSync(Buffer.alloc(16 * MiB)) }, 16 * MiB)).ok, true);
    await rm(p);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.startsWith(":bomb")),
      [],
    );
  });

  it("invalid and truncated zlib data: failed to uncompress, nothing left", async () => {
    const p = join(dir, ":bad.img");
    const bad = await writeImage(p, { compressed: true, image: Uint8Array.of(1, 2, 3) }, DEFAULT_MAX_IMAGE_SIZE);
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.match(bad.error, /^failed to uncompress: invalid zlib data: /);
    const z = deflateSync(NET);
    const cut = await writeImage(p, { compressed: true, image: z.subarray(0, z.length - 10) }, DEFAULT_MAX_IMAGE_SIZE);
    assert.equal(cut.ok, false);
    if (!cut.ok) assert.match(cut.error, /^failed to uncompress: invalid zlib data: unexpected end of file/);
    assert.equal(
      await stat(p).then(
        () => true,
        () => false,
      ),
      false,
    );
  });

  it("a write error names the file and the errno", async () => {
    const p = join(dir, "missing", ":x.img");
    assert.deepEqual(await writeImage(p, { compressed: false, image: NET }, DEFAULT_MAX_IMAGE_SIZE), { ok: false, error: `error writing image ${p}: ENOENT` });
  });

  it("small images (up to 1 MiB inflated) are handled in memory, larger ones as a stream: the same file, digest and notes", async () => {
    for (const extra of [1000, SMALL_IMAGE, 3 * MiB]) {
      const img = new Uint8Array(NET.length + extra);
      img.set(NET);
      img.set(randomBytes(extra), NET.length);
      for (const compressed of [false, true]) {
        const p = join(dir, `:s${extra}${compressed}.img`);
        const w = await writeImage(p, { compressed, image: compressed ? deflateSync(img) : img }, DEFAULT_MAX_IMAGE_SIZE);
        assert.ok(w.ok);
        if (!w.ok) continue;
        assert.equal(w.value.small !== undefined, img.length <= SMALL_IMAGE, `${extra} ${compressed}`);
        assert.deepEqual(w.value.digest, sha(img));
        assert.ok(Buffer.from(img).equals(await readFile(p)));
        assert.deepEqual(await writtenImageNotes(w.value, p), await readImageNotes(p));
        assert.deepEqual((await readImageNotes(p)).manifest, { ok: true, value: readSolo5Manifest(NET) });
      }
    }
    // a limit below the small size holds on the small path too
    const half = new Uint8Array(600_000);
    half.set(NET);
    assert.deepEqual(await writeImage(join(dir, ":h.img"), { compressed: true, image: deflateSync(half) }, 500_000), {
      ok: false,
      error: "failed to uncompress: image exceeds the limit of 500000 bytes",
    });
  });

  it("limits are shown in MiB when whole", () => {
    assert.equal(formatLimit(256 * MiB), "256 MiB");
    assert.equal(formatLimit(5000), "5000 bytes");
  });
});

describe("readImageNotes", () => {
  it("upstream's texts for images without notes; a missing file", async () => {
    const p = join(dir, "noelf.img");
    await writeFile(p, "not an ELF file at all");
    const n = await readImageNotes(p);
    assert.deepEqual(n.abi, { ok: false, error: "error during ELF parsing" });
    const noAbi = join(dir, "noabi.img");
    await writeFile(noAbi, buildSolo5Elf({ target: "hvt", omitAbi: true }).bytes);
    assert.deepEqual((await readImageNotes(noAbi)).abi, { ok: false, error: "manifest not found" });
    const gone = await readImageNotes(join(dir, "gone.img"));
    assert.deepEqual(gone.abi, { ok: false, error: `error reading image ${join(dir, "gone.img")}: ENOENT` });
  });

  it("reads the file in cached pages", async () => {
    const p = join(dir, "pages.img");
    const data = new Uint8Array(300_000).map((_, i) => i & 0xff);
    await writeFile(p, data);
    const f = await FileImage.open(p);
    try {
      assert.equal(f.length, data.length);
      assert.deepEqual(await f.read(65_530, 20), data.subarray(65_530, 65_550));
      assert.deepEqual(await f.read(299_990, 10), data.subarray(299_990));
      await assert.rejects(f.read(299_995, 10));
    } finally {
      await f.close();
    }
  });
});
