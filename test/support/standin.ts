// The stand-in Solo5 tender (test/support/standin-tender.c): compiled once per source
// version into a cache directory under os.tmpdir(), and installable under the tender
// names albatross looks for. Test support only.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, chmod, constants, copyFile, mkdir, readFile, rename, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where the C source is: next to this module (ts sources) or in the repo (from dist/). */
async function sourcePath(): Promise<string> {
  const candidates = [new URL("./standin-tender.c", import.meta.url), new URL("../../../test/support/standin-tender.c", import.meta.url)].map((u) =>
    fileURLToPath(u),
  );
  for (const c of candidates) {
    try {
      await access(c, constants.R_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new Error(`stand-in tender source not found (looked for ${candidates.join(", ")})`);
}

function compile(cc: string, src: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cc, ["-O2", "-Wall", "-o", out, src], { encoding: "utf8" }, (error, _stdout, stderr) => {
      if (error === null) resolve();
      else reject(new Error(`compiling the stand-in tender failed: ${stderr.trim() || error.message}`));
    });
  });
}

let cached: Promise<string> | null = null;

/**
 * Path of the compiled stand-in tender binary. Compiles with `cc -O2` (or $CC) into
 * `<tmpdir>/dromedary-standin/<sha256 of source>/standin-tender` unless already there;
 * the compile goes to a temporary name and is renamed into place, so concurrent test
 * processes are safe.
 */
export function standinTender(): Promise<string> {
  cached ??= (async () => {
    const src = await sourcePath();
    const hash = createHash("sha256")
      .update(await readFile(src))
      .digest("hex")
      .slice(0, 16);
    const dir = join(tmpdir(), "dromedary-standin", hash);
    const bin = join(dir, "standin-tender");
    try {
      await access(bin, constants.X_OK);
      return bin;
    } catch {
      // build it
    }
    await mkdir(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.${Date.now()}`;
    try {
      await compile(process.env.CC ?? "cc", src, tmp);
      await rename(tmp, bin);
    } finally {
      await rm(tmp, { force: true });
    }
    return bin;
  })();
  cached.catch(() => {
    cached = null; // allow a retry after a failed compile
  });
  return cached;
}

/**
 * Install the stand-in in `dir` under each of `names` (default solo5-hvt and
 * solo5-spt; use e.g. `solo5-hvt.2` for the versioned lookup). The binary's behaviour
 * depends on the name it is invoked as (hvt vs spt), so it is copied (a symlink would
 * work as well, but a copy keeps `dir` self-contained if the cache is cleaned).
 * Returns the installed paths.
 */
export async function installStandin(dir: string, names: readonly string[] = ["solo5-hvt", "solo5-spt"], how: "copy" | "symlink" = "copy"): Promise<string[]> {
  const bin = await standinTender();
  await mkdir(dir, { recursive: true });
  const out: string[] = [];
  for (const name of names) {
    if (name.includes("/") || name === "" || name === "." || name === "..") throw new Error(`bad tender name ${JSON.stringify(name)}`);
    const path = join(dir, name);
    await rm(path, { force: true });
    if (how === "symlink") {
      await symlink(bin, path);
    } else {
      await copyFile(bin, path);
      await chmod(path, 0o755);
    }
    out.push(path);
  }
  return out;
}

/** Like installStandin, but as symlinks to the cached binary. */
export const linkStandin = (dir: string, names?: readonly string[]): Promise<string[]> => installStandin(dir, names, "symlink");
