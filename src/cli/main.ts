// The `dromedary` command line. One module per command group registers its subcommands.
import "reflect-metadata";
import { Command } from "commander";
import { registerCertCommands } from "./certs.js";
import { registerDaemonCommands } from "./daemons.js";
import { registerClientCommands } from "./client.js";
import { registerInspectCommands } from "./inspect.js";
import { registerEndpointCommands } from "./endpoint.js";
import { runMain } from "./output.js";

export function buildProgram(): Command {
  const program = new Command("dromedary")
    .description("Deploy MirageOS/Solo5 unikernels; wire-compatible with albatross 2.x")
    .version("version 0.1.0 protocol version 5", "--version")
    // cli.md: there is no `help` subcommand (`help` is an unknown command); use --help.
    .helpCommand(false);
  registerClientCommands(program);
  registerCertCommands(program);
  registerDaemonCommands(program);
  registerInspectCommands(program);
  registerEndpointCommands(program);
  return program;
}

await runMain(buildProgram(), process.argv);
