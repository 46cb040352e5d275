// The `dromedary` command line: the program (program.ts) run on the process' arguments.
import { Command } from "commander";
import { runMain } from "./output.js";

/**
 * The statistics daemons run for months next to every host: they load only their own
 * modules, not the certificate and TLS stack of the other subcommands (about 18 MB of
 * resident memory). The whole program (`dromedary --help`, docs, completion) has them too.
 */
async function programFor(sub: string | undefined): Promise<Command> {
  if (sub === "stats-daemon" || sub === "influx") {
    const { registerStatsDaemonCommands } = await import("./stats-daemon.js");
    const program = new Command("dromedary").version("version 0.1.0 protocol version 5", "--version");
    registerStatsDaemonCommands(program);
    return program;
  }
  return (await import("./program.js")).buildProgram();
}

await runMain(await programFor(process.argv[2]), process.argv);
