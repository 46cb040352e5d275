// The TLS endpoint (albatross-tls-endpoint, daemon.md §6): accepts mutually authenticated
// TLS 1.3 connections, derives (name, policies, command) from the client certificate chain,
// forwards them to the right local daemon socket and relays the replies.
//
// Per connection exactly the steps of daemon.md §6 (1–8) with upstream's failure texts.
// Additions, all on the refusing side and invisible to well-behaved clients:
// * every link of the chain is re-validated by us (peer.ts) before anything is derived;
// * a chain whose delegated policies widen on the way down is refused with a Failure before
//   anything reaches a daemon (upstream forwards it and lets albatrossd refuse the add);
// * timeouts: the TLS handshake, a raw upload (image / block data) that stalls, and a TLS
//   client that stops reading a stream;
// * the image of a streamed create is limited in size;
// * a TLS client that goes away during a console/stats subscription is noticed at once
//   (upstream notices on the next write) so the daemon connection is released;
// * a limit on concurrent connections; no TLS session resumption;
// * client certificate chains: at most --max-chain-size, and those over OpenSSL's default
//   100 KiB only within a shared memory budget (gate.ts); OpenSSL's own limit is raised by a
//   native addon (addon.ts), without which chains over 100 KiB are refused (logged with their
//   size and why).
// And one that changes no message: a request's connection to its daemon is opened ahead of
// it (daemons.ts), nothing is written on it before the request passed every check.
// Difference: a chain refused by the TLS verification gets no TLS alert (upstream:
// bad_certificate); Node's server can only close the connection. It is logged with the reason.

import "reflect-metadata";
import { constants as cryptoConstants } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import type { X509Certificate } from "@peculiar/x509";
import { decodeWire, encodeWire, encodeWirePieces } from "../commands/codec.js";
import type { Bytes } from "../commands/der.js";
import { encodeFrame } from "../commands/framing.js";
import { WIRE_VERSION, type Command, type Payload, type Wire } from "../commands/types.js";
import { nameToString, pathName } from "../core/name.js";
import { wireText } from "../commands/render.js";
import { SignatureCache } from "../ca/verify.js";
import { parsed, type ParsedCertificate } from "../ca/x509.js";
import { checkPolicyMonotonic, deriveFromParsed, type Derived } from "../ca/chain.js";
import { ChunkReader, writeBytes, writeChunk, writeFramedPieces, writeTerminator } from "../transport/chunks.js";
import { ReadTimeout } from "../transport/frames.js";
import { endpointOf, socketPath, type SocketKind } from "../transport/routes.js";
import { ParsedCertificateCache, peerCertificates, validatePeerChain, verifiedPath, type PeerPath } from "./peer.js";
import { DaemonConnections } from "./daemons.js";
import { Budget, Slots } from "./slots.js";
import { raiseChainLimit, recordVerifiedChains, takeVerifiedChain } from "./addon.js";
import { CHAIN_MS_PER_MIB, ChainGate, OPENSSL_DEFAULT_CHAIN_LIMIT, TLS_MAX_CHAIN } from "./gate.js";
import { parseKeylogLine } from "./tls13.js";
import { ok, type Result } from "../core/result.js";
import { oneLine } from "../core/text.js";

/** a request's connection to its daemon, and the socket file it goes to */
type DaemonLink = { readonly sock: net.Socket; readonly file: string };

/** Does the command continue with a raw upload from the TLS client (daemon.md §6 step 6)? */
function hasBlockUpload(cmd: Command): boolean {
  switch (cmd.kind) {
    case "block-set":
      return true;
    case "block-add-old":
      return cmd.data !== undefined && cmd.data.length === 0;
    case "block-set-old":
      return cmd.data.length === 0;
    default:
      return false;
  }
}

/** Is the command a create whose image follows the handshake (daemon.md §6 step 2)? */
const hasImageUpload = (cmd: Command): boolean => (cmd.kind === "unikernel-create" || cmd.kind === "unikernel-force-create") && cmd.config.image.length === 0;

