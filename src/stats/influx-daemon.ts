// `dromedary influx` (albatross-influx, daemon.md §5): subscribes to the stats daemon and
// forwards every `Data statistics` message as Influx line protocol over TCP (Telegraf's
// socket_listener, InfluxDB's line protocol input). Both connections are re-established
// every 5 s while they fail; a message that arrives while the TCP side is down, or that the
// TCP side does not take, is lost (the process keeps going).

import net from "node:net";
import { join } from "node:path";
import { decodeWire, encodeFrame, encodeWire, END, FrameDecoder, WIRE_VERSION } from "../commands/index.js";
import type { Name } from "../core/name.js";
import { connectUnix } from "../transport/frames.js";
import { influxLines } from "./influx.js";
import { DEFAULT_INFLUX_PORT, MAX_INFLUX_QUEUED_BYTES } from "./limits.js";

/** Upstream retries both connections every 5 s. */
const RETRY_MS = 5000;
/** Frames from the stats daemon (a message for 64 interfaces is < 16 KiB). */
const MAX_FRAME = 1024 * 1024;

export interface InfluxTarget {
  readonly host: string;
  readonly port: number;
}

/**
 * `--influx IP[:PORT]`: an IPv4 literal, or IPv6 (in brackets when a port is given); no
 * host names (as upstream). null if it is none of these.
 */
export function parseInfluxTarget(s: string): InfluxTarget | null {
  let host = s;
  let port = DEFAULT_INFLUX_PORT;
  const v6 = /^\[([^\]]+)\](?::([0-9]{1,5}))?$/.exec(s);
  if (v6 !== null) {
    host = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
    if (net.isIPv6(host) && port <= 65535) return { host, port };
    return null;
  }
  if (net.isIPv6(s)) return { host: s, port };
  const v4 = /^([0-9.]+)(?::([0-9]{1,5}))?$/.exec(s);
  if (v4 === null || !net.isIPv4(v4[1]!)) return null;
  host = v4[1]!;
  if (v4[2] !== undefined) port = Number(v4[2]);
  return port <= 65535 ? { host, port } : null;
}

export interface InfluxOptions {
  readonly tmpdir: string;
  /** default <tmpdir>/util/stat.sock */
  readonly statSocket?: string;
  readonly influx: InfluxTarget;
  /** the subscription (default `:`, everything) */
  readonly name: Name;
  readonly noDropPath: boolean;
  /** ms between connection attempts (default 5000) */
  readonly retryMs?: number;
  readonly log?: (level: "debug" | "info" | "warn" | "error", line: string) => void;
  /** the current time in seconds (tests) */
  readonly now?: () => number;
}

export interface InfluxForwarder {
  /** rejects when the subscribe request cannot be written (upstream exits then) */
  readonly done: Promise<void>;
  /** messages forwarded / dropped so far */
  counts(): { readonly forwarded: number; readonly dropped: number };
  close(): void;
}

