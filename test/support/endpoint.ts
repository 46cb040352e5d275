// Test support for the TLS endpoint: a PKI, a fake daemon speaking the framed protocol on
// <tmpdir>/util/*.sock (recording what it receives), an endpoint on 127.0.0.1, and clients.
import "reflect-metadata";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach } from "node:test";
import tls from "node:tls";
import { decodeWire, encodeWire } from "../../src/commands/codec.js";
import { encodeFrame } from "../../src/commands/framing.js";
import type { Command, Data, Payload, Policy, Success, UnikernelConfig, Wire } from "../../src/commands/types.js";
import { privateKeyToPem } from "../../src/ca/keys.js";
import { toPem } from "../../src/ca/x509.js";
import { ChunkReader, writeBytes } from "../../src/transport/chunks.js";
import { Endpoint, type EndpointOptions, type LogLevel } from "../../src/endpoint/server.js";
import { make, policy, type MakeOptions, type Node } from "./ca.js";

export { make, policy };
export type { Node };

const created: string[] = [];
process.once("exit", () => {
  for (const d of created) rmSync(d, { recursive: true, force: true });
});

/** A temporary directory, removed when the test process exits. */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "dromedary-ep-"));
  created.push(d);
  return d;
}
export const pem = (...nodes: Node[]): string => nodes.map((n) => toPem(n.der, "CERTIFICATE")).join("");
export const keyPem = (n: Node): string => privateKeyToPem(n.key);
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export function writeFiles(dir: string, files: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(files)) {
    out[k] = join(dir, k);
    writeFileSync(out[k]!, v);
  }
  return out;
}

export const config = (p: Partial<UnikernelConfig> = {}): UnikernelConfig =>
  ({
    typ: "solo5",
    compressed: false,
    image: p.image ?? enc("ELF image"),
    failBehaviour: { kind: "quit" },
    cpuids: p.cpuids ?? [0],
    memory: p.memory ?? 32,
    blockDevices: [],
    bridges: p.bridges ?? [],
    numcpus: 1,
    addName: true,
    ...p,
  }) as UnikernelConfig;

export const cmds = {
  info: { kind: "unikernel-info" } as Command,
  policyInfo: { kind: "policy-info" } as Command,
  console: { kind: "console-subscribe", sinceCount: { kind: "count", count: 20 } } as Command,
  consoleList: { kind: "console-list-inactive" } as Command,
  stats: { kind: "stats-subscribe" } as Command,
  create: (c: Partial<UnikernelConfig> = {}): Command => ({ kind: "unikernel-create", config: config(c) }),
  blockSet: { kind: "block-set", compressed: false } as Command,
  blockDump: { kind: "block-dump", level: 0 } as Command,
  blockAdd: { kind: "block-add", size: 10 } as Command,
};

export interface Pki {
  readonly root: Node;
  readonly server: Node;
  /** a tenant CA `arc` under the root, with `arcPolicy` */
  readonly arc: Node;
  readonly arcPolicy: Policy;
}

export async function makePki(): Promise<Pki> {
  const root = await make({ profile: "root", cn: "root", seconds: 3600 });
  const server = await make({ profile: "server", cn: "server", issuer: root, seconds: 3600 });
  const arcPolicy = policy({ unikernels: 1n, cpuids: [0], memory: 64, bridges: ["service"] });
  const arc = await make({ profile: "intermediate", cn: "arc", issuer: root, policy: arcPolicy, seconds: 3600 });
  return { root, server, arc, arcPolicy };
}

export const leaf = (issuer: Node, cn: string, command: Command, extra: Partial<MakeOptions> = {}): Promise<Node> =>
  make({ profile: "leaf", cn, issuer, command, seconds: 300, ...extra });

// ---------------------------------------------------------------------------------------
// fake daemons

export interface Received {
  readonly socket: "vmmd" | "console" | "stat";
  readonly wire?: Wire;
  /** a raw chunk after a command (upload); `terminator` for the zero-length one */
  readonly raw?: Uint8Array;
  readonly terminator?: boolean;
}

