// `dromedary up`: run the plan (plan.ts). Each daemon is started once the one before it is
// ready (its socket accepts a connection), in its own process group (so Ctrl-C on a terminal
// reaches up alone, which stops the daemons in reverse order, each one waited for). Their log
// lines, already in the one style of src/core/log.ts and labelled with the daemon's name, are
// merged into up's stderr (or syslog); anything else they print is wrapped into that style.
// A daemon that ends on its own is reported, and the others are stopped.
import { spawn, type ChildProcess } from "node:child_process";
import { lstatSync, unlinkSync } from "node:fs";
import { createConnection } from "node:net";
import { createLogger, parseLine, shows, type LogFormat, type Logger, type Verbosity } from "../core/log.js";
import { describeExit, type ChildPlan } from "./plan.js";

export interface SupervisorOptions {
  readonly children: readonly ChildPlan[];
  /**
   * the user the unprivileged daemons run as, with its group; hostd keeps uid 0 and takes that
   * group, so the sockets and FIFOs it makes are the group's (absent: every daemon as up)
   */
  readonly user?: { readonly uid: number; readonly gid: number };
  /**
   * run once no daemons of this --tmpdir are found running, before the first is started (up
   * --user: the runtime directories made the user's group's); returns what it created; a
   * throw is logged as an error and nothing is started
   */
  readonly prepare?: () => readonly string[];
  /** the `dromedary` entry the daemons are started with (node <main> <args>) */
  readonly main: string;
  readonly verbosity: Verbosity;
  readonly format: LogFormat;
  readonly syslog: boolean;
  /** how long a daemon may take to be ready */
  readonly startTimeoutMs: number;
  /** how long a daemon may take to stop after SIGTERM before its process group is killed */
  readonly stopTimeoutMs: number;
  /** where log lines go (default stderr) */
  readonly write?: (line: string) => void;
}

/** The longest line relayed from a daemon; longer ones are cut (a daemon's output is not trusted to be small). */
const MAX_LINE = 64 * 1024;

interface Running {
  readonly plan: ChildPlan;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resolved when the child logs the readiness line ("logged" readiness) */
  readonly logged: Promise<void>;
  stopping: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Does something accept connections on this Unix socket? */
function accepts(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    const t = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => {
      s.end();
      done(true);
    });
    s.once("error", () => done(false));
  });
}

/** Split a stream into lines of at most MAX_LINE characters. */
function onLines(stream: NodeJS.ReadableStream, f: (line: string) => void): void {
  let rest = "";
  let cut = false;
  stream.setEncoding?.("utf8");
  stream.on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const p of parts) {
      if (!cut) f(p.length > MAX_LINE ? p.slice(0, MAX_LINE) : p);
      cut = false;
    }
    if (rest.length > MAX_LINE) {
      if (!cut) f(`${rest.slice(0, MAX_LINE)} [line cut at ${MAX_LINE} characters]`);
      cut = true;
      rest = "";
    }
  });
  stream.on("end", () => {
    if (rest !== "" && !cut) f(rest);
  });
}

export class Supervisor {
  private readonly o: SupervisorOptions;
  private readonly log: Logger;
  private readonly loggers = new Map<string, Logger>();
  private readonly running: Running[] = [];
  private stopRequested: ((why: string) => void) | null = null;
  private readonly stopSignal: Promise<string>;
  private stopReason: string | null = null;
  private killing = false;

  constructor(o: SupervisorOptions) {
    this.o = o;
    this.log = this.loggerFor("up");
    let req!: (why: string) => void;
    this.stopSignal = new Promise((r) => (req = r));
    this.stopRequested = (why) => {
      if (this.stopReason === null) {
        this.stopReason = why;
        req(why);
      }
    };
  }

  private loggerFor(daemon: string): Logger {
    let l = this.loggers.get(daemon);
    if (l === undefined) {
      l = createLogger({
        daemon,
        verbosity: this.o.verbosity,
        format: this.o.format,
        syslog: this.o.syslog,
        ...(this.o.write !== undefined ? { write: this.o.write } : {}),
      });
      this.loggers.set(daemon, l);
    }
    return l;
  }

  /** A line a daemon printed: ours (relayed as it is, if shown) or anything else (wrapped). */
  private relay(label: string, line: string, fromStderr: boolean): void {
    const p = parseLine(line);
    if (p === null) {
      if (line.trim() !== "") this.loggerFor(label).log(fromStderr ? "warn" : "info", line);
      return;
    }
    if (!shows(this.o.verbosity, p.level)) return;
    if (this.o.syslog) this.loggerFor(p.daemon).log(p.level, p.msg);
    else (this.o.write ?? ((l: string) => void process.stderr.write(`${l}\n`)))(line);
  }

  /** A message of up's own (info). */
  note(msg: string): void {
    this.log.log("info", msg);
  }

  /** A warning of up's own. */
  warn(msg: string): void {
    this.log.log("warn", msg);
  }

  /** SIGINT, SIGTERM, SIGHUP: stop (again: kill what is left). */
  request(why: string): void {
    if (this.stopReason !== null) {
      if (!this.killing) {
        this.killing = true;
        this.log.log("warn", `${why} again: killing what is left`);
        for (const r of this.running) this.killGroup(r);
      }
      return;
    }
    this.stopRequested?.(why);
  }

  private killGroup(r: Running): void {
    if (r.child.exitCode !== null || r.child.signalCode !== null || r.child.pid === undefined) return;
    try {
      process.kill(-r.child.pid, "SIGKILL");
    } catch {
      r.child.kill("SIGKILL");
    }
  }

