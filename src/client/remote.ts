// The remote client transport (cli.md §1.2, `--destination`, and `certificate`): build a
// short-lived leaf carrying the command, validate the own chain, connect with mutual TLS,
// optionally stream an upload, and hand the reply frames to the caller.
//
// Errors that end the client are thrown as CliError with the exit code of cli.md §3:
// 124 usage/local validation, 116 own chain not valid for --server-ca, 122 connect,
// 120 server not trusted, 119 server refused our certificate, 121 other TLS/communication.
//
// Large create images: upstream's client puts the (compressed) image into the leaf
// certificate. OpenSSL-based servers refuse a received certificate chain over 100 KiB unless
// raised (our endpoint raises it with native/max-cert-list, up to --max-chain-size; without the
// addon it cannot), so when the command would not fit comfortably (INLINE_IMAGE_LIMIT) the leaf
// carries an empty image and the image follows the handshake as raw chunks (daemon.md §6
// step 2), which upstream's endpoint accepts as well — and which holds no chain memory at
// ours. Sending a large chain is no problem for Node's TLS client (OpenSSL's limit is on
// receiving; a client receives only the server's chain): `certificate` sends a leaf made by
// `create --csr` + `sign`, image inside, as it is.

import "reflect-metadata";
import type { KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import tls from "node:tls";
import { decodeCertExtension, encodeCertExtension } from "../commands/codec.js";
import type { Bytes } from "../commands/der.js";
import { WIRE_VERSION, type Command, type Wire } from "../commands/types.js";
import { decodeWire } from "../commands/codec.js";
import { encodeCnName } from "../ca/asn1.js";
import { issueCertificate, validity } from "../ca/issue.js";
import { KeyError, generateKey, keyMatchesSpki, privateKeyFromPem, privateKeyToPem, spkiDer, type KeyType } from "../ca/keys.js";
import { verifyChain } from "../ca/verify.js";
import { CertificateError, albatrossExtension, certificateFromDer, fromPemAll, parseCertificate, toPem, type ParsedCertificate } from "../ca/x509.js";
import { fineWithPolicy, isSmaller } from "../policy/policy.js";
import type { Name } from "../core/name.js";
import { leafCommonName as chainLeafCommonName } from "../ca/chain.js";
import { CliError, EXIT } from "../core/exit.js";
import { ChunkReader, writeTerminator, type ChunkEvent } from "../transport/chunks.js";
import { sendChunks, type FileUpload, type ProgressSink } from "../transport/upload.js";
import { endpointOf, type ReplyMode } from "../transport/routes.js";
import { oneLine } from "../core/text.js";

/** cli.md §4.1: leaves made for one command live 300 s (and start 10 s in the past). */
export const LEAF_SECONDS = 300;
/** cli.md §1.2 step 4 */
const MAX_CERTIFICATE_BYTES = 1 << 24;
/**
 * A create whose encoded leaf extension would exceed this streams its image instead (see the
 * header comment). Well below OpenSSL's 100 KiB chain limit, leaving room for the CA chain.
 */
export const INLINE_IMAGE_LIMIT = 48 * 1024;
/** Pieces of a streamed image (receivers accept any chunk size). */
const IMAGE_PIECE = 16 * 1024;

const CONNECT_TIMEOUT_MS = 30_000;
const HANDSHAKE_TIMEOUT_MS = 30_000;
const REPLY_FRAME_LIMIT = 1 << 30;

export interface Destination {
  readonly host: string;
  readonly port: number;
}

/** Same shape as src/transport/local.ts FrameEvent, so src/client/replies.ts processReplies works on it. */
type RemoteFrameEvent = { readonly kind: "frame"; readonly payload: Bytes } | { readonly kind: "end" } | { readonly kind: "error"; readonly message: string };

/** Processes the reply frames; returns the exit status (e.g. src/client/replies.ts processReplies). */
type ReplyHandler = (next: () => Promise<RemoteFrameEvent>, mode: ReplyMode) => Promise<number>;

export interface Credentials {
  /** the leaf, then the CA chain it was issued by */
  readonly chain: ParsedCertificate[];
  readonly key: KeyObject;
}

// ---------------------------------------------------------------------------------------
// reading credentials

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw new CliError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.USAGE);
  }
}

