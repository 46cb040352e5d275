// `npm run docs`: write docs/commands.md from the program's own help (src/cli/reference.ts).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildProgram } from "../src/cli/program.js";
import { commandReference } from "../src/cli/reference.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const file = path.join(root, "docs", "commands.md");
writeFileSync(file, commandReference(buildProgram()));
process.stdout.write(`wrote ${path.relative(process.cwd(), file) || file}\n`);
