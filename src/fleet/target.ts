// One host's hostd as the fleet code sees it: info, get and force-create of one unikernel,
// either over the local Unix socket or through a TLS endpoint (a fresh leaf per command,
// cli.md §1.2). Each call is one connection and one reply. The wire protocol is albatross's.

import { decodeWire } from "../commands/codec.js";
import { inflate } from "../commands/compress.js";
import { WIRE_VERSION, type Command, type Success, type UnikernelConfig, type UnikernelInfoEntry, type Wire } from "../commands/types.js";
import type { KeyType } from "../ca/keys.js";
import { safeText } from "../commands/render.js";
import { nameToString, type Name } from "../core/name.js";
import { CliError, EXIT } from "../core/exit.js";
import { ReplyReader, connectDaemon, wireFrame, writeAll } from "../transport/local.js";
import { socketPath } from "../transport/routes.js";

/** Largest image accepted from `get` (inflated). */
const MAX_IMAGE_BYTES = 1 << 30;
const REPLY_FRAME_LIMIT = 1 << 30;

/** A failed exchange with a host; `exitCode` as cli.md §3. */
export class TargetError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export interface Target {
  /** how the host is shown: its fleet name, `local` or HOST:PORT */
  readonly label: string;
  /** one reply to `cmd` for `name`: a Success, or TargetError (Failure -> 117, transport -> 121/122/...) */
  send(cmd: Command, name: Name): Promise<Success>;
}

export interface RemoteTargetOptions {
  readonly label?: string;
  readonly host: string;
  readonly port: number;
  readonly ca: string;
  readonly caKey: string;
  readonly caKeyPassword?: string;
  readonly serverCa: string;
  readonly keyType: KeyType;
}

const failureText = (w: Wire): string | null => (w.payload.kind === "failure" ? safeText(w.payload.message) : null);

function successOf(w: Wire, what: string): Success {
  const f = failureText(w);
  if (f !== null) throw new TargetError(`${what}: ${f}`, EXIT.REMOTE_FAILURE);
  if (w.payload.kind !== "reply") throw new TargetError(`${what}: unexpected ${w.payload.kind} message`, EXIT.COMMUNICATION);
  return w.payload.reply;
}

const describe = (cmd: Command, name: Name): string => `${cmd.kind} ${nameToString(name)}`;

/** hostd on this machine: `<tmpdir>/util/vmmd.sock` or an explicit socket file. */
export function localTarget(o: { socket?: string; tmpdir: string; label?: string }): Target {
  const file = o.socket ?? socketPath(o.tmpdir, "vmmd");
  return {
    label: o.label ?? "local",
    async send(cmd, name) {
      const what = describe(cmd, name);
      let sock;
      try {
        sock = await connectDaemon(file);
      } catch (e) {
        throw new TargetError((e as Error).message, EXIT.CONNECT);
      }
      try {
        const reader = new ReplyReader(sock, REPLY_FRAME_LIMIT);
        const wire: Wire = { header: { version: WIRE_VERSION, sequence: 0n, name }, payload: { kind: "command", command: cmd } };
        await writeAll(sock, wireFrame(wire));
        const ev = await reader.next();
        if (ev.kind === "end") throw new TargetError(`${what}: the daemon closed the connection without a reply`, EXIT.COMMUNICATION);
        if (ev.kind === "error") throw new TargetError(`${what}: ${ev.message}`, EXIT.COMMUNICATION);
        let w: Wire;
        try {
          w = decodeWire(ev.payload);
        } catch (e) {
          throw new TargetError(`${what}: undecodable reply: ${(e as Error).message}`, EXIT.COMMUNICATION);
        }
        return successOf(w, what);
      } catch (e) {
        if (e instanceof TargetError) throw e;
        throw new TargetError(`${what}: communication failure: ${(e as Error).message}`, EXIT.COMMUNICATION);
      } finally {
        sock.destroy();
      }
    },
  };
}

/**
 * Credentials for commands without an image (info, get), shared by every host reached with
 * the same CA and key: the leaf carries only the command and the name, so `fleet info` makes
 * one leaf, not one per host. Reused for at most half the leaf's lifetime.
 */
const leafCache = new Map<
  string,
  { until: number; ready: Promise<{ creds: import("../client/remote.js").Credentials; serverCa: import("../ca/x509.js").ParsedCertificate[] }> }
>();

