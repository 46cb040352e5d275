// What stands between an accepted TCP connection and the endpoint's TLS server: the bound on
// client certificate chains (size and memory) and the handshake deadline.
//
// A ChainGate is the stream the TLS server reads the client's bytes from (Node's TLSSocket
// takes any Duplex). It passes them on unchanged, but holds back the record in which the client
// starts its encrypted flight until it knows the size of the chain in there (tls13.ts):
// * over the largest chain accepted: refused with a log line naming the size (passed on to
//   OpenSSL when OpenSSL's own limit refuses it too — the client then gets OpenSSL's alert —
//   else the connection is closed);
// * over OpenSSL's default 100 KiB (which needs native/max-cert-list to be accepted): the
//   connection must first reserve the chain's size from a Budget (slots.ts), shared by all
//   connections; it waits (nothing more read from it) until enough is free, within its
//   handshake deadline. The reservation is held until the connection closes (OpenSSL keeps
//   the parsed chain for the session, the endpoint its copies while it handles the request);
// * otherwise it passes at once (connections × 100 KiB is bounded by --max-connections).
// The handshake deadline runs from the accept; an admitted large chain extends it by its
// transfer time at a minimum rate (CHAIN_MS_PER_MIB).

import { Duplex } from "node:stream";
import type net from "node:net";
import type { Budget } from "./slots.js";
import { ClientFlightProbe, HANDSHAKE_CERTIFICATE, trafficKeys, type Verdict } from "./tls13.js";

/** OpenSSL's default limit on a received certificate chain (SSL_MAX_CERT_LIST_DEFAULT). */
export const OPENSSL_DEFAULT_CHAIN_LIMIT = 100 * 1024;
/** The largest chain TLS can carry: a handshake message length is 24 bits. */
export const TLS_MAX_CHAIN = 16 * 1024 * 1024;
/** A large chain's handshake gets this much more time per MiB (a client sending >= 1 MiB/s). */
export const CHAIN_MS_PER_MIB = 1000;

export interface GateOptions {
  /** the largest client chain accepted (--max-chain-size) */
  readonly maxChainSize: number;
  /** what OpenSSL itself accepts: maxChainSize with the addon, else its default 100 KiB */
  readonly opensslLimit: number;
  /** why OpenSSL's limit was not raised (the addon's load error), null when it was */
  readonly limitProblem: string | null;
  readonly budget: Budget;
  readonly handshakeTimeoutMs: number;
  /** log that this connection is refused (the text after the peer) */
  readonly refuse: (gate: ChainGate, message: string) => void;
  /** log that this connection waits for the budget (the text after the peer) */
  readonly waits: (gate: ChainGate, message: string) => void;
  /** the ClientHello's random is known (to find this gate from the TLS server's keylog) */
  readonly onRandom: (gate: ChainGate, random: string) => void;
  readonly onClose: (gate: ChainGate) => void;
}

export class ChainGate extends Duplex {
  private readonly probe = new ClientFlightProbe();
  /** client bytes not yet passed on to TLS, and how many were */
  private held: Buffer[] = [];
  private passed = 0;
  private open = false;
  /** paused because TLS does not read (backpressure) or because we wait for the budget */
  private backpressure = false;
  private waitingForBudget = false;
  private randomSeen = false;
  private deadline: NodeJS.Timeout;
  private cancelBudget: (() => void) | null = null;
  /** the declared chain size, once known */
  chainSize: number | null = null;
  /** a refusal was logged for this connection (the TLS layer's own error need not be) */
  refused = false;
  /** the handshake finished */
  secured = false;

  constructor(
    readonly raw: net.Socket,
    private readonly o: GateOptions,
  ) {
    super({ allowHalfOpen: true });
    this.deadline = setTimeout(() => this.expire(), o.handshakeTimeoutMs).unref();
    raw.on("data", (b: Buffer) => this.fromClient(b));
    raw.on("end", () => this.push(null));
    raw.on("error", () => undefined); // its close follows
    raw.on("close", () => this.destroy());
  }

