// The whole statistics stack on real parts: hostd, the console daemon and `dromedary
// stats-daemon` in a fresh network namespace (test/hostd harness) with stand-in tenders on
// real taps; `ping` through a tap (to the stand-in, which answers; only inside the
// namespace); the subscriber side over the stat socket, with `dromedary stats` locally and
// through `dromedary endpoint` (TLS on loopback); /metrics scraped inside the namespace.
// Killing the stats daemon or hostd: registrations come back. Skipped without root/netns.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import parsePrometheus from "parse-prometheus-text-format";
import type { StatsData } from "../../src/commands/types.js";
import { argv, config, MAIN, request, show, withHostd, type Env } from "../support/hostd.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { netnsAvailable, withNetns, type Netns } from "../support/netns.js";
import { sleep, waitFor, wire, WireConn } from "./support.js";

const NET = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;
const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;

let skip: string | false = false;
before(async () => {
  const a = await netnsAvailable();
  skip = a.ok ? false : a.reason;
});

interface Daemon {
  proc: ChildProcess;
  log: string[];
}

/** `dromedary stats-daemon` inside the namespace (the taps' counters are per namespace). */
async function startStats(env: Env): Promise<Daemon> {
  const proc = env.ns.spawn("node", [MAIN, "stats-daemon", "--tmpdir", env.tmpdir, "--interval", "0.3", "--metrics-listen", "127.0.0.1:9125"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log: string[] = [];
  proc.stderr!.on("data", (d: Buffer) =>
    log.push(
      ...d
        .toString("utf8")
        .split("\n")
        .filter((l) => l !== ""),
    ),
  );
  await waitFor(
    "the stats daemon to reach hostd",
    () => {
      if (proc.exitCode !== null) throw new Error(`stats daemon exited: ${log.join("\n")}`);
      return log.some((l) => l.includes("connected to hostd"));
    },
    20_000,
  );
  return { proc, log };
}

function kill(p: ChildProcess, sig: NodeJS.Signals = "SIGKILL"): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once("exit", () => resolve());
    p.kill(sig);
  });
}

/** GET /metrics from inside the namespace. */
async function scrape(ns: Netns): Promise<string> {
  const r = await ns.exec("node", ["-e", "fetch('http://127.0.0.1:9125/metrics').then(r => r.text()).then(t => process.stdout.write(t))"]);
  return r.stdout;
}

const sec = (t: { seconds: bigint; microseconds: number }): number => Number(t.seconds) + t.microseconds / 1e6;

/** A `dromedary` client run: stdout until `until` matches (subscriptions never end by themselves). */
function readUntil(args: string[], until: (out: string) => boolean, cwd?: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`dromedary ${args.join(" ")}: not done within ${timeoutMs} ms: ${out}${err}`));
    }, timeoutMs);
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (until(out)) {
        clearTimeout(t);
        p.kill("SIGTERM");
        resolve(out);
      }
    });
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("exit", (code) => {
      if (!until(out)) {
        clearTimeout(t);
        reject(new Error(`dromedary ${args.join(" ")} exited ${code}: ${out}${err}`));
      }
    });
  });
}

function run(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`dromedary ${args.join(" ")} -> ${code}: ${out}`))));
  });
}

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

/** The latest statistics of `name` a subscriber received. */
const latest = (c: WireConn, name: string): StatsData | undefined =>
  c
    .stats()
    .filter(([n]) => n === name)
    .at(-1)?.[1];

