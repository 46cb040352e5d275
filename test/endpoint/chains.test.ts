// Large client certificate chains at the endpoint (albatross-client puts a create's whole
// compressed image into the leaf): accepted up to --max-chain-size with OpenSSL's limit raised by
// native/max-cert-list, refused above with the size in the log while others are served, held
// within --chain-memory (a stalled large handshake cannot pin memory beyond it), with a
// handshake deadline that grows with the chain; and without the addon, the fallback.
import "reflect-metadata";
import assert from "node:assert/strict";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { decodeWire } from "../../src/commands/codec.js";
import { ChunkReader } from "../../src/transport/chunks.js";
import { ADDON_ENV } from "../../src/endpoint/addon.js";
import {
  FakeDaemons,
  cmds,
  exchange,
  keyPem,
  leaf,
  make,
  makePki,
  pem,
  startEndpoint,
  tempDir,
  writeFiles,
  type Node,
  type Pki,
  type Running,
} from "../support/endpoint.js";
import { CLI } from "../support/cli.js";

const MiB = 1 << 20;

/** The TLS Certificate message a Node client sends for a lone leaf: leaf + root (+ 4 + 5 per certificate). */
const sentSize = (...certs: Node[]): number => 4 + certs.reduce((n, c) => n + c.der.length + 5, 0);

const images = new Map<Node, Uint8Array>();
/** A leaf carrying a create whose (incompressible) image is `bytes` long. */
async function bigLeaf(issuer: Node, cn: string, bytes: number): Promise<Node> {
  const image = randomBytes(bytes);
  const l = await leaf(issuer, cn, cmds.create({ image }));
  images.set(l, image);
  return l;
}

interface Slow {
  /** resolves with the reply frames' texts (or the error) when the connection ends */
  readonly done: Promise<{ replies: string[]; error?: string }>;
  readonly socket: tls.TLSSocket;
}

/**
 * A TLS client whose bytes after its ClientHello (its first write) go out slowly: at
 * `bytesPerSec`, or — `stallAfter` — only that many and then nothing.
 */
function slowClient(port: number, chain: Node[], ca: Node, o: { bytesPerSec?: number; stallAfter?: number }): Slow {
  const raw = net.connect({ host: "127.0.0.1", port });
  raw.on("error", () => undefined);
  let writes = 0;
  let later = 0;
  let queue = Promise.resolve();
  const pipe = new Duplex({
    read: () => undefined,
    write(c: Buffer, _e, cb) {
      if (writes++ === 0) return void raw.write(c, () => cb());
      if (o.stallAfter !== undefined) {
        const room = Math.max(0, o.stallAfter - later);
        later += c.length;
        if (room > 0) raw.write(c.subarray(0, room));
        return cb();
      }
      // in 64 KiB pieces at the given rate
      for (let off = 0; off < c.length; off += 65536) {
        const piece = c.subarray(off, off + 65536);
        queue = queue.then(() => new Promise((r) => setTimeout(() => (raw.write(piece), r()), (piece.length / o.bytesPerSec!) * 1000)));
      }
      void queue.then(() => cb());
    },
  });
  raw.on("data", (b: Buffer) => pipe.push(b));
  raw.on("end", () => pipe.push(null));
  raw.on("close", () => pipe.destroy());
  const socket = tls.connect({ socket: pipe, ca: pem(ca), cert: pem(...chain), key: keyPem(chain[0]!), checkServerIdentity: () => undefined });
  const done = (async () => {
    const replies: string[] = [];
    const reader = new ChunkReader(socket, { maxChunk: 1 << 24 });
    for (;;) {
      const ev = await reader.next();
      if (ev.kind === "chunk") {
        const w = decodeWire(ev.payload);
        replies.push(w.payload.kind === "reply" && w.payload.reply.kind === "string" ? new TextDecoder().decode(w.payload.reply.text) : w.payload.kind);
        continue;
      }
      socket.destroy();
      raw.destroy();
      return ev.kind === "error" ? { replies, error: ev.message } : { replies };
    }
  })();
  return { done, socket };
}

/** Wait (up to 5 s) for `f` to hold. */
async function until(f: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(f(), what);
}

const okReply = { kind: "reply", reply: { kind: "string", text: new TextEncoder().encode("ok") } };

let pki: Pki;
let tmp: string;
let fake: FakeDaemons;
let small: Node;
let big3: Node;
let big2: Node;

before(async () => {
  pki = await makePki();
  tmp = tempDir();
  fake = await FakeDaemons.start(tmp);
  small = await leaf(pki.root, "small", cmds.info);
  big3 = await bigLeaf(pki.root, "big3", 3 * MiB);
  big2 = await bigLeaf(pki.root, "big2", 2 * MiB);
});
after(() => fake.close());