async function sharedLeaf(o: RemoteTargetOptions, cmd: Command, name: Name) {
  const r = await import("../client/remote.js");
  const { keyMatchesSpki } = await import("../ca/keys.js");
  const key = JSON.stringify([o.ca, o.caKey, o.serverCa, o.keyType, cmd.kind, cmd.kind === "unikernel-get" ? cmd.level : 0, nameToString(name)]);
  const hit = leafCache.get(key);
  if (hit && hit.until > Date.now()) return hit.ready;
  const ready = (async () => {
    const caChain = await r.readCertificates(o.ca, "CA certificate");
    const caKey = await r.readKey(o.caKey, o.caKeyPassword);
    const cn = r.leafCommonName(cmd, name);
    if (!keyMatchesSpki(caKey, caChain[0]!.publicKey.der)) throw new CliError("Public key of certificate doesn't match private key", EXIT.USAGE);
    const now = new Date();
    const creds = await r.makeLeaf({ command: cmd, cn, caChain, caKey, keyType: o.keyType, now });
    const serverCa = await r.readCertificates(o.serverCa, "server CA");
    await r.checkOwnChain(creds, serverCa, now);
    return { creds, serverCa };
  })();
  leafCache.set(key, { until: Date.now() + (r.LEAF_SECONDS * 1000) / 2, ready });
  ready.catch(() => leafCache.delete(key));
  return ready;
}

/** hostd behind a TLS endpoint (`--destination`), a leaf issued by `ca`/`caKey` per command. */
export function remoteTarget(o: RemoteTargetOptions): Target {
  return {
    label: o.label ?? `${o.host}:${o.port}`,
    async send(cmd, name) {
      const what = describe(cmd, name);
      // loaded lazily: the TLS client and @peculiar/x509 only when a remote host is asked
      const r = await import("../client/remote.js");
      let reply: Wire | null = null;
      const onMessage = (w: Wire): void => {
        reply ??= w;
      };
      let code: number;
      try {
        if (cmd.kind === "unikernel-info" || cmd.kind === "unikernel-get") {
          const { creds, serverCa } = await sharedLeaf(o, cmd, name);
          const s = await r.connectTls({ destination: { host: o.host, port: o.port }, creds, serverCa });
          try {
            code = await r.readReplies(s, "single", r.messageHandler(onMessage), () => undefined);
          } finally {
            s.destroy();
          }
        } else {
          code = await r.runRemote({
            destination: { host: o.host, port: o.port },
            command: cmd,
            name,
            ca: o.ca,
            caKey: o.caKey,
            ...(o.caKeyPassword !== undefined ? { caKeyPassword: o.caKeyPassword } : {}),
            serverCa: o.serverCa,
            keyType: o.keyType,
            onMessage,
            warn: () => undefined,
          });
        }
      } catch (e) {
        if (e instanceof CliError) throw new TargetError(e.message, e.exitCode);
        throw new TargetError(`${what}: ${(e as Error).message}`, EXIT.COMMUNICATION);
      }
      if (reply === null) {
        throw new TargetError(`${what}: no reply (exit ${code}; was the certificate chain refused?)`, code === EXIT.OK ? EXIT.COMMUNICATION : code);
      }
      return successOf(reply, what);
    },
  };
}

/** The unikernels matching `name` (`:` or a path = all below it). */
export async function infos(t: Target, name: Name): Promise<readonly UnikernelInfoEntry[]> {
  const r = await t.send({ kind: "unikernel-info" }, name);
  if (r.kind === "unikernel-info" || r.kind === "old-unikernel-info4" || r.kind === "old-unikernel-info5") return r.unikernels;
  throw new TargetError(`info: unexpected reply ${r.kind}`, EXIT.COMMUNICATION);
}

/** The image of a running unikernel, inflated. */
export async function getImage(t: Target, name: Name): Promise<Uint8Array> {
  const r = await t.send({ kind: "unikernel-get", level: 0 }, name);
  if (r.kind !== "unikernel-image") throw new TargetError(`get: unexpected reply ${r.kind}`, EXIT.COMMUNICATION);
  if (!r.compressed) return r.image;
  try {
    return inflate(r.image, { maxBytes: MAX_IMAGE_BYTES });
  } catch (e) {
    throw new TargetError(`get: ${(e as Error).message}`, EXIT.COMMUNICATION);
  }
}

/** force-create; the daemon's success text. */
export async function forceCreate(t: Target, name: Name, config: UnikernelConfig): Promise<string> {
  const r = await t.send({ kind: "unikernel-force-create", config }, name);
  return r.kind === "string" ? safeText(r.text) : r.kind;
}
