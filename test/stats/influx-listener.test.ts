// `dromedary influx` against a real line protocol parser: InfluxDB (Debian's influxdb 1.6)
// on loopback. A TCP listener takes what the forwarder sends (as Telegraf's socket_listener
// would) and hands each block to InfluxDB's /write, which parses it strictly (a malformed
// line is a 400); the points are then read back with InfluxQL. Also: both sides reconnect.
// Skipped when influxd is not installed (.ci/run installs it).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseName } from "../../src/core/name.js";
import { startInflux } from "../../src/stats/influx-daemon.js";
import { ask, sleep, startDaemon, startTender, waitFor, wire, withDir } from "./support.js";

const HAVE_INFLUXD = spawnSync("influxd", ["version"]).status === 0;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

interface Influx {
  readonly http: string;
  query(
    q: string,
  ): Promise<{ results: Array<{ series?: Array<{ name: string; columns: string[]; values: unknown[][]; tags?: Record<string, string> }>; error?: string }> }>;
  stop(): Promise<void>;
}

async function startInfluxd(dir: string): Promise<Influx> {
  const [rpc, http] = [await freePort(), await freePort()];
  const conf = join(dir, "influxdb.conf");
  await mkdir(join(dir, "influx"), { recursive: true });
  await writeFile(
    conf,
    [
      "reporting-disabled = true",
      `bind-address = "127.0.0.1:${rpc}"`,
      "[meta]",
      `  dir = "${join(dir, "influx", "meta")}"`,
      "[data]",
      `  dir = "${join(dir, "influx", "data")}"`,
      `  wal-dir = "${join(dir, "influx", "wal")}"`,
      "  query-log-enabled = false",
      "[http]",
      `  bind-address = "127.0.0.1:${http}"`,
      "  log-enabled = false",
      "[monitor]",
      "  store-enabled = false",
      "[continuous_queries]",
      "  enabled = false",
    ].join("\n"),
  );
  const p: ChildProcess = spawn("influxd", ["run", "-config", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  p.stderr!.on("data", (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const base = `http://127.0.0.1:${http}`;
  await waitFor(
    "influxd",
    async () => {
      if (p.exitCode !== null) throw new Error(`influxd exited: ${log}`);
      return fetch(`${base}/ping`).then(
        (r) => r.status === 204,
        () => false,
      );
    },
    30_000,
  );
  const query = async (q: string) =>
    (await (await fetch(`${base}/query?db=dromedary`, { method: "POST", body: new URLSearchParams({ q }) })).json()) as Awaited<ReturnType<Influx["query"]>>;
  await query("CREATE DATABASE dromedary");
  return {
    http: base,
    query,
    stop: () =>
      new Promise((resolve) => {
        if (p.exitCode !== null) return resolve();
        p.once("exit", () => resolve());
        p.kill("SIGTERM");
      }),
  };
}

/** The TCP line protocol listener: every complete block goes to InfluxDB's /write. */
class Listener {
  readonly server: Server;
  readonly sockets: Socket[] = [];
  readonly errors: string[] = [];
  blocks = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(influx: Influx) {
    this.server = createServer((s) => {
      this.sockets.push(s);
      let buf = "";
      s.on("data", (d: Buffer) => {
        buf += d.toString("utf8");
        const end = buf.lastIndexOf("\n");
        if (end < 0) return;
        const body = buf.slice(0, end + 1);
        buf = buf.slice(end + 1);
        this.queue = this.queue.then(async () => {
          const r = await fetch(`${influx.http}/write?db=dromedary`, { method: "POST", body });
          if (r.status !== 204) this.errors.push(`${r.status} ${await r.text()} for ${body}`);
          else this.blocks++;
          // distinct server timestamps for the next block
          await sleep(2);
        });
      });
      s.on("error", () => undefined);
    });
  }
  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => resolve((this.server.address() as AddressInfo).port)));
  }
  async drained(): Promise<void> {
    await this.queue;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe("dromedary influx → a real line protocol listener", { skip: HAVE_INFLUXD ? false : "influxd not installed (Debian: influxdb)" }, () => {
  it("InfluxDB parses every line and stores albatross' fields; TCP and stats sides reconnect", async () => {
    await withDir(async (dir) => {
      const influx = await startInfluxd(dir);
      const listener = new Listener(influx);
      const port = await listener.listen();
      const t = await startTender(dir, ["--standin-burn=200", "--standin-run"], 32);
      let { d, tmp } = await startDaemon(dir);
      const fwd = startInflux({ tmpdir: tmp, influx: { host: "127.0.0.1", port }, name: parseName("alice:"), noDropPath: false, retryMs: 200 });
      const full = startInflux({ tmpdir: tmp, influx: { host: "127.0.0.1", port }, name: parseName(":"), noDropPath: true, retryMs: 200 });
      try {
        assert.equal(
          await ask(d.socketPath, wire("alice:web", { kind: "stats-add", vmmdev: "", pid: t.pid, network: [{ bridge: "service", tap: "lo" }] })),
          "success: added",
        );
        await waitFor("both subscribed", () => d.status().subscribers === 2);
        await waitFor("both TCP connections", () => listener.sockets.length === 2);
        // the stand-in's 0.2 s of CPU time, done
        await waitFor("the burn", async () => Number((await readFile(`/proc/${t.pid}/stat`, "latin1")).split(") ")[1]!.split(" ")[11]) >= 15);
        d.sampleNow();
        await waitFor("the blocks in InfluxDB", async () => {
          await listener.drained();
          return listener.blocks >= 2;
        });
        assert.deepEqual(listener.errors, []);

        const ru = await influx.query("SELECT * FROM resource_usage");
        const series = ru.results[0]!.series![0]!;
        const rows = series.values.map((v) => Object.fromEntries(series.columns.map((c, i) => [c, v[i]])));
        assert.deepEqual(rows.map((r) => r["vm"]).sort(), ["alice:web", "web"]);
        const web = rows.find((r) => r["vm"] === "web")!;
        assert.equal(typeof web["utime"], "number");
        assert.ok((web["utime"] as number) >= 0.15, String(web["utime"]));
        for (const f of ["maxrss", "minflt", "maxflt", "nvcsw", "nivcsw", "inblock", "outblock"]) assert.ok(Number.isInteger(web[f]), f);
        assert.equal(web["inblock"], 0);

        const fields = await influx.query("SHOW FIELD KEYS FROM resource_usage, kinfo_mem, interface");
        const types = new Map<string, string>();
        for (const s of fields.results[0]!.series!) for (const [k, ty] of s.values as Array<[string, string]>) types.set(`${s.name}.${k}`, ty);
        assert.equal(types.get("resource_usage.utime"), "float");
        assert.equal(types.get("resource_usage.maxrss"), "integer");
        assert.equal(types.get("kinfo_mem.uptime"), "float");
        assert.equal(types.get("kinfo_mem.cow_faults"), "integer");
        assert.equal(types.get("interface.host_to_vm_bytes"), "integer");
        assert.equal(types.size, 16 + 8 + 16);

        const km = (await influx.query("SELECT rss, maxrss FROM kinfo_mem, resource_usage WHERE vm = 'web'")).results[0]!.series!;
        assert.equal(km.length, 2);
        const iface = (await influx.query("SELECT * FROM interface WHERE vm = 'web'")).results[0]!.series![0]!;
        assert.ok(iface.columns.includes("bridge"));
        assert.equal(iface.values[0]![iface.columns.indexOf("bridge")], "service");

        // the TCP side breaks: the forwarder reconnects; a message in between may be lost
        for (const s of listener.sockets.splice(0)) s.destroy();
        await waitFor("TCP reconnected", () => listener.sockets.length === 2, 10_000);
        const before = listener.blocks;
        d.sampleNow();
        await waitFor("blocks after the TCP reconnect", async () => {
          await listener.drained();
          return listener.blocks >= before + 2;
        });

        // the stats daemon restarts: the forwarders subscribe again
        await d.close();
        ({ d } = await startDaemon(dir));
        assert.equal(await ask(d.socketPath, wire("alice:web", { kind: "stats-add", vmmdev: "", pid: t.pid, network: [] })), "success: added");
        await waitFor("subscribed again", () => d.status().subscribers === 2, 10_000);
        const b2 = listener.blocks;
        d.sampleNow();
        await waitFor("blocks after the stats daemon restart", async () => {
          await listener.drained();
          return listener.blocks >= b2 + 2;
        });
        assert.deepEqual(listener.errors, []);
        assert.equal(fwd.counts().forwarded + full.counts().forwarded, listener.blocks);
      } finally {
        fwd.close();
        full.close();
        await d.close();
        await listener.close();
        await t.stop();
        await influx.stop();
      }
    });
  });
});