describe("statistics end to end", () => {
  it("ping through a tap, CPU burnt, foo: sees only foo:*, /metrics, the CLI locally and through the endpoint, restarts", async (t) => {
    if (skip !== false) return t.skip(skip);
    const cwd = mkdtempSync(join(tmpdir(), "dromedary-stats-e2e-"));
    try {
      await withNetns((ns) =>
        withHostd(ns, async (env) => {
          let stats = await startStats(env);
          try {
            await ns.ip("addr", "add", "10.77.0.1/24", "dev", "br0");
            const a = config(NET, {
              bridges: [{ netif: "service", bridge: "br0" }],
              argv: argv("--standin-ip=10.77.0.2", "--standin-burn=300", "--standin-run"),
              memory: 48,
            });
            assert.equal(show(await request(env.socket, "foo:a", { kind: "unikernel-create", config: a })), "success: created unikernel");
            assert.equal(
              show(await request(env.socket, "bar:b", { kind: "unikernel-create", config: config(HELLO, { argv: argv("--standin-run") }) })),
              "success: created unikernel",
            );
            await waitFor("both registered", () => stats.log.filter((l) => /adding (foo:a|bar:b) \d+/.test(l)).length === 2);

            const foo = await WireConn.open(join(env.tmpdir, "util", "stat.sock"));
            foo.send(wire("foo:", { kind: "stats-subscribe" }));
            // traffic through the tap: the stand-in answers ARP and ICMP echo
            const ping = await ns.exec("ping", ["-c", "5", "-i", "0.2", "-W", "2", "10.77.0.2"], { allowFail: true });
            assert.equal(ping.code, 0, ping.stdout + ping.stderr);
            assert.match(ping.stdout, /5 received/);
            const s = await waitFor("counters and CPU time of foo:a", () => {
              const x = latest(foo, ":a");
              const i = x?.ifdata[0];
              return x !== undefined && i !== undefined && i.outputPackets >= 6n && i.inputPackets >= 6n && sec(x.rusage.utime) >= 0.25 ? x : null;
            });
            const i = s.ifdata[0]!;
            assert.equal(i.bridge, "service");
            // netlink's view: up, running (the tender holds the tap), carrier; the bridge's MTU
            assert.equal(i.flags & 0x10041, 0x10041, i.flags.toString(16));
            assert.equal(i.mtu, 1500);
            // 5 echo requests to the unikernel (+ ARP), 5 replies from it; 98-byte frames
            assert.ok(i.outputBytes >= 5n * 98n && i.inputBytes >= 5n * 98n, `${i.inputBytes} ${i.outputBytes}`);
            assert.ok(sec(s.rusage.utime) < 2, `utime ${sec(s.rusage.utime)}`);
            assert.deepEqual([...new Set(foo.stats().map(([n]) => n))], [":a"]);

            // Prometheus, scraped inside the namespace
            const fams = new Map(parsePrometheus(await scrape(ns)).map((f) => [f.name, f]));
            const rx = fams.get("dromedary_unikernel_network_receive_packets_total")!.metrics.find((m) => m.labels?.["unikernel"] === "foo:a")!;
            assert.deepEqual({ ...rx.labels }, { unikernel: "foo:a", tenant: "foo", netif: "service", bridge: "br0", tap: "vmmtap0" });
            assert.ok(Number(rx.value) >= 6);
            const lim = fams.get("dromedary_unikernel_memory_limit_bytes")!.metrics.find((m) => m.labels?.["unikernel"] === "foo:a")!;
            assert.equal(Number(lim.value), 48 * 1024 * 1024);
            assert.equal(Number(fams.get("dromedary_stats_hostd_connected")!.metrics[0]!.value), 1);
            assert.equal(Number(fams.get("dromedary_stats_unikernels")!.metrics[0]!.value), 2);

            // the client, locally: albatross' text when piped, JSON lines with --json
            const text = await readUntil(["stats", "foo:a", "--tmpdir", env.tmpdir], (o) => /stats: utime .*\n.*\n.*\nbridge service flags/.test(o));
            assert.match(text, /^host \[unikernel: foo:a\]: success: subscribed\n/);
            const json = await readUntil(["stats", "-n", "bar:", "--tmpdir", env.tmpdir, "--json"], (o) => o.split("\n").length > 3);
            const msgs = json
              .trim()
              .split("\n")
              .map((l) => JSON.parse(l) as { header: { name: string }; payload: { kind: string; data?: { kind: string } } });
            assert.ok(
              msgs.slice(1).every((m) => m.header.name === ":b" && m.payload.data?.kind === "statistics"),
              json,
            );

            // through the endpoint: a tenant sees only its own unikernels
            await run(["generate", "ca", "db"], cwd);
            await run(["add-policy", "foo", "4", "--mem", "256", "--cpu", "0", "--bridge", "br0", "--csr"], cwd);
            await run(["sign", "cacert.pem", "db", "ca.key", "foo.req"], cwd);
            const port = 20000 + Math.floor(Math.random() * 20000);
            const ep = spawn(
              process.execPath,
              [MAIN, "endpoint", "cacert.pem", "server.pem", "server.key", "--ip", "127.0.0.1", "--port", String(port), "--tmpdir", env.tmpdir],
              { cwd, stdio: ["ignore", "ignore", "ignore"] },
            );
            try {
              await waitFor("the endpoint", () => accepts(port));
              const remote = ["--ca=foo.pem", "--ca-key=foo.key", "--server-ca=cacert.pem", "-d", `127.0.0.1:${port}`];
              const out = await readUntil(["stats", ...remote, "--json"], (o) => o.split("\n").length > 4, cwd);
              const names = out
                .trim()
                .split("\n")
                .slice(1)
                .map((l) => (JSON.parse(l) as { header: { name: string } }).header.name);
              assert.ok(names.length >= 3 && names.every((n) => n === ":a"), names.join());
            } finally {
              await kill(ep, "SIGTERM");
            }

            // the stats daemon dies and comes back: hostd registers its unikernels again
            await kill(stats.proc);
            await waitFor("the subscriber to notice", () => foo.closed);
            stats = await startStats(env);
            await waitFor("re-registered", () => stats.log.filter((l) => /adding (foo:a|bar:b) \d+/.test(l)).length === 2);
            const foo2 = await WireConn.open(join(env.tmpdir, "util", "stat.sock"));
            foo2.send(wire("foo:", { kind: "stats-subscribe" }));
            await waitFor("data again", () => latest(foo2, ":a"));

            // hostd dies: the stats daemon reconnects to the new one, which restores the unikernels
            const oldPid = Number(/adding foo:a (\d+)/.exec(stats.log.find((l) => l.includes("adding foo:a"))!)![1]);
            await env.stopHostd("SIGKILL");
            await waitFor("hostd lost", () => stats.log.some((l) => l.includes("connection to hostd lost (2 unikernels unregistered)")));
            await env.startHostd();
            const newPid = await waitFor(
              "foo:a registered by the new hostd",
              () => {
                const m = stats.log
                  .map((l) => /adding foo:a (\d+)/.exec(l))
                  .filter((x) => x !== null)
                  .at(-1);
                return m && Number(m[1]) !== oldPid ? Number(m[1]) : null;
              },
              30_000,
            );
            assert.notEqual(newPid, oldPid);
            const n = foo2.stats().length;
            await waitFor("data from the restored foo:a", () => foo2.stats().length > n + 1);
            assert.ok(!foo2.closed);
            assert.ok(stats.log.filter((l) => l.includes("connected to hostd")).length >= 2);
            assert.ok(!stats.log.some((l) => /\[ERROR\]/.test(l)), stats.log.join("\n"));
            foo2.close();
            await sleep(10);
          } finally {
            await kill(stats.proc);
          }
        }),
      );
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