/** An endpoint for one test. */
async function endpoint(o: Parameters<typeof startEndpoint>[2] = {}): Promise<Running> {
  fake.received.length = 0;
  return startEndpoint(pki, tmp, o);
}

describe("large client certificate chains", () => {
  it("a 3 MiB and a 12 MiB chain (a create with the image inside the leaf), and one under a tenant CA, reach the daemon intact", async () => {
    const ep = await endpoint();
    try {
      assert.equal(ep.ep.chainLimitProblem, null, "the native addon raised OpenSSL's limit (is it built? npm run build:addon)");
      const big12 = await bigLeaf(pki.root, "big12", 12 * MiB);
      const viaTenant = await bigLeaf(pki.arc, "tenant3", 3 * MiB);
      for (const chain of [[big3], [big12], [viaTenant, pki.arc]]) {
        const l = chain[0]!;
        fake.received.length = 0;
        const r = await exchange({ port: ep.port, chain, ca: pki.root });
        assert.deepEqual(
          r.replies.map((w) => w.payload),
          [okReply],
          r.error,
        );
        const w = fake.of("vmmd").at(-1);
        assert.deepEqual(
          fake.of("vmmd").map((x) => (x.payload.kind === "command" ? x.payload.command.kind : "")),
          chain.length > 1 ? ["policy-add", "unikernel-create"] : ["unikernel-create"],
        );
        assert.ok(w && w.payload.kind === "command" && w.payload.command.kind === "unikernel-create");
        assert.equal(Buffer.compare(Buffer.from(w.payload.command.config.image), images.get(l)!), 0, "the image arrived unchanged");
      }
      await until(() => ep.ep.chainBudget.inUse === 0, "the memory is released with the connections");
    } finally {
      await ep.close();
    }
  });

  it("a chain over --max-chain-size is refused with its size (and OpenSSL's alert), a concurrent small request is served", async () => {
    const ep = await endpoint({ maxChainSize: MiB });
    try {
      const [refused, served] = await Promise.all([
        exchange({ port: ep.port, chain: [big2], ca: pki.root }),
        exchange({ port: ep.port, chain: [small], ca: pki.root }),
      ]);
      assert.deepEqual(
        served.replies.map((w) => w.payload.kind),
        ["reply"],
      );
      assert.equal(refused.replies.length, 0);
      assert.match(refused.error ?? "", /illegal parameter|ILLEGAL_PARAMETER/i);
      const line = await ep.waitLog(/client certificate chain of/);
      assert.equal(
        line,
        `error establishing TLS connection from ${line.split(" ")[5]} client certificate chain of ${sentSize(big2, pki.root)} bytes refused: over --max-chain-size (${MiB} bytes)`,
      );
      assert.equal(ep.logs.filter((l) => /big|chain|excessive/i.test(l.message)).length, 1, "one line for the refusal");
      assert.equal(fake.of("vmmd").filter((w) => w.payload.kind === "command" && w.payload.command.kind === "unikernel-create").length, 0);
    } finally {
      await ep.close();
    }
  });

  it("chains over 100 KiB share --chain-memory: the second waits for the first, both are served", async () => {
    const ep = await endpoint({ chainMemory: 3 * MiB, maxChainSize: 3 * MiB, logLevel: "info" });
    try {
      // the first sends its 2 MiB chain at 4 MiB/s (half a second), the second starts meanwhile
      const first = slowClient(ep.port, [big2], pki.root, { bytesPerSec: 4 * MiB });
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(ep.ep.chainBudget.inUse, sentSize(big2, pki.root), "the first one holds its chain's size");
      const second = exchange({ port: ep.port, chain: [big2], ca: pki.root });
      await ep.waitLog(
        new RegExp(
          `client certificate chain of ${sentSize(big2, pki.root)} bytes waits for memory \\(--chain-memory ${3 * MiB} bytes: ${sentSize(big2, pki.root)} in use`,
        ),
      );
      // a small one is not held up meanwhile
      assert.deepEqual(
        (await exchange({ port: ep.port, chain: [small], ca: pki.root })).replies.map((w) => w.payload.kind),
        ["reply"],
      );
      assert.deepEqual((await first.done).replies, ["ok"]);
      assert.deepEqual(
        (await second).replies.map((w) => w.payload),
        [okReply],
      );
      await until(() => ep.ep.chainBudget.inUse === 0, "all released");
    } finally {
      await ep.close();
    }
  });

  it("a stalled large handshake holds its reservation until its deadline; one waiting behind it times out, small ones are served", async () => {
    const ep = await endpoint({ chainMemory: 3 * MiB, maxChainSize: 3 * MiB, handshakeTimeoutMs: 700 });
    try {
      const stalled = slowClient(ep.port, [big2], pki.root, { stallAfter: 64 * 1024 });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(ep.ep.chainBudget.inUse, sentSize(big2, pki.root));
      const waiting = exchange({ port: ep.port, chain: [big2], ca: pki.root });
      for (let i = 0; i < 3; i++)
        assert.deepEqual(
          (await exchange({ port: ep.port, chain: [small], ca: pki.root })).replies.map((w) => w.payload.kind),
          ["reply"],
        );
      assert.equal((await waiting).replies.length, 0);
      await ep.waitLog(
        new RegExp(
          `TLS handshake timed out waiting for memory for a client certificate chain of ${sentSize(big2, pki.root)} bytes \\(--chain-memory ${3 * MiB} bytes: ${sentSize(big2, pki.root)} in use, 1 waiting\\)`,
        ),
      );
      // the stalled one: 700 ms + 2 s for its 2 MiB, then cut off
      assert.deepEqual((await stalled.done).replies, []);
      await ep.waitLog(/TLS handshake timed out$/, 5000);
      await until(() => ep.ep.chainBudget.inUse === 0, "released at the deadline");
    } finally {
      await ep.close();
    }
  });

  it("the handshake deadline grows with the chain: a 3 MiB chain at 3 MiB/s passes a 400 ms handshake timeout", async () => {
    const ep = await endpoint({ handshakeTimeoutMs: 400 });
    try {
      const t0 = Date.now();
      const slow = slowClient(ep.port, [big3], pki.root, { bytesPerSec: 3 * MiB });
      assert.deepEqual((await slow.done).replies, ["ok"]);
      assert.ok(Date.now() - t0 > 800, "it took longer than the base timeout");
    } finally {
      await ep.close();
    }
  });

  it("openssl s_client sends a 3 MiB chain", async () => {
    const ep = await endpoint();
    try {
      const dir = tempDir();
      const f = writeFiles(dir, { "ca.pem": pem(pki.root), "big.pem": pem(big3), "big.key": keyPem(big3) });
      const out = await new Promise<string>((resolve) => {
        const p = execFile(
          "openssl",
          ["s_client", "-connect", `127.0.0.1:${ep.port}`, "-CAfile", f["ca.pem"]!, "-cert", f["big.pem"]!, "-key", f["big.key"]!, "-ign_eof"],
          { timeout: 20_000, maxBuffer: 16 << 20 },
          (_e, so, se) => resolve(`${so}${se}`),
        );
        p.stdin!.end();
      });
      assert.match(out, /CONNECTED/);
      assert.ok(
        fake.of("vmmd").some((w) => w.payload.kind === "command" && w.payload.command.kind === "unikernel-create"),
        out.slice(-2000),
      );
    } finally {
      await ep.close();
    }
  });
});

