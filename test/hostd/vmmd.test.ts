// The pure core of hostd (src/hostd/vmmd.ts), without any I/O: every decision and reply
// text of daemon.md §2 that Linux can reach.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { readSolo5Abi, readSolo5Manifest } from "../../src/solo5/elf.js";
import { formatMac } from "../../src/solo5/mac.js";
import { decodeState, encodeState } from "../../src/commands/codec.js";
import type { Command, Header, Policy, State, Success, UnikernelConfig, Wire } from "../../src/commands/types.js";
import { parseName, type Name } from "../../src/core/name.js";
import { emptyResources, findBlock, insertBlock, insertPolicy, type Resources } from "../../src/policy/resources.js";
import {
  beginShutdown,
  blockAdded,
  blockRemoved,
  checkImageManifest,
  commitCreate,
  consoleAddRequest,
  consoleReplyOk,
  createFailureText,
  fifoPath,
  handleCommand,
  handleExit,
  imagePath,
  initialState,
  inlineBlockData,
  macFor,
  imageTarget,
  checkCreate,
  recheckCreate,
  registerExitWaiter,
  replyWire,
  requiredBridges,
  restartChecked,
  restartConfig,
  restartDecision,
  restoreOrder,
  restorePolicies,
  beginCreate,
  imageWritten,
  tenderFound,
  tapsMade,
  consoleAdd,
  consoleAdded,
  execPlan,
  started,
  shouldRestart,
  stateToDump,
  statsDisconnected,
  type Outcome,
  type RunningUnikernel,
  type Step,
  type VmmdOptions,
  type VmmdState,
} from "../../src/hostd/vmmd.js";
import type { ExitStatus } from "../../src/hostd/types.js";
import { buildSolo5Elf } from "../support/elf-builder.js";
import { config as unikernelConfig } from "../support/hostd.js";

const O: VmmdOptions = { tmpdir: "/run/alb", dbdir: "/var/lib/alb", dropPath: true, maxImageBytes: 1 << 24 };
const n = (s: string): Name => parseName(s);
const hdr = (name: string, sequence = 0n): Header => ({ version: 5, sequence, name: n(name) });
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

const HELLO = buildSolo5Elf({ target: "hvt", devices: [] }).bytes;
const NET = buildSolo5Elf({ target: "hvt", devices: [{ name: "service", type: "net" }] }).bytes;
const BLK = buildSolo5Elf({ target: "hvt", devices: [{ name: "storage", type: "block" }] }).bytes;

const cfg = (over: Partial<UnikernelConfig> = {}): UnikernelConfig => unikernelConfig(HELLO, over);

const policy = (over: Partial<Policy> = {}): Policy => ({ unikernels: 2n, cpuids: [0, 1], memory: 1024, block: 100, bridges: ["br0", "service"], ...over });

function must<T>(r: { ok: true; value: T } | { ok: false; error: string }): T {
  if (!r.ok) throw new Error(`unexpected error: ${r.error}`);
  return r.value;
}

function withPolicy(r: Resources, path: string, p: Policy): Resources {
  return must(insertPolicy(r, path === "" ? [] : path.split(":"), p));
}

/** Register a running unikernel through the core (as the shell does after exec). */
function run(s: VmmdState, name: string, config: UnikernelConfig = cfg(), pid = 100): VmmdState {
  const u: RunningUnikernel = {
    name: n(name),
    config,
    pid,
    taps: config.bridges.map((b, i) => ({ netif: b.netif, bridge: b.bridge ?? b.netif, tap: `vmmtap${i}`, mac: macFor(n(name), b.netif, b.mac) })),
    digest: new Uint8Array(32),
    started: new Date(0),
  };
  return must(commitCreate(s, u, true)).state;
}

function outcomeText(o: Outcome): string {
  if (o.kind === "failure") return `failure: ${o.message}`;
  const sx = o.success;
  return sx.kind === "string" ? `success: ${text(sx.text)}` : `success ${sx.kind}`;
}

function replyOf(step: Step): { text: string; dump: boolean; keepOpen: boolean; state: VmmdState } {
  assert.equal(step.kind, "reply", `expected a reply step, got ${step.kind}`);
  if (step.kind !== "reply") throw new Error("unreachable");
  return { text: outcomeText(step.outcome), dump: step.dump, keepOpen: step.keepOpen, state: step.state };
}

const cmd = (s: VmmdState, name: string, c: Command): Step => handleCommand(s, O, hdr(name), c);
const exited = (code: number): ExitStatus => ({ kind: "exited", code });

describe("create: checkCreate, imageTarget (§2.4 steps 1–3)", () => {
  it("refuses a name that is already running", () => {
    const s = run(initialState(emptyResources()), ":hello");
    const r = checkCreate(s, n(":hello"), cfg());
    assert.deepEqual(r, { ok: false, error: "Unikernel with same name is already running" });
    assert.equal(replyOf(cmd(s, ":hello", { kind: "unikernel-create", config: cfg() })).text, "failure: Unikernel with same name is already running");
  });

  it("runs check_unikernel against the policy of the path", () => {
    const r = withPolicy(emptyResources(), "foo", policy({ unikernels: 1n, memory: 64 }));
    const s0 = initialState(r);
    assert.deepEqual(checkCreate(s0, n("foo:a"), cfg({ memory: 65 })), {
      ok: false,
      error: "maximum allowed memory (64, used 0) would be exceeded (requesting 65)",
    });
    assert.deepEqual(checkCreate(s0, n("foo:a"), cfg({ cpuids: [3] })), { ok: false, error: "CPUids 3 are not allowed by policy" });
    const s1 = run(s0, "foo:a");
    assert.deepEqual(checkCreate(s1, n("foo:b"), cfg()), { ok: false, error: "maximum amount of unikernels (1) reached" });
    assert.deepEqual(checkCreate(s0, n("foo:a"), cfg({ bridges: [{ netif: "nope" }] })), {
      ok: false,
      error: "bridges nope not allowed by policy",
    });
    assert.deepEqual(checkCreate(s0, n("foo:a"), cfg()), { ok: true, value: undefined });
  });

  it("checks block devices: not found, already in use", () => {
    const r = must(insertBlock(emptyResources(), n("data"), 10));
    const s0 = initialState(r);
    const c = cfg({ image: BLK, blockDevices: [{ name: "storage", device: "data" }] });
    assert.deepEqual(checkCreate(s0, n(":x"), cfg({ blockDevices: [{ name: "storage" }] })), {
      ok: false,
      error: "block device :storage not found",
    });
    const s1 = run(s0, ":x", c);
    assert.equal(findBlock(s1.resources, n("data"))?.active, true);
    assert.deepEqual(checkCreate(s1, n(":y"), c), { ok: false, error: "block device :data already in use" });
  });

  it("the target from the ABI note: tender candidates; unsupported targets; the note's error as is", () => {
    assert.deepEqual(imageTarget(O, { ok: true, value: readSolo5Abi(HELLO) }), {
      ok: true,
      value: { abi: { target: "hvt", version: 2 }, candidates: ["/var/lib/alb/solo5-hvt.2", "solo5-hvt.2", "/var/lib/alb/solo5-hvt", "solo5-hvt"] },
    });
    const virtio = buildSolo5Elf({ target: "virtio", devices: [] }).bytes;
    assert.deepEqual(imageTarget(O, { ok: true, value: readSolo5Abi(virtio) }), { ok: false, error: "unsupported solo5 target virtio" });
    assert.deepEqual(imageTarget(O, { ok: false, error: "manifest not found" }), { ok: false, error: "manifest not found" });
  });

  it("a path name cannot be created", () => {
    assert.equal(
      replyOf(cmd(initialState(emptyResources()), "foo:", { kind: "unikernel-create", config: cfg() })).text,
      "failure: unikernel name must not be a path",
    );
  });

  it("create of a fresh name hands the pipeline to the shell", () => {
    const s = initialState(emptyResources());
    const step = cmd(s, ":hello", { kind: "unikernel-create", config: cfg() });
    assert.equal(step.kind, "create");
  });
});

