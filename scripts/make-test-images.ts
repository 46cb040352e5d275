// Writes the test ELF images (minimal x86_64 executables with real Solo5 ABI and
// manifest notes, see test/support/elf-builder.ts) into a directory:
//   node dist/scripts/make-test-images.js <dir>
// hello.hvt (no devices), hello.spt, net.hvt (net "service"), blk.hvt (block
// "storage"), netblk.hvt (both), hello.virtio (an unsupported target).

import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { buildSolo5Elf, TEST_IMAGES } from "../test/support/elf-builder.js";

export async function makeTestImages(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, opts] of Object.entries(TEST_IMAGES)) {
    const path = join(dir, name);
    await writeFile(path, buildSolo5Elf(opts).bytes, { mode: 0o644 });
    written.push(path);
  }
  return written;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === new URL(import.meta.url).pathname;
if (isMain) {
  const dir = process.argv[2];
  if (dir === undefined || process.argv.length > 3) {
    process.stderr.write("usage: make-test-images <dir>\n");
    process.exit(2);
  }
  makeTestImages(dir).then(
    (files) => {
      for (const f of files) process.stdout.write(`${f}\n`);
    },
    (e: unknown) => {
      process.stderr.write(`make-test-images: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
