#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm run build).
// Node's on-disk compile cache (Node >= 22.1; NODE_DISABLE_COMPILE_CACHE=1 turns it off)
// spares each start compiling the CLI's modules again.
import module from "node:module";
try {
  module.enableCompileCache?.();
} catch {
  // no cache: slower, not wrong
}
await import("../dist/src/cli/main.js");
