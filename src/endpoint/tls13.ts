// The size of a TLS 1.3 client's certificate chain, read off the wire before OpenSSL reads it.
//
// Why: with the chain limit raised to megabytes (native/max-cert-list), every connection may
// make OpenSSL hold that much: OpenSSL 3.0 (Node 20) reserves and zero-fills the whole declared
// length of a handshake message as soon as it has read its 4-byte header (measured: a client
// that sent 64 KiB of a 12 MiB chain pins 12 MiB), OpenSSL 3.5 (Node 22, 24) what has arrived.
// So the endpoint must know a chain's size before OpenSSL reads its header, to admit it within
// a memory budget (gate.ts) — and when OpenSSL refuses a chain ("excessive message size") it
// does not say how large it was. In TLS 1.3 the client's Certificate message is encrypted
// (client handshake traffic keys), so its length is not visible in the record layer: the
// endpoint learns the client handshake traffic secret from its own TLS server (the `keylog`
// event) and decrypts the first record(s) of the client's second flight here — the 4-byte
// handshake header is all that is read.
// The bytes themselves are passed on to OpenSSL unchanged.
//
// Pure: bytes in, what is known out (RFC 8446 §5 record layer, §7.1 key schedule, §4.4.2).
import { createDecipheriv, createHmac } from "node:crypto";

const RECORD_HEADER = 5;
/**
 * The largest record accepted (ciphertext, RFC 8446 §5.2: 2^14 + 256; OpenSSL's read limit is
 * 2^14 + 2048, which is used here so that nothing OpenSSL would take is refused here). A larger
 * one ends the connection; at most one record per connection is held back.
 */
export const MAX_RECORD = (1 << 14) + 2048;
/**
 * Encrypted records a client may send before one that our keys open (0-RTT data the server
 * rejects is skipped by OpenSSL too, up to 16 KiB) — and that are held until the keys are
 * known: beyond this the probe gives up.
 */
export const MAX_UNREADABLE = 64 * 1024;

const CONTENT_HANDSHAKE = 22;
const CONTENT_APPLICATION_DATA = 23;
const HANDSHAKE_CLIENT_HELLO = 1;
export const HANDSHAKE_CERTIFICATE = 11;

interface Suite {
  readonly cipher: "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";
  readonly keyLength: number;
  readonly hash: "sha256" | "sha384";
}

/** TLS 1.3 cipher suites by their standard names (those OpenSSL enables; CCM is not). */
const SUITES: Readonly<Record<string, Suite>> = {
  TLS_AES_128_GCM_SHA256: { cipher: "aes-128-gcm", keyLength: 16, hash: "sha256" },
  TLS_AES_256_GCM_SHA384: { cipher: "aes-256-gcm", keyLength: 32, hash: "sha384" },
  TLS_CHACHA20_POLY1305_SHA256: { cipher: "chacha20-poly1305", keyLength: 32, hash: "sha256" },
};

/** HKDF-Expand-Label (RFC 8446 §7.1) for outputs of at most one hash block. */
export function expandLabel(hash: Suite["hash"], secret: Uint8Array, label: string, length: number): Buffer {
  const l = Buffer.from(`tls13 ${label}`, "latin1");
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, l.length]), l, Buffer.from([0, 1])]);
  return createHmac(hash, secret).update(info).digest().subarray(0, length);
}

export interface TrafficKeys {
  readonly suite: Suite;
  readonly key: Buffer;
  readonly iv: Buffer;
}

/** The record protection keys of a traffic secret (RFC 8446 §7.3). */
export function trafficKeys(suiteName: string, secret: Uint8Array): TrafficKeys | null {
  const suite = SUITES[suiteName];
  if (!suite) return null;
  return { suite, key: expandLabel(suite.hash, secret, "key", suite.keyLength), iv: expandLabel(suite.hash, secret, "iv", 12) };
}

/**
 * Decrypt one protected record (header included) with record sequence number `seq`:
 * its inner content type and content, or null when it does not open with these keys.
 */
export function openRecord(k: TrafficKeys, seq: number, record: Uint8Array): { type: number; content: Buffer } | null {
  if (record.length < RECORD_HEADER + 17) return null;
  const nonce = Buffer.from(k.iv);
  // the 64-bit sequence number, big-endian, XORed into the last 8 bytes (seq < 2^53 here)
  for (let i = 0, s = seq; i < 8; i++, s = Math.floor(s / 256)) nonce[11 - i]! ^= s & 0xff;
  try {
    const d = createDecipheriv(k.suite.cipher, k.key, nonce, { authTagLength: 16 } as never) as ReturnType<typeof createDecipheriv> & {
      setAAD(b: Uint8Array): void;
      setAuthTag(b: Uint8Array): void;
    };
    d.setAAD(record.subarray(0, RECORD_HEADER));
    d.setAuthTag(record.subarray(record.length - 16));
    const plain = Buffer.concat([d.update(record.subarray(RECORD_HEADER, record.length - 16)), d.final()]);
    // TLSInnerPlaintext: content, the real content type, zero padding
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    if (end < 0) return null;
    return { type: plain[end]!, content: plain.subarray(0, end) };
  } catch {
    return null;
  }
}

