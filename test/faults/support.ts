// Support for the fault-injection tests: hostd (with the console daemon, in a network
// namespace, via the hostd harness) optionally behind the TLS endpoint, a remote client per
// tenant, small tmpfs mounts, and the check that nothing of a unikernel is left behind.
import "reflect-metadata";
import { readdir } from "node:fs/promises";
import { createDeflate } from "node:zlib";
import { join } from "node:path";
import { it } from "node:test";
import type { Command, Wire } from "../../src/commands/types.js";
import { parseName, type Name } from "../../src/core/name.js";
import { runRemote } from "../../src/client/remote.js";
import type { EndpointOptions } from "../../src/endpoint/server.js";
import { netnsAvailable, withNetns } from "../support/netns.js";
import { exists, pidsWith, show, taps, withHostd, type Env } from "../support/hostd.js";
import { dec, keyPem, make, makePki, pem, policy, startEndpoint, tempDir, writeFiles, type Running } from "../support/endpoint.js";

let availability: Promise<string | false> | null = null;
/** false when namespaces (root) are available, else the reason to skip. */
export function skipReason(): Promise<string | false> {
  availability ??= netnsAvailable().then((a) => (a.ok ? false : a.reason));
  return availability;
}

export interface Mounts {
  /** size of a tmpfs mounted as --tmpdir (e.g. "4m") */
  readonly tmpdir?: string;
  /** size of a tmpfs mounted as --dbdir */
  readonly dbdir?: string;
}

/** A test with hostd in a fresh namespace; skipped where namespaces are unavailable. */
export function scenario(
  name: string,
  fn: (env: Env) => Promise<void>,
  opts: { bridges?: string[]; hostdArgs?: string[]; consoleArgs?: string[]; mounts?: Mounts } = {},
): void {
  it(name, async (t) => {
    const skip = await skipReason();
    if (skip !== false) {
      t.skip(skip);
      return;
    }
    await withNetns((ns) => withHostd(ns, fn, opts));
  });
}

/** What is left of unikernel `name` (empty: nothing): tender processes, image, FIFO. */
export async function leftovers(env: Env, name: string): Promise<string[]> {
  const out: string[] = [];
  const image = join(env.tmpdir, `${name}.img`);
  if ((await pidsWith(image)).length > 0) out.push(`tender of ${name}`);
  if (await exists(image)) out.push(image);
  if (await exists(join(env.tmpdir, "fifo", name))) out.push(join(env.tmpdir, "fifo", name));
  return out;
}

/** Every tender, tap, image and FIFO of the test (empty: nothing left). */
export async function allLeftovers(env: Env): Promise<string[]> {
  const out: string[] = [];
  // (hostd and the console daemon carry the bare directory in their command lines)
  for (const p of await pidsWith(`${env.tmpdir}/`)) out.push(`process ${p}`);
  out.push(...(await taps(env.ns)));
  for (const f of await readdir(env.tmpdir)) if (f.endsWith(".img")) out.push(f);
  for (const f of await readdir(join(env.tmpdir, "fifo"))) if (!f.startsWith(".")) out.push(`fifo/${f}`);
  return out;
}

/** Run `p`, failing after `ms` with `what` (the deadline of a request that must be answered). */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export interface RemoteReply {
  readonly code: number;
  readonly texts: string[];
}

function text(w: Wire): string {
  const p = w.payload;
  if (p.kind === "failure") return `failure: ${dec(p.message)}`;
  if (p.kind === "reply") return p.reply.kind === "string" ? `success: ${dec(p.reply.text)}` : `success ${p.reply.kind}`;
  return p.kind;
}

export interface Remote {
  readonly ep: Running;
  /** a command as the tenant `arc` (policy: `unikernels` unikernels, cpu 0, 256 MB) */
  as(command: Command, name?: Name): Promise<RemoteReply>;
}

/** The TLS endpoint in front of `env`'s hostd, and a client for the tenant `arc`. */
export async function withEndpoint<T>(
  env: Env,
  fn: (r: Remote) => Promise<T>,
  opts: { unikernels?: bigint; endpoint?: Partial<EndpointOptions> } = {},
): Promise<T> {
  const pki = await makePki();
  const arc = await make({
    profile: "intermediate",
    cn: "arc",
    issuer: pki.root,
    policy: policy({ unikernels: opts.unikernels ?? 4n, cpuids: [0], memory: 256, block: 16, bridges: ["br0"] }),
    seconds: 3600,
  });
  const dir = tempDir();
  const f = writeFiles(dir, { "arc.pem": pem(arc), "arc.key": keyPem(arc), "cacert.pem": pem(pki.root) });
  const ep = await startEndpoint(pki, env.tmpdir, opts.endpoint ?? {});
  try {
    return await fn({
      ep,
      as: async (command, name = parseName("x")) => {
        const wires: Wire[] = [];
        const code = await runRemote({
          destination: { host: "127.0.0.1", port: ep.port },
          command,
          name,
          ca: f["arc.pem"]!,
          caKey: f["arc.key"]!,
          serverCa: f["cacert.pem"]!,
          keyType: "ed25519",
          onMessage: (w) => void wires.push(w),
        });
        return { code, texts: wires.map(text) };
      },
    });
  } finally {
    await ep.close();
  }
}

export { show };

/** zlib of `total` zero bytes (a decompression bomb), made piecewise: never `total` in memory. */
export async function zeroBomb(total: number): Promise<Buffer> {
  const z = createDeflate({ level: 9 });
  const out: Buffer[] = [];
  z.on("data", (d: Buffer) => out.push(d));
  const done = new Promise<void>((res, rej) => {
    z.on("end", () => res());
    z.on("error", rej);
  });
  const piece = Buffer.alloc(4 << 20);
  for (let left = total; left > 0; left -= piece.length) {
    if (!z.write(left >= piece.length ? piece : piece.subarray(0, left))) await new Promise((r) => z.once("drain", r));
  }
  z.end();
  await done;
  return Buffer.concat(out);
}