export type LogLevel = "debug" | "info" | "warn" | "error";
type Logger = (level: LogLevel, message: string) => void;

export interface EndpointOptions {
  /** the single CA client chains must lead to */
  readonly ca: X509Certificate;
  /** PEM of the CA (for OpenSSL's trust store) */
  readonly caPem: string;
  /** server certificate chain and key (PEM) */
  readonly certPem: string;
  readonly keyPem: string;
  /** directory holding util/{vmmd,console,stat}.sock */
  readonly tmpdir: string;
  readonly log: Logger;
  /**
   * The least severe level `log` prints (default "debug": everything is handed to it); the
   * per-connection lines below it are not even built.
   */
  readonly logLevel?: LogLevel;
  /**
   * a TLS handshake taking longer is aborted (default 10 s); one with a client chain over
   * 100 KiB gets 1 s per MiB of it more (gate.ts)
   */
  readonly handshakeTimeoutMs?: number;
  /** the largest client certificate chain (its TLS Certificate message) accepted (default 16 MiB) */
  readonly maxChainSize?: number;
  /**
   * the total size of client chains over 100 KiB that connections hold at once (default
   * 64 MiB, at least maxChainSize); a connection whose chain does not fit waits (gate.ts)
   */
  readonly chainMemory?: number;
  /** a raw upload from the client with no data for this long is aborted (default 30 s) */
  readonly uploadIdleMs?: number;
  /** a TLS client (or daemon) not reading what we write for this long is dropped (default 60 s) */
  readonly writeStallMs?: number;
  /** concurrent TLS connections; further ones are closed at once (default 256) */
  readonly maxConnections?: number;
  /** largest image accepted from a streamed create (default 256 MiB; the compressed bytes as sent) */
  readonly maxImageBytes?: number;
  /**
   * creates whose image is collected at a time (default 2): the images together hold at
   * most this × maxImageBytes; a further one waits for a slot (its client's upload waits
   * in the socket), for at most uploadIdleMs, then gets a Failure
   */
  readonly maxImageUploads?: number;
  /** largest frame accepted from a daemon (default 256 MiB) */
  readonly maxChunk?: number;
  /**
   * largest raw chunk accepted from a TLS client (default 4 MiB; upstream clients send 4 KiB
   * pieces). A chunk is buffered whole before it is passed on, so this bounds the memory a
   * client can pin.
   */
  readonly maxClientChunk?: number;
  /**
   * keep one connection to each daemon socket in use opened ahead of the next request
   * (default true; see daemons.ts). False: every request connects afresh, as upstream.
   */
  readonly spareConnections?: boolean;
  /**
   * take each client's path from OpenSSL's verification (the native addon keeps it; default
   * true); false, or without the addon: from Node's getPeerCertificate (slower for large
   * chains; the same checks)
   */
  readonly verifiedChains?: boolean;
  /** the clock used for certificate validity (tests) */
  readonly now?: () => Date;
}

/** the options with their defaults (those read once in the constructor left out) */
type ResolvedOptions = Required<Omit<EndpointOptions, "now" | "logLevel" | "spareConnections" | "verifiedChains">> & { now: () => Date };

const SEVERITY: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

const DEFAULTS = {
  handshakeTimeoutMs: 10_000,
  uploadIdleMs: 30_000,
  writeStallMs: 60_000,
  maxConnections: 256,
  maxImageBytes: 256 * 1024 * 1024,
  maxImageUploads: 2,
  maxChunk: 256 * 1024 * 1024,
  maxClientChunk: 4 * 1024 * 1024,
  maxChainSize: TLS_MAX_CHAIN,
  chainMemory: 64 * 1024 * 1024,
};

/** A chain this large is taken from Node in one call (peer.ts). */
const LARGE_CHAIN = 256 * 1024;

/** Aborts the connection without a reply (daemon.md §6: logged, TLS closed). */
class Abort extends Error {}

const failure = (msg: string): Payload => ({ kind: "failure", message: new TextEncoder().encode(msg) });

function peerOf(sock: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined } | undefined): string {
  const a = sock?.remoteAddress;
  if (!a) return "(local)";
  return a.includes(":") ? `[${a}]:${sock.remotePort}` : `${a}:${sock.remotePort}`;
}