describe("create: manifest, bridges, console, commit", () => {
  it("manifest mismatches are reported with the manifest's entries", () => {
    const m = (image: Uint8Array) => ({ ok: true as const, value: readSolo5Manifest(image) });
    assert.deepEqual(checkImageManifest(m(NET), cfg()), {
      ok: false,
      error: 'specified bridge(s) does not match with the manifest. Devices present in manifest: net "service"',
    });
    assert.deepEqual(checkImageManifest(m(BLK), cfg({ blockDevices: [{ name: "other" }] })), {
      ok: false,
      error: 'specified block device(s) does not match with manifest. Devices present in manifest: block "storage"',
    });
    assert.deepEqual(checkImageManifest(m(NET), cfg({ bridges: [{ netif: "service", bridge: "br0" }] })), { ok: true, value: undefined });
    assert.deepEqual(checkImageManifest(m(BLK), cfg({ blockDevices: [{ name: "storage", device: "data" }] })), { ok: true, value: undefined });
    // the manifest could not be read: its error as is
    assert.deepEqual(checkImageManifest({ ok: false, error: "manifest not found" }, cfg()), { ok: false, error: "manifest not found" });
  });

  it("required bridges: bridge field or netif, config order, no repetition", () => {
    const c = cfg({ bridges: [{ netif: "service", bridge: "br1" }, { netif: "br0" }, { netif: "x", bridge: "br1" }] });
    assert.deepEqual(requiredBridges(c), ["br1", "br0"]);
  });

  it("MACs: configured, else 00:80:41 + MD5(netif ++ name)", () => {
    assert.deepEqual(macFor(n("foo:bar"), "default", undefined), Uint8Array.of(0x00, 0x80, 0x41, 0x9a, 0x6f, 0x39));
    const m = Uint8Array.of(2, 0, 0, 0, 0, 1);
    assert.deepEqual(macFor(n("foo:bar"), "default", m), m);
  });

  it("Console_add: counter from 1, budget from the policy of the path", () => {
    let r = withPolicy(emptyResources(), "", policy({ unikernels: (1n << 62n) - 1n }));
    r = withPolicy(r, "foo", policy({ unikernels: 7n }));
    let s = initialState(r);
    const a = consoleAddRequest(s, n(":x"));
    assert.equal(a.request.header.sequence, 1n);
    assert.deepEqual(a.request.payload, { kind: "command", command: { kind: "console-add", budget: (1n << 62n) - 1n } });
    s = a.state;
    const b = consoleAddRequest(s, n("foo:y"));
    assert.equal(b.request.header.sequence, 2n);
    assert.deepEqual(b.request.header.name, n("foo:y"));
    assert.deepEqual(b.request.payload, { kind: "command", command: { kind: "console-add", budget: 7n } });
    const c = consoleAddRequest(b.state, n("bar:z"));
    assert.deepEqual(c.request.payload, { kind: "command", command: { kind: "console-add", budget: 0n } });
    assert.equal(c.state.consoleSeq, 4n);
  });

  it("the console reply must be a Success with the same sequence", () => {
    const { request } = consoleAddRequest(initialState(emptyResources()), n(":x"));
    const ok: Wire = { header: request.header, payload: { kind: "reply", reply: { kind: "string", text: new TextEncoder().encode("opening") } } };
    assert.equal(consoleReplyOk(request, ok), true);
    assert.equal(consoleReplyOk(request, { ...ok, header: { ...request.header, sequence: 9n } }), false);
    assert.equal(consoleReplyOk(request, { header: request.header, payload: { kind: "failure", message: new Uint8Array() } }), false);
    assert.equal(consoleReplyOk(request, { header: request.header, payload: { kind: "data", data: { kind: "block-end" } } }), false);
  });

  it("the generic create failure, and with a cleanup error", () => {
    assert.equal(createFailureText(), "could not create unikernel: console failed");
    assert.equal(createFailureText("boom"), "could not create unikernel: console failed, and also boom while cleaning resources");
  });

  it("re-check before exec sees a unikernel created meanwhile", () => {
    const s = run(initialState(emptyResources()), ":a");
    assert.deepEqual(recheckCreate(s, n(":a"), cfg()), { ok: false, error: "Unikernel with same name is already running" });
    const r = withPolicy(emptyResources(), "p", policy({ unikernels: 1n }));
    const s2 = run(initialState(r), "p:a");
    assert.deepEqual(recheckCreate(s2, n("p:b"), cfg()), { ok: false, error: "maximum amount of unikernels (1) reached" });
  });

  it("commit registers, dumps, and registers a restart waiter for restart or add_name", () => {
    const s0 = initialState(emptyResources());
    const quit = run(s0, ":q", cfg());
    assert.equal(quit.waiters.size, 0);
    const named = run(s0, ":n", cfg({ addName: true }));
    assert.deepEqual(named.waiters.get(":n"), { kind: "restart", config: cfg({ addName: true }) });
    const rs = run(s0, ":r", cfg({ failBehaviour: { kind: "restart", exitCodes: [] } }));
    assert.equal(rs.waiters.get(":r")?.kind, "restart");
    assert.equal(stateToDump(rs).unikernels.length, 1);
  });

  it("commit keeps an existing waiter and logs it", () => {
    const s0 = registerExitWaiter(initialState(emptyResources()), n(":a")).state;
    const u: RunningUnikernel = { name: n(":a"), config: cfg({ addName: true }), pid: 5, taps: [], digest: new Uint8Array(32), started: new Date(0) };
    const c = must(commitCreate(s0, u, false));
    assert.equal(c.state.waiters.get(":a")?.kind, "exit");
    assert.deepEqual(c.log, ["restart attempted to overwrite waiter for :a"]);
    assert.equal(c.dump, false);
  });

  it("Stats_add after commit only with a stats connection; counter from Stats_initial", () => {
    const s0 = initialState(emptyResources());
    const u: RunningUnikernel = {
      name: n(":a"),
      config: cfg({ bridges: [{ netif: "service", bridge: "br0" }] }),
      pid: 42,
      taps: [{ netif: "service", bridge: "br0", tap: "vmmtap3", mac: new Uint8Array(6) }],
      digest: new Uint8Array(32),
      started: new Date(0),
    };
    assert.equal(must(commitCreate(s0, u, true)).statsAdd, null);
    const init = cmd(s0, ":", { kind: "stats-initial" });
    assert.equal(init.kind, "stats-initial");
    if (init.kind !== "stats-initial") return;
    const c = must(commitCreate({ ...s0, statsSeq: 11n }, u, true));
    assert.deepEqual(c.statsAdd, {
      header: { version: 5, sequence: 11n, name: n(":a") },
      payload: { kind: "command", command: { kind: "stats-add", vmmdev: "", pid: 42, network: [{ bridge: "service", tap: "vmmtap3" }] } },
    });
    assert.equal(c.state.statsSeq, 12n);
  });
});

