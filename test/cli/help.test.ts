// `dromedary help [COMMAND]` and the command reference docs/commands.md made from the same help
// texts (`npm run docs`): the file in the repository must be what the program prints today.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { buildProgram } from "../../src/cli/program.js";
import { commandReference } from "../../src/cli/reference.js";
import { runCli } from "../support/cli.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

describe("dromedary help", () => {
  test("help COMMAND prints what COMMAND --help prints", async () => {
    for (const name of ["create", "install-units", "endpoint"]) {
      const [viaHelp, viaFlag] = await Promise.all([runCli(["help", name]), runCli([name, "--help"])]);
      assert.equal(viaHelp.code, 0, viaHelp.stderr);
      assert.equal(viaHelp.stdout, viaFlag.stdout);
      assert.match(viaHelp.stdout, new RegExp(`^Usage: dromedary ${name} `));
    }
  });

  test("help alone prints the program's help, with help among the commands", async () => {
    const [help, flag] = await Promise.all([runCli(["help"]), runCli(["--help"])]);
    assert.equal(help.code, 0);
    assert.equal(help.stdout, flag.stdout);
    assert.match(help.stdout, /^ {2}help \[COMMAND\] +show the help of COMMAND/m);
  });

  test("an unknown COMMAND is a usage error (124), like an unknown command", async () => {
    const r = await runCli(["help", "nosuch"]);
    assert.equal(r.code, 124);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "dromedary: unknown command 'nosuch' (dromedary help lists them)\n");
  });
});

describe("docs/commands.md", () => {
  test("is up to date with the program's help (npm run docs writes it)", () => {
    const expected = commandReference(buildProgram());
    const actual = readFileSync(join(ROOT, "docs", "commands.md"), "utf8");
    assert.ok(actual === expected, "docs/commands.md is out of date: run `npm run docs` and commit the result");
  });

  test("has a section per command, each holding that command's help", () => {
    const program = buildProgram();
    const ref = commandReference(program);
    for (const c of program.commands) {
      assert.match(ref, new RegExp(`\\n## dromedary ${c.name()}\\n\\n\`\`\`text\\nUsage: dromedary ${c.name()} `), c.name());
      // every option of the command is in its section
      const section = ref.slice(ref.indexOf(`\n## dromedary ${c.name()}\n`)).split("\n## ")[1]!;
      for (const o of c.options) assert.ok(section.includes(o.long ?? o.short!), `${c.name()} ${o.flags}`);
    }
  });

  test("is wrapped at a fixed width, whatever the terminal", () => {
    const before = process.stdout.columns;
    try {
      Object.defineProperty(process.stdout, "columns", { value: 40, configurable: true });
      Object.defineProperty(process.stdout, "isTTY", { value: true, configurable: true });
      assert.equal(commandReference(buildProgram()), readFileSync(join(ROOT, "docs", "commands.md"), "utf8"));
    } finally {
      Object.defineProperty(process.stdout, "columns", { value: before, configurable: true });
      Object.defineProperty(process.stdout, "isTTY", { value: undefined, configurable: true });
    }
  });
});