/** A `keylog` line: NSS key log format (label, client random, secret), as Node hands it out. */
export function parseKeylogLine(line: Uint8Array | string): { label: string; random: string; secret: Buffer } | null {
  const parts = (typeof line === "string" ? line : Buffer.from(line).toString("latin1")).trim().split(" ");
  if (parts.length !== 3 || !/^[0-9a-f]{64}$/i.test(parts[1]!) || !/^[0-9a-f]+$/i.test(parts[2]!)) return null;
  return { label: parts[0]!, random: parts[1]!.toLowerCase(), secret: Buffer.from(parts[2]!, "hex") };
}

/** What the probe has learnt after the bytes fed so far. */
export type Verdict =
  /** not yet: `forward` more bytes may be passed on, the rest is held */
  | { readonly kind: "pending" }
  /**
   * the first handshake message of the client's encrypted flight: its type and declared
   * length (for a Certificate message: the chain as sent, RFC 8446 §4.4.2). `at` is where the
   * record that told it starts; it and everything after it are not yet forwarded.
   */
  | { readonly kind: "message"; readonly type: number; readonly length: number; readonly at: number }
  /** no handshake message there (an alert, or data), or nothing this probe can read: pass on */
  | { readonly kind: "none"; readonly at: number }
  /** the client broke the record layer in a way that must end the connection */
  | { readonly kind: "error"; readonly message: string };

/**
 * Reads a TLS client's byte stream: the client random of its ClientHello, then — once
 * `setKeys` gave the client handshake traffic keys — the header of the first handshake message
 * it encrypts. `push` returns how many of all bytes pushed so far may be forwarded (complete
 * records that need not be held) and the verdict; after a verdict other than "pending" the
 * probe is done and everything may pass.
 */
export class ClientFlightProbe {
  private buf: Buffer = Buffer.alloc(0);
  /** bytes before `buf` (all forwardable) */
  private base = 0;
  /** the plaintext handshake bytes seen so far (only until the client random is known) */
  private hello: Buffer | null = Buffer.alloc(0);
  private keys: TrafficKeys | null = null;
  private seq = 0;
  private plain: Buffer = Buffer.alloc(0);
  private unreadable = 0;
  private done: Verdict | null = null;
  /** the ClientHello's random (hex), once seen */
  random: string | null = null;
  /** how many bytes may be forwarded */
  forwardable = 0;

  setKeys(k: TrafficKeys): void {
    this.keys = k;
  }

  get hasKeys(): boolean {
    return this.keys !== null;
  }

  push(chunk: Uint8Array): Verdict {
    if (this.done) {
      this.forwardable += chunk.length;
      return this.done;
    }
    this.buf = this.buf.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length) : Buffer.concat([this.buf, chunk]);
    return this.scan();
  }

  /** Re-examine what is held (after setKeys). */
  scan(): Verdict {
    if (this.done) return this.done;
    let off = 0;
    for (;;) {
      if (this.buf.length - off < RECORD_HEADER) break;
      const type = this.buf[off]!;
      const len = this.buf.readUInt16BE(off + 3);
      if (len > MAX_RECORD) return this.finish({ kind: "error", message: `a TLS record of ${len} bytes (at most ${MAX_RECORD})` }, off);
      if (this.buf.length - off < RECORD_HEADER + len) break;
      const record = this.buf.subarray(off, off + RECORD_HEADER + len);
      if (type === CONTENT_HANDSHAKE && this.hello) this.readHello(record.subarray(RECORD_HEADER));
      if (type === CONTENT_APPLICATION_DATA) {
        if (!this.keys) {
          // Before the keys, nothing encrypted passes: it is 0-RTT data (tried with the keys,
          // which do not open it, then passed on for OpenSSL to skip) or junk — and were it
          // let through unread, a chain's header could reach OpenSSL unseen. Held, bounded.
          this.consume(off);
          if (this.buf.length > MAX_UNREADABLE) return this.finish({ kind: "error", message: "encrypted records before the handshake" }, 0);
          return { kind: "pending" };
        }
        const v = this.readProtected(record, this.base + off);
        if (v) return this.finish(v, off);
      }
      off += record.length;
    }
    this.consume(off);
    return { kind: "pending" };
  }

  private readHello(fragment: Buffer): void {
    this.hello = Buffer.concat([this.hello!, fragment]);
    // handshake header (4), legacy_version (2), random (32)
    if (this.hello.length < 38) return;
    if (this.hello[0] === HANDSHAKE_CLIENT_HELLO) this.random = this.hello.subarray(6, 38).toString("hex");
    this.hello = null;
  }

  private readProtected(record: Buffer, at: number): Verdict | null {
    const r = openRecord(this.keys!, this.seq, record);
    if (!r) {
      // rejected 0-RTT data is skipped (it does not advance the sequence number)
      if ((this.unreadable += record.length) > MAX_UNREADABLE) return { kind: "error", message: "client records that the handshake keys do not open" };
      return null;
    }
    this.seq++;
    if (r.type !== CONTENT_HANDSHAKE) return { kind: "none", at };
    this.plain = Buffer.concat([this.plain, r.content]);
    if (this.plain.length < 4) return null;
    return { kind: "message", type: this.plain[0]!, length: this.plain.readUIntBE(1, 3), at };
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
    this.base += n;
    this.forwardable = this.base;
  }

  private finish(v: Verdict, off: number): Verdict {
    this.consume(off);
    this.buf = Buffer.alloc(0);
    this.plain = Buffer.alloc(0);
    this.done = v;
    return v;
  }
}