describe("create: MACs on a bridge", () => {
  // Two names whose deterministic MACs (24 bits of MD5) collide, found by search.
  function collidingNames(netif: string): [string, string] {
    const seen = new Map<string, string>();
    for (let i = 0; ; i++) {
      const name = `:u${i}`;
      const mac = Buffer.from(macFor(n(name), netif, undefined)).toString("hex");
      const other = seen.get(mac);
      if (other !== undefined) return [other, name];
      seen.set(mac, name);
    }
  }
  const p = must(insertPolicy(emptyResources(), [], policy({ unikernels: 100n, bridges: ["br0", "br1", "service"] })));
  const net = (bridge: string, mac?: Uint8Array) => cfg({ bridges: [{ netif: "service", bridge, ...(mac !== undefined ? { mac } : {}) }] });
  const prep = (s: VmmdState, name: string, c: UnikernelConfig) => checkCreate(s, n(name), { ...c, image: NET });

  it("a deterministic MAC that collides with a running unikernel's on the same bridge is refused; on another bridge it is fine", () => {
    const [a, b] = collidingNames("service");
    const s = run(initialState(p), a, net("br0"));
    const r = prep(s, b, net("br0"));
    assert.equal(r.ok, false);
    const mac = [...macFor(n(a), "service", undefined)].map((x) => x.toString(16).padStart(2, "0")).join(":");
    assert.equal(!r.ok && r.error, `MAC address ${mac} of service is already used on bridge br0 by ${a} (service); configure another MAC for service`);
    assert.equal(prep(s, b, net("br1")).ok, true);
    assert.equal(prep(s, b, net("br0", Uint8Array.of(2, 0, 0, 0, 0, 1))).ok, true);
    // the re-check before exec sees a unikernel that got in meanwhile
    assert.equal(recheckCreate(s, n(b), net("br0")).ok, false);
  });

  it("configured MACs: a repeat of a running one, or two devices of one unikernel on one bridge, are refused", () => {
    const m = Uint8Array.of(2, 0, 0, 0, 0, 9);
    const s = run(initialState(p), ":x", net("br0", m));
    assert.match(
      ((r) => (!r.ok ? r.error : ""))(prep(s, ":y", net("br0", m))),
      /^MAC address 02:00:00:00:00:09 of service is already used on bridge br0 by :x/,
    );
    const two = cfg({
      bridges: [
        { netif: "a", bridge: "br0", mac: m },
        { netif: "b", bridge: "br0", mac: m },
      ],
    });
    const r = checkCreate(initialState(p), n(":z"), two);
    assert.equal(!r.ok && r.error, "MAC address 02:00:00:00:00:09 of b is also the MAC of a on bridge br0; configure another MAC for one of them");
    // the name's own earlier instance (force-create / restart replace it) does not count
    assert.equal(recheckCreate(s, n(":x"), net("br0", m)).ok, false); // already running
    const gone = handleExit(s, O, n(":x"))!.state;
    assert.equal(prep(gone, ":x", net("br0", m)).ok, true);
  });
});

