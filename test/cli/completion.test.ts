// `dromedary completion bash|zsh`: the scripts are generated from the program's definition and
// work in the real shells. bash: the script is sourced, `complete -p` shows it registered, and
// the completion function is run on command lines as bash would (COMP_WORDS/COMP_CWORD).
// zsh: syntax check, then real completion in an interactive zsh driven through zsh/zpty
// (Tab, then a key bound to a widget that writes the edited line to a file). zsh comes from
// Debian (.ci/run installs it); without it the zsh tests are skipped, saying why.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildProgram } from "../../src/cli/program.js";
import { bashCompletion, programSpec, zshCompletion } from "../../src/cli/completion.js";
import { runCli } from "../support/cli.js";

const ZSH = spawnSync("sh", ["-c", "command -v zsh"], { encoding: "utf8" }).stdout.trim() || null;

let dir: string;
let bashScript: string;
let zshDir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "dromedary-completion-"));
  const b = await runCli(["completion", "bash"]);
  assert.equal(b.code, 0, b.stderr);
  bashScript = join(dir, "dromedary.bash");
  writeFileSync(bashScript, b.stdout);
  const z = await runCli(["completion", "zsh"]);
  assert.equal(z.code, 0, z.stderr);
  zshDir = join(dir, "zsh");
  mkdirSync(zshDir);
  writeFileSync(join(zshDir, "_dromedary"), z.stdout);
  // files for the file and directory completions
  mkdirSync(join(dir, "cwd", "subdir"), { recursive: true });
  writeFileSync(join(dir, "cwd", "image.hvt"), "");
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** COMPREPLY for each command line (words; the last one is being completed), sorted. */
function bashComplete(lines: readonly (readonly string[])[]): string[][] {
  const calls = lines
    .map(
      (words) =>
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _dromedary; printf '%s\\n' "\${COMPREPLY[*]}"`,
    )
    .join("\n");
  const r = spawnSync("bash", ["--norc", "--noprofile", "-c", `source '${bashScript}'\n${calls}`], { cwd: join(dir, "cwd"), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, "");
  return r.stdout
    .split("\n")
    .slice(0, lines.length)
    .map((l) =>
      l
        .split(" ")
        .filter((w) => w !== "")
        .sort(),
    );
}

describe("bash", () => {
  test("the script registers the completion function for dromedary", () => {
    const r = spawnSync("bash", ["--norc", "--noprofile", "-c", `source '${bashScript}' && complete -p dromedary`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "complete -o filenames -F _dromedary dromedary");
  });

  test("command names, options, choices, directories and files where the definition says so", () => {
    const [cre, typ, typValue, image, name, prefix, helpInst, eq, nothing] = bashComplete([
      ["dromedary", "cre"],
      ["dromedary", "create", "--ty"],
      ["dromedary", "create", "--typ", ""],
      ["dromedary", "create", "--mem", "32", "hello", ""],
      ["dromedary", "create", ""],
      ["dromedary", "install-units", "--prefix", ""],
      ["dromedary", "help", "inst"],
      ["dromedary", "hostd", "--tmpdir", "=", ""],
      ["dromedary", "add-policy", "--mem", ""],
    ]);
    assert.deepEqual(cre, ["create", "create-block"]);
    assert.deepEqual(typ, ["--typ"]);
    assert.deepEqual(typValue, ["bhyve", "solo5"]);
    assert.deepEqual(image, ["image.hvt", "subdir"], "IMAGE: files (after an option's value and NAME)");
    assert.deepEqual(name, [], "NAME: a unikernel name, no files");
    assert.deepEqual(prefix, ["subdir"], "--prefix <DIR>: directories");
    assert.deepEqual(helpInst, ["install-units"]);
    assert.deepEqual(eq, ["subdir"], "--tmpdir=<DIR>");
    assert.deepEqual(nothing, [], "--mem <MB>: a number");
  });

  test("every registered command and each command's options are offered (generated, not listed by hand)", () => {
    const program = buildProgram();
    const names = program.commands.map((c) => c.name());
    const [all] = bashComplete([["dromedary", ""]]);
    for (const n of names) assert.ok(all!.includes(n), `${n} not completed`);
    const lines = program.commands.map((c) => ["dromedary", c.name(), "--"]);
    const options = bashComplete(lines);
    program.commands.forEach((c, i) => {
      for (const o of c.options) if (o.long && !o.hidden) assert.ok(options[i]!.includes(o.long), `${c.name()} ${o.long}`);
    });
  });

  test("the script is generated from the definition: a new option shows up", () => {
    const program = buildProgram();
    program.commands.find((c) => c.name() === "info")!.option("--brand-new <DIR>", "x");
    const script = bashCompletion(programSpec(program));
    assert.match(script, /--brand-new\) COMPREPLY=\(\$\(compgen -d -- "\$cur"\)\); return ;;/);
    assert.match(zshCompletion(programSpec(program)), /'--brand-new\[x\]:dir:_files -\/'/);
  });
});

describe("zsh", { skip: ZSH === null ? "zsh not found (Debian package zsh; .ci/run installs it)" : false }, () => {
  test("zsh -n: the script parses", () => {
    const r = spawnSync(ZSH!, ["-n", join(zshDir, "_dromedary")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
  });

  /** The command lines after Tab in one interactive zsh with compinit and the script on $fpath. */
  function zshComplete(lines: readonly string[]): string[] {
    const out = join(dir, "zsh-out");
    const driver = `
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; fpath=(${zshDir} $fpath); autoload -Uz compinit; compinit -u -D; setopt nobeep; dump() { print -r -- "<$BUFFER>" >> ${out}; BUFFER=""; }; zle -N dump; bindkey "^T" dump'
zpty -w z 'print MARK$((40+2))'
zpty -r z ignored '*MARK42*'
: >| ${out}
n=0
for line in "$@"; do
  n=$((n + 1))
  zpty -n -w z "$line"$'\t\x14'
  for i in {1..100}; do (( $(wc -l < ${out}) >= n )) && break; sleep 0.05; done
done
zpty -d z
cat ${out}
`;
    const r = spawnSync(ZSH!, ["-f", "-c", driver, "zsh", ...lines], { cwd: join(dir, "cwd"), encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, `${r.stderr}${r.error ?? ""}`);
    return r.stdout
      .split("\n")
      .filter((l) => l.startsWith("<"))
      .map((l) => l.slice(1, -1));
  }

  test("completes commands, options, choices and files in an interactive zsh", () => {
    const cases: [string, string][] = [
      ["dromedary install-un", "dromedary install-units "],
      ["dromedary create --ty", "dromedary create --typ "],
      ["dromedary create --typ so", "dromedary create --typ solo5 "],
      ["dromedary create hello ima", "dromedary create hello image.hvt "],
      ["dromedary hostd --tmpdir sub", "dromedary hostd --tmpdir subdir/"],
      ["dromedary help inst", "dromedary help install-units "],
      ["dromedary completion z", "dromedary completion zsh "],
    ];
    assert.deepEqual(
      zshComplete(cases.map((c) => c[0])),
      cases.map((c) => c[1]),
    );
  });
});
