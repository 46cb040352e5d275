// The exit codes of albatross-client (cli.md §3) and the error that carries one: thrown by
// the clients, mapped to the process exit status by the command line (cli/output.ts).

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