/**
 * What the fake does with a command. Returns the payloads to answer with (each in its own
 * frame with the request header; `close` ends the connection afterwards) — or `upload`: read
 * raw chunks until the terminator first.
 */
export type Behaviour = (w: Wire, socket: Received["socket"]) => { replies: Array<Payload | Wire>; close?: boolean; upload?: boolean; delayMs?: number };

export const success = (s: Success = { kind: "empty" }): Payload => ({ kind: "reply", reply: s });
export const str = (t: string): Payload => success({ kind: "string", text: enc(t) });
export const fail = (t: string): Payload => ({ kind: "failure", message: enc(t) });
export const data = (d: Data): Payload => ({ kind: "data", data: d });

export const defaultBehaviour: Behaviour = (w) => {
  if (w.payload.kind !== "command") return { replies: [], close: true };
  const c = w.payload.command;
  switch (c.kind) {
    case "policy-add":
      return { replies: [str("added policy")] };
    case "unikernel-info":
      return { replies: [success({ kind: "unikernel-info", unikernels: [] })], close: true };
    case "block-set":
      return { replies: [str("set block device")], close: true, upload: true };
    default:
      return { replies: [str("ok")], close: true };
  }
};

export class FakeDaemons {
  readonly received: Received[] = [];
  private readonly servers: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  /** connections accepted per socket, whether or not anything arrived on them */
  readonly accepted: Record<Received["socket"], number> = { vmmd: 0, console: 0, stat: 0 };
  behaviour: Behaviour = defaultBehaviour;

  constructor(readonly tmpdir: string) {}

  static async start(tmpdir: string, which: Array<Received["socket"]> = ["vmmd", "console", "stat"]): Promise<FakeDaemons> {
    mkdirSync(join(tmpdir, "util"), { recursive: true });
    const f = new FakeDaemons(tmpdir);
    for (const k of which) await f.listen(k);
    return f;
  }

  private listen(kind: Received["socket"]): Promise<void> {
    const file = join(this.tmpdir, "util", kind === "stat" ? "stat.sock" : `${kind}.sock`);
    rmSync(file, { force: true });
    const srv = net.createServer((c) => void this.serve(c, kind));
    this.servers.push(srv);
    return new Promise((resolve) => srv.listen(file, () => resolve()));
  }

  of(kind: Received["socket"]): Wire[] {
    return this.received.filter((r) => r.socket === kind && r.wire).map((r) => r.wire!);
  }

  private async serve(c: net.Socket, kind: Received["socket"]): Promise<void> {
    this.conns.add(c);
    this.accepted[kind]++;
    c.on("close", () => this.conns.delete(c));
    c.on("error", () => undefined);
    const reader = new ChunkReader(c, { maxChunk: 1 << 30 });
    try {
      for (;;) {
        const ev = await reader.next();
        if (ev.kind !== "chunk") return;
        const w = decodeWire(ev.payload);
        this.received.push({ socket: kind, wire: w });
        const b = this.behaviour(w, kind);
        if (b.upload) {
          for (;;) {
            const r = await reader.next();
            if (r.kind === "terminator") {
              this.received.push({ socket: kind, terminator: true });
              break;
            }
            if (r.kind !== "chunk") return;
            this.received.push({ socket: kind, raw: r.payload });
          }
        }
        if (b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
        for (const p of b.replies) {
          const out: Wire = "header" in p ? p : { header: w.header, payload: p };
          await writeBytes(c, encodeFrame(encodeWire(out)));
        }
        if (b.close) return;
      }
    } catch {
      // connection gone
    } finally {
      c.end();
    }
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(() => r(null)))));
  }
}

// ---------------------------------------------------------------------------------------
// the endpoint under test

