// `dromedary up`: which daemons run for one host, with which arguments, in which order, and
// what each one is waited for. Pure: the supervisor (supervisor.ts) runs the plan.
import type { LogFormat, Verbosity } from "../core/log.js";
import { socketPath } from "../transport/routes.js";

export interface UpOptions {
  readonly tmpdir: string;
  readonly dbdir: string;
  /** the endpoint runs when all three are given */
  readonly endpoint?: { readonly cacert: string; readonly cert: string; readonly key: string; readonly ip: string; readonly port: number };
  readonly stats: boolean;
  readonly metricsListen?: string;
  /** stats daemon: seconds between samples (its default when absent) */
  readonly statsInterval?: number;
  /** what the merged log shows */
  readonly verbosity: Verbosity;
  readonly format: LogFormat;
}

/** How a daemon is known to be ready for the next one. */
type Readiness =
  /** its Unix socket accepts a connection */
  | { readonly kind: "socket"; readonly path: string }
  /** it logged a line starting with this (the endpoint: TCP, where a probe would be a failed handshake in its log) */
  | { readonly kind: "logged"; readonly prefix: string };

export interface ChildPlan {
  /** the name in the log: the daemon's own */
  readonly label: "console-daemon" | "hostd" | "stats-daemon" | "endpoint";
  /** `dromedary` arguments */
  readonly args: readonly string[];
  readonly ready: Readiness;
  /** sockets it creates (removed by up if left behind after it ended) */
  readonly sockets: readonly string[];
  /**
   * runs as root (hostd: taps, bridges, tenders); the others run as up's --user when given
   * (albatross's privilege split, as the systemd units do it)
   */
  readonly privileged: boolean;
}

const RANK: Record<Verbosity, number> = { quiet: 0, error: 1, warning: 2, info: 3, debug: 4 };

/**
 * The daemons log at least their info lines (up needs them: "listening on ..."); up shows
 * what the chosen verbosity asks for.
 */
function childVerbosity(v: Verbosity): Verbosity {
  return RANK[v] >= RANK.info ? v : "info";
}

/** Start order; stopped in reverse. */
export function plan(o: UpOptions): ChildPlan[] {
  const logArgs = ["--verbosity", childVerbosity(o.verbosity), "--log-format", o.format];
  const out: ChildPlan[] = [
    {
      label: "console-daemon",
      args: ["console-daemon", "--tmpdir", o.tmpdir, ...logArgs],
      ready: { kind: "socket", path: socketPath(o.tmpdir, "console") },
      sockets: [socketPath(o.tmpdir, "console")],
      privileged: false,
    },
    {
      label: "hostd",
      // the console daemon is up already: hostd need not wait for it
      args: ["hostd", "--tmpdir", o.tmpdir, "--dbdir", o.dbdir, "--console-timeout", "5", ...logArgs],
      ready: { kind: "socket", path: socketPath(o.tmpdir, "vmmd") },
      sockets: [socketPath(o.tmpdir, "vmmd")],
      privileged: true,
    },
  ];
  if (o.stats) {
    out.push({
      label: "stats-daemon",
      args: [
        "stats-daemon",
        "--tmpdir",
        o.tmpdir,
        ...(o.statsInterval !== undefined ? ["--interval", String(o.statsInterval)] : []),
        ...(o.metricsListen !== undefined ? ["--metrics-listen", o.metricsListen] : []),
        ...logArgs,
      ],
      ready: { kind: "socket", path: socketPath(o.tmpdir, "stat") },
      sockets: [socketPath(o.tmpdir, "stat")],
      privileged: false,
    });
  }
  if (o.endpoint !== undefined) {
    const e = o.endpoint;
    out.push({
      label: "endpoint",
      args: ["endpoint", e.cacert, e.cert, e.key, "--ip", e.ip, "--port", String(e.port), "--tmpdir", o.tmpdir, ...logArgs],
      ready: { kind: "logged", prefix: "listening on " },
      sockets: [],
      privileged: false,
    });
  }
  return out;
}

/** How a child ended, in words. */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal !== null) return `was killed by ${signal}`;
  return `exited with status ${code ?? "?"}`;
}
