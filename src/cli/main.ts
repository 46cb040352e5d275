// The `dromedary` command line: the program (program.ts) run on the process' arguments.
//
// Start-up time: `--version` and the command subcommands go through fast.ts (which the
// installed command runs bundled); `dromedary <command>` registers only the group that
// defines <command> (groups.ts), so no command loads the certificate libraries or the
// daemons it does not use. `--help`, `help` and `completion` get the whole program.
import { runFast } from "./fast.js";
import { groupOf } from "./groups.js";
import { VERSION } from "./version.js";

const argv = process.argv;
if (!(await runFast(argv))) {
  const { Command } = await import("commander");
  const { runMain } = await import("./output.js");
  const group = groupOf(argv[2]);
  let program;
  if (group !== undefined) {
    program = new Command("dromedary").version(VERSION, "--version");
    (await group.load())(program, argv[2]);
  } else {
    program = (await import("./program.js")).buildProgram();
  }
  await runMain(program, argv);
}
