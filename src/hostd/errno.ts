// errno texts as the C library words them (strerror).

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
