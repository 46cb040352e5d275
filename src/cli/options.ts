// Option value parsers shared by every command group (client, daemons, endpoint).
import { statSync } from "node:fs";
import { InvalidArgumentError } from "commander";

/**
 * `--tmpdir`/`--dbdir`: an explicitly given directory must exist (cmdliner's `dir`
 * converter: a usage error, exit 124); the built-in defaults are not checked (daemon.md §0).
 */
export function existingDir(value: string): string {
  let ok = false;
  try {
    ok = statSync(value).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new InvalidArgumentError(`no '${value}' directory`);
  return value;
}