describe("the client side", () => {
  it("Node's TLS client sends a 12 MiB chain (above) but, like any OpenSSL peer, refuses to receive one over 100 KiB — and it receives only the server's", async () => {
    const fat = await make({ profile: "server", cn: "fat", issuer: pki.root, albatross: new Uint8Array(200 * 1024).fill(0x41) });
    const srv = tls.createServer({ ca: pem(pki.root), cert: pem(fat), key: keyPem(fat), minVersion: "TLSv1.3" }, (s) => s.end());
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const error = await new Promise<string>((resolve) => {
        const c = tls.connect({ host: "127.0.0.1", port: (srv.address() as net.AddressInfo).port, ca: pem(pki.root), checkServerIdentity: () => undefined });
        c.on("error", (e: NodeJS.ErrnoException) => resolve(`${e.code} ${e.message}`));
        c.on("secureConnect", () => resolve("connected"));
      });
      assert.match(error, /EXCESSIVE_MESSAGE_SIZE|excessive message size/);
    } finally {
      srv.close();
    }
  });
});

/** `dromedary endpoint` in a child process (its log on stderr). */
async function cliEndpoint(
  env: NodeJS.ProcessEnv,
  args: string[] = [],
): Promise<{ port: number; child: ChildProcess; log: () => string; waitLog: (re: RegExp) => Promise<void>; stop: () => Promise<void> }> {
  const dir = tempDir();
  const f = writeFiles(dir, { "ca.pem": pem(pki.root), "server.pem": pem(pki.server), "server.key": keyPem(pki.server) });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(
    process.execPath,
    [CLI, "endpoint", f["ca.pem"]!, f["server.pem"]!, f["server.key"]!, "--ip", "127.0.0.1", "--port", String(port), "--tmpdir", tmp, "-v", ...args],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const waitLog = async (re: RegExp) => {
    for (let i = 0; i < 200 && !re.test(log); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(log, re);
  };
  await waitLog(/listening on/);
  return {
    port,
    child,
    log: () => log,
    waitLog,
    stop: async () => {
      child.kill("SIGTERM");
      if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
    },
  };
}

describe("without the native addon (a child process pointed at a missing or broken build)", () => {
  for (const [what, file] of [
    ["missing", "/nonexistent/max_cert_list.node"],
    ["broken", ""],
  ] as const) {
    it(`${what}: the endpoint starts, says once that chains over 100 KiB will be refused and why, logs each refusal with its size`, async () => {
      let path: string = file;
      if (what === "broken") {
        path = join(tempDir(), "max_cert_list.node");
        writeFileSync(path, "not a shared object");
      }
      const ep = await cliEndpoint({ [ADDON_ENV]: path });
      try {
        const [refused, served] = await Promise.all([
          exchange({ port: ep.port, chain: [big2], ca: pki.root }),
          exchange({ port: ep.port, chain: [small], ca: pki.root }),
        ]);
        assert.deepEqual(
          served.replies.map((w) => w.payload.kind),
          ["reply"],
        );
        assert.equal(refused.replies.length, 0);
        const second = await exchange({ port: ep.port, chain: [big3], ca: pki.root });
        assert.equal(second.replies.length, 0);
        await ep.waitLog(new RegExp(`chain of ${sentSize(big3, pki.root)} bytes refused`));
        const lines = ep.log().split("\n");
        const why = what === "missing" ? `native addon not built for Node ${process.version}: no ${path}` : `native addon ${path} does not load: `;
        const warnings = lines.filter((l) => /will be refused/.test(l));
        assert.equal(warnings.length, 1, ep.log());
        assert.ok(
          warnings[0]!.includes(
            `[WARNING] client certificate chains over 102400 bytes (OpenSSL's default limit) will be refused — e.g. albatross-client's create with the image inside the certificate: ${why}`,
          ),
          warnings[0],
        );
        for (const l of [big2, big3]) {
          const hits = lines.filter((x) =>
            x.includes(`client certificate chain of ${sentSize(l, pki.root)} bytes refused: over OpenSSL's limit of 102400 bytes (${why}`),
          );
          assert.equal(hits.length, 1, ep.log());
        }
        assert.equal(lines.filter((l) => /excessive message size/.test(l)).length, 0, "OpenSSL's own error is not logged again");
      } finally {
        await ep.stop();
      }
    });
  }
});

describe("memory held by stalled large handshakes", () => {
  /** RSS growth (MiB) of the endpoint process with `n` clients each stalled after 8 MiB of a 12 MiB chain. */
  async function rssGrowth(chainMemory: string, n: number, chain: Node): Promise<number> {
    const ep = await cliEndpoint({}, ["--max-chain-size", "13M", "--chain-memory", chainMemory, "--handshake-timeout", "60"]);
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${ep.child.pid}/status`, "utf8"))![1]) / 1024;
    const clients: Slow[] = [];
    try {
      // warm up the TLS path (a small request), then measure
      await exchange({ port: ep.port, chain: [small], ca: pki.root });
      await new Promise((r) => setTimeout(r, 300));
      const before = rss();
      for (let i = 0; i < n; i++) clients.push(slowClient(ep.port, [chain], pki.root, { stallAfter: 8 * MiB }));
      // until it settles (the clients take their time to build their chains)
      let last = rss();
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 300));
        const now = rss();
        if (i >= 4 && Math.abs(now - last) < 0.5) break;
        last = now;
      }
      return last - before;
    } finally {
      for (const c of clients) c.socket.destroy();
      await ep.stop();
    }
  }

  it("is bounded by --chain-memory", async () => {
    const big12 = await bigLeaf(pki.root, "big12", 12 * MiB);
    // Without a tight bound, 6 clients that sent 8 MiB each pin 6 x 12 MiB with OpenSSL 3.0
    // (Node 20: the declared size is reserved, and zero-filled, at the first record), 6 x 8 MiB
    // with OpenSSL 3.5 (Node 22, 24: what has arrived). With room for one chain, the others wait
    // with nothing but their first record read.
    const unbounded = await rssGrowth("78M", 6, big12);
    const bounded = await rssGrowth("13M", 6, big12);
    const text = `6 stalled clients: +${unbounded.toFixed(0)} MiB without a tight bound, +${bounded.toFixed(0)} MiB with --chain-memory 13M`;
    assert.ok(unbounded > 40 && bounded < 32 && bounded * 2.5 < unbounded, text);
  });
});