  get remoteAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.raw.remotePort;
  }

  /** The client handshake traffic secret and the cipher suite (from the TLS server's keylog). */
  setClientSecret(suite: string, secret: Uint8Array): void {
    if (this.open || this.probe.hasKeys) return;
    const k = trafficKeys(suite, secret);
    if (!k) {
      // a suite this probe cannot decrypt (none that OpenSSL enables by default)
      this.refuse(`cannot read the certificate chain size with cipher suite ${suite}`);
      return;
    }
    this.probe.setKeys(k);
    this.verdict(this.probe.scan());
  }

  /** The TLS handshake is complete (from here on every byte passes, whatever was learnt). */
  handshakeDone(): void {
    this.secured = true;
    clearTimeout(this.deadline);
    if (!this.open) this.pass();
  }

  private fromClient(b: Buffer): void {
    if (this.open) return this.forward(b);
    this.held.push(b);
    const v = this.probe.push(b);
    if (this.probe.random !== null && !this.randomSeen) {
      this.randomSeen = true;
      this.o.onRandom(this, this.probe.random);
    }
    this.release(this.probe.forwardable);
    this.verdict(v);
  }

  /** Pass on held bytes up to absolute offset `upTo`. */
  private release(upTo: number): void {
    while (this.passed < upTo && this.held.length > 0) {
      const first = this.held[0]!;
      const n = Math.min(first.length, upTo - this.passed);
      if (n === first.length) this.held.shift();
      else this.held[0] = first.subarray(n);
      this.passed += n;
      this.forward(n === first.length ? first : first.subarray(0, n));
    }
  }

  private forward(b: Buffer): void {
    if (!this.push(b) && !this.backpressure) {
      this.backpressure = true;
      this.raw.pause();
    }
  }

  override _read(): void {
    if (!this.backpressure) return;
    this.backpressure = false;
    if (!this.waitingForBudget) this.raw.resume();
  }

  private verdict(v: Verdict): void {
    switch (v.kind) {
      case "pending":
        return;
      case "none":
        return this.pass();
      case "error":
        this.refuse(v.message);
        return;
      case "message":
        if (v.type !== HANDSHAKE_CERTIFICATE) return this.pass(); // OpenSSL refuses it
        return this.admit(v.length);
    }
  }

  private admit(size: number): void {
    this.chainSize = size;
    const o = this.o;
    if (size > o.maxChainSize) return this.refuseChain(size, `over --max-chain-size (${o.maxChainSize} bytes)`);
    if (size > o.opensslLimit) return this.refuseChain(size, `over OpenSSL's limit of ${o.opensslLimit} bytes (${o.limitProblem ?? "not raised"})`);
    if (size <= OPENSSL_DEFAULT_CHAIN_LIMIT) return this.pass();
    if (size > o.budget.capacity) return this.refuseChain(size, `over --chain-memory (${o.budget.capacity} bytes)`);
    this.waitingForBudget = true;
    this.raw.pause();
    let granted = false;
    this.cancelBudget = o.budget.request(size, () => {
      granted = true;
      this.waitingForBudget = false;
      // the transfer of a large chain gets its time on top of the handshake's own
      clearTimeout(this.deadline);
      this.deadline = setTimeout(() => this.expire(), o.handshakeTimeoutMs + Math.ceil((size / (1 << 20)) * CHAIN_MS_PER_MIB)).unref();
      this.pass();
    });
    if (!granted)
      o.waits(
        this,
        `client certificate chain of ${size} bytes waits for memory (--chain-memory ${o.budget.capacity} bytes: ${o.budget.inUse} in use, ${o.budget.waiting} waiting)`,
      );
  }

  /** Refuse a chain: logged here; OpenSSL refuses it too when its limit is lower (with an alert). */
  private refuseChain(size: number, why: string): void {
    this.o.refuse(this, `client certificate chain of ${size} bytes refused: ${why}`);
    this.refused = true;
    if (size > this.o.opensslLimit) this.pass();
    else this.destroy();
  }

  private refuse(message: string): void {
    this.o.refuse(this, message);
    this.refused = true;
    this.destroy();
  }

  /** From now on every byte passes. */
  private pass(): void {
    this.open = true;
    this.release(Number.POSITIVE_INFINITY);
    this.held = [];
    if (!this.backpressure) this.raw.resume();
  }

  private expire(): void {
    if (this.secured || this.destroyed) return;
    const budget = this.o.budget;
    this.refuse(
      this.waitingForBudget
        ? `TLS handshake timed out waiting for memory for a client certificate chain of ${this.chainSize} bytes (--chain-memory ${budget.capacity} bytes: ${budget.inUse} in use, ${budget.waiting} waiting)`
        : "TLS handshake timed out",
    );
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.raw.destroyed) return cb();
    this.raw.write(chunk, () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.raw.end();
    cb();
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    clearTimeout(this.deadline);
    this.cancelBudget?.();
    this.cancelBudget = null;
    this.held = [];
    this.raw.destroy();
    this.o.onClose(this);
    cb(e);
  }
}
