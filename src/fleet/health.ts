// The health check after an update's force-create: for `seconds` the unikernel must keep
// running the new image without being restarted (hostd's info: same digest, same start
// time), and — when asked for — an HTTP(S) URL must answer 2xx or a TCP port accept at least
// once within that time. Fails as soon as the unikernel is gone or restarted.

import http from "node:http";
import https from "node:https";
import net from "node:net";
import { hex } from "../core/hex.js";
import type { Name } from "../core/name.js";
import { infos, type Target } from "./target.js";

export interface HealthSpec {
  /** how long the unikernel must keep running (s); 0 = no check */
  readonly seconds: number;
  /** an http:// or https:// URL that must answer 2xx */
  readonly url?: string;
  /** HOST:PORT that must accept a TCP connection */
  readonly tcp?: { host: string; port: number };
}

export type HealthResult = { ok: true } | { ok: false; reason: string };

const PROBE_TIMEOUT_MS = 3_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function probeUrl(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve(`invalid URL ${url}`);
      return;
    }
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.get(u, { timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      const s = res.statusCode ?? 0;
      resolve(s >= 200 && s < 300 ? null : `${url} answered HTTP ${s}`);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (e) => resolve(`${url}: ${e.message}`));
  });
}

function probeTcp(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(`${host}:${port}: no connection within ${PROBE_TIMEOUT_MS / 1000} s`);
    }, PROBE_TIMEOUT_MS);
    s.once("connect", () => {
      clearTimeout(t);
      s.destroy();
      resolve(null);
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(`${host}:${port}: ${e.code ?? e.message}`);
    });
  });
}

/** Run the check against the unikernel now running `digest` (hex). */
export async function checkHealth(t: Target, name: Name, digest: string, spec: HealthSpec): Promise<HealthResult> {
  if (spec.seconds <= 0) return { ok: true };
  const deadline = Date.now() + spec.seconds * 1000;
  const step = Math.min(1000, Math.max(100, (spec.seconds * 1000) / 10));
  let started: number | null = null;
  let probeOk = spec.url === undefined && spec.tcp === undefined;
  let lastProbe = "no probe answered";
  for (;;) {
    let list;
    try {
      list = await infos(t, name);
    } catch (e) {
      return { ok: false, reason: `asking the host failed: ${(e as Error).message}` };
    }
    const u = list.length === 1 ? list[0]!.info : null;
    if (u === null) return { ok: false, reason: "the unikernel is no longer running" };
    if (hex(u.digest) !== digest) return { ok: false, reason: `the unikernel runs another image (${hex(u.digest).slice(0, 12)}…)` };
    if (started === null) started = u.started.getTime();
    else if (u.started.getTime() !== started) return { ok: false, reason: "the unikernel was restarted (it exited)" };
    if (!probeOk) {
      const r = spec.url !== undefined ? await probeUrl(spec.url) : await probeTcp(spec.tcp!.host, spec.tcp!.port);
      if (r === null) probeOk = true;
      else lastProbe = r;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(step, left));
  }
  if (!probeOk) return { ok: false, reason: `within ${spec.seconds} s: ${lastProbe}` };
  return { ok: true };
}
