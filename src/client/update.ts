// `update NAME` (cli.md §5): ask the daemon for the running unikernel's digest, find its
// build on a builder-web instance, fetch the newest binary of that job and force-create
// the unikernel with it (configuration taken over from the info reply).

import http from "node:http";
import https from "node:https";
import { decodeWire, encodeWire } from "../commands/codec.js";
import { deflate } from "../commands/compress.js";
import type { Command, UnikernelConfig, UnikernelInfo, Wire } from "../commands/types.js";
import type { Name } from "../core/name.js";
import { checkManifest, readSolo5Manifest } from "../solo5/elf.js";
import { EXIT } from "../core/exit.js";
import { DEFAULT_REPLY_FRAME_LIMIT, STARTED_AT, processReplies, processSink, type Sink } from "./replies.js";
import { hexdump, wireText } from "../commands/render.js";
import { hex } from "../core/hex.js";
import { ReplyReader, connectDaemon, wireFrame, writeAll, type FrameEvent } from "../transport/local.js";
import { socketPath } from "../transport/routes.js";
import type { DestinationOptions } from "./jump.js";

/** Largest binary we download. */
export const MAX_BINARY_BYTES = 1 << 30;
const MAX_REDIRECTS = 10;

export interface UpdateRequest {
  readonly name: Name;
  /** `http[s]://host` without trailing slash (flags.parseHttpHost) */
  readonly httpHost: string;
  readonly dryRun: boolean;
  readonly level: number;
  /** explicit --socket (may be "-") */
  readonly socket: string | undefined;
  readonly options: DestinationOptions;
}

class HttpFailure extends Error {}

interface HttpResponse {
  status: number;
  location?: string;
  body: Buffer;
}

function httpGet(url: string, wantBody: boolean, limit: number): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new HttpFailure(`invalid URL ${url}`));
      return;
    }
    const mod = u.protocol === "https:" ? https : u.protocol === "http:" ? http : null;
    if (!mod) {
      reject(new HttpFailure(`unsupported URL ${url}`));
      return;
    }
    const req = mod.get(u, { timeout: 60_000 }, (res) => {
      const status = res.statusCode ?? 0;
      const loc = res.headers.location;
      const chunks: Buffer[] = [];
      let size = 0;
      if (!wantBody || (status >= 300 && status < 400)) res.resume();
      else
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > limit) {
            req.destroy(new HttpFailure(`reply body exceeds ${limit} bytes`));
            return;
          }
          chunks.push(c);
        });
      res.on("end", () => resolve({ status, ...(loc !== undefined ? { location: loc } : {}), body: Buffer.concat(chunks) }));
      res.on("error", (e) => reject(new HttpFailure(e.message)));
    });
    req.on("timeout", () => req.destroy(new HttpFailure("HTTP request timed out")));
    req.on("error", (e) => reject(e instanceof HttpFailure ? e : new HttpFailure(e.message)));
  });
}

/** `/job/<job>/build/<uuid>` with an optional trailing `/` (upstream job_and_build). */
export function jobAndBuild(loc: string): { job: string; build: string } {
  const parts = loc.split("/");
  const ok =
    parts[0] === "" && parts[1] === "job" && parts[3] === "build" &&
    (parts.length === 5 || (parts.length === 6 && parts[5] === ""));
  if (!ok) throw new HttpFailure(`expected '/job/<jobname>/build/<uuid>', got: ${loc}`);
  return { job: parts[2]!, build: parts[4]! };
}

/** A GET that must answer with a redirect to a build (no redirect following). */
async function redirectToBuild(url: string): Promise<{ job: string; build: string }> {
  const r = await httpGet(url, false, 0);
  if (r.status >= 300 && r.status < 400) {
    if (r.location === undefined) throw new HttpFailure("no Location header received in HTTP reply");
    return jobAndBuild(r.location);
  }
  if (r.status === 404) throw new HttpFailure("couldn't find the unikernel in the repository");
  throw new HttpFailure("unexpected HTTP reply");
}

async function fetchBinary(url: string): Promise<Buffer> {
  let current = url;
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const r = await httpGet(current, true, MAX_BINARY_BYTES);
    if (r.status >= 300 && r.status < 400 && r.location !== undefined) {
      current = new URL(r.location, current).toString();
      continue;
    }
    if (r.status >= 200 && r.status < 300 && r.body.length > 0) return r.body;
    throw new HttpFailure("unexpected HTTP reply");
  }
  throw new HttpFailure("too many redirects");
}

/** One request, one reply (upstream one_jump, local). */
async function oneJump(
  socketFile: string | "-",
  wire: Wire,
  sink: Sink,
): Promise<{ ok: true; event: FrameEvent } | { ok: false; code: number }> {
  if (socketFile === "-") {
    process.stdout.write(`out:\n${hexdump(encodeWire(wire))}\n`);
    return { ok: false, code: EXIT.COMMUNICATION };
  }
  let sock;
  try {
    sock = await connectDaemon(socketFile);
  } catch (e) {
    sink.err((e as Error).message);
    return { ok: false, code: EXIT.CONNECT };
  }
  try {
    const reader = new ReplyReader(sock, DEFAULT_REPLY_FRAME_LIMIT);
    await writeAll(sock, wireFrame(wire));
    return { ok: true, event: await reader.next() };
  } catch (e) {
    sink.err(`communication failure: ${(e as Error).message}`);
    return { ok: false, code: EXIT.COMMUNICATION };
  } finally {
    sock.destroy();
  }
}

