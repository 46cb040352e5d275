import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { netnsAvailable, withNetns } from "./netns.js";

function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { encoding: "utf8" }, (e, out, err) => (e ? reject(new Error(`${cmd}: ${err}`)) : resolve(out))));
}
const namespaces = async (): Promise<string[]> =>
  (await sh("ip", ["netns", "list"]))
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n !== "");
const hostLinks = async (): Promise<string> => sh("ip", ["-o", "link", "show"]);

const netnsModule = new URL("./netns.js", import.meta.url).href;

describe("netns harness", async () => {
  const avail = await netnsAvailable();
  const skip = avail.ok ? false : avail.reason;

  it("creates a unique namespace, runs commands in it and deletes it afterwards", { skip }, async () => {
    const before = await hostLinks();
    let seen = "";
    const result = await withNetns(async (ns) => {
      seen = ns.name;
      assert.match(ns.name, /^dromedary-[0-9a-f]{12}$/);
      assert.ok((await namespaces()).includes(ns.name));
      await ns.addBridge("br0");
      await ns.ip("tuntap", "add", "vmmtap0", "mode", "tap");
      const r = await ns.exec("ip", ["-o", "link", "show", "type", "bridge"]);
      assert.match(r.stdout, /: br0: .*\bUP\b/);
      const fail = await ns.exec("ip", ["link", "show", "dev", "nope"], { allowFail: true });
      assert.notEqual(fail.code, 0);
      await assert.rejects(ns.exec("ip", ["link", "show", "dev", "nope"]));
      return 42;
    });
    assert.equal(result, 42);
    assert.ok(!(await namespaces()).includes(seen));
    assert.equal(await hostLinks(), before, "the host namespace is untouched");
  });

  it("cleans up after a failing callback and kills spawned processes", { skip }, async () => {
    let seen = "";
    let child: ReturnType<Parameters<Parameters<typeof withNetns>[0]>[0]["spawn"]> | null = null;
    await assert.rejects(
      withNetns(async (ns) => {
        seen = ns.name;
        child = ns.spawn("sleep", ["600"]);
        await new Promise((r) => setTimeout(r, 50));
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.ok(!(await namespaces()).includes(seen));
    const c = child as unknown as { exitCode: number | null; signalCode: string | null };
    assert.ok(c.exitCode !== null || c.signalCode !== null, "spawned process is gone");
  });

  it("kills processes left in the namespace by its children", { skip }, async () => {
    let grandchild = 0;
    await withNetns(async (ns) => {
      // a shell that starts a detached sleeper and exits: not a tracked child
      const r = await ns.exec("sh", ["-c", "sleep 600 >/dev/null 2>&1 & echo $!"]);
      grandchild = Number(r.stdout.trim());
      assert.ok(grandchild > 0);
      process.kill(grandchild, 0); // alive
    });
    // gone, or a zombie waiting for init to reap it
    let state = "gone";
    try {
      state = readFileSync(`/proc/${grandchild}/stat`, "utf8").replace(/^.*\) /s, "")[0]!;
    } catch {
      // no such process
    }
    assert.ok(state === "gone" || state === "Z", `sleeper state ${state}`);
  });

  for (const how of ["exit", "SIGTERM"] as const) {
    it(`deletes the namespace when the process ends early (${how})`, { skip }, async () => {
      // a child process that enters withNetns, reports the name, then dies
      const script = `
        import { withNetns } from ${JSON.stringify(netnsModule)};
        await withNetns(async (ns) => {
          await ns.addBridge("br0");
          process.stdout.write(ns.name + "\\n");
          // exit: wait for the parent's go (a line on stdin), then exit mid-callback
          ${how === "exit" ? 'process.stdin.once("data", () => process.exit(3));' : ""}
          await new Promise(() => setInterval(() => {}, 1000));
        });
      `;
      const c = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["pipe", "pipe", "inherit"] });
      const name = await new Promise<string>((resolve) => {
        let out = "";
        c.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("\n")) resolve(out.trim());
        });
      });
      assert.ok((await namespaces()).includes(name));
      const exited = new Promise<[number | null, string | null]>((resolve) => c.on("exit", (code, sig) => resolve([code, sig])));
      if (how === "SIGTERM") c.kill("SIGTERM");
      else c.stdin.write("go\n");
      const [code, sig] = await exited;
      if (how === "exit") assert.equal(code, 3);
      else assert.equal(sig, "SIGTERM");
      assert.ok(!(await namespaces()).includes(name), `${name} deleted`);
    });
  }
});
