// The stats daemon's file reads (src/stats/reader.ts) against the kernel's own files, where
// a hand-made file under --proc-root would not behave as procfs does.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { netnsAvailable, withNetns } from "../support/netns.js";

const READER = fileURLToPath(new URL("../../src/stats/reader.js", import.meta.url));

describe("the sampler's reads", () => {
  it("every interface of /proc/net/dev, however many (a seq_file hands out about a page per read)", async (t) => {
    const a = await netnsAvailable();
    if (!a.ok) return t.skip(a.reason);
    const count = 150;
    await withNetns(async (ns) => {
      const batch: string[] = [];
      for (let i = 0; i < count; i++) batch.push(`tuntap add dmy${i} mode tap`);
      execFileSync("ip", ["netns", "exec", ns.name, "ip", "-batch", "-"], { input: batch.join("\n") + "\n" });
      // a Sampler in a process inside the namespace reads its own pid with the last interface
      const script = `
        const { Sampler } = await import(${JSON.stringify(READER)});
        const s = new Sampler({ log: () => undefined });
        const nics = s.resolveNics([{ netif: "first", tap: "dmy0" }, { netif: "last", tap: "dmy${count - 1}" }]);
        s.beginRound(false);
        const r = s.read({ name: { path: [], label: "self" }, pid: process.pid, vmmdev: "", nics }, 0);
        process.stdout.write(JSON.stringify({ nics: nics.length, kind: r.kind, ifaces: r.kind === "ok" ? r.readings.interfaces.map((i) => i.netif) : [] }));`;
      const out = await ns.exec(process.execPath, ["--input-type=module", "-e", script]);
      assert.ok(out.stdout.length > 0, out.stderr);
      assert.deepEqual(JSON.parse(out.stdout), { nics: 2, kind: "ok", ifaces: ["first", "last"] });
    });
  });
});
