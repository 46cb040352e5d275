// `npm run docs`: write docs/commands.md from the program's own help (src/cli/reference.ts)
// and the man page man/dromedary.1 (src/cli/manpage.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildProgram } from "../src/cli/program.js";
import { commandReference } from "../src/cli/reference.js";
import { manPage } from "../src/cli/manpage.js";
import { VERSION_NUMBER } from "../src/cli/version.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const file = path.join(root, "docs", "commands.md");
writeFileSync(file, commandReference(buildProgram()));
process.stdout.write(`wrote ${path.relative(process.cwd(), file) || file}\n`);
const man = path.join(root, "man", "dromedary.1");
mkdirSync(path.dirname(man), { recursive: true });
writeFileSync(man, manPage(buildProgram(), VERSION_NUMBER));
process.stdout.write(`wrote ${path.relative(process.cwd(), man) || man}\n`);
