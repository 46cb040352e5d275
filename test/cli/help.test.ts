// `dromedary help [COMMAND]`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runCli } from "./helpers.js";

describe("dromedary help", () => {
  test("help COMMAND prints what COMMAND --help prints", async () => {
    for (const name of ["create", "inspect", "endpoint"]) {
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
