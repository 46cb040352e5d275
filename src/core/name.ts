// Albatross labels, paths and names (wire.md §2). Pure.

export type Label = string;
/** A path is a list of labels; the empty list is the root path. */
export type Path = readonly Label[];

/** A name is a path plus an optional label (no label = "the name is a path"). */
export interface Name {
  readonly path: Path;
  readonly label: Label | null;
}

export class NameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NameError";
  }
}

export const LABEL_ERROR = "invalid label (only [a-zA-Z0-9-.] allowed, 1 to 63 chars)";

const LABEL_RE = /^[a-zA-Z0-9.][a-zA-Z0-9.-]{0,62}$/;

export function isLabel(s: string): boolean {
  return LABEL_RE.test(s);
}

/** Validate and lower-case a label. */
export function parseLabel(s: string): Label {
  if (!isLabel(s)) throw new NameError(LABEL_ERROR);
  return s.toLowerCase();
}

export const rootPath: Path = Object.freeze([]);
export const rootName: Name = Object.freeze({ path: rootPath, label: null });

export function parsePath(s: string): Path {
  const parts = s.split(":");
  if (parts[0] === "") parts.shift();
  try {
    return parts.map(parseLabel);
  } catch (e) {
    throw new NameError(`invalid path: ${(e as Error).message}`);
  }
}

export function pathToString(p: Path): string {
  return p.join(":");
}

export function parseName(s: string): Name {
  if (s === "") throw new NameError("empty name");
  if (s.endsWith(":")) return { path: parsePath(s.slice(0, -1)), label: null };
  let labels: Path;
  try {
    labels = parsePath(s);
  } catch {
    throw new NameError("invalid name");
  }
  if (labels.length === 0) throw new NameError("invalid name");
  return { path: labels.slice(0, -1), label: labels[labels.length - 1]! };
}

export function nameToString(n: Name): string {
  return `${pathToString(n.path)}:${n.label ?? ""}`;
}

/** Upstream's printer: `[unikernel: <path-text>:<label>]`. */
export function nameDisplay(n: Name): string {
  return `[unikernel: ${nameToString(n)}]`;
}

export const makeName = (path: Path, label: Label | null = null): Name => ({ path, label });
export const pathName = (path: Path): Name => ({ path, label: null });

/** The label list used as trie key: path labels followed by the label, if any. */
export function nameLabels(n: Name): Label[] {
  return n.label === null ? [...n.path] : [...n.path, n.label];
}

export function appendLabel(p: Path, l: Label): Path {
  return [...p, parseLabel(l)];
}

export function parentPath(p: Path): Path {
  return p.slice(0, -1);
}

export function isPrefix(prefix: readonly Label[], of: readonly Label[]): boolean {
  if (prefix.length > of.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== of[i]) return false;
  return true;
}

/** Drop `prefix` from a name (N8/N9). Throws if it is not a prefix of the name's path. */
export function dropPrefix(prefix: Path, n: Name): Name {
  if (!isPrefix(prefix, n.path)) throw new NameError(`${pathToString(prefix)} is not a prefix of ${nameToString(n)}`);
  return { path: n.path.slice(prefix.length), label: n.label };
}

/** Drop the whole path of a name (N10/N11). */
export const dropPath = (n: Name): Name => ({ path: rootPath, label: n.label });

export function nameEquals(a: Name, b: Name): boolean {
  return a.label === b.label && a.path.length === b.path.length && isPrefix(a.path, b.path);
}

/**
 * Bytewise (UTF-8) comparison of labels, as OCaml's String.compare. Validated labels are
 * ASCII, where this is plain `<`; but lookup keys may be unvalidated (block device names
 * taken from a unikernel config, see resources.ts `blockName`), and for those JS's UTF-16
 * code-unit order differs from UTF-8 byte order (surrogates vs U+E000..U+FFFF). Code-point
 * order equals UTF-8 byte order, so compare code points.
 */
export function compareLabel(a: Label, b: Label): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only when both units are in the surrogate/private-use band can the two orders differ.
    if (x >= 0xd800 && y >= 0xd800) {
      const cx = a.codePointAt(i)!;
      const cy = b.codePointAt(i)!;
      if (cx !== cy) return cx < cy ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** Path equality (label-wise). */
export function pathEquals(a: Path, b: Path): boolean {
  return a.length === b.length && isPrefix(a, b);
}

/** Label-list comparison (pre-order of a trie with ascending children). */
export function compareLabels(a: readonly Label[], b: readonly Label[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareLabel(a[i]!, b[i]!);
    if (c) return c;
  }
  return a.length - b.length;
}

/** File-name safety: a name text never contains '/', and '..' cannot form a path component. */
export function nameFileComponent(n: Name): string {
  const s = nameToString(n);
  // Labels only hold [a-z0-9.-] and ':' separates them, so '/' can't occur; a whole text of
  // '.' or '..' is impossible because the text always contains ':'.
  return s;
}
