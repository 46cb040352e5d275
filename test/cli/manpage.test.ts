// man/dromedary.1 (src/cli/manpage.ts), made from the program's definition by `npm run docs`
// and shipped in the package: up to date, a section per command with each of its options,
// and roff that groff formats without a warning.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildProgram } from "../../src/cli/program.js";
import { manPage } from "../../src/cli/manpage.js";
import { VERSION_NUMBER } from "../../src/cli/version.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const FILE = join(ROOT, "man", "dromedary.1");

describe("man/dromedary.1", () => {
  test("is up to date with the program (npm run docs writes it) and named in package.json", () => {
    assert.ok(
      readFileSync(FILE, "utf8") === manPage(buildProgram(), VERSION_NUMBER),
      "man/dromedary.1 is out of date: run `npm run docs` and commit the result",
    );
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { man: string[]; version: string };
    assert.deepEqual(pkg.man, ["./man/dromedary.1"]);
    assert.equal(pkg.version, VERSION_NUMBER);
  });

  test("a section per command, with every option; roff escapes", () => {
    const program = buildProgram();
    const page = manPage(program, VERSION_NUMBER);
    for (const c of program.commands.filter((x) => x.name() !== "help")) {
      const start = page.indexOf(`\n.SS "dromedary ${c.name().replace(/-/g, "\\-")} `);
      assert.ok(start >= 0, c.name());
      const section = page.slice(start + 1).split("\n.SS ")[0]!;
      for (const o of c.options) assert.ok(section.includes((o.long ?? o.short!).replace(/-/g, "\\-")), `${c.name()} ${o.flags}`);
    }
    // no line starts with a stray control character, nothing beyond ASCII
    assert.ok(page.split("\n").every((l) => !/^'/.test(l)));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the class is "everything beyond ASCII", written from NUL
    assert.ok(!/[^\x00-\x7f]/.test(page));
  });

  test("groff formats it without a warning", (t) => {
    const r = spawnSync("groff", ["-man", "-Tutf8", "-ww", "-z", FILE], { encoding: "utf8" });
    if (r.error !== undefined) return t.skip("groff not installed");
    assert.equal(r.status, 0);
    assert.equal(r.stderr, "");
  });
});
