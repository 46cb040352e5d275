// Shell completion generated from the program's own definition (commander), so it follows every
// command and option as they are registered: `dromedary completion bash|zsh`.
//
// Values are completed by what they name: a choice list when the option has one, directories
// for <DIR>, nothing for a number, name, path (an albatross administrative path, not a file)
// or address, files otherwise.
import { Argument, type Command, type Option } from "commander";

type Hint = { readonly kind: "file" } | { readonly kind: "dir" } | { readonly kind: "none" } | { readonly kind: "choices"; readonly words: readonly string[] };

interface OptionSpec {
  /** e.g. ["-n", "--name"] */
  readonly flags: readonly string[];
  readonly description: string;
  readonly takesValue: boolean;
  readonly valueName: string;
  readonly hint: Hint;
  readonly repeatable: boolean;
}

interface ArgumentSpec {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
  readonly variadic: boolean;
  readonly hint: Hint;
}

interface CommandSpec {
  readonly name: string;
  readonly description: string;
  readonly options: readonly OptionSpec[];
  readonly args: readonly ArgumentSpec[];
}

export interface ProgramSpec {
  readonly name: string;
  readonly options: readonly OptionSpec[];
  readonly commands: readonly CommandSpec[];
}

/** Value names that are not files: numbers, names, albatross paths, addresses, times. */
const NOT_A_FILE = new Set([
  "NAME",
  "PATH",
  "INT",
  "N",
  "MB",
  "SIZE",
  "UNIKERNELS",
  "PID",
  "SECONDS",
  "BYTES",
  "TIMESTAMP",
  "TIME",
  "STR",
  "SPEC",
  "BR",
  "BRIDGE",
  "BRIDGE:TAP",
  "DEV",
  "URL",
  "ADDR",
  "HOST:PORT",
  "HOST[:PORT]",
  "IP[:PORT]",
  "0-9",
  "SNAME",
  "LEVEL",
  "TYP",
  "T",
  "TYPE",
  "COMMAND",
]);

function hintFor(valueName: string, choices: readonly string[] | undefined): Hint {
  if (choices !== undefined && choices.length > 0) return { kind: "choices", words: choices };
  const v = valueName.toUpperCase();
  if (v === "DIR" || v.endsWith("DIR")) return { kind: "dir" };
  if (NOT_A_FILE.has(v) || v.startsWith("NUM")) return { kind: "none" };
  return { kind: "file" };
}

/** The value name of `--tmpdir <DIR>` (DIR) or `[COMMAND]` (COMMAND). */
const valueNameOf = (flags: string): string => (/<([^>]+?)(\.\.\.)?>/.exec(flags) ?? /\[([^\]]+?)(\.\.\.)?\]$/.exec(flags))?.[1] ?? "";

function optionSpec(o: Option): OptionSpec {
  const flags = [o.short, o.long].filter((f): f is string => typeof f === "string");
  const takesValue = o.required || o.optional;
  const valueName = takesValue ? valueNameOf(o.flags) : "";
  return {
    flags,
    description: o.description,
    takesValue,
    valueName,
    // PATH is an albatross administrative path (add-policy PATH, --path) except as the value of
    // other options (--socket PATH, --bin PATH)
    hint: !takesValue ? { kind: "none" } : valueName === "PATH" && o.long !== "--path" ? { kind: "file" } : hintFor(valueName, o.argChoices),
    repeatable: o.variadic || /repeatable/i.test(o.description),
  };
}

function argumentSpec(a: Argument): ArgumentSpec {
  return { name: a.name(), description: a.description, required: a.required, variadic: a.variadic, hint: hintFor(a.name(), a.argChoices) };
}

