// Runs src/client/jump.ts remoteJump as client.ts would for `--destination` (until client.ts
// calls it): argv = HOST:PORT CA CAKEY SERVERCA KIND NAME [FILE] [--json].
import "reflect-metadata";
import { remoteJump } from "../../src/client/jump.js";
import { parseDestination } from "../../src/cli/flags.js";
import { runMain } from "../../src/cli/output.js";
import { parseName } from "../../src/core/name.js";
import type { Command } from "../../src/commands/types.js";
import { Command as Program } from "commander";

const program = new Program("remote-jump")
  .argument("<args...>")
  .option("--json")
  .action(async (args: string[], o: { json?: boolean }) => {
    const [dest, ca, caKey, serverCa, kind, name, file] = args as [string, string, string, string, string, string, string?];
    const cmd: Command = kind === "block-set" ? { kind: "block-set", compressed: false } : ({ kind } as Command);
    process.exitCode = await remoteJump(
      cmd,
      parseName(name),
      { destination: parseDestination(dest), ca, caKey, serverCa, keyType: "ed25519", json: o.json ?? false },
      file ? { file, level: 0 } : undefined,
    );
  });
await runMain(program, process.argv);
