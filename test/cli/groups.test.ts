// groups.ts: `dromedary <command>` loads only the group that registers <command>; the table
// must name every command of the whole program (program.ts) exactly once, with its group.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { CLIENT_GROUP } from "../../src/cli/fast.js";
import { GROUPS, groupOf } from "../../src/cli/groups.js";
import { VERSION } from "../../src/cli/version.js";
import { buildProgram } from "../../src/cli/program.js";
import { runCli } from "../support/cli.js";

test("every command of the program is in exactly one group, which registers exactly its commands", async () => {
  const all = buildProgram().commands.map((c) => c.name());
  const grouped = GROUPS.flatMap((g) => g.commands);
  assert.equal(new Set(grouped).size, grouped.length, "a command in two groups");
  // help and completion walk the whole program: they are the only ones left out
  assert.deepEqual(all.filter((c) => !grouped.includes(c)).sort(), ["completion", "help"]);
  assert.deepEqual(
    grouped.filter((c) => !all.includes(c)),
    [],
  );
  for (const g of GROUPS) {
    const p = new Command("dromedary");
    (await g.load())(p);
    assert.deepEqual(
      p.commands.map((c) => c.name()),
      [...g.commands],
    );
    // `dromedary <command>` registers that command: alone where the group can, and always
    // with the same options as in the whole program
    for (const name of g.commands) {
      const one = new Command("dromedary");
      (await g.load())(one, name);
      const got = one.commands.find((c) => c.name() === name);
      assert.ok(got, `${name} registered`);
      if (g === CLIENT_GROUP) assert.deepEqual(one.commands.length, 1, `${name} alone`);
      const whole = p.commands.find((c) => c.name() === name)!;
      assert.deepEqual(
        got.options.map((o) => o.flags),
        whole.options.map((o) => o.flags),
      );
    }
  }
  assert.equal(groupOf("info"), CLIENT_GROUP);
  assert.equal(groupOf("--help"), undefined);
});

test("--version without loading the program; a group's command and the whole program's help", async () => {
  const v = await runCli(["--version"]);
  assert.equal(v.stdout, `${VERSION}\n`);
  assert.equal(buildProgram().version(), VERSION);
  const info = await runCli(["info", "--help"]);
  assert.equal(info.code, 0);
  assert.match(info.stdout, /^Usage: dromedary info \[options\]/);
  const help = await runCli(["--help"]);
  assert.match(help.stdout, /^Usage: dromedary \[options\] \[command\]/);
  assert.match(help.stdout, /\n {2}up \[options\]/);
  const unknown = await runCli(["infoo"]);
  assert.equal(unknown.code, 124);
  assert.match(unknown.stderr, /unknown command 'infoo'/);
});