/** All certificates of a PEM file, strictly parsed; at least one. */
export async function readCertificates(file: string, what: string): Promise<ParsedCertificate[]> {
  const text = await readText(file, what);
  let ders: Bytes[];
  try {
    ders = fromPemAll(text, "CERTIFICATE");
  } catch (e) {
    throw new CliError(`${what} ${file}: ${(e as Error).message}`, EXIT.USAGE);
  }
  if (ders.length === 0) throw new CliError(`${what} ${file}: no certificate found`, EXIT.USAGE);
  try {
    return ders.map(parseCertificate);
  } catch (e) {
    if (e instanceof CertificateError) throw new CliError(`${what} ${file}: ${e.message}`, EXIT.USAGE);
    throw e;
  }
}

export async function readKey(file: string, password?: string): Promise<KeyObject> {
  const pem = await readText(file, "key");
  try {
    return privateKeyFromPem(pem, password);
  } catch (e) {
    if (e instanceof KeyError) throw new CliError(`${file}: ${e.message}`, EXIT.USAGE);
    throw e;
  }
}

function checkKeyMatches(key: KeyObject, cert: ParsedCertificate): void {
  if (!keyMatchesSpki(key, cert.publicKey.der)) throw new CliError("Public key of certificate doesn't match private key", EXIT.USAGE);
}

// ---------------------------------------------------------------------------------------
// the leaf (cli.md §1.1, §1.2 steps 1–4)

/**
 * The leaf's CommonName (cli.md §1.1). Unlike upstream, the root path of a policy command
 * becomes `.`: upstream sends an empty CN there, which its own endpoint then refuses as an
 * invalid label, so `policy --destination` without --path could never work.
 */
export function leafCommonName(cmd: Command, name: Name): string {
  const cn = chainLeafCommonName(cmd, name);
  if (cn === null) throw new CliError("non-empty path", EXIT.USAGE);
  return cn === "" ? "." : cn;
}

/** upstream `extract_policy`: the policy delegated to the CA certificate, if it carries one. */
function policyOf(cert: ParsedCertificate) {
  const v = albatrossExtension(cert);
  if (v === undefined) return null;
  let e;
  try {
    e = decodeCertExtension(v);
  } catch {
    throw new CliError("couldn't parse albatross extension in cert", EXIT.USAGE);
  }
  return e.command.kind === "policy-add" ? e.command.policy : null;
}

/** cli.md §1.2 step 2: client-side policy pre-checks against the issuing CA's policy. */
function precheck(cmd: Command, issuer: ParsedCertificate): void {
  if (cmd.kind === "unikernel-create" || cmd.kind === "unikernel-force-create") {
    const p = policyOf(issuer);
    const e = p ? fineWithPolicy(p, cmd.config) : null;
    if (e) throw new CliError(e, EXIT.USAGE);
  } else if (cmd.kind === "policy-add") {
    const p = policyOf(issuer);
    const e = p ? isSmaller(p, cmd.policy) : null;
    if (e) throw new CliError(e, EXIT.USAGE);
  }
}

/**
 * Split a create with a large image into the command for the certificate (empty image) and
 * the image to stream; other commands are returned unchanged.
 */
export function splitImage(cmd: Command, inlineLimit = INLINE_IMAGE_LIMIT): { command: Command; image: Bytes | null } {
  if (cmd.kind !== "unikernel-create" && cmd.kind !== "unikernel-force-create") return { command: cmd, image: null };
  if (cmd.config.image.length === 0 || cmd.config.image.length <= inlineLimit) return { command: cmd, image: null };
  return { command: { kind: cmd.kind, config: { ...cmd.config, image: new Uint8Array(0) } }, image: cmd.config.image };
}

