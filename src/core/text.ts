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
