#!/usr/bin/env node
// The `dromedary` command. `npm run build` compiles the command line into dist/: its fast path
// (--version and the command subcommands: info, create, console, stats, ...) as one CommonJS
// bundle, dist/cli/fast.cjs (scripts/bundle.ts), everything else as ES modules in dist/src/.
// This file is CommonJS too: on Node 20, loading one CommonJS file takes a fraction of the
// time Node's ES module loader takes for the same code (issue 13, start-up time).
"use strict";
const module_ = require("node:module");
try {
  // Node's on-disk compile cache (Node >= 22.1; NODE_DISABLE_COMPILE_CACHE=1 turns it off)
  module_.enableCompileCache?.();
} catch {
  // no cache: slower, not wrong
}
let runFast;
try {
  ({ runFast } = require("../dist/cli/fast.cjs"));
} catch (e) {
  if (e?.code !== "MODULE_NOT_FOUND" || !String(e.message).includes("fast.cjs")) throw e;
  process.stderr.write("dromedary: the compiled command line (dist/) is missing: run `npm run build` in the checkout\n");
  process.exit(125);
}
runFast(process.argv).then((done) => (done ? undefined : import("../dist/src/cli/main.js")));