export interface LeafRequest {
  readonly command: Command;
  readonly cn: string;
  /** the issuing CA certificate, then the rest of its chain */
  readonly caChain: readonly ParsedCertificate[];
  readonly caKey: KeyObject;
  readonly keyType: KeyType;
  readonly now?: Date;
  readonly seconds?: number;
}

/** cli.md §1.2 steps 3–4: a fresh key and the leaf signed by the CA. */
export async function makeLeaf(r: LeafRequest): Promise<Credentials> {
  const issuer = r.caChain[0];
  if (!issuer) throw new CliError("no CA certificate", EXIT.USAGE);
  const key = await generateKey(r.keyType);
  const der = await issueCertificate({
    profile: "leaf",
    subject: encodeCnName(r.cn),
    spki: spkiDer(key),
    issuerName: issuer.subjectDer,
    issuerKey: r.caKey,
    albatross: encodeCertExtension({ version: WIRE_VERSION, command: r.command }),
    ...validity(r.now ?? new Date(), r.seconds ?? LEAF_SECONDS),
  });
  if (der.length > MAX_CERTIFICATE_BYTES) throw new CliError("certificate too big for TLS", EXIT.USAGE);
  return { chain: [parseCertificate(der), ...r.caChain], key };
}

// ---------------------------------------------------------------------------------------
// connecting (cli.md §1.2 steps 5–6)

/** Step 5: the own chain must be valid for --server-ca (exit 116 otherwise). */
export async function checkOwnChain(creds: Credentials, serverCa: readonly ParsedCertificate[], at: Date): Promise<void> {
  const chain = creds.chain.map((c) => certificateFromDer(c.der));
  const anchors = serverCa.map((c) => certificateFromDer(c.der));
  const r = await verifyChain(chain, anchors, { at });
  if (!r.ok) {
    const problem = [...r.problems, ...r.links.flatMap((l) => l.problems.map((p) => `${l.subject}: ${p}`))][0] ?? "invalid";
    throw new CliError(`TLS validation error of provided certificate chain: ${problem}`, EXIT.CHAIN_INVALID);
  }
}

/** The intermediate/leaf dump of `--destination -` (exit 121), as upstream prints it. */
function chainDump(creds: Credentials): string {
  const [leaf, ...rest] = creds.chain;
  return `intermediate:\n${rest.map((c) => toPem(c.der, "CERTIFICATE")).join("\n")}\nleaf:\n${toPem(leaf!.der, "CERTIFICATE")}`;
}

// OpenSSL's certificate verification results for the server's chain (Node error codes).
const SERVER_UNTRUSTED = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * TLS alerts meaning "the server refused our certificate". Upstream (ocaml-tls on both
 * ends) sees bad_certificate / certificate_expired; an OpenSSL server says unknown_ca,
 * certificate_required, unsupported_certificate, ... for the same situations.
 */
const LOCAL_AUTH_ALERTS =
  /ALERT_(BAD_CERTIFICATE|CERTIFICATE_EXPIRED|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|TLSV1_ALERT_UNKNOWN_CA|UNKNOWN_CA|CERTIFICATE_REQUIRED|ACCESS_DENIED)/;

const isLocalAuthAlert = (code: string | undefined): boolean => code !== undefined && LOCAL_AUTH_ALERTS.test(code);

const NET_ERRORS = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "EADDRNOTAVAIL", "ETIMEDOUT", "ENETDOWN", "EHOSTDOWN"]);

interface ConnectOptions {
  readonly destination: Destination;
  readonly creds: Credentials;
  readonly serverCa: readonly ParsedCertificate[];
  readonly connectTimeoutMs?: number;
  readonly handshakeTimeoutMs?: number;
}

