// Turning results into text or JSON, and errors into exit codes (cli.md §3).
import type { Command } from "commander";

/** Exit codes of albatross-client (cli.md §3). */
export const EXIT = {
  OK: 0,
  CHAIN_INVALID: 116,
  REMOTE_FAILURE: 117,
  HTTP: 118,
  LOCAL_AUTH: 119,
  REMOTE_AUTH: 120,
  COMMUNICATION: 121,
  CONNECT: 122,
  USAGE: 124,
  INTERNAL: 125,
} as const;

/** An error meant for the user: one line, and the exit code to leave with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
    this.name = "CliError";
  }
}

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
