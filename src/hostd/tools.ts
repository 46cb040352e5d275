// Running host tools (ip, mkfifo, ...) without a shell, and errno texts.
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

const MESSAGES: Record<string, string> = {
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EEXIST: "File exists",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  ENXIO: "No such device or address",
  ENOSPC: "No space left on device",
  EROFS: "Read-only file system",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  EIO: "Input/output error",
  EBUSY: "Device or resource busy",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EMFILE: "Too many open files",
};

/** A C-library-like error text (strerror) for a Node errno error. */
export function strerror(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code !== undefined && MESSAGES[code] !== undefined) return MESSAGES[code]!;
  const message = (e as { message?: unknown } | null)?.message;
  return code ?? (typeof message === "string" ? message : String(e));
}
