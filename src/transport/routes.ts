// The command -> daemon socket routing table (Vmm_commands.endpoint, daemon.md §1): which
// local daemon serves a command, how it answers, and where its socket lives. The one table
// for the local client, the remote client and the TLS endpoint. Pure.

import path from "node:path";
import type { Command } from "../commands/types.js";

export type SocketKind = "vmmd" | "console" | "stat";
/** How many replies a command gets (cli.md §3). */
export type ReplyMode = "single" | "read" | "dump";

/** Vmm_commands.endpoint: which daemon serves a command and how it answers. */
export function endpointOf(cmd: Command): { socket: SocketKind; mode: ReplyMode } {
  switch (cmd.kind) {
    case "block-dump":
      return { socket: "vmmd", mode: "dump" };
    case "stats-subscribe":
      return { socket: "stat", mode: "read" };
    case "stats-add":
    case "stats-remove":
    case "stats-initial":
      return { socket: "stat", mode: "single" };
    case "console-list-inactive":
      return { socket: "console", mode: "single" };
    case "console-add":
    case "console-subscribe":
      return { socket: "console", mode: "read" };
    default:
      // every unikernel, policy and (other) block command
      return { socket: "vmmd", mode: "single" };
  }
}

const SOCKET_FILE: Record<SocketKind, string> = { vmmd: "vmmd.sock", console: "console.sock", stat: "stat.sock" };

/** `<tmpdir>/util`: the daemons' sockets. */
export const socketDir = (tmpdir: string): string => path.join(tmpdir, "util");

/** `<tmpdir>/util/{vmmd,console,stat}.sock` (note: `stat`, not `stats`). */
export const socketPath = (tmpdir: string, kind: SocketKind): string => path.join(socketDir(tmpdir), SOCKET_FILE[kind]);
