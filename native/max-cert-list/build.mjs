#!/usr/bin/env node
// Builds the max-cert-list addon for the Node.js running this script (`npm ci` runs it as the
// package's install script; `node native/max-cert-list/build.mjs` builds it for another Node).
//
// Output: native/max-cert-list/build-abi<process.versions.modules>/max_cert_list.node, so builds
// for several Node majors live side by side. The headers are the running Node's own (the
// directory above its bin/, which must hold include/node — npm's `nodedir` setting is used
// when it does); nothing is downloaded. node-gyp is npm's: $npm_config_node_gyp inside npm
// scripts, else `node-gyp` on PATH, else the copy bundled with an npm installed next to this
// Node. A failed build never fails the install: it prints one warning, and the endpoint then
// runs without the addon (src/endpoint/addon.ts says what that means).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const abi = process.versions.modules;
const outDir = join(here, `build-abi${abi}`);
const quiet = process.argv.includes("--quiet");

/** The Node installation whose headers match the running binary. */
function nodeDir() {
  const candidates = [dirname(dirname(process.execPath))];
  // npm's `nodedir` (e.g. /usr for a distribution's Node) only when it is this Node's prefix
  const configured = process.env.npm_config_nodedir;
  if (configured && configured === candidates[0]) candidates.unshift(configured);
  for (const d of candidates) if (existsSync(join(d, "include", "node", "node.h"))) return d;
  return null;
}

/** [command, ...args] running node-gyp under this Node, or null. */
function nodeGyp() {
  const env = process.env.npm_config_node_gyp;
  if (env && existsSync(env)) return [process.execPath, env];
  for (const p of (process.env.PATH ?? "").split(delimiter)) {
    if (p && existsSync(join(p, "node-gyp"))) return [join(p, "node-gyp")];
  }
  const bundled = join(dirname(dirname(process.execPath)), "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
  if (existsSync(bundled)) return [process.execPath, bundled];
  return null;
}

function warn(why) {
  process.stderr.write(
    `dromedary: warning: native addon max-cert-list not built for Node ${process.version} (${why}); ` +
      "`dromedary endpoint` will refuse client certificate chains over 100 KiB (see native/max-cert-list/README.md)\n",
  );
}

function main() {
  const dir = nodeDir();
  if (!dir) return warn(`no Node headers in ${join(dirname(dirname(process.execPath)), "include", "node")}`);
  const gyp = nodeGyp();
  if (!gyp) return warn("node-gyp not found");
  // Build in a scratch copy: node-gyp's intermediate build/ never lands in the repository, and
  // builds for different Node versions do not share one.
  const work = mkdtempSync(join(tmpdir(), "dromedary-addon-"));
  try {
    for (const f of ["binding.gyp", "max_cert_list.cc"]) copyFileSync(join(here, f), join(work, f));
    const [cmd, ...pre] = gyp;
    const r = spawnSync(cmd, [...pre, "rebuild", `--nodedir=${dir}`, ...(quiet ? ["--silent"] : [])], {
      cwd: work,
      encoding: "utf8",
      // node-gyp must not try the network for headers, whatever the environment says
      env: { ...process.env, npm_config_nodedir: dir },
    });
    const built = join(work, "build", "Release", "max_cert_list.node");
    if (r.error || r.status !== 0 || !existsSync(built)) {
      // the compiler's own error, else node-gyp's reason (`gyp ERR! stack Error: ...`)
      const lines = `${r.stderr ?? ""}\n${r.stdout ?? ""}`.split("\n").map((l) => l.trim());
      const tail = lines.find((l) => /\berror:/.test(l)) ?? lines.find((l) => /^gyp ERR! stack Error:/.test(l))?.replace(/^gyp ERR! stack /, "");
      return warn(r.error ? r.error.message : `node-gyp exited ${r.status}${tail ? `: ${tail.trim()}` : ""}`);
    }
    mkdirSync(outDir, { recursive: true });
    copyFileSync(built, join(outDir, "max_cert_list.node"));
    if (!quiet) process.stdout.write(`built ${join(outDir, "max_cert_list.node")} (Node ${process.version}, headers from ${dir})\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  main();
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}
