// `dromedary install-units`: write the systemd units of the daemons (packaging/systemd/,
// src/systemd/) with this installation's binary in ExecStart=, and say what to run next.
import type { Command } from "commander";
import { CliError, EXIT } from "../core/exit.js";

interface InstallUnitsFlags {
  prefix?: string;
  sysusersDir?: string;
  bin?: string;
  dryRun?: boolean;
  force?: boolean;
}

const VERB = { create: "created", update: "updated", overwrite: "overwrote", unchanged: "unchanged" } as const;
const DRY_VERB = { create: "would create", update: "would update", overwrite: "would overwrite", unchanged: "unchanged" } as const;

export function registerInstallUnitsCommand(program: Command): void {
  program
    .command("install-units")
    .summary("write systemd units for the daemons and say which systemctl commands to run next")
    .description(
      "write systemd units for the daemons (console-daemon, hostd, stats-daemon, endpoint, influx: a .socket and a .service each, " +
        "influx a .service) and a sysusers.d file for the user and group dromedary; only hostd runs as root. " +
        "A file that was edited since install-units wrote it (or that it did not write) is kept unless --force; " +
        "then nothing is written. Prints the systemctl commands to run next.",
    )
    .option("--prefix <DIR>", "directory for the units", "/etc/systemd/system")
    .option("--sysusers-dir <DIR>", "directory for dromedary.conf (sysusers.d) (default: /etc/sysusers.d, or the --prefix DIR when given)")
    .option("--bin <PATH>", "the dromedary the units run (default: this one, as it was started)")
    .option("--dry-run", "only show what would be written")
    .option("--force", "replace files that were edited or not written by install-units")
    .action(async (flags: InstallUnitsFlags, cmd: Command) => {
      const { DEFAULT_SYSUSERS_DIR, DEFAULT_UNIT_DIR, nextSteps } = await import("../systemd/units.js");
      const { defaultBin, installUnits, InstallError } = await import("../systemd/install.js");
      const prefixGiven = cmd.getOptionValueSource("prefix") === "cli";
      const unitDir = flags.prefix ?? DEFAULT_UNIT_DIR;
      const sysusersDir = flags.sysusersDir ?? (prefixGiven ? unitDir : DEFAULT_SYSUSERS_DIR);
      let r;
      try {
        r = installUnits({
          unitDir,
          sysusersDir,
          bin: flags.bin ?? defaultBin(),
          force: flags.force === true,
          dryRun: flags.dryRun === true,
        });
      } catch (e) {
        if (e instanceof InstallError) throw new CliError(`install-units: ${e.message}`, EXIT.USAGE);
        throw e;
      }
      for (const w of r.warnings) process.stderr.write(`dromedary: warning: ${w}\n`);
      const conflicts = r.files.filter((f) => f.action.kind === "conflict");
      if (conflicts.length > 0) {
        for (const f of conflicts) {
          if (f.action.kind === "conflict") process.stderr.write(`dromedary: install-units: ${f.path}: ${f.action.why}; kept\n`);
        }
        throw new CliError(
          `install-units: nothing written (--force replaces ${conflicts.length === 1 ? "that file" : "those files"}; --dry-run shows the plan)`,
          EXIT.USAGE,
        );
      }
      const verbs = r.written ? VERB : DRY_VERB;
      const out: string[] = [];
      for (const f of r.files) if (f.action.kind !== "conflict") out.push(`${verbs[f.action.kind]} ${f.path}`);
      out.push(`ExecStart= runs ${r.exec}`);
      out.push(r.written ? "next, as root:" : "dry run, nothing written; after installing, as root:");
      for (const l of nextSteps({ unitDir, sysusersFile: r.sysusersFile, defaultDir: unitDir === DEFAULT_UNIT_DIR })) out.push(`  ${l}`);
      process.stdout.write(`${out.join("\n")}\n`);
    });
}
