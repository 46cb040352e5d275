// TLS endpoint throughput: full mutual-auth TLS 1.3 handshake + one command round trip
// (`info`) per connection, next to a bare Node TLS 1.3 mutual-auth server on the same
// certificates that answers with a canned frame. Target: endpoint >= 0.8x the bare rate
// (leaf directly under the CA) — the rate under load, with 8 clients at once, which keep this
// process busy. With one client at a time the figure is 1 / latency, and every request
// waits for two wake-ups of the idle hostd process that the bare server never makes; it is
// printed beside, for what a single client sees, with the same references.
//
// Fairness: every server has the same TLS settings, certificates and client (same secure
// context per chain, same loop); the client runs in this process too, so "CPU here" is
// client + server. The machines this runs on are VMs whose speed drifts by tens of percent
// within seconds, so the servers are measured *paired*: with one client, in runs of 10
// connections in turn (A B C D, then D C B A, ...); with 8 clients, in short slices in turn.
// Each round gives one ratio per server; the median of the rounds is reported, with their
// range.
//
// The endpoint talks to a real `dromedary hostd` (with `dromedary console-daemon`) when they
// can be started here (root), otherwise to an in-process fake vmmd — the output says which.
//
// Two references run in the same rounds (for the leaf under the CA): bare + the raw daemon
// round trip (what the daemon alone costs), and a *ceiling*: bare + only the per-connection
// work the issue mandates (leaf from OpenSSL, strict parse, Ed25519 re-verification, name and
// command) + the raw daemon round trip. Both open their daemon connections as the endpoint
// does (src/endpoint/daemons.ts: one opened ahead), so "endpoint / ceiling" is the cost of
// everything else the endpoint does (every other check of daemon.md §6, framing checks,
// timeouts, logging, relaying).
import "reflect-metadata";
import { spawn, type ChildProcess } from "node:child_process";
import { constants as cryptoConstants } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { decodeWire, encodeWire } from "../src/commands/codec.js";
import { encodeFrame, FrameDecoder, END } from "../src/commands/framing.js";
import type { Command, Policy, Wire } from "../src/commands/types.js";
import { privateKeyToPem } from "../src/ca/keys.js";
import { certificateFromDer, parseCertificate, parsed, type ParsedCertificate } from "../src/ca/x509.js";
import { verifySignature, verifySignatureAsync } from "../src/ca/keys.js";
import { deriveFromParsed } from "../src/ca/chain.js";
import { DaemonConnections } from "../src/endpoint/daemons.js";
import { Endpoint } from "../src/endpoint/server.js";
import { type Cert, cert, median, pem } from "./support.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

function waitFile(file: string, child: ChildProcess | null, ms = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const end = Date.now() + ms;
    const tick = () => {
      if (existsSync(file)) return resolve(true);
      if (Date.now() > end || (child && child.exitCode !== null)) return resolve(false);
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** Real daemons when possible; else a fake vmmd answering info/policy add. */
async function daemons(dir: string): Promise<{ kind: string; pids: number[]; stop: () => Promise<void> }> {
  const run = join(dir, "run");
  const db = join(dir, "db");
  mkdirSync(join(run, "util"), { recursive: true });
  mkdirSync(join(db, "block"), { recursive: true });
  if (process.getuid?.() === 0 && existsSync(MAIN) && process.env["BENCH_FAKE_DAEMON"] === undefined) {
    const con = spawn(process.execPath, [MAIN, "console-daemon", "--tmpdir", run], { stdio: "ignore" });
    if (await waitFile(join(run, "util", "console.sock"), con)) {
      const hd = spawn(process.execPath, [MAIN, "hostd", "--tmpdir", run, "--dbdir", db], { stdio: "ignore" });
      if (await waitFile(join(run, "util", "vmmd.sock"), hd)) {
        // never leave them behind, whatever happens to this process
        const killAll = () => {
          for (const c of [hd, con]) if (c.exitCode === null) c.kill("SIGKILL");
        };
        process.once("exit", killAll);
        return {
          kind: "real dromedary hostd + console-daemon",
          pids: [hd.pid!, con.pid!],
          stop: async () => {
            for (const c of [hd, con]) {
              c.kill("SIGTERM");
              if (c.exitCode === null) await new Promise((r) => c.once("exit", r));
            }
          },
        };
      }
      hd.kill("SIGKILL");
    }
    con.kill("SIGKILL");
  }
  const srv = net.createServer((c) => {
    const dec = new FrameDecoder();
    c.on("error", () => undefined);
    c.on("data", (b: Buffer) => {
      dec.push(new Uint8Array(b.buffer, b.byteOffset, b.length));
      for (let f = dec.next(); f !== null && f !== END; f = dec.next()) {
        const w = decodeWire(f);
        const cmd = w.payload.kind === "command" ? w.payload.command.kind : "";
        const reply: Wire =
          cmd === "policy-add"
            ? { header: w.header, payload: { kind: "reply", reply: { kind: "string", text: new TextEncoder().encode("no modification of policy") } } }
            : { header: w.header, payload: { kind: "reply", reply: { kind: "unikernel-info", unikernels: [] } } };
        c.write(encodeFrame(encodeWire(reply)));
        if (cmd !== "policy-add") c.end();
      }
    });
  });
  await new Promise<void>((r) => srv.listen(join(run, "util", "vmmd.sock"), () => r()));
  return { kind: "fake vmmd (in process; hostd not startable here)", pids: [], stop: () => new Promise((r) => srv.close(() => r())) };
}

/** One connection: handshake, read the first frame, close. */
function roundTrip(port: number, ctx: tls.SecureContext): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, secureContext: ctx, checkServerIdentity: () => undefined });
    const dec = new FrameDecoder();
    s.on("data", (b: Buffer) => {
      dec.push(new Uint8Array(b.buffer, b.byteOffset, b.length));
      const f = dec.next();
      if (f !== null && f !== END) {
        s.destroy();
        resolve();
      }
    });
    s.on("error", reject);
    s.on("close", () => reject(new Error("closed without a reply")));
  });
}

