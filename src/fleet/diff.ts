// What changes between two builds (pure): from builder-web's compare JSON
// (`GET /compare/<left>/<right>` with `Accept: application/json`, robur-coop/builder-web
// lib/views.ml compare_builds_json), or, where the builder has none, from both builds'
// `opam-switch` exports. Rendered as short text lines for `update` / `fleet update`.

export interface PackageVersion {
  readonly name: string;
  readonly version: string;
}

interface VersionChange {
  readonly name: string;
  readonly from: string;
  readonly to: string;
}

/** The changes from the running build (left) to the new one (right). */
export interface BuildDiff {
  /** where it came from: the builder's comparison or our own of the opam-switch exports */
  readonly source: "compare" | "opam-switch";
  readonly added: readonly PackageVersion[];
  readonly removed: readonly PackageVersion[];
  readonly changed: readonly VersionChange[];
  /** opam packages with the same version whose opam file differs (not effectively equal) */
  readonly rebuilt: readonly string[];
  /** build environment (variables) */
  readonly env: KeyValueDiff;
  /** system packages of the build host */
  readonly system: KeyValueDiff;
}

interface KeyValueDiff {
  readonly added: readonly PackageVersion[];
  readonly removed: readonly PackageVersion[];
  readonly changed: readonly VersionChange[];
}

const EMPTY_KV: KeyValueDiff = { added: [], removed: [], changed: [] };

export class DiffError extends Error {}

const MAX_ENTRIES = 100_000;

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new DiffError(`compare JSON: ${what} is not an object`);
  return v as Record<string, unknown>;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new DiffError(`compare JSON: ${what} is not a list`);
  if (v.length > MAX_ENTRIES) throw new DiffError(`compare JSON: ${what} has more than ${MAX_ENTRIES} entries`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== "string") throw new DiffError(`compare JSON: ${what} is not a string`);
  return v;
}

const nameVersions = (v: unknown, what: string): PackageVersion[] =>
  arr(v, what).map((e, i) => {
    const o = obj(e, `${what}[${i}]`);
    return { name: str(o["name"], `${what}[${i}].name`), version: str(o["version"], `${what}[${i}].version`) };
  });

const versionChanges = (v: unknown, what: string): VersionChange[] =>
  arr(v, what).map((e, i) => {
    const o = obj(e, `${what}[${i}]`);
    return {
      name: str(o["name"], `${what}[${i}].name`),
      from: str(o["version_left"], `${what}[${i}].version_left`),
      to: str(o["version_right"], `${what}[${i}].version_right`),
    };
  });

/**
 * builder-web's env_diff / package_diff (lib/utils.ml diff_map_to_json): note that its
 * `left_packages` are those only in the right (newer) build — the ones added — and
 * `right_packages` those only in the left build (removed), as its HTML view shows them.
 */
function keyValueDiff(v: unknown, what: string): KeyValueDiff {
  if (v === undefined) return EMPTY_KV;
  const o = obj(v, what);
  return {
    added: nameVersions(o["left_packages"] ?? [], `${what}.left_packages`),
    removed: nameVersions(o["right_packages"] ?? [], `${what}.right_packages`),
    changed: versionChanges(o["different_versions"] ?? [], `${what}.different_versions`),
  };
}

/** The compare JSON (already parsed) as a BuildDiff; DiffError when its shape is not builder-web's. */
export function diffFromCompare(json: unknown): BuildDiff {
  const top = obj(json, "the reply");
  const od = obj(top["opam_diff"], "opam_diff");
  const rebuilt = arr(od["opam_diff"] ?? [], "opam_diff.opam_diff")
    .map((e, i) => obj(e, `opam_diff.opam_diff[${i}]`))
    .filter((o) => o["effectively_equal"] !== true)
    .map((o, i) => str(o["package_version"], `opam_diff.opam_diff[${i}].package_version`));
  return {
    source: "compare",
    added: nameVersions(od["only_in_right"] ?? [], "opam_diff.only_in_right"),
    removed: nameVersions(od["only_in_left"] ?? [], "opam_diff.only_in_left"),
    changed: versionChanges(od["version_diff"] ?? [], "opam_diff.version_diff"),
    rebuilt,
    env: keyValueDiff(top["env_diff"], "env_diff"),
    system: keyValueDiff(top["package_diff"], "package_diff"),
  };
}

