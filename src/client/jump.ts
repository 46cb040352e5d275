// Sending one command (cli.md §1–§3, upstream `jump`): to the local daemon's Unix socket,
// `--socket -` (the encoded message), `--csr` (a key and a request), or `--destination` (the
// remote client, remote.ts, loaded only then); the replies through replies.ts.

import { encodeWire } from "../commands/codec.js";
import { END_FRAME } from "../commands/framing.js";
import { hexdump } from "../commands/render.js";
import { WIRE_VERSION, type Command, type Wire } from "../commands/types.js";
import type { KeyType } from "../ca/keys.js";
import { CliError, EXIT } from "../core/exit.js";
import type { Name } from "../core/name.js";
import { ReplyReader, connectDaemon, wireFrame, writeAll } from "../transport/local.js";
import { endpointOf, socketPath } from "../transport/routes.js";
import type { Destination as RemoteHost } from "./remote.js";
import { DEFAULT_REPLY_FRAME_LIMIT, STARTED_AT, processReplies, processSink, type Sink } from "./replies.js";

/** Options common to every command subcommand (cli.md §1). */
export interface DestinationOptions {
  socket?: string;
  destination?: RemoteHost;
  csr?: boolean;
  ca: string;
  caKey: string;
  serverCa: string;
  keyType: KeyType;
  keyPasswordFile?: string;
  tmpdir: string;
  json?: boolean;
  verbose?: boolean;
}

export type Destination =
  | { readonly kind: "local"; readonly socket?: string }
  | { readonly kind: "remote"; readonly host: RemoteHost }
  | { readonly kind: "csr" };

export function destinationOf(o: Pick<DestinationOptions, "socket" | "destination" | "csr">): Destination {
  const n = (o.csr ? 1 : 0) + (o.destination ? 1 : 0) + (o.socket !== undefined ? 1 : 0);
  if (n > 1) throw new CliError("The options --csr, --destination, and --socket are mutually exclusive");
  if (o.csr) return { kind: "csr" };
  if (o.destination) return { kind: "remote", host: o.destination };
  return o.socket !== undefined ? { kind: "local", socket: o.socket } : { kind: "local" };
}

/** Compression level default: 0 locally, 9 for --destination / --csr (wire.md §12). */
export const defaultLevel = (d: Destination, given: number | undefined): number => given ?? (d.kind === "local" ? 0 : 9);

/**
 * cli.md §1.1: the CommonName of a leaf / CSR for a command and name. The certificate code
 * (@peculiar/x509) is loaded here, not when a local command starts.
 */
export async function commonNameFor(cmd: Command, name: Name): Promise<string> {
  const { leafCommonName } = await import("../ca/chain.js");
  const cn = leafCommonName(cmd, name);
  if (cn === null) throw new CliError("non-empty path");
  return cn;
}

// ---------------------------------------------------------------------------------------
// sending a command

export interface Upload {
  readonly file: string;
  readonly level: number;
}

/** Header of a locally sent request: version 5, sequence 0, the target name. */
const requestWire = (cmd: Command, name: Name): Wire => ({
  header: { version: WIRE_VERSION, sequence: 0n, name },
  payload: { kind: "command", command: cmd },
});