/** CPU seconds (user + system) used so far by another process of ours, from /proc. */
function procCpu(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks
  } catch {
    return 0;
  }
}

interface Rate {
  perSecond: number;
  /** CPU ms per connection: this process (client + server side), and the daemons */
  cpuHere: number;
  cpuDaemons: number;
}

async function rate(port: number, ctx: tls.SecureContext, n: number, parallel: number, daemonPids: number[] = []): Promise<Rate> {
  let next = 0;
  const d0 = daemonPids.reduce((a, p) => a + procCpu(p), 0);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        await roundTrip(port, ctx);
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const d1 = daemonPids.reduce((a, p) => a + procCpu(p), 0);
  return { perSecond: n / secs, cpuHere: (c.user + c.system) / 1000 / n, cpuDaemons: ((d1 - d0) * 1000) / n };
}

/** Per server, per round; `ratios[i][r]`: server i / server 0 (the bare one) in round r. */
interface Rounds {
  rates: Rate[][];
  ratios: number[][];
}

function collect(out: Rounds, got: Rate[]): void {
  got.forEach((g, i) => {
    out.rates[i]!.push(g);
    out.ratios[i]!.push(g.perSecond / got[0]!.perSecond);
  });
}

/**
 * One client at a time: `rounds` rounds of `n` connections to each server (the first is the
 * bare one), taken in short runs of `run` connections per server in turn, the order reversed
 * every time (A B C D D C B A ...), so that the machine's drift hits every server alike. A
 * run, not a single connection: what a server defers past its reply (the endpoint opens its
 * next daemon connection on a timer) then lands in its own time, except at the end of a run.
 * A server's rate in a round is n / the time its connections took; its CPU the process' CPU
 * during them.
 */
async function comparePaired(ports: number[], ctx: tls.SecureContext, n: number, run: number, rounds: number, pids: number[]): Promise<Rounds> {
  const out: Rounds = { rates: ports.map(() => []), ratios: ports.map(() => []) };
  const order = ports.map((_, i) => i);
  for (let r = 0; r < rounds; r++) {
    const ns = ports.map(() => 0n);
    const cpu = ports.map(() => 0);
    const daemonCpu = ports.map(() => 0);
    for (let k = 0; k < n; k += run) {
      order.reverse();
      for (const i of order) {
        const d0 = i === 0 ? 0 : pids.reduce((a, p) => a + procCpu(p), 0);
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        for (let j = 0; j < run; j++) await roundTrip(ports[i]!, ctx);
        ns[i]! += process.hrtime.bigint() - t0;
        const c = process.cpuUsage(c0);
        cpu[i]! += (c.user + c.system) / 1000;
        if (i !== 0) daemonCpu[i]! += (pids.reduce((a, p) => a + procCpu(p), 0) - d0) * 1000;
      }
    }
    collect(
      out,
      ports.map((_, i) => ({ perSecond: n / (Number(ns[i]!) / 1e9), cpuHere: cpu[i]! / n, cpuDaemons: daemonCpu[i]! / n })),
    );
  }
  return out;
}

/**
 * `parallel` clients at once: `rounds` rounds of a short slice of `n` connections against
 * each server in turn, the order reversed every round; ratios per round, median reported.
 */
async function compareSlices(ports: number[], ctx: tls.SecureContext, n: number, parallel: number, rounds: number, pids: number[]): Promise<Rounds> {
  const out: Rounds = { rates: ports.map(() => []), ratios: ports.map(() => []) };
  const order = ports.map((_, i) => i);
  for (let r = 0; r < rounds; r++) {
    order.reverse();
    const got: Rate[] = [];
    for (const i of order) got[i] = await rate(ports[i]!, ctx, n, parallel, i === 0 ? [] : pids);
    collect(out, got);
  }
  return out;
}

