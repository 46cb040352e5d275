// Running host tools (ip, mkfifo, ...) without a shell.
import { strerror } from "./errno.js";
import { launcher } from "./launcher.js";

export interface ToolResult {
  /** exit code, or null when the program could not be run at all / was killed */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a tool (through hostd's process launcher, launcher.ts). */
export async function execTool(file: string, args: readonly string[], timeoutMs = 30_000): Promise<ToolResult> {
  const r = await launcher().execFile(file, args, { timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  if (r.error === null) return { code: 0, stdout: r.stdout, stderr: r.stderr };
  const code = r.error.code;
  return { code, stdout: r.stdout, stderr: r.stderr || (code === null ? strerror({ code: r.error.errno ?? undefined, message: r.error.message }) : "") };
}