export interface Running {
  readonly ep: Endpoint;
  readonly port: number;
  readonly logs: Array<{ level: LogLevel; message: string }>;
  /** resolves once a log line matching `re` was written */
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export async function startEndpoint(pki: Pki, tmp: string, extra: Partial<EndpointOptions> = {}, host = "127.0.0.1"): Promise<Running> {
  const logs: Array<{ level: LogLevel; message: string }> = [];
  const waiters: Array<{ re: RegExp; resolve: (s: string) => void }> = [];
  const ep = new Endpoint({
    ca: pki.root.cert,
    caPem: pem(pki.root),
    certPem: pem(pki.server),
    keyPem: keyPem(pki.server),
    tmpdir: tmp,
    log: (level, message) => {
      logs.push({ level, message });
      for (const w of [...waiters]) {
        if (w.re.test(message)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(message);
        }
      }
    },
    ...extra,
  });
  const a = await ep.listen(host, 0);
  return {
    ep,
    port: a.port,
    logs,
    waitLog: (re, timeoutMs = 10_000) => {
      const hit = logs.find((l) => re.test(l.message));
      if (hit) return Promise.resolve(hit.message);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no log line matching ${re} in: ${logs.map((l) => l.message).join(" | ")}`)), timeoutMs);
        waiters.push({ re, resolve: (s) => (clearTimeout(t), resolve(s)) });
      });
    },
    close: () => ep.close(),
  };
}

// ---------------------------------------------------------------------------------------
// a raw TLS client: connect with a chain, optionally upload, collect every reply

export interface Exchange {
  readonly replies: Wire[];
  /** how the connection ended */
  readonly end: "eof" | "error";
  readonly error?: string;
}

export interface RawClientOptions {
  readonly port: number;
  readonly chain: Node[];
  readonly ca: Node;
  readonly upload?: Uint8Array[];
  /** write the terminator after the upload (default true) */
  readonly terminate?: boolean;
  readonly minVersion?: tls.SecureVersion;
  readonly maxVersion?: tls.SecureVersion;
}

export function exchange(o: RawClientOptions): Promise<Exchange> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port: o.port,
      ca: pem(o.ca),
      cert: pem(...o.chain),
      key: keyPem(o.chain[0]!),
      checkServerIdentity: () => undefined,
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
    });
    const replies: Wire[] = [];
    const reader = new ChunkReader(s, { maxChunk: 1 << 30 });
    s.on("secureConnect", () => {
      void (async () => {
        for (const u of o.upload ?? []) await writeBytes(s, encodeFrame(u)).catch(() => undefined);
        if (o.upload && o.terminate !== false) await writeBytes(s, new Uint8Array(4)).catch(() => undefined);
      })();
    });
    void (async () => {
      for (;;) {
        const ev = await reader.next();
        if (ev.kind === "chunk") {
          replies.push(decodeWire(ev.payload));
          continue;
        }
        if (ev.kind === "terminator") continue;
        s.destroy();
        resolve(ev.kind === "error" ? { replies, end: "error", error: `${ev.code ?? ""} ${ev.message}` } : { replies, end: "eof" });
        return;
      }
    })();
  });
}

export const failureText = (w: Wire): string | null => (w.payload.kind === "failure" ? dec(w.payload.message) : null);

// ---------------------------------------------------------------------------------------
// one endpoint per test file

export interface EndpointFixture {
  readonly pki: Pki;
  readonly tmp: string;
  readonly fake: FakeDaemons;
  readonly ep: Running;
}

/**
 * The hooks the endpoint test files share: before all tests, a PKI, fake daemons in a temp
 * dir and an endpoint with `options`, handed to `ready` (which assigns the file's variables
 * and does any further setup of its own); after all, the endpoint and the fakes closed;
 * before each test, the fakes' record cleared and their default behaviour restored.
 * Further setup belongs in `ready`, not in a `before` of the file's: Node 20 starts
 * top-level `before` hooks without waiting for the previous one to finish.
 */
export function endpointFixture(options: Partial<EndpointOptions>, ready: (f: EndpointFixture) => void | Promise<void>): void {
  let f: EndpointFixture;
  before(async () => {
    const pki = await makePki();
    const tmp = tempDir();
    const fake = await FakeDaemons.start(tmp);
    const ep = await startEndpoint(pki, tmp, options);
    f = { pki, tmp, fake, ep };
    await ready(f);
  });
  after(async () => {
    await f.ep.close();
    await f.fake.close();
  });
  beforeEach(() => {
    f.fake.received.length = 0;
    f.fake.behaviour = defaultBehaviour;
  });
}