describe("exit and restart-on-failure (§2.8)", () => {
  it("should_restart", () => {
    const any = { kind: "restart", exitCodes: [] } as const;
    const set = { kind: "restart", exitCodes: [3, 4] } as const;
    for (const code of [1, 60, 61, 62, 63, 64]) assert.equal(shouldRestart(any, exited(code)), false, `exit ${code}`);
    for (const code of [0, 2, 59, 65, 255]) assert.equal(shouldRestart(any, exited(code)), true, `exit ${code}`);
    assert.equal(shouldRestart(any, { kind: "signaled", signal: "SIGSEGV" }), false);
    assert.equal(shouldRestart(any, { kind: "stopped", signal: "SIGSTOP" }), false);
    assert.equal(shouldRestart(set, exited(3)), true);
    assert.equal(shouldRestart(set, exited(5)), false);
    assert.equal(shouldRestart(set, exited(1)), false);
    assert.equal(shouldRestart({ kind: "quit" }, exited(3)), false);
  });

  it("exit without waiter: resources, unregister, dump (not when shutting down)", () => {
    let r = must(insertBlock(emptyResources(), n("storage"), 5));
    const c = cfg({ image: BLK, blockDevices: [{ name: "storage" }], bridges: [{ netif: "service", bridge: "br0" }] });
    const s = run(initialState(r), ":a", c);
    const ex = handleExit(s, O, n(":a"));
    assert.ok(ex);
    assert.deepEqual(ex.cleanup, { image: "/run/alb/:a.img", fifo: "/run/alb/fifo/:a", taps: ["vmmtap0"] });
    assert.equal(ex.wake, null);
    assert.equal(ex.dump, true);
    assert.equal(ex.statsRemove, null);
    assert.equal(ex.state.running.find(n(":a")), undefined);
    assert.equal(findBlock(ex.state.resources, n("storage"))?.active, false);
    const sd = handleExit({ ...s, shuttingDown: true }, O, n(":a"));
    assert.equal(sd?.dump, false);
    assert.equal(handleExit(s, O, n(":zzz")), null);
    r = ex.state.resources;
    void r;
  });

  it("exit with a waiter: woken, name into the restarting set, no dump; Stats_remove", () => {
    const s = { ...run(initialState(emptyResources()), ":a", cfg({ addName: true })), statsSeq: 5n };
    const ex = handleExit(s, O, n(":a"));
    assert.ok(ex);
    assert.deepEqual(ex.wake, { kind: "restart", config: cfg({ addName: true }) });
    assert.equal(ex.dump, false);
    assert.ok(ex.state.restarting.has(":a"));
    assert.equal(ex.state.waiters.has(":a"), false);
    assert.deepEqual(ex.statsRemove, { header: { version: 5, sequence: 5n, name: n(":a") }, payload: { kind: "command", command: { kind: "stats-remove" } } });
    assert.equal(ex.state.statsSeq, 6n);
  });

  it("restart decisions", () => {
    const restartAny = cfg({ failBehaviour: { kind: "restart", exitCodes: [] } });
    const s = run(initialState(emptyResources()), ":a", restartAny);
    const ex = handleExit(s, O, n(":a"))!;
    // restart on 0/2/...
    const d = restartDecision(ex.state, n(":a"), restartAny, exited(2));
    assert.deepEqual(d.action, { kind: "create", config: restartAny, dump: false, reason: "restart" });
    assert.equal(d.state.restarting.has(":a"), false);
    // never on 1, 60..64, signals
    for (const st of [exited(1), exited(60), exited(63), exited(64), { kind: "signaled", signal: "SIGTERM" } as ExitStatus])
      assert.deepEqual(restartDecision(ex.state, n(":a"), restartAny, st).action, { kind: "dump" });
    // not in the restarting set (destroyed in the window) -> no restart
    assert.deepEqual(restartDecision(d.state, n(":a"), restartAny, exited(2)).action, { kind: "dump" });
    // quit + add_name: no restart except the exit-64 --name fallback
    const named = cfg({ addName: true });
    assert.deepEqual(restartDecision(ex.state, n(":a"), named, exited(2)).action, { kind: "dump" });
    assert.deepEqual(restartDecision(ex.state, n(":a"), named, exited(64)).action, {
      kind: "create",
      config: { ...named, addName: false },
      dump: true,
      reason: "add-name-fallback",
    });
    // add_name + restart + 64: the fallback wins (create without --name, dumped)
    const both = cfg({ addName: true, failBehaviour: { kind: "restart", exitCodes: [] } });
    const fb = restartDecision(ex.state, n(":a"), both, exited(64)).action;
    assert.equal(fb.kind, "create");
    if (fb.kind === "create") assert.equal(fb.config.addName, false);
    // exit-code set
    const set = cfg({ failBehaviour: { kind: "restart", exitCodes: [7] } });
    assert.equal(restartDecision(ex.state, n(":a"), set, exited(7)).action.kind, "create");
    assert.equal(restartDecision(ex.state, n(":a"), set, exited(8)).action.kind, "dump");
  });
});

