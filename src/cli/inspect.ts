// `dromedary inspect FILE|-`: recognise and explain albatross data — wire messages (hex text
// such as the output of `--socket -`, or binary, with or without the 4-byte length prefix,
// several in a row), state files of any version (binary or base64), certificates and CSRs
// (PEM or DER, with the albatross extension decoded), and bare certificate extensions.
// Plus upstream's dump tools `inspect-dump` and `extract-dump` (cli.md §2).

import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Argument, Option, type Command as Cmd } from "commander";
import { decodeState } from "../commands/codec.js";
import { inflate } from "../commands/compress.js";
import { DecodeError, type Bytes } from "../commands/der.js";
import { toJson } from "../commands/show.js";
import type { State } from "../commands/types.js";
import { nameEquals, nameToString, type Name } from "../core/name.js";
import { parseNameArg } from "./flags.js";
import { configView, stateUnikernelJson } from "../client/jsonview.js";
import { CliError } from "../core/exit.js";
import { DEFAULT_IMAGE_LIMIT, dumpFileName } from "../client/dump.js";
import { STARTED_AT } from "../client/replies.js";
import { configText } from "../commands/render.js";
import { wrap } from "./options.js";
import { InspectError, MAX_INPUT, inspectInput, itemJson, itemText, stateLines, type Item } from "../client/inspect.js";

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------
// I/O and registration

async function readInput(file: string): Promise<Bytes> {
  if (file === "-") {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of process.stdin) {
      n += (c as Buffer).length;
      if (n > MAX_INPUT) throw new CliError(`input larger than ${MAX_INPUT} bytes`);
      chunks.push(c as Buffer);
    }
    return new Uint8Array(Buffer.concat(chunks));
  }
  let st;
  try {
    st = await stat(file);
  } catch (e) {
    throw new CliError(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : errText(e)}`);
  }
  if (!st.isFile()) throw new CliError(`${file}: not a regular file`);
  if (st.size > MAX_INPUT) throw new CliError(`${file}: larger than ${MAX_INPUT} bytes`);
  return new Uint8Array(await readFile(file));
}

const DEFAULT_DBDIR = "/var/lib/albatross";

/** Upstream Vmm_unix.restore: a single path segment lives in the dbdir, anything else as given. */
function dumpFilePath(file: string | undefined, dbdir: string): string {
  const f = file ?? "state";
  return f.includes("/") ? f : path.join(dbdir, f);
}

async function readDump(file: string | undefined, dbdir: string): Promise<State> {
  const p = dumpFilePath(file, dbdir);
  let data: Bytes;
  try {
    data = new Uint8Array(await readFile(p));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError("dump file not found");
    throw new CliError(`error while reading dump file: ${errText(e)}`);
  }
  try {
    return decodeState(data).state;
  } catch (e) {
    throw new CliError(`couldn't parse dump file: ${errText(e)}`);
  }
}

const dbdirOption = () => new Option("--dbdir <DIR>", "albatross data directory").default(DEFAULT_DBDIR).argParser(wrap((s: string) => s));

async function checkDir(dir: string, explicit: boolean): Promise<void> {
  if (!explicit) return;
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch {
    // fall through
  }
  throw new CliError(`option '--dbdir': no '${dir}' directory`);
}

export function registerInspectCommands(program: Cmd): void {
  program
    .command("inspect")
    .description("explain a wire message, state file, certificate, CSR or albatross extension (hex, base64, PEM or binary)")
    .argument("<FILE>", "file to read, '-' for standard input")
    .option("--json", "machine-readable output (one JSON object per line)")
    .action(async (file: string, o: { json?: boolean }) => {
      const input = await readInput(file);
      let items: Item[];
      try {
        items = inspectInput(input);
      } catch (e) {
        if (e instanceof InspectError || e instanceof DecodeError) throw new CliError(e.message);
        throw e;
      }
      const out = o.json
        ? items.map((it) => JSON.stringify(itemJson(it)))
        : items.map((it, i) => itemText(it, i, items.filter((x) => x.type === it.type).length));
      process.stdout.write(`${out.join("\n")}\n`);
    });

  program
    .command("inspect-dump")
    .description("print the unikernels and policies of an albatross state file")
    .option("--file <F>", "state file (a single path segment is taken inside the dbdir)")
    .addOption(dbdirOption())
    .option("--json", "machine-readable output")
    .action(async (o: { file?: string; dbdir: string; json?: boolean }, cmd: Cmd) => {
      await checkDir(o.dbdir, cmd.getOptionValueSource("dbdir") === "cli");
      const state = await readDump(o.file, o.dbdir);
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ unikernels: state.unikernels.map(stateUnikernelJson), policies: toJson(state.policies) })}\n`);
      } else {
        process.stdout.write(`${stateLines(state, false).join("\n")}\n`);
      }
    });

  program
    .command("extract-dump")
    .description("write a unikernel's image from an albatross state file to the temp dir and print its configuration")
    .addArgument(new Argument("<NAME>", "unikernel name").argParser(wrap(parseNameArg)))
    .option("--file <F>", "state file (a single path segment is taken inside the dbdir)")
    .addOption(dbdirOption())
    .option("--json", "machine-readable output")
    .action(async (name: Name, o: { file?: string; dbdir: string; json?: boolean }, cmd: Cmd) => {
      await checkDir(o.dbdir, cmd.getOptionValueSource("dbdir") === "cli");
      const state = await readDump(o.file, o.dbdir);
      const u = state.unikernels.find((x) => nameEquals(x.name, name));
      if (!u) throw new CliError("unikernel not found");
      let image = u.config.image;
      if (u.config.compressed) {
        try {
          image = inflate(image, { maxBytes: DEFAULT_IMAGE_LIMIT });
        } catch (e) {
          throw new CliError(`failed to uncompress image: ${errText(e)}`);
        }
      }
      const file = dumpFileName(name, STARTED_AT);
      try {
        await writeFile(file, image, { mode: 0o644 });
      } catch (e) {
        throw new CliError(`failed to write image: ${errText(e)}`);
      }
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ event: "dumped", file, bytes: image.length, name: nameToString(name), config: toJson(configView(u.config)) })}\n`,
        );
      } else {
        process.stdout.write(`dumped image to ${file}\n${configText(u.config, true)}\n`);
      }
    });
}