/**
 * The gate a TLS socket reads from: Node's TLSSocket over a JS stream keeps it as
 * _handle._parentWrap.stream (lib/_tls_wrap.js _wrapHandle, lib/internal/js_stream_socket.js;
 * Node 20, 22 and 24). Not public: where it is missing, the ClientHello's random found the
 * gate at the keylog (gateOf).
 */
function gateBehind(s: tls.TLSSocket): ChainGate | undefined {
  type Inner = { _parentWrap?: { stream?: unknown } } | null | undefined;
  const t = s as tls.TLSSocket & { _handle?: Inner; ssl?: Inner };
  const g = t._handle?._parentWrap?.stream ?? t.ssl?._parentWrap?.stream;
  return g instanceof ChainGate ? g : undefined;
}

export class Endpoint {
  /** the listening socket; connections pass through a ChainGate into `tlsServer` */
  readonly server: net.Server;
  private readonly tlsServer: tls.Server;
  private readonly o: ResolvedOptions;
  /** whether debug / info lines are printed (see EndpointOptions.logLevel) */
  private readonly logs: { readonly debug: boolean; readonly info: boolean };
  /** upstream's global `command` counter: one per message sent to a daemon, from 0 */
  private sequence = 0n;
  private readonly active = new Set<net.Socket>();
  /** one per create whose image is being collected or forwarded (slots.ts) */
  readonly imageSlots: Slots;
  /** connections fully handled (for tests and statistics) */
  handled = 0;
  /** the CA, parsed once (its public key is imported once too, src/ca/keys.ts) */
  private readonly anchor: ParsedCertificate;
  /**
   * Memos for the CA certificates that come back on every connection (tenant CAs): their
   * parse and their verified signature, by exact bytes, bounded. Every other check of every
   * link runs on every connection (peer.ts, src/ca/verify.ts).
   */
  private readonly intermediates = new ParsedCertificateCache();
  readonly signatures = new SignatureCache();
  private readonly sockets: Record<SocketKind, string>;
  /** connections to the daemons, with a spare opened ahead per socket in use */
  readonly daemons: DaemonConnections;
  /** memory for client chains over 100 KiB (gate.ts) */
  readonly chainBudget: Budget;
  /** why OpenSSL's 100 KiB chain limit could not be raised; null when it was (or need not be) */
  readonly chainLimitProblem: string | null;
  /**
   * Why the paths OpenSSL verifies are not handed over by the addon (the chain is then taken
   * from Node: slower for large chains, same checks); null when they are.
   */
  readonly verifiedChainsProblem: string | null;
  /** connections whose chain came from OpenSSL's verified path / from Node (tests, statistics) */
  readonly chainSource = { verified: 0, node: 0 };
  /** connections whose handshake is under way or done, by the ClientHello's random until the keylog */
  private readonly gates = new Set<ChainGate>();
  private readonly byRandom = new Map<string, ChainGate>();
  private readonly gateOf = new WeakMap<tls.TLSSocket, ChainGate>();

