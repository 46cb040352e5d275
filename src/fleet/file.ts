// The fleet file (`--fleet FILE`): a small JSON document listing hosts, each with its TLS
// endpoint and the certificates to reach it. Paths are relative to the file.
//
//   {
//     "builder": "https://builds.robur.coop",          (optional; --http-host overrides it)
//     "hosts": [
//       { "name": "a", "destination": "10.0.0.1:1025", "server-ca": "cacert.pem",
//         "ca": "ca.pem", "ca-key": "ca.key", "groups": ["web"] }
//     ]
//   }
//
// Strict: unknown keys, duplicate host names and wrong types are errors (a typo must not
// silently leave a host out of an update).

import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { KEY_TYPES, type KeyType } from "../ca/keys.js";

const MAX_FLEET_FILE_BYTES = 1 << 20;
const MAX_HOSTS = 10_000;

export interface FleetHost {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** absolute paths */
  readonly serverCa: string;
  readonly ca: string;
  readonly caKey: string;
  readonly keyType: KeyType;
  readonly groups: readonly string[];
}

export interface Fleet {
  readonly file: string;
  readonly builder?: string;
  readonly hosts: readonly FleetHost[];
}

export class FleetFileError extends Error {}

/**
 * How `destination` and `builder` are read: the command line's own parsers (cli/flags.ts
 * parseDestination, parseHttpHost), so a fleet file accepts exactly what the flags do.
 */
export interface FleetParsers {
  readonly destination: (s: string) => { host: string; port: number };
  readonly httpHost: (s: string) => string;
}

const HOST_KEYS = new Set(["name", "destination", "server-ca", "ca", "ca-key", "groups", "key-type"]);
const TOP_KEYS = new Set(["builder", "hosts"]);
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Parse the fleet file's text; `file` gives the directory relative paths are resolved against. */
export function parseFleet(text: string, file: string, parse: FleetParsers): Fleet {
  const where = path.basename(file);
  const fail = (msg: string): never => {
    throw new FleetFileError(`${where}: ${msg}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return fail(`not JSON (${(e as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return fail('expected an object with "hosts"');
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) if (!TOP_KEYS.has(k)) fail(`unknown key "${k}" (expected: ${[...TOP_KEYS].join(", ")})`);
  let builder: string | undefined;
  if (top["builder"] !== undefined) {
    if (typeof top["builder"] !== "string") fail('"builder" must be a string');
    try {
      builder = parse.httpHost(top["builder"] as string);
    } catch (e) {
      fail(`"builder": ${(e as Error).message}`);
    }
  }
  const hostsV = top["hosts"];
  if (!Array.isArray(hostsV)) return fail('"hosts" must be a list');
  if (hostsV.length > MAX_HOSTS) fail(`more than ${MAX_HOSTS} hosts`);
  const dir = path.dirname(path.resolve(file));
  const seen = new Set<string>();
  const hosts = hostsV.map((h, i): FleetHost => {
    const at = `hosts[${i}]`;
    if (typeof h !== "object" || h === null || Array.isArray(h)) return fail(`${at} must be an object`);
    const o = h as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!HOST_KEYS.has(k)) fail(`${at}: unknown key "${k}" (expected: ${[...HOST_KEYS].join(", ")})`);
    const s = (k: string): string => {
      const v = o[k];
      if (typeof v !== "string" || v === "") return fail(`${at}: "${k}" must be a non-empty string`);
      return v;
    };
    const name = s("name");
    if (!NAME_RE.test(name)) fail(`${at}: host name "${name}" (letters, digits, . _ -, at most 63)`);
    if (seen.has(name)) fail(`${at}: host name "${name}" appears twice`);
    seen.add(name);
    let dest;
    try {
      dest = parse.destination(s("destination"));
    } catch (e) {
      return fail(`${at} (${name}): destination: ${(e as Error).message}`);
    }
    if (dest.host === "-") fail(`${at} (${name}): destination "-" is not a host`);
    const groupsV = o["groups"] ?? [];
    if (!Array.isArray(groupsV) || !groupsV.every((g) => typeof g === "string" && NAME_RE.test(g))) {
      fail(`${at} (${name}): "groups" must be a list of names`);
    }
    const kt = o["key-type"] ?? "ed25519";
    if (typeof kt !== "string" || !(KEY_TYPES as readonly string[]).includes(kt)) fail(`${at} (${name}): "key-type" must be one of ${KEY_TYPES.join(", ")}`);
    return {
      name,
      host: dest.host,
      port: dest.port,
      serverCa: path.resolve(dir, s("server-ca")),
      ca: path.resolve(dir, s("ca")),
      caKey: path.resolve(dir, s("ca-key")),
      keyType: kt as KeyType,
      groups: groupsV as string[],
    };
  });
  return { file, ...(builder !== undefined ? { builder } : {}), hosts };
}

export async function readFleet(file: string, parse: FleetParsers): Promise<Fleet> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new FleetFileError(`--fleet: no '${file}' file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (size > MAX_FLEET_FILE_BYTES) throw new FleetFileError(`--fleet: ${file} is larger than ${MAX_FLEET_FILE_BYTES} bytes`);
  return parseFleet(await readFile(file, "utf8"), file, parse);
}

/** The hosts of a group (all without one); an error for a group no host has. */
export function selectHosts(f: Fleet, group: string | undefined): readonly FleetHost[] {
  if (group === undefined) return f.hosts;
  const hs = f.hosts.filter((h) => h.groups.includes(group));
  if (hs.length === 0) throw new FleetFileError(`no host in group "${group}"`);
  return hs;
}
