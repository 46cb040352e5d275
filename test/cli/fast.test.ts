// The command line's fast path (fast.ts, bundled by scripts/bundle.ts, run by bin/dromedary.cjs):
// `dromedary info` against a daemon runs from the one bundle and loads neither the ES module
// program in dist/src, nor the certificate libraries, nor zlib, crypto or child_process; the
// commands outside the fast path still run (through main.ts); and the bundle is built from the
// current code. What a start costs is measured in bench/start.bench.ts, not here.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CLI, fakeDaemon, runCli, tempDir, type RunResult } from "../support/cli.js";
import { VERSION } from "../../src/cli/version.js";

let tmp: { dir: string; cleanup: () => void };
before(() => {
  tmp = tempDir("dromedary-fast-");
});
after(() => tmp.cleanup());

interface Loaded {
  /** CommonJS files and ES modules Node loaded (file paths) */
  readonly files: string[];
  /** Node's own modules (process.moduleLoadList) */
  readonly builtins: string[];
}

/** Run the installed command with a preload that writes what was loaded when it exits. */
async function runTraced(args: string[]): Promise<RunResult & { loaded: Loaded }> {
  const report = path.join(tmp.dir, `loaded-${Math.random().toString(36).slice(2)}.json`);
  const preload = path.join(tmp.dir, `trace-${Math.random().toString(36).slice(2)}.cjs`);
  // CommonJS files are in require.cache; ES modules are not, but any ES module load shows in
  // process.moduleLoadList as the ES module loader's translators.
  writeFileSync(
    preload,
    `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(report)}, JSON.stringify({ files: Object.keys(require.cache), builtins: process.moduleLoadList })));\n`,
  );
  const r = await runCli(args, { env: { NODE_OPTIONS: `--require ${preload}` } });
  return { ...r, loaded: JSON.parse(readFileSync(report, "utf8")) as Loaded };
}

describe("the fast path", () => {
  test("info against a daemon: the bundle only, no ES modules, no certificate libraries, no zlib, crypto or child_process", async () => {
    const sock = path.join(tmp.dir, "d.sock");
    const daemon = await fakeDaemon(sock, async (c) => {
      const req = await c.request();
      await c.send(req, { kind: "reply", reply: { kind: "unikernel-info", unikernels: [] } });
      await c.end();
    });
    try {
      const r = await runTraced(["info", "--socket", sock]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "host [unikernel: :]: no unikernels\n");
      const files = r.loaded.files.filter((f) => !f.startsWith(tmp.dir)).map((f) => path.relative(path.dirname(path.dirname(CLI)), f));
      assert.deepEqual(files.sort(), ["bin/dromedary.cjs", "dist/cli/fast.cjs"]);
      const builtins = r.loaded.builtins.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice("NativeModule ".length));
      for (const heavy of ["zlib", "crypto", "child_process", "internal/modules/esm/translators", "tls"]) {
        assert.ok(!builtins.includes(heavy), `${heavy} loaded`);
      }
      assert.ok(builtins.includes("net"), "the socket module");
    } finally {
      await daemon.close();
    }
  });

  test("--version from the bundle; a command outside it (generate --help) through main.ts", async () => {
    const v = await runTraced(["--version"]);
    assert.equal(v.stdout, `${VERSION}\n`);
    assert.ok(!v.loaded.builtins.includes("NativeModule internal/modules/esm/translators"), "no ES module was loaded");
    const g = await runTraced(["generate", "--help"]);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /^Usage: dromedary generate/);
    assert.ok(g.loaded.builtins.includes("NativeModule internal/modules/esm/translators"), "main.ts is an ES module");
  });

  test("the bundle is as new as the code it bundles (npm run build makes both)", () => {
    const root = path.dirname(path.dirname(CLI));
    const bundle = statSync(path.join(root, "dist/cli/fast.cjs")).mtimeMs;
    for (const m of ["fast.js", "client.js", "output.js"]) {
      assert.ok(statSync(path.join(root, "dist/src/cli", m)).mtimeMs <= bundle, `dist/src/cli/${m} is newer than the bundle: npm run build`);
    }
  });
});
