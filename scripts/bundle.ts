// `npm run build`, after tsc: bundles the command line's fast path (src/cli/fast.ts: --version
// and the command subcommands) into one CommonJS file, dist/cli/fast.cjs, which
// bin/dromedary.cjs loads (issue 13, start-up time). Measured on Node 20: most of `dromedary
// info`'s start was Node's ES module loader resolving, reading and linking some thirty modules
// one by one; one CommonJS file, loaded synchronously, takes a fraction of that. (An ES module
// bundle with code splitting still came to 15 files, and Node reads an ES module importing
// CommonJS through a slow path.)
//
// esbuild (pinned in package.json) bundles; what is ours is the choice of what goes in:
// - the tsc output (dist/src) is the input, so the bundle runs the code the tests run;
// - what the fast path imports lazily (the remote client, CSRs, uploads, zlib) stays lazy:
//   esbuild runs a bundled module's body on its first import, and a CommonJS bundle requires
//   an external package only then;
// - commander is bundled; the other npm packages (@peculiar/x509 and its dependencies,
//   reflect-metadata) stay in node_modules, loaded only by the commands that need them;
// - commander requires node:child_process at start-up, for executable subcommands, which
//   Dromedary does not have: the bundle gives it a stand-in that loads child_process on first
//   use, which spares every command loading child_process, dgram and their internals.
// Modules that find files next to themselves (import.meta.url) would find the wrong ones in a
// bundle, and CommonJS has no import.meta: the build fails if one gets in.
import { build, type Plugin } from "esbuild";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const OUT = join(ROOT, "dist/cli");
const PACKAGE = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };

/** Modules that locate files relative to themselves: never in the bundle. */
function checkNoSelfLocating(inputs: string[]): void {
  const bad = inputs.filter((f) => f.startsWith("dist/src/") && readFileSync(join(ROOT, f), "utf8").includes("import.meta"));
  if (bad.length > 0) throw new Error(`the fast path must not bundle modules that use import.meta: ${bad.join(", ")}`);
}

/** node:child_process for commander only: loaded when first used (see above). */
const lazyChildProcess: Plugin = {
  name: "lazy-child-process",
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      args.importer.includes(join("node_modules", "commander")) ? { path: "child_process", namespace: "lazy" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "lazy" }, () => ({
      contents: 'let cp; const get = () => (cp ??= require("node:child_process")); module.exports = { spawn: (...a) => get().spawn(...a) };',
      loader: "js",
    }));
  },
};

rmSync(OUT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: ["dist/src/cli/fast.js"],
  outfile: join(OUT, "fast.cjs"),
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  // every npm package Dromedary depends on but commander stays in node_modules
  external: Object.keys(PACKAGE.dependencies).filter((p) => p !== "commander"),
  plugins: [lazyChildProcess],
  sourcemap: true,
  metafile: true,
  logLevel: "warning",
});
const inputs = Object.keys(result.metafile.inputs);
checkNoSelfLocating(inputs);
console.log(`bundled ${inputs.length} modules into ${relative(ROOT, OUT)}/fast.cjs`);
