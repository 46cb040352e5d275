// Which module registers which top-level command: `dromedary <command>` loads only that
// command's group (main.ts), not the whole program (program.ts) with every group's libraries
// (@peculiar/x509, reflect-metadata, the daemons). A test checks this table against the program.
import { CLIENT_GROUP, type Group } from "./fast.js";

export const GROUPS: readonly Group[] = [
  CLIENT_GROUP,
  { commands: ["update", "rollback", "fleet"], load: async () => (await import("./fleet.js")).registerFleetCommands },
  { commands: ["generate", "sign", "verify"], load: async () => (await import("./certs.js")).registerCertCommands },
  {
    commands: ["hostd", "console-daemon"],
    load: async () => {
      const { registerHostdCommand } = await import("./daemons.js");
      const { registerConsoleDaemonCommand } = await import("./console-daemon.js");
      return (p) => {
        registerHostdCommand(p);
        registerConsoleDaemonCommand(p);
      };
    },
  },
  // the statistics daemons run for months next to every host: only their own modules
  { commands: ["stats-daemon", "influx"], load: async () => (await import("./stats-daemon.js")).registerStatsDaemonCommands },
  { commands: ["inspect", "inspect-dump", "extract-dump"], load: async () => (await import("./inspect.js")).registerInspectCommands },
  { commands: ["endpoint", "certificate"], load: async () => (await import("./endpoint.js")).registerEndpointCommands },
  { commands: ["install-units"], load: async () => (await import("./install-units.js")).registerInstallUnitsCommand },
  { commands: ["up"], load: async () => (await import("./up.js")).registerUpCommand },
  // `help` and `completion` walk the whole program: not here
];

export function groupOf(command: string | undefined): Group | undefined {
  return command === undefined ? undefined : GROUPS.find((g) => g.commands.includes(command));
}