export function startInflux(opts: InfluxOptions): InfluxForwarder {
  const log = opts.log ?? ((): void => undefined);
  const retry = opts.retryMs ?? RETRY_MS;
  const now = opts.now ?? ((): number => Date.now() / 1000);
  const statPath = opts.statSocket ?? join(opts.tmpdir, "util", "stat.sock");
  let closed = false;
  let sequence = 1n;
  let stat: net.Socket | null = null;
  let tcp: net.Socket | null = null;
  let tcpUp = false;
  let forwarded = 0;
  let dropped = 0;
  const timers = new Set<NodeJS.Timeout>();
  let fail!: (e: Error) => void;
  let finish!: () => void;
  const done = new Promise<void>((res, rej) => {
    finish = res;
    fail = rej;
  });

  const later = (f: () => void): void => {
    if (closed) return;
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, retry);
    timers.add(t);
  };

  // --- TCP side ---------------------------------------------------------------------
  let tcpFailing = false;
  const connectTcp = (): void => {
    if (closed || tcp !== null) return;
    const s = net.createConnection({ host: opts.influx.host, port: opts.influx.port });
    tcp = s;
    s.setKeepAlive(true);
    s.on("connect", () => {
      tcpUp = true;
      tcpFailing = false;
      log("info", `connected to ${opts.influx.host}:${opts.influx.port}`);
    });
    s.on("data", () => undefined); // a line protocol listener sends nothing; drain it anyway
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (tcpUp) log("warn", `error ${e.code ?? e.message} on the connection to ${opts.influx.host}:${opts.influx.port}, reconnecting`);
      else if (!tcpFailing)
        log("warn", `error connecting to ${opts.influx.host}:${opts.influx.port} (${e.code ?? e.message}), retrying every ${retry / 1000} s`);
      tcpFailing = true;
    });
    s.on("close", () => {
      if (tcp === s) {
        tcp = null;
        tcpUp = false;
        later(connectTcp);
      }
    });
  };

  const forward = (text: string): void => {
    if (tcp === null || !tcpUp || tcp.writableLength > MAX_INFLUX_QUEUED_BYTES) {
      dropped++;
      if (dropped === 1 || dropped % 100 === 0) log("warn", `${dropped} statistics message(s) lost: no TCP connection taking them`);
      return;
    }
    tcp.write(text);
    forwarded++;
  };

  // --- stats side -------------------------------------------------------------------
  let statFailing = false;
  const connectStat = async (): Promise<void> => {
    if (closed) return;
    let s: net.Socket;
    try {
      s = await connectUnix(statPath);
    } catch (e) {
      if (!statFailing)
        log("warn", `error connecting to socket ${statPath} (${(e as NodeJS.ErrnoException).code ?? String(e)}), retrying every ${retry / 1000} s`);
      statFailing = true;
      later(() => void connectStat());
      return;
    }
    if (closed) {
      s.destroy();
      return;
    }
    statFailing = false;
    stat = s;
    const seq = sequence++;
    const subscribe = encodeFrame(
      encodeWire({ header: { version: WIRE_VERSION, sequence: seq, name: opts.name }, payload: { kind: "command", command: { kind: "stats-subscribe" } } }),
    );
    s.write(subscribe, (e) => {
      if (e) {
        closed = true;
        s.destroy();
        tcp?.destroy();
        fail(new Error(`error ${(e as NodeJS.ErrnoException).code ?? e.message} while writing to stat socket`));
      }
    });
    log("info", `subscribed to ${statPath}`);
    connectTcp();
    const decoder = new FrameDecoder({ maxFrame: MAX_FRAME });
    let ended = false;
    const restart = (why: string): void => {
      if (ended) return;
      ended = true;
      s.destroy();
      if (stat === s) stat = null;
      if (closed) return;
      log("warn", `${why} while reading the stats socket, starting over`);
      // upstream closes both connections and subscribes again
      const t = tcp;
      tcp = null;
      tcpUp = false;
      t?.destroy();
      later(() => void connectStat());
    };
    s.on("data", (chunk: Buffer) => {
      decoder.push(chunk);
      try {
        for (;;) {
          const f = decoder.next();
          if (f === null) return;
          if (f === END) return restart("end of stream");
          const w = decodeWire(f);
          const p = w.payload;
          if (p.kind === "data" && p.data.kind === "statistics") forward(influxLines(w.header.name, p.data.stats, now(), opts.noDropPath));
          else if (p.kind === "failure") log("warn", `the stats daemon refused the subscription: ${Buffer.from(p.message).toString("utf8")}`);
          else log("debug", `ignoring a ${p.kind} message`);
        }
      } catch (e) {
        restart(e instanceof Error ? e.message : String(e));
      }
    });
    s.on("error", (e: NodeJS.ErrnoException) => restart(`error ${e.code ?? e.message}`));
    s.on("end", () => restart("end of file"));
    s.on("close", () => restart("end of file"));
  };

  void connectStat();
  return {
    done,
    counts: () => ({ forwarded, dropped }),
    close(): void {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      stat?.destroy();
      tcp?.destroy();
      finish();
    },
  };
}
