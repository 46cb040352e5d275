// The `dromedary` command line: the program (program.ts) run on the process' arguments.
//
// Start-up time: `dromedary <command>` registers only the group that defines <command>
// (groups.ts), so `info` does not load the certificate libraries or the daemons, and
// `--version` loads nothing at all. `--help`, `help` and `completion` get the whole program.
import { VERSION, groupOf } from "./groups.js";

const argv = process.argv;
if (argv.length === 3 && argv[2] === "--version") {
  process.stdout.write(`${VERSION}\n`);
} else {
  const { Command } = await import("commander");
  const { runMain } = await import("./output.js");
  const group = groupOf(argv[2]);
  let program;
  if (group !== undefined) {
    program = new Command("dromedary").version(VERSION, "--version");
    (await group.load())(program);
  } else {
    program = (await import("./program.js")).buildProgram();
  }
  await runMain(program, argv);
}
