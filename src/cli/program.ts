// The `dromedary` program: every command group registers its subcommands here. Kept apart from
// main.ts (which runs it) so that tools can walk the definition without running anything:
// `npm run docs` (docs/commands.md) and `dromedary completion`.
import "reflect-metadata";
import { Command } from "commander";
import { registerCertCommands } from "./certs.js";
import { registerDaemonCommands } from "./daemons.js";
import { registerClientCommands } from "./client.js";
import { registerFleetCommands } from "./fleet.js";
import { registerInspectCommands } from "./inspect.js";
import { registerEndpointCommands } from "./endpoint.js";
import { registerCompletionCommand } from "./completion.js";
import { registerInstallUnitsCommand } from "./install-units.js";
import { registerHelpCommand } from "./help.js";
import { registerUpCommand } from "./up.js";
import { VERSION } from "./version.js";

export function buildProgram(): Command {
  const program = new Command("dromedary").description("Deploy MirageOS/Solo5 unikernels; wire-compatible with albatross 2.x").version(VERSION, "--version");
  registerClientCommands(program);
  registerFleetCommands(program);
  registerCertCommands(program);
  registerDaemonCommands(program);
  registerInspectCommands(program);
  registerEndpointCommands(program);
  registerUpCommand(program);
  registerInstallUnitsCommand(program);
  registerCompletionCommand(program);
  registerHelpCommand(program);
  return program;
}
