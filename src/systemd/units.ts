// systemd units of the daemons (packaging/systemd/): what `dromedary install-units` writes,
// decided without touching the disk. The shell is install.ts.
//
// A written file starts with a header naming its origin and the SHA-256 of what follows, so a
// later install (e.g. after an upgrade) can tell a file it wrote and nobody changed — safe to
// replace — from one an operator edited, which is kept unless --force.
import { createHash } from "node:crypto";

/** The ExecStart binary the shipped templates name (npm's global install with prefix /usr/local). */
export const TEMPLATE_BIN = "/usr/local/bin/dromedary";

/** Where units go by default, and the sysusers.d(5) file for the `dromedary` user. */
export const DEFAULT_UNIT_DIR = "/etc/systemd/system";
export const DEFAULT_SYSUSERS_DIR = "/etc/sysusers.d";
export const SYSUSERS_TEMPLATE = "dromedary.sysusers";
export const SYSUSERS_FILE = "dromedary.conf";

/**
 * The directories of systemd's default PATH for services (systemd.exec(5), "Environment
 * variables in spawned processes"): `#!/usr/bin/env node` finds node only there.
 */
export const SYSTEMD_DEFAULT_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] as const;

/** The units that are started by default (dromedary-endpoint and dromedary-influx need configuration). */
const CORE_UNITS = ["dromedary-console", "dromedary-hostd", "dromedary-stats"] as const;

const HEADER = "# Written by dromedary install-units";
const CHECKSUM = /^# sha256 of the lines below: ([0-9a-f]{64})\n/m;

const sha256 = (s: string): string => createHash("sha256").update(s, "utf8").digest("hex");

/**
 * What ExecStart= runs: the dromedary binary itself when its `#!/usr/bin/env node` finds node
 * on systemd's PATH, else node by its absolute path followed by the binary.
 */
export function execCommand(bin: string, nodeOnSystemdPath: boolean, nodePath: string): string {
  return nodeOnSystemdPath ? bin : `${nodePath} ${bin}`;
}

/** systemd's command-line quoting is needed for paths with spaces or specifiers; refuse those. */
export function checkUnitPath(p: string, what: string): string | null {
  if (!p.startsWith("/")) return `${what} must be an absolute path, got '${p}'`;
  if (/[\s"'\\%$;]/.test(p)) return `${what} '${p}' contains a space, quote, backslash, %, $ or ; (not usable in a unit file as is)`;
  return null;
}

/**
 * A template made ready to install: the ExecStart=/ExecStartPre= programs named
 * TEMPLATE_BIN become `exec`, and the header with the checksum goes first.
 */
export function renderUnit(name: string, template: string, exec: string, version: string): string {
  const body = template
    .split("\n")
    .map((line) => {
      const m = /^(ExecStart(?:Pre|Post)?=[-+!@:]*)(\S+)(.*)$/.exec(line);
      return m && m[2] === TEMPLATE_BIN ? `${m[1]}${exec}${m[3]}` : line;
    })
    .join("\n");
  return withHeader(name, body, version);
}

export function withHeader(name: string, body: string, version: string): string {
  return (
    `${HEADER} ${version} from packaging/systemd/${name}.\n` +
    (name.endsWith(".service") || name.endsWith(".socket")
      ? "# Change settings with `systemctl edit` (a drop-in survives the next install-units); an edited\n# copy of this file is kept by install-units unless --force.\n"
      : "# An edited copy of this file is kept by install-units unless --force.\n") +
    `# sha256 of the lines below: ${sha256(body)}\n` +
    body
  );
}

/** True when `content` is a file install-units wrote and nobody changed since. */
export function untouchedSinceWritten(content: string): boolean {
  const m = CHECKSUM.exec(content);
  if (!m || !content.startsWith(HEADER)) return false;
  return sha256(content.slice(m.index + m[0].length)) === m[1];
}

type Action =
  | { readonly kind: "create" }
  | { readonly kind: "unchanged" }
  /** replaces a file install-units wrote that nobody edited */
  | { readonly kind: "update" }
  /** an edited or foreign file replaced because of --force */
  | { readonly kind: "overwrite" }
  /** an edited or foreign file left alone (no --force): the whole install is refused */
  | { readonly kind: "conflict"; readonly why: string };

export interface PlannedFile {
  readonly path: string;
  readonly content: string;
  readonly action: Action;
}

/** What to do with each file, given what is on disk now (null: no such file). */
export function planFiles(files: readonly { path: string; content: string; existing: string | null }[], force: boolean): PlannedFile[] {
  return files.map(({ path, content, existing }) => {
    let action: Action;
    if (existing === null) action = { kind: "create" };
    else if (existing === content) action = { kind: "unchanged" };
    else if (untouchedSinceWritten(existing)) action = { kind: "update" };
    else if (force) action = { kind: "overwrite" };
    else action = { kind: "conflict", why: existing.startsWith(HEADER) ? "changed since install-units wrote it" : "not written by install-units" };
    return { path, content, action };
  });
}

/** The commands an operator runs next, as shell lines with comments. */
export function nextSteps(opts: { unitDir: string; sysusersFile: string; defaultDir: boolean }): string[] {
  const units = (names: readonly string[], kind: string) => names.map((n) => `${n}.${kind}`).join(" ");
  const lines: string[] = [];
  if (!opts.defaultDir) lines.push(`# the units are in ${opts.unitDir}: copy them to ${DEFAULT_UNIT_DIR} (or systemctl link them) first`);
  lines.push(
    `systemd-sysusers ${opts.sysusersFile}   # the user and group dromedary`,
    "systemctl daemon-reload",
    `systemctl enable --now ${units(CORE_UNITS, "socket")}`,
    `systemctl enable --now ${units(CORE_UNITS, "service")}`,
    "# optional: the TLS endpoint (CA, CERT, KEY: /etc/dromedary/{cacert.pem,server.pem,server.key}",
    "# or /etc/dromedary/endpoint.env) and the Influx exporter (INFLUX=IP[:PORT] in /etc/dromedary/influx.env)",
    `systemctl enable --now ${units(["dromedary-endpoint"], "socket")} ${units(["dromedary-endpoint"], "service")}`,
    `systemctl enable --now ${units(["dromedary-influx"], "service")}`,
  );
  return lines;
}
