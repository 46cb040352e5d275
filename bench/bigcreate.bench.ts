// A create whose 8 MiB image travels inside the leaf certificate (albatross-client's
// `create --destination`, or `certificate` with a leaf made by `create --csr` + `sign`):
// client -> `dromedary endpoint` -> `dromedary hostd` -> exec of the tender (the stand-in, in a
// throw-away network namespace; needs root), until the client has the reply.
//
// Against a floor measured in the same run, the least any server must do for it: a bare Node
// TLS 1.3 mutual-auth server (same certificates and TLS settings, its chain limit raised by the
// same addon) that takes the leaf from OpenSSL, inflates the image out of it (at an offset
// known beforehand: no parsing) and writes it to a file (as hostd writes it: no fsync), then
// answers. Target: endpoint <= 1.5x the floor. Client and servers run in this process; they
// are measured in rounds, in an order that alternates against the VM's drift, the median of the
// rounds' ratios reported. Two more lines show where the time goes: the bare handshake alone
// (what TLS with this chain costs) and hostd alone (the same policy and create sent straight to
// its socket, as the endpoint sends them).
import "reflect-metadata";
import { constants as cryptoConstants, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import tls from "node:tls";
import { inflateSync } from "node:zlib";
import { encodeWire } from "../src/commands/codec.js";
import { deflate } from "../src/commands/compress.js";
import { encodeFrame, END, FrameDecoder } from "../src/commands/framing.js";
import type { Command, Policy } from "../src/commands/types.js";
import { privateKeyToPem } from "../src/ca/keys.js";
import { certificateFromDer } from "../src/ca/x509.js";
import { raiseChainLimit } from "../src/endpoint/addon.js";
import { Endpoint } from "../src/endpoint/server.js";
import { decodeWire } from "../src/commands/codec.js";
import { argv, commandWire, config, exchange, request, show, withHostd, type Env } from "../test/support/hostd.js";
import { netnsAvailable, withNetns } from "../test/support/netns.js";
import { buildSolo5Elf } from "../test/support/elf-builder.js";
import { cert, median, pem } from "./support.js";

const MiB = 1 << 20;
const IMAGE = 8 * MiB;
const ROUNDS = 8;

/** Connect with the chain, read the first reply frame; ms until then, and the reply. */
function create(port: number, ctx: tls.SecureContext): Promise<{ ms: number; reply: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = tls.connect({ host: "127.0.0.1", port, secureContext: ctx, checkServerIdentity: () => undefined });
    const dec = new FrameDecoder();
    s.on("data", (b: Buffer) => {
      dec.push(new Uint8Array(b.buffer, b.byteOffset, b.length));
      const f = dec.next();
      if (f !== null && f !== END) {
        const ms = performance.now() - t0;
        s.destroy();
        resolve({ ms, reply: f });
      }
    });
    s.on("error", reject);
    s.on("close", () => reject(new Error("closed without a reply")));
  });
}