describe("destroy, force-create, restart (§2.9)", () => {
  it("destroy of a running unikernel: SIGTERM + exit waiter replacing the restart waiter", () => {
    const s = run(initialState(emptyResources()), ":a", cfg({ addName: true }), 77);
    const step = cmd(s, ":a", { kind: "unikernel-destroy" });
    assert.equal(step.kind, "replace");
    if (step.kind !== "replace") return;
    assert.equal(step.pid, 77);
    assert.deepEqual(step.then, { kind: "destroy" });
    assert.deepEqual(step.state.waiters.get(":a"), { kind: "exit", ids: [step.waiterId] });
    // the old instance exits: the exit waiter is woken, no restart
    const ex = handleExit(step.state, O, n(":a"))!;
    assert.deepEqual(ex.wake, { kind: "exit", ids: [step.waiterId] });
  });

  it("a second exit waiter for one name joins the first (both woken; upstream replaced the first)", () => {
    const s = run(initialState(emptyResources()), ":a", cfg({ addName: true }), 77);
    const d1 = cmd(s, ":a", { kind: "unikernel-destroy" });
    if (d1.kind !== "replace") throw new Error("expected replace");
    const d2 = cmd(d1.state, ":a", { kind: "unikernel-destroy" });
    if (d2.kind !== "replace") throw new Error("expected replace");
    const sd = beginShutdown(d2.state);
    const ids = [d1.waiterId, d2.waiterId, sd.targets[0]!.waiterId];
    assert.equal(new Set(ids).size, 3);
    const ex = handleExit(sd.state, O, n(":a"))!;
    assert.deepEqual(ex.wake, { kind: "exit", ids });
  });

  it("upstream quirk: destroy, destroy -> removed from restarting, destroy -> not found", () => {
    const s = run(initialState(emptyResources()), ":a");
    const step = cmd(s, ":a", { kind: "unikernel-destroy" });
    if (step.kind !== "replace") throw new Error("expected replace");
    const after = handleExit(step.state, O, n(":a"))!.state;
    const second = replyOf(cmd(after, ":a", { kind: "unikernel-destroy" }));
    assert.equal(second.text, "success: destroyed: removed from restarting");
    assert.equal(second.dump, true);
    const third = replyOf(cmd(second.state, ":a", { kind: "unikernel-destroy" }));
    assert.equal(third.text, "failure: destroy: not found");
    assert.equal(third.dump, false);
  });

  it("destroy of a pending restart waiter", () => {
    const s: VmmdState = { ...initialState(emptyResources()), waiters: new Map([[":a", { kind: "restart", config: cfg() }]]) };
    const r = replyOf(cmd(s, ":a", { kind: "unikernel-destroy" }));
    assert.equal(r.text, "success: destroyed: removed waiter");
    assert.equal(r.dump, true);
    assert.equal(r.state.waiters.size, 0);
  });

  it("restart of a name that is not running: like destroy, but no dump", () => {
    const s = withRestart(initialState(emptyResources()), ":a");
    const r = replyOf(cmd(s, ":a", { kind: "unikernel-restart" }));
    assert.equal(r.text, "success: destroyed: removed from restarting");
    assert.equal(r.dump, false);
    assert.equal(replyOf(cmd(r.state, ":a", { kind: "unikernel-restart" })).text, "failure: destroy: not found");
  });

  it("force-create: checks the new config with the old instance removed", () => {
    const r = withPolicy(emptyResources(), "p", policy({ unikernels: 1n, memory: 100 }));
    const s = run(initialState(r), "p:a", cfg({ memory: 60 }), 9);
    // 80 MB fits once the old 60 MB instance is discounted
    const ok = cmd(s, "p:a", { kind: "unikernel-force-create", config: cfg({ memory: 80 }) });
    assert.equal(ok.kind, "replace");
    if (ok.kind === "replace") {
      assert.equal(ok.pid, 9);
      assert.deepEqual(ok.then, { kind: "create", config: cfg({ memory: 80 }) });
    }
    const bad = replyOf(cmd(s, "p:a", { kind: "unikernel-force-create", config: cfg({ memory: 101 }) }));
    assert.equal(bad.text, "failure: maximum allowed memory (100, used 0) would be exceeded (requesting 101)");
    assert.equal(bad.state, s);
    // not running: a plain create
    assert.equal(cmd(s, "p:b", { kind: "unikernel-force-create", config: cfg() }).kind, "reply"); // policy full
    assert.equal(cmd(initialState(r), "p:b", { kind: "unikernel-force-create", config: cfg() }).kind, "create");
  });

  it("restart with arguments replaces every argument field, keeps typ/image/compressed", () => {
    const cur = cfg({ startup: 3, argv: [Uint8Array.of(0x61)], linuxBootPartition: "x", numcpus: 2, memory: 10 });
    const next = restartConfig(cur, {
      failBehaviour: { kind: "restart", exitCodes: [1] },
      addName: true,
      cpuids: [1],
      memory: 20,
      blockDevices: [],
      bridges: [],
      numcpus: 1,
    });
    assert.equal(next.memory, 20);
    assert.equal(next.numcpus, 1);
    assert.equal(next.startup, undefined);
    assert.equal(next.argv, undefined);
    assert.equal(next.linuxBootPartition, undefined);
    assert.deepEqual(next.cpuids, [1]);
    assert.equal(next.image, cur.image);
    assert.equal(restartConfig(cur, undefined), cur);
  });

  it("restart of a running unikernel; a manifest mismatch in the new arguments fails", () => {
    const s = run(initialState(emptyResources()), ":a", cfg({ image: NET, bridges: [{ netif: "service" }] }), 12);
    const same = cmd(s, ":a", { kind: "unikernel-restart" });
    assert.equal(same.kind, "replace");
    if (same.kind === "replace") assert.equal(same.then.kind === "create" && same.then.config.image, NET);
    const args = { failBehaviour: { kind: "quit" }, addName: false, cpuids: [0], memory: 32, blockDevices: [], bridges: [], numcpus: 1 } as const;
    // new arguments: the shell reads the running image's manifest (its file) first
    const check = cmd(s, ":a", { kind: "unikernel-restart", args });
    if (check.kind !== "restart-check") throw new Error(`expected restart-check, got ${check.kind}`);
    assert.equal(check.image, "/run/alb/:a.img");
    assert.equal(check.state, s);
    const bad = replyOf(restartChecked(check.state, n(":a"), check.config, { ok: true, value: readSolo5Manifest(NET) }));
    assert.equal(bad.text, 'failure: specified bridge(s) does not match with the manifest. Devices present in manifest: net "service"');
    assert.equal(bad.state, s);
    const good = restartChecked(check.state, n(":a"), { ...check.config, bridges: [{ netif: "service" }] }, { ok: true, value: readSolo5Manifest(NET) });
    assert.equal(good.kind, "replace");
    if (good.kind === "replace") assert.equal(good.pid, 12);
  });
});

function withRestart(s: VmmdState, name: string): VmmdState {
  return { ...s, restarting: new Set([...s.restarting, name]) };
}