  constructor(opts: EndpointOptions) {
    this.o = { ...DEFAULTS, now: () => new Date(), ...opts } as ResolvedOptions;
    this.daemons = new DaemonConnections(opts.spareConnections ?? true);
    this.imageSlots = new Slots(this.o.maxImageUploads);
    const least = SEVERITY[opts.logLevel ?? "debug"];
    this.logs = { debug: least <= SEVERITY.debug, info: least <= SEVERITY.info };
    if (!(this.o.maxChainSize >= 1 && this.o.maxChainSize <= TLS_MAX_CHAIN)) throw new RangeError(`maximum chain size must be 1 .. ${TLS_MAX_CHAIN} bytes`);
    if (this.o.chainMemory < this.o.maxChainSize) throw new RangeError("chain memory must be at least the maximum chain size");
    this.chainBudget = new Budget(this.o.chainMemory);
    this.anchor = parsed(opts.ca);
    this.sockets = { vmmd: socketPath(this.o.tmpdir, "vmmd"), console: socketPath(this.o.tmpdir, "console"), stat: socketPath(this.o.tmpdir, "stat") };
    // OpenSSL verifies the client chain against the CA (`ca`), but we act on its verdict
    // ourselves (`authorized`) instead of `rejectUnauthorized: true`: Node then destroys
    // refused connections silently — no alert either way, since Node's OpenSSL verify
    // callback always accepts — and we could not log why a client was refused.
    this.tlsServer = tls.createServer({
      ca: opts.caPem,
      cert: opts.certPem,
      key: opts.keyPem,
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      // No session resumption (upstream's ocaml-tls server has no session cache either): the
      // command travels in the client certificate, which must be presented — and validated
      // at that moment — on every connection. Node's default would let a client resume with
      // the certificate of an earlier session (stateless tickets). (Measured: with tickets on,
      // a Node server also answers a multi-megabyte client chain with an internal_error
      // alert after the handshake.)
      secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
      requestCert: true,
      rejectUnauthorized: false,
      // The gate's deadline is the handshake timeout (it knows about large chains and the
      // wait for memory); Node's own only backs it up.
      handshakeTimeout: 2 * this.o.handshakeTimeoutMs + (TLS_MAX_CHAIN >> 20) * CHAIN_MS_PER_MIB + 1000,
    });
    // The server's SSL_CTX (Node builds it from the options above; tls.Server keeps it as
    // _sharedCreds): OpenSSL's limit on a client chain raised to --max-chain-size.
    const creds = (this.tlsServer as tls.Server & { _sharedCreds?: tls.SecureContext })._sharedCreds;
    this.chainLimitProblem =
      this.o.maxChainSize === OPENSSL_DEFAULT_CHAIN_LIMIT
        ? null
        : creds
          ? raiseChainLimit(creds, this.o.maxChainSize)
          : `this Node's (${process.version}) TLS server keeps no secure context`;
    if (this.chainLimitProblem !== null && this.o.maxChainSize > OPENSSL_DEFAULT_CHAIN_LIMIT) {
      this.o.log(
        "warn",
        `client certificate chains over ${OPENSSL_DEFAULT_CHAIN_LIMIT} bytes (OpenSSL's default limit) will be refused — e.g. albatross-client's create with the image inside the certificate: ${this.chainLimitProblem}`,
      );
    }
    // The path OpenSSL verifies for each client, kept for us (peer.ts verifiedPath): one entry
    // per handshake in flight, at most one per connection plus some.
    this.verifiedChainsProblem =
      opts.verifiedChains === false
        ? "not asked for"
        : creds
          ? recordVerifiedChains(creds, 2 * this.o.maxConnections + 16)
          : `this Node's (${process.version}) TLS server keeps no secure context`;
    const opensslLimit = this.chainLimitProblem === null ? this.o.maxChainSize : OPENSSL_DEFAULT_CHAIN_LIMIT;
    const gateOptions = {
      maxChainSize: this.o.maxChainSize,
      opensslLimit,
      limitProblem: this.chainLimitProblem,
      budget: this.chainBudget,
      handshakeTimeoutMs: this.o.handshakeTimeoutMs,
      refuse: (g: ChainGate, message: string) => this.o.log("error", `error establishing TLS connection from ${peerOf(g)}: ${message}`),
      waits: (g: ChainGate, message: string) => this.logs.info && this.o.log("info", `${peerOf(g)}: ${message}`),
      onRandom: (g: ChainGate, random: string) => void this.byRandom.set(random, g),
      onClose: (g: ChainGate) => {
        this.gates.delete(g);
        if (this.byRandom.size > 0) for (const [r, x] of this.byRandom) if (x === g) this.byRandom.delete(r);
      },
    };
    this.server = net.createServer((raw) => this.accept(raw, gateOptions));
    this.server.maxConnections = this.o.maxConnections;
    // The client handshake traffic secret, for the gate to read the client's chain size.
    this.tlsServer.on("keylog", (line: Buffer, s: tls.TLSSocket) => {
      if (line.length < 31 || line.toString("latin1", 0, 31) !== "CLIENT_HANDSHAKE_TRAFFIC_SECRET") return;
      const k = parseKeylogLine(line);
      if (!k) return;
      // The gate under this socket; by the ClientHello's random where Node's internals do not
      // tell (a client chooses its random: two connections may send the same one).
      const g = gateBehind(s) ?? this.byRandom.get(k.random);
      if (this.byRandom.get(k.random) === g) this.byRandom.delete(k.random);
      if (!g) return;
      this.gateOf.set(s, g);
      g.setClientSecret(s.getCipher()?.standardName ?? "", k.secret);
    });
    this.tlsServer.on("secureConnection", (s: tls.TLSSocket) => {
      (this.gateOf.get(s) ?? gateBehind(s))?.handshakeDone();
      if (this.admit(s)) void this.handle(s);
    });
    this.tlsServer.on("tlsClientError", (e: Error & { code?: string }, s: tls.TLSSocket) => {
      const g = this.gateOf.get(s) ?? gateBehind(s);
      // a chain the gate refused was logged there, with its size
      if (!g?.refused) this.o.log("error", `error establishing TLS connection from ${peerOf(g)}: ${oneLine(e)}`);
      s.destroy();
    });
    this.server.on("drop", (d?: { remoteAddress?: string; remotePort?: number }) => {
      this.o.log("warn", `too many connections (${this.o.maxConnections}), dropped ${d?.remoteAddress ?? "?"}:${d?.remotePort ?? "?"}`);
    });
    this.server.on("error", (e) => this.o.log("error", `accept failed: ${oneLine(e)}`));
  }