async function bench(env: Env): Promise<void> {
  const root = await cert("root", "root", null);
  const server = await cert("server", "server", root);
  const policy: Policy = { unikernels: 4n, cpuids: [0], memory: 512, bridges: [] };
  const tenant = await cert("intermediate", "bench", root, { kind: "policy-add", policy });
  // an incompressible image (a valid Solo5 ELF padded with random bytes), compressed at level 9
  // as albatross-client does; the tender keeps running until destroyed
  const image = new Uint8Array(IMAGE);
  const elf = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
  image.set(elf);
  image.set(randomBytes(IMAGE - elf.length), elf.length);
  const compressed = deflate(image, 9);
  const cmd: Command = { kind: "unikernel-create", config: { ...config(compressed, { argv: argv("--standin-run"), memory: 32 }), compressed: true } };
  const leaf = await cert("leaf", "big", tenant, cmd);
  const offset = Buffer.from(leaf.der).indexOf(Buffer.from(compressed.subarray(0, 64)));
  if (offset < 0) throw new Error("compressed image not found in the leaf");

  const serverOpts = {
    ca: pem(root),
    cert: pem(server),
    key: privateKeyToPem(server.key),
    minVersion: "TLSv1.3" as const,
    maxVersion: "TLSv1.3" as const,
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  };
  const dir = mkdtempSync(join(tmpdir(), "dromedary-bench-big-"));
  const reply = encodeFrame(
    encodeWire({
      header: { version: 5, sequence: 0n, name: { path: [], label: "big" } },
      payload: { kind: "reply", reply: { kind: "string", text: new TextEncoder().encode("created unikernel") } },
    }),
  );
  // the floor: handshake + inflate + write
  const floor = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.on("error", () => undefined);
    // (the cheapest way to the leaf's bytes; no fingerprints computed)
    const raw = s.getPeerX509Certificate()!.raw;
    writeFileSync(join(dir, "floor.img"), inflateSync(raw.subarray(offset, offset + compressed.length)));
    s.end(reply);
  });
  const bare = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.on("error", () => undefined);
    s.end(reply);
  });
  for (const srv of [floor, bare]) {
    const problem = raiseChainLimit((srv as tls.Server & { _sharedCreds: tls.SecureContext })._sharedCreds, 16 * MiB);
    if (problem) throw new Error(`cannot raise the floor's chain limit: ${problem}`);
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  }
  const ep = new Endpoint({
    ca: certificateFromDer(root.der),
    caPem: serverOpts.ca,
    certPem: serverOpts.cert,
    keyPem: serverOpts.key,
    tmpdir: env.tmpdir,
    log: () => undefined,
    logLevel: "warn",
  });
  if (ep.chainLimitProblem) throw new Error(ep.chainLimitProblem);
  const epPort = (await ep.listen("127.0.0.1", 0)).port;
  const ctx = tls.createSecureContext({ ca: pem(root), cert: pem(leaf, tenant), key: privateKeyToPem(leaf.key) });
  const port = (s: tls.Server) => (s.address() as net.AddressInfo).port;

  const viaEndpoint = async (): Promise<number> => {
    const r = await create(epPort, ctx);
    const text = show([decodeWire(r.reply)]);
    if (text !== "success: created unikernel") throw new Error(`create: ${text}`);
    const gone = show(await request(env.socket, "bench:big", { kind: "unikernel-destroy" }));
    if (gone !== "success: destroyed unikernel") throw new Error(`destroy: ${gone}`);
    return r.ms;
  };
  // hostd alone: the tenant's policy, then the create, on one connection (as the endpoint does)
  const direct = async (): Promise<number> => {
    const t0 = performance.now();
    const replies = await exchange(
      env.socket,
      [encodeWire(commandWire("bench:", { kind: "policy-add", policy })), encodeWire(commandWire("bench:big", cmd, 1n))],
      60_000,
      undefined,
      2,
    );
    const ms = performance.now() - t0;
    const text = show(replies.slice(1));
    if (text !== "success: created unikernel") throw new Error(`direct create: ${text}`);
    const gone = show(await request(env.socket, "bench:big", { kind: "unikernel-destroy" }));
    if (gone !== "success: destroyed unikernel") throw new Error(`destroy: ${gone}`);
    return ms;
  };
  const times = { floor: [] as number[], endpoint: [] as number[], bare: [] as number[], hostd: [] as number[] };
  const ratios: number[] = [];
  try {
    console.log(
      `chain: leaf ${(leaf.der.length / MiB).toFixed(2)} MiB (an ${IMAGE / MiB} MiB image, compressed at level 9) + tenant CA; daemons: real dromedary hostd + console-daemon, stand-in tender`,
    );
    // warm-up
    await create(port(floor), ctx);
    await create(port(bare), ctx);
    await viaEndpoint();
    await direct();
    for (let r = 0; r < ROUNDS; r++) {
      const f = async () => times.floor.push((await create(port(floor), ctx)).ms);
      const e = async () => times.endpoint.push(await viaEndpoint());
      const steps = [f, e, async () => times.hostd.push(await direct()), async () => times.bare.push((await create(port(bare), ctx)).ms)];
      for (const step of r % 2 === 0 ? steps : steps.reverse()) await step();
      ratios.push(times.endpoint[r]! / times.floor[r]!);
    }
    const fmt = (xs: number[]) => `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
    console.log(`create of an ${IMAGE / MiB} MiB image inside the certificate, median of ${ROUNDS}:`);
    console.log(`  bare TLS 1.3 handshake carrying the chain:             ${fmt(times.bare)}`);
    console.log(`  floor: that + inflate the image + write it to a file:  ${fmt(times.floor)}`);
    console.log(`  endpoint -> hostd -> exec:                              ${fmt(times.endpoint)}`);
    console.log(`  (hostd alone: the policy and the create on its socket:  ${fmt(times.hostd)})`);
    const m = median(ratios);
    console.log(
      `  endpoint / floor: ${m.toFixed(2)}x (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})  [target <= 1.5x: ${m <= 1.5 ? "met" : "NOT met"}]`,
    );
  } finally {
    await ep.close();
    await new Promise((r) => floor.close(r));
    await new Promise((r) => bare.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const a = await netnsAvailable();
  if (!a.ok) {
    console.log(`skipped: ${a.reason}`);
    return;
  }
  await withNetns((ns) => withHostd(ns, bench, { hostdArgs: ["-q"] }));
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
