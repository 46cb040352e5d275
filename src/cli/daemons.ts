import type { Command } from "commander";

export function registerDaemonCommands(program: Command): void {
  void program;
}