/** The commands, options and arguments as `--help` shows them (hidden ones left out). */
export function programSpec(program: Command): ProgramSpec {
  const help = program.createHelp();
  const names = program.commands.map((c) => c.name());
  const commands: CommandSpec[] = help.visibleCommands(program).map((c) => {
    const ch = c.createHelp();
    // an argument naming a command (help's) completes the command names
    const args = ch.visibleArguments(c).map((a) => {
      const spec = argumentSpec(a);
      return a.name() === "COMMAND" ? { ...spec, hint: { kind: "choices", words: names } as const } : spec;
    });
    return { name: c.name(), description: ch.subcommandDescription(c), options: ch.visibleOptions(c).map(optionSpec), args };
  });
  return { name: program.name(), options: help.visibleOptions(program).map(optionSpec), commands };
}

// ---------------------------------------------------------------------------------------
// bash

const bashWords = (ws: readonly string[]): string => ws.map(shellWord).join(" ");

/** A word safe inside bash's double-quoted `compgen -W "..."` list (they are plain names). */
function shellWord(w: string): string {
  if (!/^[A-Za-z0-9_.:@,+=/-]+$/.test(w)) throw new Error(`cannot complete '${w}'`);
  return w;
}

function bashValue(h: Hint): string {
  switch (h.kind) {
    case "choices":
      return `COMPREPLY=($(compgen -W "${bashWords(h.words)}" -- "$cur"))`;
    case "dir":
      return `COMPREPLY=($(compgen -d -- "$cur"))`;
    case "file":
      return `COMPREPLY=($(compgen -f -- "$cur"))`;
    case "none":
      return "COMPREPLY=()";
  }
}

function bashCommand(c: CommandSpec): string {
  const valueOpts = c.options.filter((o) => o.takesValue);
  const lines: string[] = [];
  lines.push(`    ${shellWord(c.name)})`);
  lines.push(`      opts="${bashWords(c.options.flatMap((o) => o.flags))}"`);
  lines.push(`      valued="${bashWords(valueOpts.flatMap((o) => o.flags))}"`);
  if (valueOpts.length > 0) {
    lines.push('      case "$prev" in');
    for (const o of valueOpts) lines.push(`        ${o.flags.map(shellWord).join("|")}) ${bashValue(o.hint)}; return ;;`);
    lines.push("      esac");
  }
  lines.push('      if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); return; fi');
  lines.push('      _dromedary_positional "$valued"');
  const branches = c.args.map((a, i) => {
    const test = i === c.args.length - 1 && a.variadic ? `pos >= ${i}` : `pos == ${i}`;
    return `((${test})); then ${bashValue(a.hint)}`;
  });
  lines.push(branches.length === 0 ? "      COMPREPLY=()" : `      if ${branches.join("\n      elif ")}\n      else COMPREPLY=()\n      fi`);
  lines.push("      ;;");
  return lines.join("\n");
}

export function bashCompletion(spec: ProgramSpec): string {
  const name = shellWord(spec.name);
  return `# bash completion for ${name} (generated by \`${name} completion bash\`)
# Load it with: source <(${name} completion bash)
# or install it: ${name} completion bash > /etc/bash_completion.d/${name}

# Sets pos to the index of the positional argument being completed (words after the command
# that are neither options nor option values); $1 lists the options that take a value.
_${name}_positional() {
  local valued=" $1 " i w skip=0
  pos=0
  for ((i = cmd_index + 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    [[ $w == "=" ]] && continue
    if [[ $w == -* ]]; then
      [[ $w != *=* && $valued == *" $w "* && \${COMP_WORDS[i + 1]} != "=" ]] && skip=1
      [[ \${COMP_WORDS[i + 1]} == "=" ]] && skip=1
      continue
    fi
    pos=$((pos + 1))
  done
}

_${name}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" cmd_index=0 i opts valued pos
  ((COMP_CWORD > 0)) && prev="\${COMP_WORDS[COMP_CWORD - 1]}"
  # --opt=value: bash splits at "=" (COMP_WORDBREAKS)
  if [[ $cur == "=" ]]; then cur=""; prev="\${COMP_WORDS[COMP_CWORD - 1]}"; fi
  if [[ $prev == "=" ]] && ((COMP_CWORD > 1)); then prev="\${COMP_WORDS[COMP_CWORD - 2]}"; fi
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; cmd_index=$i; break ;;
    esac
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "${bashWords([...spec.commands.map((c) => c.name), ...spec.options.flatMap((o) => o.flags)])}" -- "$cur"))
    return
  fi
  case "$cmd" in
${spec.commands.map(bashCommand).join("\n")}
    *) COMPREPLY=() ;;
  esac
}
complete -o filenames -F _${name} ${name}
`;
}

