// Sets kept as sorted, duplicate-free arrays (policy.md: CPU ids and bridges are sets). Pure.
import { compareLabel } from "./name.js";

/** Ascending, duplicate-free copy of a set of CPU ids. */
export function sortedIds(ids: Iterable<number>): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** Bytewise-ascending, duplicate-free copy of a set of strings. */
export function sortedStrings(xs: Iterable<string>): string[] {
  return [...new Set(xs)].sort(compareLabel);
}