  /** Kill every daemon still running (up itself is going away). */
  killAll(): void {
    for (const r of this.running) this.killGroup(r);
  }

  private start(plan: ChildPlan): Running {
    const u = this.o.user;
    const ids = u === undefined ? {} : plan.privileged ? { gid: u.gid } : { uid: u.uid, gid: u.gid };
    const child = spawn(process.execPath, [...process.execArgv, this.o.main, ...plan.args], { detached: true, stdio: ["ignore", "pipe", "pipe"], ...ids });
    let loggedResolve!: () => void;
    const logged = new Promise<void>((r) => (loggedResolve = r));
    const prefix = plan.ready.kind === "logged" ? plan.ready.prefix : null;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
      child.once("error", (e) => {
        this.log.log("error", `${plan.label}: ${e.message}`);
        res({ code: null, signal: null });
      });
      child.once("close", (code, signal) => res({ code, signal }));
    });
    onLines(child.stderr!, (line) => {
      if (prefix !== null) {
        const p = parseLine(line);
        if (p !== null && p.daemon === plan.label && p.msg.startsWith(prefix)) loggedResolve();
      }
      this.relay(plan.label, line, true);
    });
    onLines(child.stdout!, (line) => this.relay(plan.label, line, false));
    const r: Running = { plan, child, exited, logged, stopping: false };
    this.running.push(r);
    void exited.then((e) => {
      if (!r.stopping) {
        this.log.log("error", `${plan.label} (pid ${child.pid ?? "?"}) ${describeExit(e.code, e.signal)}: stopping the others`);
        this.stopRequested?.(`${plan.label} ended`);
      }
    });
    this.log.log("info", `started ${plan.label} (pid ${child.pid ?? "?"}): dromedary ${plan.args.join(" ")}`);
    return r;
  }

  /** "ready" once the child is ready; else why not. */
  private async ready(r: Running): Promise<"ready" | string> {
    const deadline = Date.now() + this.o.startTimeoutMs;
    if (r.plan.ready.kind === "logged") {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<string>(
        (res) => (timer = setTimeout(() => res(`${r.plan.label} not ready within ${this.o.startTimeoutMs / 1000} s`), this.o.startTimeoutMs)),
      );
      const state = await Promise.race([r.logged.then(() => "ready" as const), this.stopSignal, timeout]);
      clearTimeout(timer);
      return state;
    }
    const path = r.plan.ready.path;
    for (;;) {
      if (this.stopReason !== null) return this.stopReason;
      if (await accepts(path)) return "ready";
      if (Date.now() > deadline) return `${r.plan.label} not ready within ${this.o.startTimeoutMs / 1000} s (nothing accepts connections on ${path})`;
      await sleep(50);
    }
  }

  /** Run until a signal or a daemon's end; returns up's exit status. */
  async run(): Promise<number> {
    // Another host's daemons on these sockets: starting ours would take their sockets over.
    for (const c of this.o.children) {
      for (const s of c.sockets) {
        if (await accepts(s)) {
          this.log.log("error", `${s} accepts connections: the daemons of this --tmpdir run already (stop them first, or choose another --tmpdir)`);
          return 1;
        }
      }
    }
    if (this.o.prepare !== undefined) {
      try {
        const made = this.o.prepare();
        if (made.length > 0) this.note(`created ${made.join(" and ")}`);
      } catch (e) {
        this.log.log("error", (e as Error).message);
        return 1;
      }
    }
    let failed = false;
    for (const plan of this.o.children) {
      if (this.stopReason !== null) break;
      const r = this.start(plan);
      const state = await this.ready(r);
      if (state !== "ready") {
        if (this.stopReason === null || this.stopReason === `${plan.label} ended`) failed = true;
        if (this.stopReason === null) {
          this.log.log("error", `${state}: stopping the others`);
          this.stopRequested?.(state);
        }
        break;
      }
      this.log.log("info", `${plan.label} is ready`);
    }
    if (this.stopReason === null) {
      this.log.log("info", `running: ${this.running.map((r) => `${r.plan.label} (pid ${r.child.pid})`).join(", ")}; Ctrl-C or SIGTERM stops them`);
    }
    const why = await this.stopSignal;
    if (why.endsWith(" ended")) failed = true;
    this.log.log("info", `stopping (${why})`);
    for (const r of [...this.running].reverse()) {
      r.stopping = true;
      if (r.child.exitCode !== null || r.child.signalCode !== null) {
        await r.exited;
        continue;
      }
      r.child.kill("SIGTERM");
      const timer = setTimeout(() => {
        this.log.log("warn", `${r.plan.label} did not stop within ${this.o.stopTimeoutMs / 1000} s: killing its process group`);
        this.killGroup(r);
      }, this.o.stopTimeoutMs);
      const e = await r.exited;
      clearTimeout(timer);
      const clean = e.code === 0 || (e.code === null && e.signal === "SIGTERM");
      if (!clean) failed = true;
      this.log.log(clean ? "info" : "warn", `stopped ${r.plan.label} (${describeExit(e.code, e.signal)})`);
    }
    // a daemon that was killed leaves its socket: nothing listens there any more
    for (const r of this.running) {
      for (const s of r.plan.sockets) {
        try {
          if (lstatSync(s).isSocket() && !(await accepts(s))) {
            unlinkSync(s);
            this.log.log("info", `removed ${s} (left by ${r.plan.label})`);
          }
        } catch {
          // not there: as it should be
        }
      }
    }
    this.log.log("info", failed ? "all stopped, not cleanly (see above)" : "all stopped");
    return failed ? 1 : 0;
  }
}