// ---------------------------------------------------------------------------------------
// zsh

/** Text inside a single-quoted _arguments spec: no quotes, brackets or colons left unescaped. */
function zshText(s: string, max = 100): string {
  let t = s.replace(/\s+/g, " ").trim();
  if (t.length > max) t = `${t.slice(0, max - 3).replace(/\s+\S*$/, "")}...`;
  return t.replace(/\\/g, "\\\\").replace(/'/g, "'\\''").replace(/\[/g, "(").replace(/\]/g, ")").replace(/:/g, "\\:");
}

function zshAction(h: Hint): string {
  switch (h.kind) {
    case "choices":
      return `(${h.words.map(shellWord).join(" ")})`;
    case "dir":
      return "_files -/";
    case "file":
      return "_files";
    case "none":
      return " ";
  }
}

function zshOption(o: OptionSpec): string {
  const desc = `[${zshText(o.description)}]`;
  const value = o.takesValue ? `:${zshText(o.valueName.toLowerCase() || "value", 40)}:${zshAction(o.hint)}` : "";
  const flags = o.flags.map(shellWord);
  if (o.repeatable) return flags.map((f) => `'*${f}${desc}${value}'`).join(" ");
  if (flags.length === 1) return `'${flags[0]}${desc}${value}'`;
  // a flag given once excludes its other spelling
  return `'(${flags.join(" ")})'{${flags.join(",")}}'${desc}${value}'`;
}

function zshArgument(a: ArgumentSpec, i: number): string {
  const msg = zshText(a.name.toLowerCase(), 40);
  // a bare message (" ") would keep _arguments from offering the options in that position
  const action = a.hint.kind === "none" ? `_guard "^-*" ${msg}` : zshAction(a.hint);
  if (a.variadic) return `'*:${msg}:${action}'`;
  return `'${i + 1}:${a.required ? "" : ":"}${msg}:${action}'`;
}

export function zshCompletion(spec: ProgramSpec): string {
  const name = shellWord(spec.name);
  const cmdList = spec.commands.map((c) => `    '${shellWord(c.name)}:${zshText(c.description, 80)}'`).join("\n");
  const cases = spec.commands
    .map((c) => {
      const specs = [...c.options.map(zshOption), ...c.args.map(zshArgument)];
      return `      (${shellWord(c.name)})\n        _arguments -s -S \\\n          ${specs.join(" \\\n          ")}\n        ;;`;
    })
    .join("\n");
  return `#compdef ${name}
# zsh completion for ${name} (generated by \`${name} completion zsh\`)
# Load it with: source <(${name} completion zsh)   (after compinit)
# or install it as _${name} in a directory of $fpath.

_${name}() {
  local curcontext="$curcontext" state line ret=1
  typeset -A opt_args
  local -a commands
  commands=(
${cmdList}
  )
  _arguments -C \\
    ${spec.options.map(zshOption).join(" \\\n    ")} \\
    '1: :->command' \\
    '*:: :->args' && ret=0
  case $state in
    (command)
      _describe -t commands '${name} command' commands && ret=0
      ;;
    (args)
      curcontext="\${curcontext%:*:*}:${name}-$line[1]:"
      case $line[1] in
${cases}
      esac
      ;;
  esac
  return ret
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _${name} "$@"
else
  compdef _${name} ${name}
fi
`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a completion script for bash or zsh, generated from the commands and options of this dromedary")
    .addArgument(new Argument("<SHELL>", "the shell").choices(["bash", "zsh"]))
    .action((shell: "bash" | "zsh") => {
      const spec = programSpec(program);
      process.stdout.write(shell === "bash" ? bashCompletion(spec) : zshCompletion(spec));
    });
}