async function readPassword(file: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  try {
    // one line; a trailing newline is not part of the password
    return (await readFile(file, "utf8")).replace(/\r?\n$/, "");
  } catch (e) {
    throw new CliError(`--key-password-file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Upstream `jump`: send `cmd` for `name` to the destination; the exit status. */
export async function jump(cmd: Command, name: Name, o: DestinationOptions, upload?: Upload): Promise<number> {
  const dest = destinationOf(o);
  const sink = processSink(o.json ?? false);
  switch (dest.kind) {
    case "remote": {
      const caKeyPassword = o.keyPasswordFile !== undefined ? await readPassword(o.keyPasswordFile) : undefined;
      return remoteJump(cmd, name, { ...o, destination: dest.host, ...(caKeyPassword !== undefined ? { caKeyPassword } : {}) }, upload);
    }
    case "csr": {
      const cn = await commonNameFor(cmd, name);
      if (cn === "") {
        // Upstream dies with an uncaught exception here (exit 125, cli.md §1.3).
        throw new CliError("a request for the root path has an empty common name, which cannot name the key and request files", EXIT.INTERNAL);
      }
      const { writeCommandRequest } = await import("../ca/request.js");
      let r;
      try {
        r = await writeCommandRequest({
          cn,
          command: cmd,
          keyType: o.keyType,
          dir: process.cwd(),
          overwrite: true,
          ...(o.keyPasswordFile !== undefined ? { keyPassword: await readPassword(o.keyPasswordFile) } : {}),
        });
      } catch (e) {
        throw new CliError(`error while creating CSR: ${(e as Error).message}`);
      }
      // As albatross-client, an existing <CN>.req is replaced — but never silently.
      if (sink.json)
        sink.out(JSON.stringify({ event: "csr", request: r.reqFile, key: r.keyFile, reusedKey: r.reusedKey, replacedRequest: r.replacedRequest, cn }));
      else sink.out(`${r.replacedRequest ? "replaced" : "wrote"} ${r.reqFile} (${r.reusedKey ? "reused" : "new"} key ${r.keyFile})`);
      return EXIT.OK;
    }
    case "local":
      return sendLocal(cmd, name, o, sink, dest.socket, upload);
  }
}

async function sendLocal(cmd: Command, name: Name, o: DestinationOptions, sink: Sink, socket: string | undefined, upload?: Upload): Promise<number> {
  const wire = requestWire(cmd, name);
  if (socket === "-") {
    process.stdout.write(`out:\n${hexdump(encodeWire(wire))}\n`);
    return EXIT.COMMUNICATION;
  }
  const ep = endpointOf(cmd);
  const file = socket ?? socketPath(o.tmpdir, ep.socket);
  let sock;
  try {
    sock = await connectDaemon(file);
  } catch (e) {
    sink.err((e as Error).message);
    return EXIT.CONNECT;
  }
  try {
    const reader = new ReplyReader(sock, DEFAULT_REPLY_FRAME_LIMIT);
    try {
      await writeAll(sock, wireFrame(wire));
    } catch (e) {
      sink.err(`communication failure: ${(e as Error).message}`);
      return EXIT.COMMUNICATION;
    }
    let uploadFailed = false;
    if (upload) {
      // loaded only for uploads: zlib and the file streams (start-up time, issue 13)
      const { sendUpload } = await import("../transport/upload.js");
      const { ttyProgress } = await import("./progress.js");
      const progress = ttyProgress(`uploading ${upload.file}`);
      const r = await sendUpload(sock, {
        file: upload.file,
        level: upload.level,
        progress: progress.update,
        shouldStop: () => reader.hasInput,
      });
      progress.done();
      if (!r.ok && r.fileError !== undefined) {
        // Upstream ends the stream and sends a Failure after it (daemons ignore it).
        uploadFailed = true;
        sink.err(r.fileError);
        try {
          await writeAll(sock, END_FRAME);
          await writeAll(sock, wireFrame({ header: wire.header, payload: { kind: "failure", message: new TextEncoder().encode(r.fileError) } }));
        } catch {
          // the reply (if any) tells the rest
        }
      }
      // A write error means the daemon stopped reading (it replied early); read that reply.
    }
    const code = await processReplies(() => reader.next(), ep.mode, { sink, startedAt: STARTED_AT, verbose: o.verbose ?? false });
    return uploadFailed && code === EXIT.OK ? EXIT.INTERNAL : code;
  } finally {
    sock.destroy();
  }
}

/**
 * `--destination` for every command subcommand (cli.md §1.2): what `jump`
 * calls for `{ kind: "remote" }` — `return remoteJump(cmd, name, o, upload);`. Replies are
 * printed by replies.ts (text or --json), uploads show ttyProgress on a terminal.
 */
export async function remoteJump(cmd: Command, name: Name, o: RemoteJumpOptions, upload?: { file: string; level: number }): Promise<number> {
  if (!o.destination) throw new CliError("no destination provided", EXIT.USAGE);
  const { runRemote } = await import("./remote.js");
  const { fileUpload } = await import("../transport/upload.js");
  const { ttyProgress } = await import("./progress.js");
  const sink = processSink(o.json ?? false);
  return runRemote({
    destination: o.destination,
    command: cmd,
    name,
    ca: o.ca,
    caKey: o.caKey,
    serverCa: o.serverCa,
    keyType: o.keyType,
    ...(o.caKeyPassword !== undefined ? { caKeyPassword: o.caKeyPassword } : {}),
    ...(upload ? { upload: await fileUpload(upload.file, upload.level) } : {}),
    progress: (label) => ttyProgress(upload ? `${label} ${upload.file}` : label),
    replies: (next, mode) => processReplies(next, mode, { sink, startedAt: STARTED_AT, verbose: o.verbose ?? false }),
    warn: (m) => sink.err(`warning: ${m}`),
  });
}

/** The subset of DestinationOptions remote mode uses. */
export interface RemoteJumpOptions {
  destination?: RemoteHost;
  ca: string;
  caKey: string;
  serverCa: string;
  keyType: KeyType;
  /** password of an encrypted --ca-key (from --key-password-file) */
  caKeyPassword?: string;
  json?: boolean;
  verbose?: boolean;
}
