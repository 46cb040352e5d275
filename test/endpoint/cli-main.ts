// A `dromedary` with only the commands of src/cli/endpoint.ts, for the CLI tests (the lead
// wires registerEndpointCommands into src/cli/main.ts).
import "reflect-metadata";
import { Command } from "commander";
import { registerEndpointCommands } from "../../src/cli/endpoint.js";
import { runMain } from "../../src/cli/output.js";

const program = new Command("dromedary");
registerEndpointCommands(program);
await runMain(program, process.argv);