/** Step 6: TCP (happy eyeballs) and the TLS handshake. */
export function connectTls(o: ConnectOptions): Promise<tls.TLSSocket> {
  const { host, port } = o.destination;
  return new Promise((resolve, reject) => {
    let tcpUp = false;
    let settled = false;
    const s = tls.connect({
      host,
      port,
      // happy eyeballs: Node 20 enables autoSelectFamily by default for host names
      ca: o.serverCa.map((c) => toPem(c.der, "CERTIFICATE")),
      cert: o.creds.chain.map((c) => toPem(c.der, "CERTIFICATE")).join(""),
      key: privateKeyToPem(o.creds.key),
      minVersion: "TLSv1.2",
      rejectUnauthorized: true,
      // albatross authenticates the server by its chain only, no host name check
      checkServerIdentity: () => undefined,
    });
    const fail = (e: CliError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    let timer = setTimeout(() => {
      fail(new CliError(`connect to ${host}:${port} failed: timed out`, EXIT.CONNECT));
    }, o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    s.once("connect", () => {
      tcpUp = true;
      // from here on the handshake has its own time limit
      clearTimeout(timer);
      timer = setTimeout(
        () => fail(new CliError("failed to establish TLS connection: handshake timed out", EXIT.COMMUNICATION)),
        o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      );
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "";
      if (!tcpUp || NET_ERRORS.has(code)) return fail(new CliError(`connect to ${host}:${port} failed: ${code || e.message}`, EXIT.CONNECT));
      if (SERVER_UNTRUSTED.has(code)) return fail(new CliError(`remote authentication failure: ${e.message}`, EXIT.REMOTE_AUTH));
      if (isLocalAuthAlert(code)) return fail(new CliError(`local authentication failure: ${oneLine(e)}`, EXIT.LOCAL_AUTH));
      fail(new CliError(`failed to establish TLS connection: ${oneLine(e)}`, EXIT.COMMUNICATION));
    });
    s.once("secureConnect", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.removeAllListeners("error");
      s.on("error", () => undefined); // reported through the reader
      resolve(s);
    });
  });
}

// ---------------------------------------------------------------------------------------
// a session: upload, replies

/** Bytes in pieces of `piece`. */
function* pieces(b: Bytes, piece = IMAGE_PIECE): Generator<Bytes> {
  for (let o = 0; o < b.length; o += piece) yield b.subarray(o, Math.min(b.length, o + piece));
}

/**
 * Read the replies through `handler`; a TLS alert refusing our certificate (in TLS 1.3 it
 * arrives after the handshake, with the first read) turns into exit 119.
 */
export async function readReplies(s: tls.TLSSocket, mode: ReplyMode, handler: ReplyHandler, warn: (msg: string) => void = defaultWarn): Promise<number> {
  const reader = new ChunkReader(s, { maxChunk: REPLY_FRAME_LIMIT, highWater: 64 });
  let authAlert: string | null = null;
  let frames = 0;
  const next = async (): Promise<RemoteFrameEvent> => {
    const ev: ChunkEvent = await reader.next();
    switch (ev.kind) {
      case "chunk":
        frames++;
        return { kind: "frame", payload: ev.payload };
      case "terminator":
      case "eof":
        // cli.md §3: end of stream (also inside a frame) is a normal end
        return { kind: "end" };
      case "error":
        if (isLocalAuthAlert(ev.code)) authAlert = ev.message;
        return { kind: "error", message: oneLine(new Error(ev.message)) };
    }
  };
  const code = await handler(next, mode);
  if (authAlert !== null) throw new CliError(`local authentication failure: ${oneLine(new Error(authAlert))}`, EXIT.LOCAL_AUTH);
  // Upstream exits 0 silently here (cli.md §3). An endpoint closes without any reply when it
  // refuses the chain after the handshake (Node/OpenSSL servers send no alert then) or cannot
  // derive a command from it, so at least say so.
  if (frames === 0 && code === EXIT.OK) warn("the server closed the connection without a reply (was the certificate chain refused? see the endpoint's log)");
  return code;
}

const defaultWarn = (msg: string): void => void process.stderr.write(`dromedary: warning: ${msg}\n`);

/** A minimal reply handler: decode each frame and pass it on; exit codes as cli.md §3. */
export function messageHandler(onMessage: (w: Wire) => void | Promise<void>): ReplyHandler {
  return async (next, mode) => {
    let dumping = false;
    for (;;) {
      const ev = await next();
      if (ev.kind === "end") return EXIT.OK;
      if (ev.kind === "error") return EXIT.COMMUNICATION;
      let w: Wire;
      try {
        w = decodeWire(ev.payload);
      } catch {
        return EXIT.COMMUNICATION;
      }
      await onMessage(w);
      const p = w.payload;
      if (p.kind === "failure") return EXIT.REMOTE_FAILURE;
      if (p.kind === "command") return EXIT.INTERNAL;
      if (p.kind === "reply") {
        if (p.reply.kind === "block-device-image") {
          dumping = true;
          continue;
        }
        if (mode === "single" || p.reply.kind === "unikernel-image" || p.reply.kind === "old-block-device-image") return EXIT.OK;
        continue;
      }
      const d = p.data;
      if (d.kind === "block-data" || d.kind === "block-end") {
        if (!dumping) return EXIT.COMMUNICATION;
        if (d.kind === "block-end") return EXIT.OK;
        continue;
      }
      if (mode !== "read") return EXIT.COMMUNICATION;
    }
  };
}

// ---------------------------------------------------------------------------------------
// the two entry points

export interface RemoteOptions {
  readonly destination: Destination;
  readonly command: Command;
  /** the target; for non-policy commands a label only (cli.md §1.1) */
  readonly name: Name;
  /** --ca (PEM: issuing CA first, then the rest of its chain) */
  readonly ca: string;
  /** --ca-key */
  readonly caKey: string;
  readonly caKeyPassword?: string;
  /** --server-ca */
  readonly serverCa: string;
  readonly keyType: KeyType;
  /** raw upload after the handshake (set-block data), each item one chunk; see fileUpload */
  readonly upload?: AsyncIterable<Bytes> | Iterable<Bytes>;
  /** total upload size, for the progress display (a FileUpload knows its own) */
  readonly uploadSize?: number;
  /** the reply processing (e.g. processReplies); or `onMessage` */
  readonly replies?: ReplyHandler;
  readonly onMessage?: (w: Wire) => void | Promise<void>;
  /** progress display for uploads (e.g. a TTY progress bar; nothing when omitted) */
  readonly progress?: (label: string) => ProgressSink;
  /** where `--destination -` prints (default stdout) */
  readonly print?: (text: string) => void;
  /** warnings (default: a `dromedary: warning:` line on stderr) */
  readonly warn?: (msg: string) => void;
  readonly inlineImageLimit?: number;
  readonly now?: Date;
}

/**
 * cli.md §1.2 for one command; returns the exit status (or throws CliError). Upload
 * failures (local file errors) are the caller's: let the iterable throw, the stream is then
 * ended and the error rethrown after the replies were read.
 */
export async function runRemote(o: RemoteOptions): Promise<number> {
  const handler = o.replies ?? (o.onMessage ? messageHandler(o.onMessage) : null);
  if (!handler) throw new TypeError("runRemote needs `replies` or `onMessage`");
  // upstream's order: read the files, the CN (non-empty path), key match, policy pre-checks
  const caChain = await readCertificates(o.ca, "CA certificate");
  const caKey = await readKey(o.caKey, o.caKeyPassword);
  const cn = leafCommonName(o.command, o.name);
  checkKeyMatches(caKey, caChain[0]!);
  precheck(o.command, caChain[0]!);
  const { command, image } = splitImage(o.command, o.inlineImageLimit);
  const now = o.now ?? new Date();
  const creds = await makeLeaf({ command, cn, caChain, caKey, keyType: o.keyType, now });
  const serverCa = await readCertificates(o.serverCa, "server CA");
  await checkOwnChain(creds, serverCa, now);
  if (o.destination.host === "-") {
    (o.print ?? ((t: string) => void process.stdout.write(`${t}\n`)))(chainDump(creds));
    return EXIT.COMMUNICATION;
  }
  const s = await connectTls({ destination: o.destination, creds, serverCa });
  try {
    const { mode: next } = endpointOf(command);
    const uploadChunks = image ? pieces(image) : o.upload;
    const fu = !image && o.upload && "consumed" in o.upload ? (o.upload as FileUpload) : null;
    const total = image ? image.length : fu ? fu.size : (o.uploadSize ?? 0);
    let uploadError: unknown = null;
    if (uploadChunks) {
      const sink = o.progress?.(image ? "uploading image" : "uploading");
      // A write failure means the server stopped reading (it answered or gave up): the
      // replies tell the rest.
      const progress = sink ? { sink, total, ...(fu ? { consumed: () => fu.consumed } : {}) } : undefined;
      await sendChunks(
        s,
        guard(uploadChunks, (e) => (uploadError = e)),
        progress,
      );
      if (uploadError !== null) {
        // upstream ends the stream; the endpoint never reads past it
        await writeTerminator(s).catch(() => undefined);
      }
    }
    const code = await readReplies(s, next, handler, o.warn);
    if (uploadError !== null) {
      // as the local client does: the reply (if any) was shown; a failed read of the upload
      // source turns a success into an internal error
      const e = uploadError as Error;
      (o.warn ?? defaultWarn)(`upload failed: ${e instanceof CliError ? e.message : oneLine(e)}`);
      return code === EXIT.OK ? EXIT.INTERNAL : code;
    }
    return code;
  } finally {
    s.destroy();
  }
}

/** Stop iterating (instead of throwing into sendChunks) when the source fails. */
async function* guard(src: AsyncIterable<Bytes> | Iterable<Bytes>, onError: (e: unknown) => void): AsyncGenerator<Bytes> {
  try {
    for await (const c of src) yield c;
  } catch (e) {
    onError(e);
    throw e;
  }
}

export interface CertificateOptions {
  /** CERT: the leaf first, then its chain */
  readonly cert: string;
  readonly key: string;
  readonly keyPassword?: string;
  readonly serverCa: string;
  readonly destination?: Destination;
  readonly replies?: ReplyHandler;
  readonly onMessage?: (w: Wire) => void | Promise<void>;
  readonly print?: (text: string) => void;
  readonly warn?: (msg: string) => void;
  readonly now?: Date;
}

/** The reply pattern for a ready leaf: from its command, `read` if it has none that decodes. */
function modeOfLeaf(leaf: ParsedCertificate): ReplyMode {
  const v = albatrossExtension(leaf);
  if (v === undefined) return "read";
  try {
    return endpointOf(decodeCertExtension(v).command).mode;
  } catch {
    return "read";
  }
}

/** `certificate CERT KEY --destination`: cli.md §2 "Certificates". */
export async function runCertificate(o: CertificateOptions): Promise<number> {
  const handler = o.replies ?? (o.onMessage ? messageHandler(o.onMessage) : null);
  if (!handler) throw new TypeError("runCertificate needs `replies` or `onMessage`");
  if (!o.destination) throw new CliError("no destination provided", EXIT.USAGE);
  const chain = await readCertificates(o.cert, "certificate");
  const key = await readKey(o.key, o.keyPassword);
  checkKeyMatches(key, chain[0]!);
  const creds: Credentials = { chain, key };
  const serverCa = await readCertificates(o.serverCa, "server CA");
  await checkOwnChain(creds, serverCa, o.now ?? new Date());
  if (o.destination.host === "-") {
    (o.print ?? ((t: string) => void process.stdout.write(`${t}\n`)))(chainDump(creds));
    return EXIT.COMMUNICATION;
  }
  const s = await connectTls({ destination: o.destination, creds, serverCa });
  try {
    return await readReplies(s, modeOfLeaf(chain[0]!), handler, o.warn);
  } finally {
    s.destroy();
  }
}
