// The rollback store: before `update` touches a unikernel, the client fetches the running
// image (`get`) and keeps it with the configuration it ran with — one previous image per
// host and unikernel — so that a failed health check, or `dromedary rollback NAME` later,
// can force-create it again. Nothing of this is on the wire or in hostd.
//
// Layout (docs/operator.md "Rollback"): <dir>/<host>/<name>.image and <name>.json, written
// to a temporary name, fsynced and renamed (the image first: a record always has its image).
// <dir> is --state-dir, else $DROMEDARY_STATE_DIR, else $XDG_STATE_HOME/dromedary/previous,
// else ~/.local/state/dromedary/previous.

import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { UnikernelConfig, UnikernelInfo } from "../commands/types.js";
import { hex } from "../core/hex.js";
import { nameToString, type Name } from "../core/name.js";

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env["DROMEDARY_STATE_DIR"]) return env["DROMEDARY_STATE_DIR"];
  const base = env["XDG_STATE_HOME"] || path.join(os.homedir(), ".local", "state");
  return path.join(base, "dromedary", "previous");
}

/** The configuration of a running unikernel, without its image (what force-create needs besides it). */
export interface KeptConfig {
  readonly failBehaviour: { kind: "quit" } | { kind: "restart"; exitCodes: number[] };
  readonly startup?: number;
  readonly cpuids: number[];
  readonly memory: number;
  readonly blockDevices: { name: string; device?: string; sectorSize?: number }[];
  readonly bridges: { netif: string; bridge?: string; mac?: string }[];
  /** base64 */
  readonly argv?: string[];
  readonly numcpus: number;
  readonly linuxBootPartition?: string;
}

export interface RollbackRecord {
  readonly version: 1;
  readonly host: string;
  readonly name: string;
  /** when the previous image was saved (ISO 8601) */
  readonly savedAt: string;
  /** SHA-256 (hex) of the kept image */
  readonly previousDigest: string;
  /** SHA-256 of the image the update deployed; null until the force-create succeeded */
  readonly deployedDigest: string | null;
  readonly previousBuild?: { job: string; build: string };
  readonly config: KeptConfig;
}

export class StoreError extends Error {}

/** File-name safe: the host label and the name text. */
const safe = (s: string): string => {
  const t = s.replace(/[^A-Za-z0-9._:-]/g, "_").replace(/^\.+/, "_");
  return t.length > 0 && t.length <= 100 ? t : `h-${createHash("sha256").update(s).digest("hex").slice(0, 32)}`;
};

function keptConfig(info: UnikernelInfo): KeptConfig {
  return {
    failBehaviour: info.failBehaviour.kind === "quit" ? { kind: "quit" } : { kind: "restart", exitCodes: [...info.failBehaviour.exitCodes] },
    ...(info.startup !== undefined ? { startup: info.startup } : {}),
    cpuids: [...info.cpuids],
    memory: info.memory,
    blockDevices: info.blockDevices.map((b) => ({
      name: b.unikernelDevice,
      ...(b.hostDevice !== undefined ? { device: b.hostDevice } : {}),
      ...(b.sectorSize !== undefined ? { sectorSize: b.sectorSize } : {}),
    })),
    bridges: info.bridges.map((n) => ({
      netif: n.unikernelDevice,
      ...(n.hostDevice !== undefined ? { bridge: n.hostDevice } : {}),
      ...(n.mac !== undefined ? { mac: hex(n.mac) } : {}),
    })),
    ...(info.argv !== undefined ? { argv: info.argv.map((a) => Buffer.from(a).toString("base64")) } : {}),
    numcpus: info.numcpus,
    ...(info.linuxBootPartition !== undefined ? { linuxBootPartition: info.linuxBootPartition } : {}),
  };
}

/**
 * The force-create configuration: the image and everything else of the running unikernel
 * (cli.md §5 step 9: add_name TRUE, block sector sizes explicit).
 */
export function configWith(k: KeptConfig, image: Uint8Array, compress: (b: Uint8Array) => Uint8Array | null): UnikernelConfig {
  const c = compress(image);
  return {
    typ: "solo5",
    compressed: c !== null,
    image: c ?? image,
    failBehaviour: k.failBehaviour,
    ...(k.startup !== undefined ? { startup: k.startup } : {}),
    addName: true,
    cpuids: k.cpuids,
    memory: k.memory,
    blockDevices: k.blockDevices.map((b) => ({ name: b.name, ...(b.device !== undefined ? { device: b.device } : {}), sectorSize: b.sectorSize ?? 512 })),
    bridges: k.bridges.map((n) => ({
      netif: n.netif,
      ...(n.bridge !== undefined ? { bridge: n.bridge } : {}),
      ...(n.mac !== undefined ? { mac: Uint8Array.from(Buffer.from(n.mac, "hex")) } : {}),
    })),
    ...(k.argv !== undefined ? { argv: k.argv.map((a) => new Uint8Array(Buffer.from(a, "base64"))) } : {}),
    numcpus: k.numcpus,
    ...(k.linuxBootPartition !== undefined ? { linuxBootPartition: k.linuxBootPartition } : {}),
  };
}

