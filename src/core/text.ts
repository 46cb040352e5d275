// Text for one-line messages.

/** An error's message (or the value as text) on one line: its lines trimmed and joined by spaces. */
export function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .join(" ");
}

/** An error's message (or the value as text) up to its first line break: OpenSSL's errors add lines of detail. */
export function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split("\n")[0]!;
}