function fmt(rs: Rate[]): string {
  const cpuD = median(rs.map((r) => r.cpuDaemons));
  return `${median(rs.map((r) => r.perSecond)).toFixed(0)}/s, CPU ${median(rs.map((r) => r.cpuHere)).toFixed(2)} ms/conn here${cpuD > 0 ? ` + ${cpuD.toFixed(2)} in the daemons` : ""}`;
}

const ratioText = (rs: number[]): string => `${median(rs).toFixed(2)}x (rounds ${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)})`;

/**
 * A reference, not a competitor: the bare server plus the endpoint's daemon round trip done
 * with raw socket calls and nothing else (no certificate checks, no framing checks) — the
 * most any endpoint that must ask this daemon could reach.
 */
async function bareWithDaemon(serverOpts: tls.TlsOptions, vmmd: string, daemons: DaemonConnections): Promise<tls.Server> {
  const cmd = encodeFrame(
    encodeWire({ header: { version: 5, sequence: 0n, name: { path: [], label: "bench" } }, payload: { kind: "command", command: { kind: "unikernel-info" } } }),
  );
  const srv = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.on("error", () => undefined);
    daemons.connect(vmmd).then(
      (d) => {
        d.on("error", () => s.destroy());
        d.write(cmd);
        d.once("data", (b: Buffer) => {
          d.destroy();
          s.end(b); // the daemon's reply frame (header not re-stamped)
          daemons.prepare(vmmd);
        });
      },
      () => s.destroy(),
    );
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return srv;
}

/**
 * The second reference, a ceiling: the bare server plus only the work the issue mandates per
 * connection — the leaf from OpenSSL (getPeerCertificate), our strict parse, one Ed25519
 * re-verification of its signature by the CA (on the thread pool when other connections are
 * in flight, as the endpoint does), the derivation of name and command — and the raw daemon
 * round trip. No other check, no framing checks, no timeouts, the daemon's reply bytes sent
 * on as they are. No endpoint that does what the issue asks can be faster than this.
 */
async function minimalEndpoint(serverOpts: tls.TlsOptions, vmmd: string, anchor: ParsedCertificate, daemons: DaemonConnections): Promise<tls.Server> {
  let inFlight = 0;
  const srv = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.on("error", () => undefined);
    void (async () => {
      inFlight++;
      try {
        const raw = s.getPeerCertificate(false).raw;
        const leaf = parseCertificate(new Uint8Array(raw.buffer, raw.byteOffset, raw.length));
        const bad =
          inFlight > 1
            ? await verifySignatureAsync(anchor.publicKey, leaf.signatureAlgorithm, leaf.tbs, leaf.signature)
            : verifySignature(anchor.publicKey, leaf.signatureAlgorithm, leaf.tbs, leaf.signature);
        const d = deriveFromParsed([leaf]);
        if (bad !== null || !d.ok) return void s.destroy();
        const cmd = encodeFrame(
          encodeWire({ header: { version: 5, sequence: 0n, name: d.value.name }, payload: { kind: "command", command: d.value.command } }),
        );
        const c = await daemons.connect(vmmd);
        await new Promise<void>((resolve) => {
          c.on("error", () => (s.destroy(), resolve()));
          c.write(cmd);
          c.once("data", (b: Buffer) => {
            c.destroy();
            s.end(b);
            resolve();
          });
        });
        daemons.prepare(vmmd);
      } finally {
        inFlight--;
      }
    })();
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return srv;
}

