// The stats daemon caps V8's young generation itself (src/cli/stats-daemon.ts
// capYoungGeneration), however it is started: measured in a child Node process that makes
// a round-like allocation burst, with and without the cap.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { capYoungGeneration } from "../../src/cli/stats-daemon.js";

const module = fileURLToPath(new URL("../../src/cli/stats-daemon.js", import.meta.url));

/** new_space size (MiB) after a burst of objects that survive one "round" each. */
function youngGenerationMiB(cap: boolean, nodeArgs: readonly string[] = []): number {
  const script = `
    import v8 from "node:v8";
    const { capYoungGeneration } = await import(${JSON.stringify(module)});
    if (${cap}) capYoungGeneration();
    let keep = [];
    for (let r = 0; r < 40; r++) {
      const round = [];
      for (let i = 0; i < 200; i++) { const o = []; for (let j = 0; j < 300; j++) o.push({ a: "x" + j + i, b: [j, i, r] }); round.push(o); }
      keep = round;
    }
    process.stdout.write(String(v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 1048576));`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return Number(execFileSync(process.execPath, [...nodeArgs, "--input-type=module", "-e", script], { env, encoding: "utf8" }));
}

describe("the stats daemon's young generation cap", () => {
  it("keeps the young generation at its initial size when Node was started without a choice", () => {
    const capped = youngGenerationMiB(true);
    const uncapped = youngGenerationMiB(false);
    assert.ok(capped <= 4, `capped: ${capped} MiB`);
    assert.ok(uncapped > 8, `without the cap V8 grows it (${uncapped} MiB), so the check above means something`);
  });

  it("leaves an explicit --max-semi-space-size (the systemd unit's NODE_OPTIONS) alone", () => {
    assert.equal(capYoungGeneration(["--max-semi-space-size=2"], ""), false);
    assert.equal(capYoungGeneration([], "--max-semi-space-size=2"), false);
    assert.equal(capYoungGeneration([], "--semi-space-growth-factor=2"), false);
  });
});
