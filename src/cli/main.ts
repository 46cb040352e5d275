// The `dromedary` command line: the program (program.ts) run on the process' arguments.
import { buildProgram } from "./program.js";
import { runMain } from "./output.js";

await runMain(buildProgram(), process.argv);