export async function run(): Promise<void> {
  const root = await cert("root", "root", null);
  const server = await cert("server", "server", root);
  const policy: Policy = { unikernels: 4n, cpuids: [0], memory: 512, bridges: [] };
  const tenant = await cert("intermediate", "tenant", root, { kind: "policy-add", policy });
  const info: Command = { kind: "unikernel-info" };
  const leafRoot = await cert("leaf", "bench", root, info);
  const leafTenant = await cert("leaf", "bench", tenant, info);
  const dir = mkdtempSync(join(tmpdir(), "dromedary-bench-ep-"));
  const d = await daemons(dir);
  // The same TLS settings as the endpoint's (no session tickets: see src/endpoint/server.ts).
  const serverOpts = {
    ca: pem(root),
    cert: pem(server),
    key: privateKeyToPem(server.key),
    minVersion: "TLSv1.3" as const,
    maxVersion: "TLSv1.3" as const,
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  };
  const canned = encodeFrame(
    encodeWire({
      header: { version: 5, sequence: 0n, name: { path: [], label: "bench" } },
      payload: { kind: "reply", reply: { kind: "unikernel-info", unikernels: [] } },
    }),
  );
  const bare = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.on("error", () => undefined);
    s.end(canned);
  });
  await new Promise<void>((r) => bare.listen(0, "127.0.0.1", () => r()));
  const refDaemons = new DaemonConnections();
  const ref = await bareWithDaemon(serverOpts, join(dir, "run", "util", "vmmd.sock"), refDaemons);
  const refPort = (ref.address() as net.AddressInfo).port;
  const minimalDaemons = new DaemonConnections();
  const minimal = await minimalEndpoint(serverOpts, join(dir, "run", "util", "vmmd.sock"), parsed(certificateFromDer(root.der)), minimalDaemons);
  const minimalPort = (minimal.address() as net.AddressInfo).port;
  const ep = new Endpoint({
    ca: certificateFromDer(root.der),
    caPem: serverOpts.ca,
    certPem: serverOpts.cert,
    keyPem: serverOpts.key,
    tmpdir: join(dir, "run"),
    log: () => undefined,
    logLevel: "warn",
  }); // the CLI's default verbosity
  const epAddr = await ep.listen("127.0.0.1", 0);
  const bareAddr = bare.address() as net.AddressInfo;
  // One client context per chain, used against both servers. One leaf serves all connections:
  // the endpoint keeps no per-leaf state (the leaf is parsed and its signature verified on
  // every connection; only CA certificates are memoised), so this measures the same work as
  // fresh leaves would.
  const ctx = (leaf: Cert, ...chain: Cert[]) => tls.createSecureContext({ ca: pem(root), cert: pem(leaf, ...chain), key: privateKeyToPem(leaf.key) });
  const chains = [
    { name: "info, leaf under the CA", ctx: ctx(leafRoot), target: true },
    { name: "info via a tenant CA (+policy)", ctx: ctx(leafTenant, tenant), target: false },
  ];
  console.log(`daemons: ${d.kind}`);
  console.log(
    "client and servers in this process; servers measured in turn (one client: runs of 10 connections; 8: slices of 64), median of the rounds' ratios",
  );
  try {
    // warm up every path (JIT, memos) on every server
    // (the two references only take the leaf directly under the CA)
    for (const c of chains)
      for (const port of c.target ? [bareAddr.port, epAddr.port, refPort, minimalPort] : [bareAddr.port, epAddr.port]) await rate(port, c.ctx, 100, 4);
    for (const parallel of [1, 8]) {
      console.log(parallel === 1 ? "parallel 1 (one client at a time: 1 / latency):" : `parallel ${parallel} (the rate under load):`);
      for (const c of chains) {
        // The bare server gets the same chain: a client sending an intermediate costs both
        // sides more TLS work (one more certificate sent, parsed and verified by OpenSSL).
        const ports = c.target ? [bareAddr.port, epAddr.port, refPort, minimalPort] : [bareAddr.port, epAddr.port];
        // about 1000 connections per server either way
        const p = parallel === 1 ? await comparePaired(ports, c.ctx, 50, 10, 20, d.pids) : await compareSlices(ports, c.ctx, 64, parallel, 16, d.pids);
        console.log(`  ${c.name}:`);
        console.log(`    bare TLS 1.3 mutual auth + canned reply: ${fmt(p.rates[0]!)}`);
        const verdict = !c.target
          ? ""
          : parallel === 1
            ? "  [1 / latency; the target is on the rate under load below]"
            : `  [target >= 0.8x: ${median(p.ratios[1]!) >= 0.8 ? "met" : "NOT met"}]`;
        console.log(`    endpoint:                                ${fmt(p.rates[1]!)}  -> ${ratioText(p.ratios[1]!)}${verdict}`);
        if (c.target) {
          console.log(`    (reference: bare + raw daemon round trip, no checks: ${fmt(p.rates[2]!)}  -> ${ratioText(p.ratios[2]!)})`);
          console.log(`    (ceiling: bare + mandated checks + raw daemon:       ${fmt(p.rates[3]!)}  -> ${ratioText(p.ratios[3]!)})`);
          const own = p.rates[1]!.map((r, i) => r.perSecond / p.rates[3]![i]!.perSecond);
          console.log(`    endpoint / ceiling: ${ratioText(own)}`);
        }
      }
    }
    console.log(`endpoint memo: ${ep.signatures.size} CA signature(s), ${ep.signatures.hits} hits / ${ep.signatures.misses} verifications`);
    console.log(`endpoint daemon connections: ${ep.daemons.spareHits} opened ahead, ${ep.daemons.freshConnects} at request time`);
  } finally {
    await ep.close();
    refDaemons.close();
    minimalDaemons.close();
    await new Promise((r) => bare.close(r));
    await new Promise((r) => ref.close(r));
    await new Promise((r) => minimal.close(r));
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
