// `dromedary help [COMMAND]`: the program's or COMMAND's help, as `--help` shows it.
//
// Not upstream: albatross-client has no `help` subcommand (cli.md: `help` is an unknown
// command there). A plain command rather than commander's built-in help command, so that an
// unknown COMMAND is a usage error (exit 124) like any unknown command.
import { Argument, type Command } from "commander";
import { CliError, EXIT } from "../core/exit.js";

export function registerHelpCommand(program: Command): void {
  program.helpCommand(false);
  program
    .command("help")
    .description("show the help of COMMAND, or of dromedary (the same as COMMAND --help)")
    .addArgument(new Argument("[COMMAND]", "a command"))
    .action((name: string | undefined) => {
      if (name === undefined) program.help();
      const cmd = program.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (cmd === undefined) throw new CliError(`unknown command '${name}' (dromedary help lists them)`, EXIT.USAGE);
      cmd.help();
    });
}