function singleInfo(w: Wire): UnikernelInfo | null {
  if (w.payload.kind !== "reply") return null;
  const r = w.payload.reply;
  if (r.kind !== "unikernel-info" && r.kind !== "old-unikernel-info4" && r.kind !== "old-unikernel-info5") return null;
  if (r.unikernels.length !== 1) return null;
  const info = r.unikernels[0]!.info;
  return info.typ === "solo5" ? info : null;
}

/** The force-create configuration built from the running unikernel's info (cli.md §5 step 9). */
export function configFromInfo(info: UnikernelInfo, image: Uint8Array, level: number): UnikernelConfig {
  const compressed = level > 0;
  return {
    typ: "solo5",
    compressed,
    image: compressed ? deflate(image, level) : image,
    failBehaviour: info.failBehaviour,
    ...(info.startup !== undefined ? { startup: info.startup } : {}),
    addName: true,
    cpuids: info.cpuids,
    memory: info.memory,
    blockDevices: info.blockDevices.map((b) => ({ name: b.unikernelDevice, device: b.hostDevice, sectorSize: b.sectorSize })),
    bridges: info.bridges.map((n) => ({ netif: n.unikernelDevice, bridge: n.hostDevice, mac: n.mac })),
    ...(info.argv !== undefined ? { argv: info.argv } : {}),
    numcpus: info.numcpus,
    ...(info.linuxBootPartition !== undefined ? { linuxBootPartition: info.linuxBootPartition } : {}),
  };
}

export async function runUpdate(req: UpdateRequest): Promise<number> {
  const sink = processSink(req.options.json ?? false);
  const socketFile = req.socket ?? socketPath(req.options.tmpdir, "vmmd");
  const header = { version: 5, sequence: 0n, name: req.name };
  const infoWire: Wire = { header, payload: { kind: "command", command: { kind: "unikernel-info" } } };
  const first = await oneJump(socketFile, infoWire, sink);
  if (!first.ok) return EXIT.COMMUNICATION; // upstream: any error here is a communication failure
  if (first.event.kind !== "frame") {
    sink.err("no reply to the info request");
    return EXIT.COMMUNICATION;
  }
  let reply: Wire;
  try {
    reply = decodeWire(first.event.payload);
  } catch (e) {
    sink.err(`communication failure: undecodable reply: ${(e as Error).message}`);
    return EXIT.COMMUNICATION;
  }
  const info = singleInfo(reply);
  if (!info) {
    sink.err(`unexpected reply: ${wireText(reply)}`);
    return EXIT.COMMUNICATION;
  }
  const say = (text: string, json: Record<string, unknown>) => sink.out(sink.json ? JSON.stringify(json) : text);
  let binary: Buffer;
  try {
    const hash = hex(info.digest);
    const b = await redirectToBuild(`${req.httpHost}/hash?sha256=${hash}`);
    const latest = await redirectToBuild(`${req.httpHost}/job/${b.job}/build/latest`);
    if (b.build === latest.build) {
      say("already up to date", { event: "up-to-date", job: b.job, build: b.build });
      return EXIT.OK;
    }
    const compare = `${req.httpHost}/compare/${b.build}/${latest.build}`;
    say(`compare at ${compare}`, { event: "update-available", job: b.job, build: b.build, latest: latest.build, compare });
    if (req.dryRun) return EXIT.OK;
    binary = await fetchBinary(`${req.httpHost}/job/${b.job}/build/${latest.build}/main-binary`);
  } catch (e) {
    sink.err(`error in HTTP interaction: ${(e as Error).message}`);
    return EXIT.HTTP;
  }
  const image = new Uint8Array(binary.buffer, binary.byteOffset, binary.length);
  let mismatch: string | null;
  try {
    mismatch = checkManifest(
      readSolo5Manifest(image),
      info.blockDevices.map((b) => b.unikernelDevice),
      info.bridges.map((n) => n.unikernelDevice),
    );
  } catch (e) {
    mismatch = (e as Error).message;
  }
  if (mismatch !== null) {
    sink.err(`manifest failed: ${mismatch}`);
    return EXIT.INTERNAL;
  }
  const cmd: Command = { kind: "unikernel-force-create", config: configFromInfo(info, image, req.level) };
  const second = await oneJump(socketFile, { header, payload: { kind: "command", command: cmd } }, sink);
  if (!second.ok || second.event.kind !== "frame") {
    sink.err("received error from albatross");
    return EXIT.REMOTE_FAILURE;
  }
  const ev = second.event;
  let given = false;
  return processReplies(
    async () => {
      if (given) return { kind: "end" };
      given = true;
      return ev;
    },
    "single",
    { sink, startedAt: STARTED_AT, verbose: req.options.verbose ?? false },
  );
}