/**
 * The `installed: [...]` list of an opam switch export (OpamFile.SwitchExport): quoted
 * `name.version` strings. The name is everything before the first dot (opam package names
 * contain no dots).
 */
export function parseOpamSwitch(text: string): PackageVersion[] {
  const m = /^installed\s*:\s*\[([^\]]*)\]/m.exec(text);
  if (!m) throw new DiffError("opam-switch: no 'installed: [...]' list");
  const out: PackageVersion[] = [];
  for (const q of m[1]!.matchAll(/"([^"\\]*)"/g)) {
    const s = q[1]!;
    const dot = s.indexOf(".");
    if (dot <= 0 || dot === s.length - 1) throw new DiffError(`opam-switch: '${s}' is not name.version`);
    out.push({ name: s.slice(0, dot), version: s.slice(dot + 1) });
    if (out.length > MAX_ENTRIES) throw new DiffError(`opam-switch: more than ${MAX_ENTRIES} packages`);
  }
  return out;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Added, removed and changed packages between two package lists. */
function diffPackages(left: readonly PackageVersion[], right: readonly PackageVersion[]): KeyValueDiff {
  const l = new Map(left.map((p) => [p.name, p.version]));
  const r = new Map(right.map((p) => [p.name, p.version]));
  const added = right.filter((p) => !l.has(p.name)).sort(byName);
  const removed = left.filter((p) => !r.has(p.name)).sort(byName);
  const changed = left
    .filter((p) => r.has(p.name) && r.get(p.name) !== p.version)
    .map((p) => ({ name: p.name, from: p.version, to: r.get(p.name)! }))
    .sort(byName);
  return { added, removed, changed };
}

/** The fallback: both builds' opam-switch texts (environment and system packages unknown). */
export function diffFromSwitches(left: string, right: string): BuildDiff {
  const d = diffPackages(parseOpamSwitch(left), parseOpamSwitch(right));
  return { source: "opam-switch", ...d, rebuilt: [], env: EMPTY_KV, system: EMPTY_KV };
}

export const isEmptyDiff = (d: BuildDiff): boolean =>
  [d.added, d.removed, d.changed, d.rebuilt, d.env.added, d.env.removed, d.env.changed, d.system.added, d.system.removed, d.system.changed].every(
    (l) => l.length === 0,
  );

/** Printable characters only (names and versions come from the network). */
const clean = (s: string): string => s.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);

/** The diff as text lines (two-space indented entries under a heading per kind). */
export function renderDiff(d: BuildDiff): string[] {
  const lines: string[] = [];
  const section = (title: string, entries: string[]): void => {
    if (entries.length === 0) return;
    lines.push(`${title} (${entries.length}):`);
    for (const e of entries) lines.push(`  ${e}`);
  };
  const pv = (p: PackageVersion): string => `${clean(p.name)} ${clean(p.version)}`;
  const ch = (c: VersionChange): string => `${clean(c.name)} ${clean(c.from)} -> ${clean(c.to)}`;
  section("opam packages added", d.added.map(pv));
  section("opam packages removed", d.removed.map(pv));
  section("opam packages changed", d.changed.map(ch));
  section("opam packages rebuilt with a different opam file", d.rebuilt.map(clean));
  const kv = (p: PackageVersion): string => `${clean(p.name)}=${clean(p.version)}`;
  section("environment variables added", d.env.added.map(kv));
  section("environment variables removed", d.env.removed.map(kv));
  section("environment variables changed", d.env.changed.map(ch));
  section("system packages added", d.system.added.map(pv));
  section("system packages removed", d.system.removed.map(pv));
  section("system packages changed", d.system.changed.map(ch));
  if (lines.length === 0) lines.push("no package or environment changes");
  return lines;
}
