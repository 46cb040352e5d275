import type { Command } from "commander";

export function registerInspectCommands(program: Command): void {
  void program;
}
