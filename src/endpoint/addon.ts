// The max-cert-list native addon (native/max-cert-list/): raises OpenSSL's limit on the
// certificate chain a TLS server accepts from a client (SSL_CTX_set_max_cert_list; OpenSSL's
// default is 100 KiB and Node has no setting for it). Built by `npm ci` for the running Node
// (one build per Node ABI: it uses V8's API, see its README). Without it the endpoint works,
// but refuses client chains over 100 KiB — i.e. albatross-client's `create` with the image
// inside the certificate.
// It also hands out the certificate path OpenSSL verified for a client (recordVerifiedChains,
// takeVerifiedChain: see max_cert_list.cc and peer.ts) — the endpoint's cheap and exact way to
// the client's chain; without it (or with an older build) the endpoint asks Node as before.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type tls from "node:tls";
import { fileURLToPath } from "node:url";
import { types } from "node:util";

interface Binding {
  setMaxCertList(external: unknown, bytes: number): number;
  /** (builds before these two have only setMaxCertList) */
  recordVerifiedChains?(external: unknown, capacity: number): void;
  takeVerifiedChain?(finished: Buffer): Buffer[] | undefined;
}

/** Tests (and operators) can point the loader elsewhere; a missing or broken file then shows the fallback. */
export const ADDON_ENV = "DROMEDARY_MAX_CERT_LIST_ADDON";

/** Where the addon for this Node's ABI is built (native/max-cert-list/build.mjs). */
function addonPath(): string {
  const fromEnv = process.env[ADDON_ENV];
  if (fromEnv) return fromEnv;
  // dist/src/endpoint/addon.js -> the package root
  return fileURLToPath(new URL(`../../../native/max-cert-list/build-abi${process.versions.modules}/max_cert_list.node`, import.meta.url));
}

let loaded: { ok: true; binding: Binding } | { ok: false; problem: string } | null = null;

function load(): { ok: true; binding: Binding } | { ok: false; problem: string } {
  if (loaded) return loaded;
  const file = addonPath();
  if (!existsSync(file)) {
    loaded = { ok: false, problem: `native addon not built for Node ${process.version}: no ${file} (run \`npm run build:addon\`)` };
    return loaded;
  }
  try {
    const b = createRequire(import.meta.url)(file) as Partial<Binding>;
    if (typeof b.setMaxCertList !== "function") throw new Error("no setMaxCertList in it");
    loaded = { ok: true, binding: b as Binding };
  } catch (e) {
    const m = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    loaded = { ok: false, problem: `native addon ${file} does not load: ${m}` };
  }
  return loaded;
}

/** The SSL_CTX handle of a secure context, or why there is none. */
function externalOf(context: tls.SecureContext): unknown {
  // Node's native SecureContext holds its SSL_CTX* as a v8::External (`_external`).
  const external = (context as tls.SecureContext & { context?: { _external?: unknown } }).context?._external;
  return types.isExternal(external) ? external : null;
}

/**
 * Set OpenSSL's certificate chain limit of a secure context to `bytes`. Null when done, else
 * why not (the context keeps OpenSSL's default of 100 KiB).
 */
export function raiseChainLimit(context: tls.SecureContext, bytes: number): string | null {
  const a = load();
  if (!a.ok) return a.problem;
  const external = externalOf(context);
  if (external === null) return `this Node (${process.version}) does not expose its SSL_CTX`;
  try {
    const now = a.binding.setMaxCertList(external, bytes);
    return now === bytes ? null : `OpenSSL kept a limit of ${now} bytes`;
  } catch (e) {
    return `native addon failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * Keep, for every client chain OpenSSL verifies on this secure context without an error, the
 * path it verified, until taken (takeVerifiedChain) or the connection is freed; at most
 * `capacity` at once (older ones are dropped: their connections then ask Node). Null when
 * done, else why not.
 */
export function recordVerifiedChains(context: tls.SecureContext, capacity: number): string | null {
  const a = load();
  if (!a.ok) return a.problem;
  if (typeof a.binding.recordVerifiedChains !== "function" || typeof a.binding.takeVerifiedChain !== "function")
    return "native addon too old (no recordVerifiedChains)";
  const external = externalOf(context);
  if (external === null) return `this Node (${process.version}) does not expose its SSL_CTX`;
  try {
    a.binding.recordVerifiedChains(external, capacity);
    return null;
  } catch (e) {
    return `native addon failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * The path OpenSSL verified for the connection whose server Finished message is `finished`
 * (tlsSocket.getFinished()): DER, leaf first, the trust anchor last; taken (a second call
 * gives null). Null when none was recorded: the addon is not recording, the chain was not
 * verified cleanly, or the entry was dropped.
 */
export function takeVerifiedChain(finished: Buffer): Buffer[] | null {
  const a = load();
  if (!a.ok || typeof a.binding.takeVerifiedChain !== "function") return null;
  return a.binding.takeVerifiedChain(finished) ?? null;
}
