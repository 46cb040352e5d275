// The npm package as an operator gets it: `npm pack` ships the built code, bin/, the systemd
// templates, the native addon's sources, README and LICENSE and nothing else; the tarball,
// installed globally into a temporary prefix (`npm install -g --prefix`, dependencies from
// npm's cache), gives a `dromedary` on PATH that works from any directory: --help, the CA
// walkthrough of the README, and `--help` of every top-level command the program registers.
//
// The tarball is packed from this checkout's dist/ with --ignore-scripts (`npm test` has just
// built it; "prepack" rebuilds for a real `npm pack`, checked below by name only).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { buildProgram } from "../../src/cli/program.js";
import { buildSolo5Elf } from "../support/elf-builder.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  return new Promise((resolveRun, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/** Environment for npm run inside `npm test`: none of the outer npm's lifecycle settings. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/** Files a packed tarball may hold (paths relative to the package root). */
const ALLOWED: readonly RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^man\/dromedary\.1$/,
  /^bin\/dromedary\.cjs$/,
  // the fast path's bundle (scripts/bundle.ts)
  /^dist\/cli\/fast\.cjs(\.map)?$/,
  /^dist\/src\/.+\.js(\.map)?$/,
  /^packaging\/systemd\/dromedary(-[a-z]+\.(service|socket)|\.sysusers)$/,
  /^packaging\/grafana\/dromedary\.json$/,
  // the native addon's sources (built on install), never its build outputs
  /^native\/[a-z0-9-]+\/(binding\.gyp|[^/]+\.(cc|h|mjs)|README\.md)$/,
];

let work: string;
let tarball: string;
let files: string[];
before(async () => {
  work = mkdtempSync(join(tmpdir(), "dromedary-package-"));
  const r = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: ROOT, env: cleanEnv() });
  assert.equal(r.code, 0, `npm pack failed:\n${r.stderr}`);
  const info = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, info[0]!.filename);
  files = info[0]!.files.map((f) => f.path).sort();
});
after(() => rmSync(work, { recursive: true, force: true }));

describe("npm pack", () => {
  test("ships only the built code, bin/, the systemd templates, the Grafana dashboard, the addon's sources, README and LICENSE", () => {
    const stray = files.filter((f) => !ALLOWED.some((re) => re.test(f)));
    assert.deepEqual(stray, [], `files that do not belong in the package: ${stray.join(", ")}`);
    for (const f of [
      "package.json",
      "README.md",
      "LICENSE",
      "bin/dromedary.cjs",
      "dist/cli/fast.cjs",
      "dist/src/cli/main.js",
      "packaging/systemd/dromedary-hostd.service",
      "packaging/grafana/dromedary.json",
      "man/dromedary.1",
    ]) {
      assert.ok(files.includes(f), `${f} missing from the package`);
    }
    // the 13 private keys of fixtures/, the tests and the TypeScript sources stay at home
    assert.equal(files.filter((f) => /\.(key|pem|ts|tgz|node)$|^(test|fixtures|bench|scripts|src|\.ci)\//.test(f)).length, 0);
  });

  test("every source module is in it, compiled, and nothing compiled from a source that is gone", () => {
    const sources = walk(join(ROOT, "src"))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `dist/${relative(ROOT, f).replace(/\.ts$/, ".js")}`)
      .sort();
    const shipped = files.filter((f) => f.startsWith("dist/src/") && f.endsWith(".js"));
    assert.deepEqual(
      shipped.filter((f) => !sources.includes(f)),
      [],
      "compiled files without a source in src/ (a stale dist/: npm run build cleans it)",
    );
    assert.deepEqual(
      sources.filter((f) => !shipped.includes(f)),
      [],
      "sources not compiled into the package",
    );
  });

  test("the native addon's sources go along when there are any, its build outputs never", () => {
    const nativeDir = join(ROOT, "native");
    const sources = existsSync(nativeDir)
      ? walk(nativeDir)
          .map((f) => relative(ROOT, f))
          .filter((f) => /^native\/[^/]+\/(binding\.gyp|[^/]+\.(cc|h|mjs)|README\.md)$/.test(f))
      : [];
    for (const s of sources) assert.ok(files.includes(s), `${s} missing from the package`);
    assert.deepEqual(
      files.filter((f) => f.startsWith("native/") && /\/build[^/]*\//.test(f)),
      [],
    );
  });

  test("a real `npm pack` builds first, and the build starts from an empty dist/", () => {
    assert.match(PKG.scripts["prepack"] ?? "", /npm run build/);
    assert.match(PKG.scripts["build"] ?? "", /rmSync\('dist'/);
  });

  test("runtime code imports only Node's modules and the package's dependencies", () => {
    const allowed = new Set(Object.keys(PKG.dependencies));
    const bad = new Set<string>();
    for (const f of walk(join(ROOT, "dist", "src")).filter((x) => x.endsWith(".js"))) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"'.][^"']*)["']/g)) {
        const spec = m[1]!;
        if (spec.startsWith("node:")) continue;
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
        if (!allowed.has(name)) bad.add(`${relative(ROOT, f)}: ${spec}`);
      }
    }
    assert.deepEqual([...bad], [], "imports of packages that are not dependencies (devDependencies are not installed with -g)");
  });
});

