// `dromedary fleet info` over 20 hosts against one host's `dromedary info --destination`.
// Target: fleet info over 20 hosts in parallel takes <= 2x one host's info.
//
// Both are measured as the operator runs them: a `dromedary` process each (start-up, the
// certificates, the leaf, TLS 1.3 with client certificates, the reply; fleet info also asks the
// builder stand-in which build runs and which is the latest). The 20 hosts are `Endpoint`s
// with a fake vmmd each in a separate process (fleet-servers.ts): their work is not the
// client's, though on this machine it shares the cores. Runs alternate (info, fleet, fleet,
// info, ...); each round gives one ratio; the median of 9 rounds is reported with the range.
// Also printed: the same comparison inside one process (no start-up), for what the client
// library itself costs per host.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseFleet } from "../src/fleet/file.js";
import { parseDestination, parseHttpHost } from "../src/cli/flags.js";
import { fleetInfo } from "../src/fleet/fleet.js";
import { Builder } from "../src/fleet/builder.js";
import { infos, remoteTarget } from "../src/fleet/target.js";
import { rootName } from "../src/core/name.js";
import { startBuilder } from "../test/support/builder.js";
import { upperMedian } from "./support.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const SERVERS = fileURLToPath(new URL("./fleet-servers.js", import.meta.url));
const HOSTS = 20;
const ROUNDS = 9;

function timeCli(cwd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("close", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`dromedary ${args.join(" ")} -> ${code}: ${err}`))));
  });
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "dromedary-fleet-bench-"));
  const builder = await startBuilder();
  execFileSync(process.execPath, [MAIN, "generate", "ca", "db"], { cwd: dir, stdio: "ignore" });
  const servers = spawn(process.execPath, [SERVERS, dir, String(HOSTS)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: servers.stdout! }).once("line", resolve);
      servers.once("exit", (c) => reject(new Error(`fleet-servers exited ${c}`)));
    });
    const { ports, image } = JSON.parse(line) as { ports: number[]; image: string };
    builder.addBuild("hello", { image: Buffer.from(image, "base64"), packages: { mirage: "4.5.0" } });
    builder.addBuild("hello", { image: Buffer.from("newer"), packages: { mirage: "4.6.0" } });
    const fleet = {
      builder: builder.url,
      hosts: ports.map((p, i) => ({
        name: `h${i}`,
        destination: `127.0.0.1:${p}`,
        "server-ca": "cacert.pem",
        ca: "cacert.pem",
        "ca-key": "ca.key",
        groups: [],
      })),
    };
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(fleet));
    const one = ["info", "--destination", `127.0.0.1:${ports[0]}`, "--ca", "cacert.pem", "--ca-key", "ca.key", "--server-ca", "cacert.pem"];
    const all = ["fleet", "info", "--fleet", "fleet.json"];
    // warm-up (file cache, the servers' first connections)
    await timeCli(dir, one);
    await timeCli(dir, all);
    const ratios: number[] = [];
    const ones: number[] = [];
    const alls: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let a: number;
      let b: number;
      if (r % 2 === 0) {
        a = await timeCli(dir, one);
        b = await timeCli(dir, all);
      } else {
        b = await timeCli(dir, all);
        a = await timeCli(dir, one);
      }
      ones.push(a);
      alls.push(b);
      ratios.push(b / a);
    }
    const m = upperMedian(ratios);
    console.log(`dromedary info -d (1 host):        median ${upperMedian(ones).toFixed(0)} ms`);
    console.log(`dromedary fleet info (${HOSTS} hosts): median ${upperMedian(alls).toFixed(0)} ms`);
    console.log(
      `ratio fleet info ${HOSTS} hosts / info 1 host: ${m.toFixed(2)} (range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}; target <= 2) ${m <= 2 ? "OK" : "MISSED"}`,
    );

    // in one process: the client library alone
    const f = parseFleet(JSON.stringify(fleet), join(dir, "fleet.json"), { destination: (s) => parseDestination(s), httpHost: parseHttpHost });
    const b = new Builder({ base: builder.url });
    const h0 = f.hosts[0]!;
    const single = async (): Promise<number> => {
      const t0 = performance.now();
      await infos(remoteTarget({ host: h0.host, port: h0.port, ca: h0.ca, caKey: h0.caKey, serverCa: h0.serverCa, keyType: h0.keyType }), rootName);
      await b.latest("hello");
      return performance.now() - t0;
    };
    const many = async (): Promise<number> => {
      const t0 = performance.now();
      const rs = await fleetInfo({ hosts: f.hosts, builder: new Builder({ base: builder.url }), concurrency: 16 });
      if (!rs.every((x) => x.reachable && x.unikernels[0]?.outdated === true)) throw new Error("fleet info: not every host answered");
      return performance.now() - t0;
    };
    await single();
    await many();
    const inproc: number[] = [];
    const s1: number[] = [];
    const s20: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const x = await many();
      const y = await single();
      s20.push(x);
      s1.push(y);
      inproc.push(x / y);
    }
    console.log(
      `in one process (no start-up; one leaf shared by the hosts; the 20 servers share this machine's cores): ` +
        `1 host ${upperMedian(s1).toFixed(1)} ms, ${HOSTS} hosts ${upperMedian(s20).toFixed(1)} ms, ratio ${upperMedian(inproc).toFixed(2)} (range ${Math.min(...inproc).toFixed(2)}-${Math.max(...inproc).toFixed(2)})`,
    );
  } finally {
    servers.kill("SIGKILL");
    await builder.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
