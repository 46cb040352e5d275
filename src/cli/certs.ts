import type { Command } from "commander";

export function registerCertCommands(program: Command): void {
  void program;
}
