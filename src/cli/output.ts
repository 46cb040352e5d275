// Errors into exit codes (cli.md §3): the one place the command line ends a run.
import type { Command } from "commander";
import { CliError, EXIT } from "../core/exit.js";

/**
 * Settings every (sub)command needs: throw instead of exiting (so the exit code is ours), and
 * commander's own usage errors as one `dromedary: ...` line on stderr. Subcommands copy these
 * settings only when created, so they are applied to the whole tree here.
 */
function configureTree(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({
    outputError: (str, write) => write(`dromedary: ${str.replace(/^error: /, "").trimEnd()}\n`),
  });
  for (const sub of cmd.commands) configureTree(sub);
}

export async function runMain(program: Command, argv: string[]): Promise<void> {
  configureTree(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") {
      process.exitCode = 0;
      return;
    }
    if (typeof err.code === "string" && err.code.startsWith("commander.")) {
      process.exitCode = EXIT.USAGE;
      return;
    }
    if (e instanceof CliError) {
      process.stderr.write(`dromedary: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`dromedary: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    process.exitCode = EXIT.INTERNAL;
  }
}
