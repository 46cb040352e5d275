// Running host tools (ip, mkfifo, ...) without a shell, and errno texts.
import { execFile } from "node:child_process";

export interface ToolResult {
  /** exit code, or null when the program could not be run at all / was killed */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function execTool(file: string, args: readonly string[], timeoutMs = 30_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error === null) resolve({ code: 0, stdout, stderr });
      else {
        const code = typeof (error as { code?: unknown }).code === "number" ? ((error as { code: number }).code) : null;
        resolve({ code, stdout: stdout ?? "", stderr: stderr || (code === null ? strerror(error) : "") });
      }
    });
  });
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
  return code ?? (e instanceof Error ? e.message : String(e));
}
