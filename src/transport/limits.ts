// Limits on the daemons' Unix sockets (hostd and the console daemon; not upstream, which
// accepts connections until it runs out of file descriptors and keeps idle ones forever):
// a cap on concurrent connections — one beyond it gets `Failure "too many connections"`
// and is closed — and an idle timeout for connections that wait for their next request.
import type { Socket } from "node:net";
import { encodeWire } from "../commands/codec.js";
import { encodeFrame } from "../commands/framing.js";
import { WIRE_VERSION, type Wire } from "../commands/types.js";
import { rootName } from "../core/name.js";

/** Defaults of --max-connections and --idle-timeout. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
export const TEXT_TOO_MANY = "too many connections";

/**
 * Answer a connection beyond the cap with a Failure `text` (header: wire version 5,
 * sequence 0, the root name: no request was read) and close it. What the client sends
 * meanwhile is read and dropped, so it sees the reply rather than a reset.
 */
export function refuseConnection(sock: Socket, text: string): void {
  sock.on("error", () => undefined);
  sock.on("data", () => undefined);
  const timer = setTimeout(() => sock.destroy(), 2_000);
  timer.unref();
  sock.once("close", () => clearTimeout(timer));
  const w: Wire = { header: { version: WIRE_VERSION, sequence: 0n, name: rootName }, payload: { kind: "failure", message: new TextEncoder().encode(text) } };
  sock.end(encodeFrame(encodeWire(w)));
}
