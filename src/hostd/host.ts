// Host discovery at start (daemon.md §2.2 steps 3–4, policy.md §12).
import { promises as fsp } from "node:fs";
import { cpus, totalmem } from "node:os";
import type { Policy } from "../commands/types.js";
import { execTool } from "./tools.js";
import { whichInPath } from "../solo5/tender.js";
import { blockDir } from "./blockstore.js";

/** Root policy `unikernels` (2^62 - 1). */
const ROOT_UNIKERNELS = (1n << 62n) - 1n;

/** §2.2 step 3: the host commands hostd runs; a missing one aborts the start. */
const REQUIRED_COMMANDS = ["uname", "ip", "taskset", "mkfifo"] as const;

export async function missingCommands(): Promise<string[]> {
  const missing: string[] = [];
  for (const c of REQUIRED_COMMANDS) if ((await whichInPath(c)) === null) missing.push(c);
  return missing;
}

/** Each line of `ip -o link show type bridge` is `<idx>: <name>: ...`; the trimmed second field. */
export function parseBridgeList(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 3) continue;
    const name = fields[1]!.trim();
    if (name !== "") out.push(name);
  }
  return out;
}

async function discoverBridges(): Promise<string[]> {
  const r = await execTool("ip", ["-o", "link", "show", "type", "bridge"]);
  if (r.code !== 0) throw new Error(`ip -o link show type bridge failed: ${r.stderr.trim()}`);
  return parseBridgeList(r.stdout);
}

/**
 * The root policy: cpuids 0..nproc-1, physical memory in MB, the file system holding
 * <dbdir>/block in MB (the directory must exist), all bridges, unikernels 2^62-1.
 * Throws `root policy failed: <reason>`.
 */
export async function discoverRootPolicy(dbdir: string): Promise<Policy> {
  try {
    const n = Math.max(1, cpus().length);
    const memory = Math.floor(totalmem() / (1 << 20));
    const fs = await fsp.statfs(blockDir(dbdir));
    const block = Math.floor((fs.blocks * fs.bsize) / (1 << 20));
    const bridges = [...new Set(await discoverBridges())].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { unikernels: ROOT_UNIKERNELS, cpuids: Array.from({ length: n }, (_, i) => i), memory, block, bridges };
  } catch (e) {
    throw new Error(`root policy failed: ${(e as Error).message}`);
  }
}
