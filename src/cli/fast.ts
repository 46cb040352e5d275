// The command line's fast path (issue 13, start-up time): `dromedary --version` and the
// command subcommands (info, create, console, stats, ...), the commands people and scripts
// run most. `npm run build` bundles this module, with what it loads, into dist/cli/
// (scripts/bundle.ts), where bin/dromedary.cjs runs it: Node then reads a few files instead of
// resolving and reading some thirty modules one by one. So it imports none of the other
// command groups (groups.ts); everything else runs through main.ts, which tries this first.
import type { Command } from "commander";
import { VERSION } from "./version.js";

/** Top-level commands registered by one module (groups.ts has them all). */
export interface Group {
  readonly commands: readonly string[];
  /** the group's register function; given `only`, a group may register just that command */
  load(): Promise<(program: Command, only?: string) => void>;
}

/** The command subcommands (client.ts): the group this path runs (groups.ts lists it first). */
export const CLIENT_GROUP: Group = {
  commands: [
    "create",
    "restart",
    "destroy",
    "info",
    "get",
    "policy",
    "add-policy",
    "replace-policy",
    "remove-policy",
    "block",
    "create-block",
    "destroy-block",
    "set-block",
    "dump-block",
    "console",
    "inactive-consoles",
    "stats",
    "stats-add",
    "stats-remove",
  ],
  load: async () => (await import("./client.js")).registerClientCommands,
};

/** Runs `argv` when it is a fast-path command and returns true; false leaves it to main.ts. */
export async function runFast(argv: readonly string[]): Promise<boolean> {
  const command = argv[2];
  if (argv.length === 3 && command === "--version") {
    process.stdout.write(`${VERSION}\n`);
    return true;
  }
  if (command === undefined || !CLIENT_GROUP.commands.includes(command)) return false;
  const { Command } = await import("commander");
  const { runMain } = await import("./output.js");
  const program = new Command("dromedary").version(VERSION, "--version");
  (await CLIENT_GROUP.load())(program, command);
  await runMain(program, [...argv]);
  return true;
}