describe("info and get", () => {
  const s0 = (() => {
    let r = must(insertBlock(emptyResources(), n("foo:data"), 7));
    r = must(insertBlock(r, n("data"), 3));
    let s = initialState(r);
    s = run(s, ":a", cfg({ startup: 5 }));
    s = run(s, "foo:b", cfg({ image: BLK, blockDevices: [{ name: "storage", device: "data", sectorSize: 4096 }] }));
    s = run(s, "foo:c", cfg({ image: NET, bridges: [{ netif: "service", bridge: "br0" }] }));
    return s;
  })();

  it("info of a label: the requested name or nothing", () => {
    const o = replyOf(cmd(s0, "foo:b", { kind: "unikernel-info" }));
    assert.equal(o.text, "success unikernel-info");
    const step = cmd(s0, "foo:b", { kind: "unikernel-info" }) as Extract<Step, { kind: "reply" }>;
    const sx = (step.outcome as { success: Success }).success as Extract<Success, { kind: "unikernel-info" }>;
    assert.equal(sx.unikernels.length, 1);
    assert.deepEqual(sx.unikernels[0]!.name, n("foo:b"));
    // block size looked up at the unikernel's path
    assert.deepEqual(sx.unikernels[0]!.info.blockDevices, [{ unikernelDevice: "storage", hostDevice: "data", sectorSize: 4096, blockSize: 7 }]);
    const none = cmd(s0, "foo:zz", { kind: "unikernel-info" }) as Extract<Step, { kind: "reply" }>;
    assert.deepEqual((none.outcome as { success: Success }).success, { kind: "unikernel-info", unikernels: [] });
  });

  it("info of a path: relative names, children descending, absolute block lookup", () => {
    const step = cmd(s0, "foo:", { kind: "unikernel-info" }) as Extract<Step, { kind: "reply" }>;
    const sx = (step.outcome as { success: Success }).success as Extract<Success, { kind: "unikernel-info" }>;
    assert.deepEqual(
      sx.unikernels.map((e) => e.name),
      [n(":c"), n(":b")],
    );
    assert.equal(sx.unikernels[1]!.info.blockDevices[0]!.blockSize, 7);
    assert.deepEqual(sx.unikernels[0]!.info.bridges, [{ unikernelDevice: "service", hostDevice: "br0", mac: macFor(n("foo:c"), "service", undefined) }]);
    const all = cmd(s0, ":", { kind: "unikernel-info" }) as Extract<Step, { kind: "reply" }>;
    const ax = (all.outcome as { success: Success }).success as Extract<Success, { kind: "unikernel-info" }>;
    assert.equal(ax.unikernels.length, 3);
    assert.equal(ax.unikernels.find((e) => e.name.label === "a")?.info.startup, 5);
  });

  it("old info forms need one CPU id", () => {
    const s = run(initialState(emptyResources()), ":multi", cfg({ cpuids: [0, 1] }));
    assert.match(replyOf(cmd(s, ":", { kind: "unikernel-info-v5" })).text, /^failure: /);
    assert.equal(replyOf(cmd(s0, ":", { kind: "unikernel-info-v4" })).text, "success old-unikernel-info4");
    assert.equal(replyOf(cmd(s0, ":", { kind: "unikernel-info-v5" })).text, "success old-unikernel-info5");
  });

  it("get: not found, and the four compression cases of wire.md §12 (the shell converts)", () => {
    assert.equal(replyOf(cmd(s0, ":nope", { kind: "unikernel-get", level: 0 })).text, "failure: get: no unikernel found");
    const img = (s: VmmdState, level: number) => {
      const st = cmd(s, ":a", { kind: "unikernel-get", level }) as Extract<Step, { kind: "reply" }>;
      return (st.outcome as { success: Success }).success as Extract<Success, { kind: "unikernel-image" }>;
    };
    const plain = img(s0, 0);
    assert.equal(plain.compressed, false);
    assert.deepEqual(plain.image, HELLO);
    assert.deepEqual(cmd(s0, ":a", { kind: "unikernel-get", level: 6 }), { kind: "get-convert", state: s0, image: HELLO, convert: "deflate", level: 6 });
    assert.deepEqual(cmd(s0, ":a", { kind: "unikernel-get", level: 12 }), { kind: "get-convert", state: s0, image: HELLO, convert: "deflate", level: 9 });
    const stored = new Uint8Array(deflateSync(HELLO));
    const sc = run(initialState(emptyResources()), ":a", cfg({ compressed: true, image: stored }));
    const asStored = img(sc, 9);
    assert.equal(asStored.compressed, true);
    assert.equal(asStored.image, stored);
    assert.deepEqual(cmd(sc, ":a", { kind: "unikernel-get", level: 0 }), { kind: "get-convert", state: sc, image: stored, convert: "inflate", level: 0 });
  });
});

describe("policies", () => {
  it("add, no modification (keeps the connection), replace, remove, unknown policy, info", () => {
    const s0 = initialState(emptyResources());
    const a = replyOf(cmd(s0, "foo:", { kind: "policy-add", policy: policy() }));
    assert.deepEqual([a.text, a.dump, a.keepOpen], ["success: added policy", true, true]);
    const b = replyOf(cmd(a.state, "foo:", { kind: "policy-add", policy: policy() }));
    assert.deepEqual([b.text, b.dump, b.keepOpen], ["success: no modification of policy", false, true]);
    assert.equal(b.state, a.state);
    // the label is ignored: foo:x means path foo
    const c = replyOf(cmd(a.state, "foo:x", { kind: "policy-add", policy: policy({ memory: 2048 }) }));
    assert.equal(c.text, "success: added policy");
    const sub = replyOf(cmd(c.state, "foo:bar:", { kind: "policy-add", policy: policy({ memory: 4096 }) }));
    assert.equal(sub.text, "failure: policy above allows 2048 MB memory, which is fewer than 4096 MB");
    const info = cmd(c.state, "foo:", { kind: "policy-info" }) as Extract<Step, { kind: "reply" }>;
    assert.deepEqual((info.outcome as { success: Success }).success, { kind: "policies", policies: [{ name: n(":"), policy: policy({ memory: 2048 }) }] });
    const rm = replyOf(cmd(c.state, "foo:", { kind: "policy-remove" }));
    assert.deepEqual([rm.text, rm.dump], ["success: removed policy", true]);
    assert.equal(replyOf(cmd(rm.state, "foo:", { kind: "policy-remove" })).text, "failure: unknown policy");
  });

  it("a policy smaller than the current usage is refused", () => {
    const s = run(initialState(emptyResources()), "foo:a", cfg({ memory: 500 }));
    const r = replyOf(cmd(s, "foo:", { kind: "policy-add", policy: policy({ memory: 100 }) }));
    assert.equal(r.text, "failure: unikernel would exceed running memory limit set by policy to 100 MB, used 500 MB");
  });
});

