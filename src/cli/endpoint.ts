// `dromedary endpoint` (albatross-tls-endpoint, daemon.md §6) and `dromedary certificate`
// (cli.md §2 "Certificates").
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import net from "node:net";
import { InvalidArgumentError, type Command } from "commander";
import { existingDir, systemdListenFd } from "./options.js";
import { CliError, EXIT } from "../core/exit.js";
import { parseDestination, FlagError } from "./flags.js";
import type { Destination as RemoteHost } from "../client/remote.js";
import { addLogOptions, loggerFrom, type LogFlags } from "./logopts.js";
import { verbosityFrom } from "../core/log.js";

const DEFAULT_TMPDIR = "/run/albatross";
interface EndpointFlags extends LogFlags {
  ip: string;
  port: number;
  systemdSocketActivation?: boolean;
  inetd?: boolean;
  tmpdir: string;
  handshakeTimeout: number;
  uploadTimeout: number;
  maxConnections: number;
  maxImageSize: number;
  maxImageUploads: number;
  maxChainSize: number;
  chainMemory: number;
  spareConnections: boolean;
}

function parsePort(v: string): number {
  const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new InvalidArgumentError(`invalid port '${v}'`);
  return n;
}

function parseIp(v: string): string {
  if (isIP(v) === 0) throw new InvalidArgumentError(`'${v}' is not an IPv4 or IPv6 address`);
  return v;
}

const positive =
  (what: string) =>
  (v: string): number => {
    const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`invalid ${what} '${v}'`);
    return n;
  };

const MiB = 1 << 20;
/** the largest chain TLS can carry (a handshake message has a 24-bit length) */
const TLS_MAX_CHAIN = 16 * MiB;

/** BYTES for the chain flags: 1 .. 16 MiB, plain or with a K/M suffix (KiB/MiB). */
const chainBytes =
  (flag: string) =>
  (v: string): number => {
    const m = /^([0-9]+)([KM]?)$/i.exec(v);
    const n = m ? Number(m[1]) * (m[2] === "" ? 1 : m[2]!.toUpperCase() === "K" ? 1024 : MiB) : NaN;
    if (!Number.isSafeInteger(n) || n < 1 || (flag === "--max-chain-size" && n > TLS_MAX_CHAIN)) {
      throw new InvalidArgumentError(
        `invalid ${flag} '${v}', expected ${flag === "--max-chain-size" ? `1 to ${TLS_MAX_CHAIN}` : "a positive number of"} bytes (or with K or M)`,
      );
    }
    return n;
  };

function readFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new CliError(`${what}: no '${file}' file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, EXIT.USAGE);
  }
}

function registerEndpoint(program: Command): void {
  const cmd = program
    .command("endpoint")
    .description("the TLS endpoint (albatross-tls-endpoint): TLS 1.3 with client certificates, forwarding to the local daemons")
    .argument("<CACERT>", "the single CA client certificates must lead to")
    .argument("<CERT>", "server certificate (chain)")
    .argument("<KEY>", "server private key")
    .option("--ip <ADDR>", "listen address (IPv4 or IPv6 literal; IPv6 is dual stack)", parseIp, "::")
    .option("--port <N>", "listen port", parsePort, 1025)
    .option("--systemd-socket-activation", "use the listening socket passed by systemd (fd 3)")
    .option("--inetd", "serve one connection on stdin, then exit (needs --syslog or -q)")
    .option("--tmpdir <DIR>", "runtime directory holding util/*.sock", existingDir, DEFAULT_TMPDIR)
    .option(
      "--handshake-timeout <SECONDS>",
      "abort TLS handshakes taking longer (plus 1 s per MiB of a client certificate chain over 100 KiB)",
      positive("timeout"),
      10,
    )
    .option("--upload-timeout <SECONDS>", "abort uploads (image, block data) idle for longer", positive("timeout"), 30)
    .option(
      "--max-connections <N>",
      "concurrent TLS connections; each buffers at most about 2 × 4 MiB of a raw upload (plus an image, below)",
      positive("number"),
      256,
    )
    .option(
      "--max-image-size <BYTES>",
      "largest image of a create streamed after the handshake (as sent, compressed or not)",
      positive("size"),
      256 * 1024 * 1024,
    )
    .option(
      "--max-image-uploads <N>",
      "creates whose image is collected at once (all of it goes to hostd in one frame): images hold at most N × --max-image-size; a further create waits up to --upload-timeout",
      positive("number"),
      2,
    )
    .option(
      "--max-chain-size <BYTES>",
      "the largest client certificate chain (TLS Certificate message; albatross-client puts a create's compressed image in it); larger ones are refused, logged with their size",
      chainBytes("--max-chain-size"),
      TLS_MAX_CHAIN,
    )
    .option(
      "--chain-memory <BYTES>",
      "client certificate chains over 100 KiB held at once (at least --max-chain-size); a connection whose chain does not fit waits, within its handshake timeout. " +
        "Memory for client chains: about 5 × (BYTES + max-connections × 100 KiB) at most (measured: a connection holds about 5 × its chain at its peak), 445 MiB with the defaults",
      chainBytes("--chain-memory"),
      64 * MiB,
    )
    .option("--no-spare-connections", "connect to a daemon only when a request needs it (default: one connection per daemon in use is opened ahead)");
  addLogOptions(cmd, "albatross");
  cmd.action(async (cacert: string, cert: string, key: string, flags: EndpointFlags, cmd: Command) => {
    const verbosity = verbosityFrom(flags, "albatross");
    // upstream: inetd mode without syslog would log onto the TLS stream -> exit 3 at once
    if (flags.inetd && !flags.syslog && verbosity !== "quiet") process.exit(3);
    if (flags.systemdSocketActivation && cmd.getOptionValueSource("port") === "cli") {
      throw new CliError("Options --port and --systemd-socket-activation are not compatible", EXIT.USAGE);
    }
    if (flags.chainMemory < flags.maxChainSize)
      throw new CliError(`--chain-memory (${flags.chainMemory}) must be at least --max-chain-size (${flags.maxChainSize})`, EXIT.USAGE);
    const tmpdir = flags.tmpdir;
    const caPem = readFile(cacert, "CACERT");
    const certPem = readFile(cert, "CERT");
    const keyPem = readFile(key, "KEY");
    const { certificatesFromPem } = await import("../ca/x509.js");
    // The key is read as every key is (src/ca/keys.ts), so a wrong file is named as such
    // ("not a private key (found a CERTIFICATE PEM block)") instead of by OpenSSL's decoder.
    const { KeyError, privateKeyFromPem } = await import("../ca/keys.js");
    try {
      privateKeyFromPem(keyPem);
    } catch (e) {
      if (e instanceof KeyError) throw new CliError(`cannot set up TLS: ${key}: ${e.message}`, EXIT.INTERNAL);
      throw e;
    }
    let cas;
    try {
      cas = certificatesFromPem(caPem);
    } catch (e) {
      throw new CliError(`${cacert}: ${(e as Error).message}`, EXIT.INTERNAL);
    }
    if (cas.length !== 1) throw new CliError("expect single ca as cacert", EXIT.INTERNAL);
    process.on("SIGPIPE", () => undefined);
    const log = loggerFrom("endpoint", flags, "albatross").log;
    const { Endpoint } = await import("../endpoint/server.js");
    let ep;
    try {
      ep = new Endpoint({
        ca: cas[0]!,
        caPem,
        certPem,
        keyPem,
        tmpdir,
        log,
        logLevel: verbosity === "debug" || verbosity === "info" ? verbosity : verbosity === "warning" ? "warn" : "error",
        handshakeTimeoutMs: flags.handshakeTimeout * 1000,
        uploadIdleMs: flags.uploadTimeout * 1000,
        maxConnections: flags.maxConnections,
        maxImageBytes: flags.maxImageSize,
        maxImageUploads: flags.maxImageUploads,
        maxChainSize: flags.maxChainSize,
        chainMemory: flags.chainMemory,
        // one connection to serve: nothing to open ahead for
        spareConnections: flags.spareConnections && !flags.inetd,
      });
    } catch (e) {
      throw new CliError(`cannot set up TLS: ${(e as Error).message.split("\n")[0]}`, EXIT.INTERNAL);
    }
    if (flags.inetd) {
      const sock = new net.Socket({ fd: 0, readable: true, writable: true });
      await ep.serveSocket(sock);
      process.exit(0);
    }
    try {
      if (flags.systemdSocketActivation) {
        await ep.listenFd(systemdListenFd());
        log("info", "listening on the systemd socket (fd 3)");
      } else {
        const a = await ep.listen(flags.ip, flags.port);
        log("info", `listening on ${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`);
      }
    } catch (e) {
      throw new CliError(`endpoint: ${(e as Error).message}`, EXIT.INTERNAL);
    }
    // The listening socket keeps the process alive.
  });
}

interface CertificateFlags {
  destination?: RemoteHost;
  serverCa: string;
  json?: boolean;
  verbose?: boolean;
  keyPasswordFile?: string;
}

function registerCertificate(program: Command): void {
  program
    .command("certificate")
    .description("run the command carried by an existing leaf certificate at a remote endpoint")
    // albatross-client takes CERT KEY; its README (step 7) writes `certificate cacert.pem
    // hello.pem hello.key`. Both forms are accepted: a leading third file is the server CA.
    .usage("[options] [CACERT] CERT KEY")
    .argument(
      "<FILES...>",
      "[CACERT] CERT KEY: the CA authenticating the server (same as --server-ca, optional), the leaf certificate followed by its chain (PEM), the leaf's private key",
    )
    .option("-d, --destination <HOST[:PORT]>", "remote albatross TLS endpoint (port 1025 by default)", (s: string) => {
      try {
        return parseDestination(s);
      } catch (e) {
        if (e instanceof FlagError) throw new InvalidArgumentError(e.message);
        throw e;
      }
    })
    .option("--server-ca <FILE>", "CA(s) to validate the server", "cacert.pem")
    .option("--key-password-file <FILE>", "password of an encrypted KEY")
    .option("--json", "print one JSON object per message (JSON lines)")
    .option("-v, --verbose", "show arguments (argv) in configurations and infos")
    .action(async (files: string[], flags: CertificateFlags, cmd: Command) => {
      if (files.length < 2 || files.length > 3) throw new CliError("expected CERT KEY, or CACERT CERT KEY", EXIT.USAGE);
      const [serverCaArg, cert, key] = files.length === 2 ? [undefined, files[0]!, files[1]!] : [files[0]!, files[1]!, files[2]!];
      if (serverCaArg !== undefined && cmd.getOptionValueSource("serverCa") === "cli" && serverCaArg !== flags.serverCa) {
        throw new CliError("the server CA was given twice (CACERT and --server-ca)", EXIT.USAGE);
      }
      const serverCa = serverCaArg ?? flags.serverCa;
      const { runCertificate } = await import("../client/remote.js");
      const { processReplies, processSink, STARTED_AT } = await import("../client/replies.js");
      const sink = processSink(flags.json ?? false);
      const keyPassword = flags.keyPasswordFile !== undefined ? readFile(flags.keyPasswordFile, "--key-password-file").replace(/\r?\n$/, "") : undefined;
      process.exitCode = await runCertificate({
        cert,
        key,
        serverCa,
        ...(keyPassword !== undefined ? { keyPassword } : {}),
        ...(flags.destination ? { destination: flags.destination } : {}),
        replies: (next, mode) => processReplies(next, mode, { sink, startedAt: STARTED_AT, verbose: flags.verbose ?? false }),
        warn: (m) => sink.err(`warning: ${m}`),
      });
    });
}

/** Registers `endpoint` and `certificate`. */
export function registerEndpointCommands(program: Command): void {
  registerEndpoint(program);
  registerCertificate(program);
}