function checkRecord(v: unknown, file: string): RollbackRecord {
  const r = v as RollbackRecord;
  const ok =
    typeof r === "object" &&
    r !== null &&
    r.version === 1 &&
    typeof r.host === "string" &&
    typeof r.name === "string" &&
    typeof r.savedAt === "string" &&
    typeof r.previousDigest === "string" &&
    /^[0-9a-f]{64}$/.test(r.previousDigest) &&
    (r.deployedDigest === null || (typeof r.deployedDigest === "string" && /^[0-9a-f]{64}$/.test(r.deployedDigest))) &&
    typeof r.config === "object" &&
    r.config !== null &&
    Array.isArray(r.config.cpuids) &&
    typeof r.config.memory === "number" &&
    Array.isArray(r.config.blockDevices) &&
    Array.isArray(r.config.bridges) &&
    typeof r.config.numcpus === "number" &&
    typeof r.config.failBehaviour === "object";
  if (!ok) throw new StoreError(`${file}: not a rollback record`);
  return r;
}

async function writeDurably(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class RollbackStore {
  constructor(readonly dir: string) {}

  private files(host: string, name: Name): { dir: string; image: string; record: string } {
    const d = path.join(this.dir, safe(host));
    const n = safe(nameToString(name));
    return { dir: d, image: path.join(d, `${n}.image`), record: path.join(d, `${n}.json`) };
  }

  /** Keep `image` (the running one) with its configuration; replaces what was kept before. */
  async save(host: string, name: Name, info: UnikernelInfo, image: Uint8Array, previousBuild?: { job: string; build: string }): Promise<RollbackRecord> {
    const digest = createHash("sha256").update(image).digest("hex");
    if (digest !== hex(info.digest)) throw new StoreError(`the image fetched with get has SHA-256 ${digest}, the daemon reports ${hex(info.digest)}`);
    const f = this.files(host, name);
    await mkdir(f.dir, { recursive: true, mode: 0o700 });
    const record: RollbackRecord = {
      version: 1,
      host,
      name: nameToString(name),
      savedAt: new Date().toISOString(),
      previousDigest: digest,
      deployedDigest: null,
      ...(previousBuild ? { previousBuild } : {}),
      config: keptConfig(info),
    };
    await rm(f.record, { force: true }); // never a record with another record's image
    await writeDurably(f.image, image);
    await writeDurably(f.record, `${JSON.stringify(record, null, 1)}\n`);
    await syncDir(f.dir);
    return record;
  }

  /** Note the image the update deployed (rollback later checks it is still the one running). */
  async deployed(host: string, name: Name, digest: string): Promise<void> {
    const f = this.files(host, name);
    const r = await this.load(host, name);
    if (r === null) throw new StoreError(`no rollback record for ${nameToString(name)} on ${host}`);
    await writeDurably(f.record, `${JSON.stringify({ ...r.record, deployedDigest: digest }, null, 1)}\n`);
    await syncDir(f.dir);
  }

  /** The kept record and image, null when there is none; StoreError when it does not check out. */
  async load(host: string, name: Name): Promise<{ record: RollbackRecord; image: Uint8Array } | null> {
    const f = this.files(host, name);
    let text: string;
    try {
      text = await readFile(f.record, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new StoreError(`${f.record}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let record: RollbackRecord;
    try {
      record = checkRecord(JSON.parse(text), f.record);
    } catch (e) {
      throw e instanceof StoreError ? e : new StoreError(`${f.record}: not JSON`);
    }
    let image: Uint8Array;
    try {
      image = new Uint8Array(await readFile(f.image));
    } catch (e) {
      throw new StoreError(`${f.image}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (createHash("sha256").update(image).digest("hex") !== record.previousDigest) throw new StoreError(`${f.image}: does not match its record's SHA-256`);
    return { record, image };
  }

  /** Where the files of one unikernel are (for messages and docs). */
  where(host: string, name: Name): string {
    return this.files(host, name).record;
  }
}