describe("block devices", () => {
  const base = () => initialState(withPolicy(emptyResources(), "foo", policy({ block: 10 })));

  it("add: exists, quota, no block allowed, size <= 0, success via the shell", () => {
    const s = must(blockAdded(base(), n("foo:a"), 6));
    assert.equal(replyOf(cmd(s, "foo:a", { kind: "block-add", size: 1 })).text, "failure: block device with same name already exists");
    assert.equal(
      replyOf(cmd(s, "foo:b", { kind: "block-add", size: 5 })).text,
      "failure: block device policy limit of 10 MB (used 6 MB) would be exceeded by the request (5 MB)",
    );
    const { block: _, ...unblocked } = policy();
    const noblock = initialState(withPolicy(emptyResources(), "bar", unblocked));
    assert.equal(replyOf(cmd(noblock, "bar:x", { kind: "block-add", size: 1 })).text, "failure: no block devices are allowed by policy");
    assert.equal(replyOf(cmd(s, "foo:z", { kind: "block-add", size: 0 })).text, "failure: overflow while computing bytes");
    assert.equal(replyOf(cmd(s, "foo:z", { kind: "block-add", size: -3 })).text, "failure: overflow while computing bytes");
    const ok = cmd(s, "foo:b", { kind: "block-add", size: 4 });
    assert.deepEqual(ok.kind === "block-add" && [ok.size, ok.data], [4, undefined]);
    assert.equal(replyOf(cmd(s, "foo:", { kind: "block-add", size: 1 })).text, "failure: block device name must not be a path");
  });

  it("old add with inline data: data exceeds block size, compressed data", () => {
    const s = base();
    const big = new Uint8Array((1 << 20) + 1);
    assert.equal(replyOf(cmd(s, "foo:a", { kind: "block-add-old", size: 1, compressed: false, data: big })).text, "failure: data exceeds block size");
    // compressed data is inflated by the shell (as a stream, bounded by the size)
    const z = new Uint8Array(deflateSync(Uint8Array.of(1, 2)));
    const step = cmd(s, "foo:a", { kind: "block-add-old", size: 1, compressed: true, data: z });
    assert.equal(step.kind, "block-add");
    if (step.kind === "block-add") assert.deepEqual(step.data, { compressed: true, bytes: z });
    assert.deepEqual(inlineBlockData(false, Uint8Array.of(1), 1), { ok: true, value: { compressed: false, bytes: Uint8Array.of(1) } });
    assert.deepEqual(inlineBlockData(false, Uint8Array.of(1), 0), { ok: false, error: "overflow while computing bytes" });
  });

  it("remove / set / dump: not found, in use, otherwise handed to the shell", () => {
    let s = must(blockAdded(base(), n("foo:storage"), 2));
    for (const [c, nf] of [
      [{ kind: "block-remove" }, "remove block: not found"],
      [{ kind: "block-set", compressed: false }, "set block: not found"],
      [{ kind: "block-set-old", compressed: false, data: new Uint8Array() }, "set block: not found"],
      [{ kind: "block-dump", level: 0 }, "dump block: not found"],
      [{ kind: "block-dump-old", level: 0 }, "dump block: not found"],
    ] as [Command, string][])
      assert.equal(replyOf(cmd(s, "foo:nope", c)).text, `failure: ${nf}`);
    assert.equal(cmd(s, "foo:storage", { kind: "block-remove" }).kind, "block-remove");
    const set = cmd(s, "foo:storage", { kind: "block-set", compressed: true });
    assert.deepEqual(set.kind === "block-set" && [set.size, set.compressed], [2, true]);
    const dump = cmd(s, "foo:storage", { kind: "block-dump", level: 3 });
    assert.deepEqual(dump.kind === "block-dump" && [dump.level, dump.old], [3, false]);
    s = run(s, "foo:u", cfg({ image: BLK, blockDevices: [{ name: "storage" }] }));
    for (const [c, iu] of [
      [{ kind: "block-remove" }, "remove block: is in use"],
      [{ kind: "block-set", compressed: false }, "set block: is in use"],
      [{ kind: "block-dump", level: 0 }, "dump block: is in use"],
    ] as [Command, string][])
      assert.equal(replyOf(cmd(s, "foo:storage", c)).text, `failure: ${iu}`);
    // the unikernel exits: the device becomes inactive again and can be removed
    const after = handleExit(s, O, n("foo:u"))!.state;
    assert.equal(cmd(after, "foo:storage", { kind: "block-remove" }).kind, "block-remove");
    assert.equal(must(blockRemoved(after, n("foo:storage"))).resources.blockDevices.size, 0);
  });

  it("info: label, path (relative, descending)", () => {
    let s = must(blockAdded(base(), n("foo:a"), 1));
    s = must(blockAdded(s, n("foo:b"), 2));
    const step = cmd(s, "foo:", { kind: "block-info" }) as Extract<Step, { kind: "reply" }>;
    assert.deepEqual((step.outcome as { success: Success }).success, {
      kind: "block-devices",
      devices: [
        { name: n(":b"), size: 2, active: false },
        { name: n(":a"), size: 1, active: false },
      ],
    });
    const one = cmd(s, "foo:a", { kind: "block-info" }) as Extract<Step, { kind: "reply" }>;
    assert.deepEqual((one.outcome as { success: Success }).success, { kind: "block-devices", devices: [{ name: n("foo:a"), size: 1, active: false }] });
  });
});

describe("other commands", () => {
  it("console and stats commands other than Stats_initial are unknown here", () => {
    const s = initialState(emptyResources());
    for (const c of [
      { kind: "console-add", budget: 1n },
      { kind: "console-subscribe", sinceCount: { kind: "count", count: 1 } },
      { kind: "console-list-inactive" },
      { kind: "stats-add", vmmdev: "", pid: 1, network: [] },
      { kind: "stats-remove" },
      { kind: "stats-subscribe" },
    ] as Command[])
      assert.equal(replyOf(cmd(s, ":x", c)).text, "failure: unknown command");
  });

  it("Stats_initial: counter = sequence + 1, a Stats_add per running unikernel", () => {
    let s = run(initialState(emptyResources()), ":a", cfg(), 3);
    s = run(s, ":b", cfg(), 4);
    const st = handleCommand(s, O, hdr(":", 41n), { kind: "stats-initial" });
    assert.equal(st.kind, "stats-initial");
    if (st.kind !== "stats-initial") return;
    assert.deepEqual(
      st.adds.map((w) => [w.header.sequence, w.header.name.label]),
      [
        [42n, "a"],
        [43n, "b"],
      ],
    );
    assert.equal(st.state.statsSeq, 44n);
    assert.equal(statsDisconnected(st.state).statsSeq, null);
  });

  it("replies echo the request header", () => {
    const h = hdr("foo:bar", 17n);
    const w = replyWire(h, { kind: "failure", message: "x" });
    assert.equal(w.header, h);
    assert.deepEqual(w.payload, { kind: "failure", message: new TextEncoder().encode("x") });
  });
});

