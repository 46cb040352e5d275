// The shipped Grafana dashboard fed by a real Prometheus (Debian's prometheus 2.x): it
// scrapes the stats daemon's /metrics (a stand-in tender registered, with an interface and
// KVM counters from a debugfs tree the test builds), then every panel query and variable
// of packaging/grafana/dromedary.json is evaluated by Prometheus and must return series.
// Skipped when prometheus is not installed (.ci/run installs it).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ask, DASHBOARD, startDaemon, startTender, waitFor, wire, withDir } from "./support.js";

const HAVE_PROMETHEUS = spawnSync("prometheus", ["--version"]).status === 0;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

interface PanelTarget {
  expr: string;
}
interface Dashboard {
  panels: Array<{ title: string; targets?: PanelTarget[] }>;
  templating: { list: Array<{ name: string; definition?: string }> };
}

describe("the Grafana dashboard against Prometheus scraping the stats daemon", {
  skip: HAVE_PROMETHEUS ? false : "prometheus not installed (Debian: prometheus)",
}, () => {
  it("every panel query and variable returns data", async () => {
    await withDir(async (dir) => {
      const t = await startTender(dir, ["--standin-burn=200", "--standin-run"], 40);
      const debugfs = join(dir, "debugfs");
      const vm = join(debugfs, "kvm", `${t.pid}-10`);
      await mkdir(vm, { recursive: true });
      for (const [k, v] of [
        ["exits", "100"],
        ["io_exits", "10"],
        ["mmio_exits", "5"],
        ["halt_exits", "1"],
      ])
        await writeFile(join(vm, k!), `${v}\n`);
      const { d } = await startDaemon(dir, { metricsListen: { host: "127.0.0.1", port: 0 }, intervalSeconds: 0.5, debugfsRoot: debugfs });
      let prom: ChildProcess | null = null;
      try {
        assert.equal(
          await ask(d.socketPath, wire("alice:web", { kind: "stats-add", vmmdev: "", pid: t.pid, network: [{ bridge: "service", tap: "lo" }] })),
          "success: added",
        );
        const webPort = await freePort();
        await writeFile(
          join(dir, "prometheus.yml"),
          `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: dromedary\n    static_configs:\n      - targets: ["127.0.0.1:${d.metricsAddress!.port}"]\n`,
        );
        prom = spawn(
          "prometheus",
          [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${webPort}`],
          { stdio: ["ignore", "ignore", "pipe"] },
        );
        let log = "";
        prom.stderr!.on("data", (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
        const api = `http://127.0.0.1:${webPort}/api/v1`;
        const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
          const r = (await (await fetch(`${api}/query?${new URLSearchParams({ query: q })}`)).json()) as {
            status: string;
            error?: string;
            data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
          };
          assert.equal(r.status, "success", `${q}: ${r.error}`);
          return r.data.result;
        };
        // enough scrapes for rate() over the dashboard's interval
        await waitFor(
          "four scrapes",
          async () => {
            if (prom!.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
            try {
              const r = await query('count_over_time(up{job="dromedary"}[1m])');
              return r.length === 1 && Number(r[0]!.value[1]) >= 4;
            } catch {
              return false;
            }
          },
          40_000,
        );
        assert.equal((await query('up{job="dromedary"}'))[0]!.value[1], "1");

        const dash = JSON.parse(await readFile(DASHBOARD, "utf8")) as Dashboard;
        const substitute = (q: string): string => q.replaceAll("$tenant", ".*").replaceAll("$unikernel", ".*").replaceAll("$__rate_interval", "10s");
        let checked = 0;
        for (const p of dash.panels) {
          for (const target of p.targets ?? []) {
            const res = await query(substitute(target.expr));
            assert.ok(res.length > 0, `panel "${p.title}": no data for ${target.expr}`);
            checked++;
          }
        }
        assert.ok(checked >= 15);
        // the CPU panel's query shows a burn that happens while Prometheus watches
        const burner = await startTender(dir, ["--standin-burn=1500", "--standin-run"]);
        try {
          assert.equal(await ask(d.socketPath, wire("alice:burn", { kind: "stats-add", vmmdev: "", pid: burner.pid, network: [] })), "success: added");
          const cpu = dash.panels.find((p) => p.title.startsWith("CPU") && p.targets !== undefined)!.targets![0]!.expr;
          await waitFor(
            "the burn in the CPU panel",
            async () => {
              const r = await query(`max_over_time((${substitute(cpu)})[1m:1s])`);
              const v = r.find((x) => x.metric["unikernel"] === "alice:burn");
              return v !== undefined && Number(v.value[1]) > 0.05;
            },
            20_000,
          );
        } finally {
          await burner.stop();
        }
        // the variables: label_values(METRIC, LABEL) as Grafana asks Prometheus for them
        for (const v of dash.templating.list) {
          const m = v.definition === undefined ? null : /^label_values\((.*), *([a-z_]+)\)$/.exec(v.definition);
          if (m === null) continue;
          const r = (await (await fetch(`${api}/label/${m[2]}/values?${new URLSearchParams({ "match[]": substitute(m[1]!) })}`)).json()) as { data: string[] };
          assert.deepEqual(r.data, v.name === "tenant" ? ["alice"] : ["alice:burn", "alice:web"], v.name);
        }
      } finally {
        if (prom !== null && prom.exitCode === null) {
          const exited = new Promise((r) => prom!.once("exit", r));
          prom.kill("SIGTERM");
          await exited;
        }
        await d.close();
        await t.stop();
      }
    });
  });
});