  /** A new TCP connection: through its gate into the TLS server. */
  private accept(raw: net.Socket, gateOptions: ConstructorParameters<typeof ChainGate>[1]): void {
    const g = new ChainGate(raw, gateOptions);
    this.gates.add(g);
    this.tlsServer.emit("connection", g);
  }

  /** Listen on a TCP address (IPv6 sockets are dual stack), backlog 10. */
  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once("error", onError);
      this.server.listen({ host, port, backlog: 10, ipv6Only: false }, () => {
        this.server.off("error", onError);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Listen on an inherited, already listening file descriptor (systemd socket activation). */
  listenFd(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once("error", onError);
      this.server.listen({ fd }, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
  }

  /**
   * Serve one already connected socket (inetd mode: stdin) exactly like an accepted one
   * (handing it to the TLS server's connection handling: handshake timeout, verification,
   * `secureConnection`). Resolves when the connection is over.
   */
  serveSocket(raw: net.Socket): Promise<void> {
    return new Promise((resolve) => {
      raw.once("close", () => resolve());
      this.server.emit("connection", raw);
    });
  }

  /** OpenSSL's verdict on the client chain (daemon.md §6: a failed handshake is only logged). */
  private admit(s: tls.TLSSocket): boolean {
    if (s.authorized) return true;
    const cert = s.getPeerCertificate();
    const why = !cert?.raw ? "no client certificate" : `client certificate refused: ${String(s.authorizationError ?? "not authorized")}`;
    this.o.log("error", `error establishing TLS connection from ${this.peer(s)}: ${why}`);
    s.destroy();
    return false;
  }

  /** The client's address, as the TCP connection under the TLS one has it. */
  private peer(s: tls.TLSSocket): string {
    return peerOf(this.gateOf.get(s) ?? gateBehind(s));
  }

  close(): Promise<void> {
    this.daemons.close();
    for (const s of this.active) s.destroy();
    for (const g of this.gates) g.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private nextSequence(): bigint {
    const s = this.sequence;
    this.sequence += 1n;
    return s;
  }

  private async handle(s: tls.TLSSocket): Promise<void> {
    const who = this.peer(s);
    this.active.add(s);
    s.on("error", () => undefined); // reported where it matters (reads/writes)
    let daemon: DaemonLink | null = null;
    let slot: (() => void) | null = null;
    try {
      const derived = await this.authorize(s, who);
      if (!derived) return;
      // The client's only business after the handshake is a raw upload (image or block
      // data); anything else it sends is read and dropped (reading lets us notice it leave).
      const cmd = derived.command;
      let fromClient: ChunkReader | null = null;
      if (hasImageUpload(cmd) || hasBlockUpload(cmd)) fromClient = new ChunkReader(s, { maxChunk: this.o.maxClientChunk });
      else s.on("data", () => undefined);
      const reply = await this.execute(
        s,
        fromClient,
        derived,
        who,
        (link) => (daemon = link),
        (release) => (slot = release),
      );
      // step 8: the result, header (certificate version, sequence 0, derived name)
      const w: Wire = { header: { version: derived.version, sequence: 0n, name: derived.name }, payload: reply };
      // upstream ignores a failing final write
      await endTls(s, encodeFrame(encodeWire(w)), this.o.writeStallMs);
    } catch (e) {
      this.o.log("error", `${who}: error while handling the connection: ${oneLine(e)}`);
    } finally {
      (slot as (() => void) | null)?.();
      const d = daemon as DaemonLink | null;
      if (d) {
        d.sock.destroy();
        // the next request to this daemon will find a connection ready (daemons.ts)
        this.daemons.prepare(d.file);
      }
      s.destroy();
      this.active.delete(s);
      this.handled++;
    }
  }

  /** Steps before any daemon is contacted: our validation and the derivation (step 1). */
  private async authorize(s: tls.TLSSocket, who: string): Promise<Derived | null> {
    const certs = this.peerPath(s);
    if (!certs.ok) {
      this.o.log("error", `${who}: failed to handle TLS connection: ${certs.error}`);
      return null;
    }
    // Signatures are verified inline when this is the only connection (lowest latency), on
    // the thread pool when others are in flight (the event loop keeps serving them).
    const { chain, leafSignedUnder } = certs.value;
    const v = await validatePeerChain(chain, this.anchor, this.o.now(), { signatures: this.signatures, offload: this.active.size > 1, leafSignedUnder });
    if (!v.ok) {
      this.o.log("error", `${who}: failed to handle TLS connection: ${v.error}`);
      return null;
    }
    const d = deriveFromParsed(v.value);
    if (!d.ok) {
      this.o.log("error", `${who}: failed to handle TLS connection: ${d.error}`);
      return null;
    }
    return d.value;
  }

  /** The client's path: the one OpenSSL verified when the addon kept it, else from Node (peer.ts). */
  private peerPath(s: tls.TLSSocket): Result<PeerPath> {
    if (this.verifiedChainsProblem === null) {
      // (our Finished message: the key the addon filed the path under, see max_cert_list.cc)
      const finished = s.getFinished();
      const ders = finished ? takeVerifiedChain(finished) : null;
      const p = ders ? verifiedPath(ders, this.anchor, this.intermediates) : null;
      if (p) {
        this.chainSource.verified++;
        return p;
      }
    }
    this.chainSource.node++;
    const g = this.gateOf.get(s);
    const certs = peerCertificates(s, this.anchor, this.intermediates, { large: g !== undefined && g.chainSize !== null && g.chainSize > LARGE_CHAIN });
    return certs.ok ? ok({ chain: certs.value }) : certs;
  }

  /** Steps 2–7; returns the payload of the final reply. Throws Abort (no reply). */
  private async execute(
    s: tls.TLSSocket,
    fromClient: ChunkReader | null,
    derived: Derived,
    who: string,
    setDaemon: (link: DaemonLink) => void,
    setSlot: (release: () => void) => void,
  ): Promise<Payload> {
    const { name, policies, version } = derived;
    let cmd = derived.command;
    if (this.logs.info)
      this.o.log(
        "info",
        `${who}: ${nameToString(name)} ${cmd.kind}${policies.length ? ` (${policies.length} ${policies.length === 1 ? "policy" : "policies"})` : ""}`,
      );

    const mono = checkPolicyMonotonic(policies);
    if (!mono.ok) {
      this.o.log("warn", `${who}: refusing a chain with widening policies: ${mono.error}`);
      return failure(`delegated policies in the certificate chain widen: ${mono.error}`);
    }

    // step 2: the image of a create follows the handshake when the certificate has none.
    // Not upstream: a slot first (the images collected at once are bounded, slots.ts),
    // held until the connection is done.
    if (hasImageUpload(cmd)) {
      const slot = await this.imageSlots.acquire(this.o.uploadIdleMs);
      if (slot === null) {
        this.o.log("warn", `${who}: no image upload slot within ${this.o.uploadIdleMs} ms (${this.o.maxImageUploads} in use)`);
        return failure(`endpoint busy: ${this.o.maxImageUploads} image uploads in progress, try again`);
      }
      setSlot(slot);
      const image = await this.readImage(fromClient!, who);
      if (cmd.kind === "unikernel-create" || cmd.kind === "unikernel-force-create") {
        cmd = { kind: cmd.kind, config: { ...cmd.config, image } };
      }
    }

    // step 3
    const { socket: kind, mode: next } = endpointOf(cmd);
    const file = this.sockets[kind];
    let fd: net.Socket;
    try {
      fd = await this.daemons.connect(file);
    } catch (e) {
      this.o.log("warn", `${who}: failed to connect to ${file}: ${(e as NodeJS.ErrnoException).code ?? oneLine(e)}`);
      return failure("couldn't reach service");
    }
    setDaemon({ sock: fd, file });
    const fromDaemon = new ChunkReader(fd, { maxChunk: this.o.maxChunk });

    // step 4: the chain's policies, deepest first, on the same connection
    if (kind === "vmmd") {
      for (const { path: p, policy } of policies) {
        const w: Wire = {
          header: { version: WIRE_VERSION, sequence: this.nextSequence(), name: pathName(p) },
          payload: { kind: "command", command: { kind: "policy-add", policy } },
        };
        try {
          await writeBytes(fd, encodeFrame(encodeWire(w)), this.o.writeStallMs);
        } catch {
          return this.policyError(who, "failed to write policy");
        }
        const ev = await fromDaemon.next();
        if (ev.kind !== "chunk") return this.policyError(who, "read error after writing policy");
        let r: Wire;
        try {
          r = decodeWire(ev.payload);
        } catch {
          return this.policyError(who, "read error after writing policy");
        }
        if (r.payload.kind !== "reply") {
          return this.policyError(who, `expected success when adding policy, got: ${wireText(r)}`);
        }
      }
    }

    // step 5: the command, with the derived name
    const w: Wire = { header: { version: WIRE_VERSION, sequence: this.nextSequence(), name }, payload: { kind: "command", command: cmd } };
    try {
      // (a create may carry an image of megabytes: not copied into the message, nor behind
      // the length — one writev of the pieces)
      await writeFramedPieces(fd, encodeWirePieces(w, 64 * 1024), this.o.writeStallMs);
    } catch {
      return failure("couldn't write unikernel to VMMD");
    }

    // step 6: raw block data from the client to the daemon
    if (hasBlockUpload(cmd)) {
      const r = await this.copyUpload(fromClient!, fd, who);
      if (r) return r;
    }

    // step 7
    if (next === "single") {
      const ev = await fromDaemon.next();
      if (ev.kind !== "chunk") return failure("error reading from fd");
      try {
        return decodeWire(ev.payload).payload;
      } catch {
        return failure("error reading from fd");
      }
    }
    return this.relay(s, fromDaemon, version, who);
  }

  private policyError(who: string, msg: string): Payload {
    this.o.log("warn", `${who}: error while applying policies ${msg}`);
    return failure(msg);
  }

  /** Raw chunks until the zero-length one; EOF, error or stall abort without a reply. */
  private async readImage(fromClient: ChunkReader, who: string): Promise<Bytes> {
    const parts: Bytes[] = [];
    let total = 0;
    for (;;) {
      let ev;
      try {
        ev = await fromClient.next(this.o.uploadIdleMs);
      } catch (e) {
        if (e instanceof ReadTimeout) throw new Abort(`error retrieving unikernel image: ${e.message}`);
        throw e;
      }
      if (ev.kind === "terminator") break;
      if (ev.kind !== "chunk") throw new Abort(`error retrieving unikernel image${ev.kind === "error" ? `: ${ev.message}` : ""}`);
      total += ev.payload.length;
      if (total > this.o.maxImageBytes) throw new Abort(`error retrieving unikernel image: more than ${this.o.maxImageBytes} bytes`);
      parts.push(ev.payload);
    }
    if (this.logs.debug) this.o.log("debug", `${who}: received an image of ${total} bytes`);
    return Buffer.concat(parts);
  }

  /** Step 6: copy the client's raw chunks to the daemon, then the terminator. */
  private async copyUpload(fromClient: ChunkReader, fd: net.Socket, who: string): Promise<Payload | null> {
    for (;;) {
      let ev;
      try {
        ev = await fromClient.next(this.o.uploadIdleMs);
      } catch (e) {
        if (!(e instanceof ReadTimeout)) throw e;
        this.o.log("warn", `${who}: block upload stalled: ${e.message}`);
        return failure("reading tls chunk");
      }
      if (ev.kind === "terminator") break;
      if (ev.kind !== "chunk") return failure("reading tls chunk");
      try {
        await writeChunk(fd, ev.payload, this.o.writeStallMs);
      } catch {
        return failure("writing block data");
      }
    }
    try {
      await writeTerminator(fd, this.o.writeStallMs);
    } catch {
      return failure("writing block data");
    }
    return null;
  }

  /**
   * Step 7 for console/stats subscriptions and block dumps: forward every daemon message
   * (its header kept, version replaced by the certificate's) until `Data block no-data`.
   */
  private async relay(s: tls.TLSSocket, fromDaemon: ChunkReader, version: number, who: string): Promise<Payload> {
    // Notice a TLS client that goes away while the daemon is silent (console subscription).
    let clientGone = false;
    let wake: (() => void) | null = null;
    const onGone = () => {
      clientGone = true;
      wake?.();
    };
    s.once("close", onGone);
    s.once("end", onGone);
    try {
      for (;;) {
        const ev = await Promise.race([
          fromDaemon.next(),
          new Promise<null>((resolve) => {
            wake = () => resolve(null);
            if (clientGone) resolve(null);
          }),
        ]);
        wake = null;
        if (ev === null) {
          this.o.log("info", `${who}: client went away during the stream`);
          return failure("exception");
        }
        if (ev.kind !== "chunk") return failure("exception while reading from fd");
        let w: Wire;
        try {
          w = decodeWire(ev.payload);
        } catch {
          return failure("exception while reading from fd");
        }
        if (w.payload.kind === "data" && w.payload.data.kind === "block-end") return w.payload;
        // A Failure ends the daemon's stream (it closes the connection after it: e.g. a
        // subscribe or dump of a path name, a block device that is in use): it is the final
        // reply itself. (Forwarding it and then reporting the daemon's EOF as a second
        // Failure gave the client two failure replies.)
        if (w.payload.kind === "failure") return w.payload;
        // Only version 5 decodes, so the re-stamped header is the daemon's own: forward the
        // bytes as received (re-encode only if that ever changes).
        const out = w.header.version === version ? encodeFrame(ev.payload) : encodeFrame(encodeWire({ ...w, header: { ...w.header, version } }));
        try {
          await writeBytes(s, out, this.o.writeStallMs);
        } catch (e) {
          this.o.log("info", `${who}: writing to the client failed: ${oneLine(e)}`);
          return failure("exception");
        }
      }
    } finally {
      s.off("close", onGone);
      s.off("end", onGone);
    }
  }
}

/**
 * Send `last` and close our side of the TLS connection; resolves once flushed, or after `ms`
 * with the connection destroyed (a client that does not read).
 */
function endTls(s: tls.TLSSocket, last: Bytes, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed || !s.writable) return resolve();
    const t = setTimeout(() => {
      s.destroy();
      resolve();
    }, ms);
    t.unref?.();
    s.end(last, () => {
      clearTimeout(t);
      resolve();
    });
  });
}