describe("npm install -g of the tarball", () => {
  let prefix: string;
  let elsewhere: string;
  let env: NodeJS.ProcessEnv;
  const dromedary = (args: readonly string[]) => run("dromedary", args, { cwd: elsewhere, env, timeoutMs: 60_000 });
  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await dromedary(args);
    assert.equal(r.code, 0, `dromedary ${args.join(" ")} -> ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    prefix = join(work, "prefix");
    elsewhere = join(work, "elsewhere");
    mkdirSync(elsewhere);
    // dependencies come from npm's cache (filled by `npm ci`) when they are there
    const r = await run("npm", ["install", "-g", "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund", tarball], {
      cwd: elsewhere,
      env: cleanEnv(),
      timeoutMs: 180_000,
    });
    assert.equal(r.code, 0, `npm install -g failed:\n${r.stdout}${r.stderr}`);
    // only the installed bin directory: no way to reach this checkout's dromedary by accident
    env = cleanEnv({ PATH: `${join(prefix, "bin")}:${process.env["PATH"] ?? "/usr/bin:/bin"}` });
  });

  test("installs the package with its dependencies only (no devDependencies, no tests)", () => {
    const installed = join(prefix, "lib", "node_modules", PKG.name);
    assert.ok(statSync(join(installed, "dist", "src", "cli", "main.js")).isFile());
    for (const dev of Object.keys(PKG.devDependencies)) {
      assert.equal(existsSync(join(installed, "node_modules", dev)), false, `${dev} installed`);
    }
    for (const dep of Object.keys(PKG.dependencies)) {
      assert.ok(existsSync(join(installed, "node_modules", dep, "package.json")), `${dep} not installed`);
    }
    assert.equal(existsSync(join(installed, "test")), false);
    assert.equal(existsSync(join(installed, "dist", "test")), false);
  });

  test("dromedary --help and --version from another directory", async () => {
    assert.match(await ok(["--help"]), /^Usage: dromedary \[options\] \[command\]/);
    assert.equal((await ok(["--version"])).trim(), "version 0.1.0 protocol version 5");
    // issue 13: `dromedary up --help` works from the installed package
    const up = await ok(["up", "--help"]);
    assert.match(up, /^Usage: dromedary up \[options\]/);
    assert.match(up, /console-daemon,\s+hostd\s+\(as\s+root\),\s+stats-daemon/);
  });

  test("the CA walkthrough: generate, add-policy --csr, sign, create --csr, sign, verify", async () => {
    const ca = join(elsewhere, "ca");
    mkdirSync(ca);
    writeFileSync(join(ca, "hello.hvt"), buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes);
    const inCa = async (args: string[]) => {
      const r = await run("dromedary", args, { cwd: ca, env, timeoutMs: 60_000 });
      assert.equal(r.code, 0, `dromedary ${args.join(" ")} -> ${r.code}\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    await inCa(["generate", "ca", "db"]);
    await inCa(["add-policy", "user", "16", "--mem", "1024", "--cpu", "0", "--cpu", "1", "--bridge", "br0", "--csr"]);
    await inCa(["sign", "cacert.pem", "db", "ca.key", "user.req"]);
    const delegation = JSON.parse(await inCa(["verify", "user.pem", "--ca", "cacert.pem", "--json"])) as Record<string, unknown>;
    assert.match(JSON.stringify(delegation), /"user"/);
    await inCa(["create", "hello", "hello.hvt", "--net", "service:br0", "--csr"]);
    await inCa(["sign", "user.pem", "db", "user.key", "hello.req"]);
    const leaf = await inCa(["verify", "hello.pem", "--ca", "cacert.pem"]);
    assert.match(leaf, /user:hello/);
    for (const f of ["ca.key", "cacert.pem", "server.pem", "user.pem", "hello.pem"]) assert.ok(existsSync(join(ca, f)), f);
  });

  test("install-units finds the shipped templates and names the installed dromedary in ExecStart=", async () => {
    const units = join(elsewhere, "units");
    mkdirSync(units);
    const out = await ok(["install-units", "--prefix", units]);
    assert.match(out, new RegExp(`^ExecStart= runs (\\S+ )?${join(prefix, "bin", "dromedary")}$`, "m"));
    const hostd = readFileSync(join(units, "dromedary-hostd.service"), "utf8");
    assert.match(hostd, new RegExp(`\\nExecStart=(\\S+ )?${join(prefix, "bin", "dromedary")} hostd `));
  });

  test("--help of every top-level command the program registers", async () => {
    const names = buildProgram().commands.map((c) => c.name());
    assert.ok(names.length > 20);
    // three at a time: each is a process start
    const queue = [...names];
    const worker = async (): Promise<void> => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        const out = await ok([name, "--help"]);
        assert.match(out, new RegExp(`^Usage: dromedary ${name} `), name);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  });
});