describe("state file and start-up", () => {
  it("the dump holds the running unikernels and every policy (root first); round trip", () => {
    let r = withPolicy(emptyResources(), "", policy({ unikernels: (1n << 62n) - 1n, memory: 8000 }));
    r = withPolicy(r, "foo", policy());
    let s = run(initialState(r), "foo:b");
    s = run(s, ":a", cfg({ startup: 1, argv: [new TextEncoder().encode("-l *:debug")] }));
    const st = stateToDump(s);
    assert.deepEqual(
      st.unikernels.map((u) => u.name),
      [n(":a"), n("foo:b")],
    );
    assert.deepEqual(
      st.policies.map((p) => p.name),
      [n(":"), n("foo:")],
    );
    const back = decodeState(encodeState(st));
    assert.equal(back.version, 6);
    assert.deepEqual(
      back.state.unikernels.map((u) => u.config.memory),
      [32, 32],
    );
  });

  it("restore order: startup ascending (absent = 50), stable", () => {
    const u = (name: string, startup?: number) => ({ name: n(name), config: cfg(startup === undefined ? {} : { startup }) });
    const order = restoreOrder([u(":a"), u(":b", 60), u(":c", 1), u(":d"), u(":e", 50), u(":f", 0)]);
    assert.deepEqual(
      order.map((x) => x.name.label),
      ["f", "c", "a", "d", "e", "b"],
    );
  });

  it("restore policies: discovered root replaces the stored one, pre-order insertion, errors", () => {
    const root = policy({ unikernels: (1n << 62n) - 1n, cpuids: [0, 1], memory: 4096, block: 1000, bridges: ["br0"] });
    const stored: State["policies"] = [
      { name: n("foo:bar:"), policy: policy({ unikernels: 1n, memory: 100, block: 10 }) },
      { name: n(":"), policy: policy({ memory: 1 }) },
      { name: n("foo:"), policy: policy({ memory: 512, block: 50 }) },
    ];
    const r = must(restorePolicies(emptyResources(), root, stored));
    assert.equal(r.warnings.length, 1);
    assert.deepEqual(
      r.resources.policies.all().map(([name]) => name),
      [n(":"), n("foo:"), n("foo:bar:")],
    );
    assert.equal(r.resources.policies.find(n(":"))?.memory, 4096);
    const bad: State["policies"] = [
      { name: n("foo:"), policy: policy({ memory: 10 }) },
      { name: n("foo:bar:"), policy: policy({ memory: 100 }) },
    ];
    const e = restorePolicies(emptyResources(), root, bad);
    assert.equal(e.ok, false);
    if (!e.ok)
      assert.equal(
        e.error,
        "policy restore error: couldn't insert policy policy: 2 unikernels 0,1 CPUids 100 MB memory 100 MB block, bridges: br0, service for foo:bar:: policy above allows 10 MB memory, which is fewer than 100 MB",
      );
  });

  it("shutdown: exit waiters for all, flag set; exits then do not dump", () => {
    let s = run(initialState(emptyResources()), ":a", cfg({ failBehaviour: { kind: "restart", exitCodes: [] } }), 1);
    s = run(s, ":b", cfg(), 2);
    const sd = beginShutdown(s);
    assert.equal(sd.state.shuttingDown, true);
    assert.deepEqual(
      sd.targets.map((t) => t.pid),
      [1, 2],
    );
    for (const t of sd.targets) assert.deepEqual(sd.state.waiters.get(`:${t.name.label}`), { kind: "exit", ids: [t.waiterId] });
    const ex = handleExit(sd.state, O, n(":b"))!;
    assert.equal(ex.dump, false);
    assert.equal(ex.wake?.kind, "exit");
  });

  it("paths of image and FIFO", () => {
    assert.equal(imagePath({ tmpdir: "/run/albatross/" }, n("foo:hello")), "/run/albatross/foo:hello.img");
    assert.equal(fifoPath({ tmpdir: "/run/albatross" }, n(":hello")), "/run/albatross/fifo/:hello");
  });
});

describe("create as a typed sequence of phases (what the shell, create.ts, drives)", () => {
  it("each phase takes the one before's value; together: the checks, the command line and the registration", () => {
    const r0 = withPolicy(must(insertBlock(emptyResources(), n(":data"), 10)), "", policy());
    const s0 = initialState(r0);
    const c = unikernelConfig(NET, {
      bridges: [{ netif: "service", bridge: "br0" }],
      blockDevices: [{ name: "storage", device: "data", sectorSize: 4096 }],
      addName: true,
      argv: [new TextEncoder().encode("-l *:debug")],
    });
    const begun = must(beginCreate(s0, O, n(":web"), c));
    assert.equal(begun.image, imagePath(O, n(":web")));
    assert.equal(begun.fifo, fifoPath(O, n(":web")));
    const digest = new Uint8Array(32).fill(7);
    const imaged = must(imageWritten(begun, O, digest, { ok: true, value: readSolo5Abi(NET) }));
    assert.deepEqual(imaged.target.candidates, ["/var/lib/alb/solo5-hvt.2", "solo5-hvt.2", "/var/lib/alb/solo5-hvt", "solo5-hvt"]);
    // the manifest lists no block device "storage": refused, as checkImageManifest does
    assert.deepEqual(
      tenderFound(imaged, "solo5-hvt", { ok: true, value: readSolo5Manifest(NET) }),
      checkImageManifest({ ok: true, value: readSolo5Manifest(NET) }, c),
    );
    const both = [...readSolo5Manifest(NET), { name: "storage", type: "block" as const }];
    const tendered = must(tenderFound(imaged, "solo5-hvt", { ok: true, value: both }));
    assert.deepEqual(tendered.bridges, ["br0"]);
    const networked = tapsMade(tendered, ["vmmtap7"]);
    assert.deepEqual(networked.taps, [{ netif: "service", bridge: "br0", tap: "vmmtap7", mac: macFor(n(":web"), "service", undefined) }]);
    const ca = consoleAdd(s0, networked);
    assert.deepEqual(ca.pending.request, consoleAddRequest(s0, n(":web")).request);
    assert.deepEqual(consoleAdded(ca.pending, null), { ok: false, error: "console failed" });
    const consoled = must(consoleAdded(ca.pending, { header: ca.pending.request.header, payload: { kind: "reply", reply: { kind: "empty" } } }));
    const ready = must(execPlan(ca.state, O, consoled));
    assert.deepEqual(ready.argv, [
      "taskset",
      "-c",
      "0",
      "solo5-hvt",
      "--mem=32",
      "--net:service=vmmtap7",
      `--net-mac:service=${formatMac(macFor(n(":web"), "service", undefined))}`,
      "--block:storage=/var/lib/alb/block/:data",
      "--block-sector-size:storage=4096",
      "--",
      "/run/alb/:web.img",
      "--name=web",
      "-l *:debug",
    ]);
    const done = started(ca.state, ready, 42, new Date(0), true);
    const u = done.unikernel;
    assert.deepEqual([u.pid, u.digest, u.taps], [42, digest, networked.taps]);
    assert.deepEqual(done, { ...commitCreate(ca.state, u, true), unikernel: u });
    // the re-check sees what changed meanwhile
    assert.deepEqual(execPlan(run(ca.state, ":web", c), O, consoled), { ok: false, error: "Unikernel with same name is already running" });
  });
});
