// A client for a builder-web instance (robur's reproducible-build repository, cli.md §5 and
// §5.1): find the build of a running image by its SHA-256, the job's latest build, download
// a build's main binary (SHA-256 checked against the builder's), and what changed between
// two builds (compare JSON, or both opam-switch exports).
//
// Bounds: every request has an inactivity timeout; every body a size limit; redirects are
// followed only where upstream does (the main binary) and only within the builder's origin;
// https uses Node's and the system's CAs plus the --builder-ca certificates.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { DiffError, diffFromCompare, diffFromSwitches, type BuildDiff } from "./diff.js";

/** Largest main binary downloaded (bytes). */
const MAX_BINARY_BYTES = 1 << 30;
/** Largest compare JSON / opam-switch / other text reply (bytes). */
const MAX_TEXT_BYTES = 16 << 20;
/** Default inactivity timeout of one HTTP request (ms). */
export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 10;

/** A failed HTTP interaction (exit 118, cli.md §5). */
export class HttpFailure extends Error {}

export interface BuilderOptions {
  /** `http[s]://host[:port]` without a trailing slash */
  readonly base: string;
  /** extra CA certificates (PEM texts) trusted for https besides the system's */
  readonly extraCa?: readonly string[];
  readonly timeoutMs?: number;
  readonly maxBinaryBytes?: number;
  readonly maxTextBytes?: number;
}

export interface Build {
  readonly job: string;
  readonly build: string;
}

interface Reply {
  readonly status: number;
  readonly location?: string;
  readonly etag?: string;
  readonly body: Buffer;
}

/** OpenSSL's and Node's codes for a peer certificate that does not verify. */
const CERT_ERRORS = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** One line: a certificate failure says so and how to trust the builder's CA. */
function describeError(e: NodeJS.ErrnoException): string {
  const msg = e.message.replace(/\s+/g, " ").trim();
  const code = e.code ?? "";
  if (CERT_ERRORS.has(code) || code.startsWith("CERT_")) return `the builder's TLS certificate is not trusted (${msg}); --builder-ca FILE adds a CA to trust`;
  return msg;
}

const SYSTEM_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

let systemCas: string[] | null = null;

/** Node's bundled roots plus the system's (Node >= 22.15 asks OpenSSL; older ones read the bundle file). */
function defaultCas(): string[] {
  if (systemCas) return systemCas;
  const out = new Set<string>(tls.rootCertificates);
  const get = (tls as unknown as { getCACertificates?: (t: string) => string[] }).getCACertificates;
  let fromSystem: string[] = [];
  if (typeof get === "function") {
    try {
      fromSystem = get("system");
    } catch {
      fromSystem = [];
    }
  }
  if (fromSystem.length === 0) {
    for (const f of SYSTEM_BUNDLES) {
      try {
        fromSystem = [readFileSync(f, "utf8")];
        break;
      } catch {
        // next
      }
    }
  }
  for (const c of fromSystem) out.add(c);
  systemCas = [...out];
  return systemCas;
}

/** `/job/<job>/build/<uuid>` with an optional trailing `/` (upstream job_and_build). */
export function jobAndBuild(loc: string): Build {
  const parts = loc.split("/");
  const ok = parts[0] === "" && parts[1] === "job" && parts[3] === "build" && (parts.length === 5 || (parts.length === 6 && parts[5] === ""));
  if (!ok) throw new HttpFailure(`expected '/job/<jobname>/build/<uuid>', got: ${loc}`);
  const job = parts[2]!;
  const build = parts[4]!;
  // they go into further URLs and file names: no escapes, no traversal
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(job) || !/^[A-Za-z0-9-]{1,64}$/.test(build)) {
    throw new HttpFailure(`unexpected job or build name in '${loc.slice(0, 200)}'`);
  }
  return { job, build };
}

export class Builder {
  readonly base: string;
  private readonly origin: string;
  private readonly timeoutMs: number;
  private readonly maxBinary: number;
  private readonly maxText: number;
  private readonly ca: string[] | undefined;

  constructor(o: BuilderOptions) {
    let u: URL;
    try {
      u = new URL(o.base);
    } catch {
      throw new HttpFailure(`expected http[s]://hostname, got ${o.base}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new HttpFailure("expected http[s]://hostname");
    this.base = o.base.replace(/\/+$/, "");
    this.origin = u.origin;
    this.timeoutMs = o.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    this.maxBinary = o.maxBinaryBytes ?? MAX_BINARY_BYTES;
    this.maxText = o.maxTextBytes ?? MAX_TEXT_BYTES;
    this.ca = u.protocol === "https:" ? [...defaultCas(), ...(o.extraCa ?? [])] : undefined;
  }

  /** One GET of an absolute URL within the builder's origin; no redirects followed. */
  private get(url: string, limit: number, accept?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      if (u.origin !== this.origin) {
        reject(new HttpFailure(`refusing to leave the builder's origin ${this.origin} for ${u.origin}`));
        return;
      }
      const mod = u.protocol === "https:" ? https : http;
      const headers: Record<string, string> = { "user-agent": "dromedary" };
      if (accept !== undefined) headers["accept"] = accept;
      const req = mod.get(u, { timeout: this.timeoutMs, headers, ...(this.ca ? { ca: this.ca } : {}) }, (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const declared = Number(res.headers["content-length"]);
        if (status >= 200 && status < 300 && Number.isFinite(declared) && declared > limit) {
          req.destroy(new HttpFailure(`reply body of ${declared} bytes exceeds the limit of ${limit} bytes`));
          return;
        }
        if (status < 200 || status >= 300 || limit === 0) res.resume();
        else
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > limit) {
              req.destroy(new HttpFailure(`reply body exceeds the limit of ${limit} bytes`));
              return;
            }
            chunks.push(c);
          });
        res.on("end", () => {
          const loc = res.headers.location;
          const etag = res.headers.etag;
          resolve({ status, ...(loc !== undefined ? { location: loc } : {}), ...(etag !== undefined ? { etag } : {}), body: Buffer.concat(chunks) });
        });
        res.on("error", (e) => reject(new HttpFailure(e.message)));
      });
      req.on("timeout", () => req.destroy(new HttpFailure(`no answer from ${this.origin} within ${this.timeoutMs / 1000} s`)));
      req.on("error", (e) => reject(e instanceof HttpFailure ? e : new HttpFailure(`${this.origin}: ${describeError(e)}`)));
    });
  }

  /** GET with redirects followed (within the origin); a 2xx reply. */
  private async follow(path: string, limit: number, accept?: string): Promise<Reply> {
    let current = `${this.base}${path}`;
    for (let i = 0; i <= MAX_REDIRECTS; i++) {
      const r = await this.get(current, limit, accept);
      if (r.status >= 300 && r.status < 400 && r.location !== undefined) {
        current = new URL(r.location, current).toString();
        continue;
      }
      return r;
    }
    throw new HttpFailure("too many redirects");
  }

  /** A GET that must answer with a redirect to a build (no redirect following; cli.md §5). */
  private async redirectToBuild(path: string): Promise<Build> {
    const r = await this.get(`${this.base}${path}`, 0);
    if (r.status >= 300 && r.status < 400) {
      if (r.location === undefined) throw new HttpFailure("no Location header received in HTTP reply");
      return jobAndBuild(r.location);
    }
    if (r.status === 404) throw new HttpFailure("couldn't find the unikernel in the repository");
    throw new HttpFailure("unexpected HTTP reply");
  }

  /** The build whose main binary has this SHA-256 (lowercase hex). */
  buildOfHash(sha256hex: string): Promise<Build> {
    return this.redirectToBuild(`/hash?sha256=${sha256hex}`);
  }

  /** The job's latest successful build. */
  latest(job: string): Promise<Build> {
    return this.redirectToBuild(`/job/${encodeURIComponent(job)}/build/latest`);
  }

  compareUrl(left: string, right: string): string {
    return `${this.base}/compare/${left}/${right}`;
  }

  /**
   * The main binary of a build, checked: a non-empty 2xx body within the size limit whose
   * SHA-256 is what the builder announces for that build — its ETag (builder-web sends the
   * artifact's SHA-256, base64) where given, and always `/hash?sha256=` leading back to it.
   */
  async mainBinary(b: Build): Promise<{ image: Uint8Array; sha256: string }> {
    const r = await this.follow(`/job/${encodeURIComponent(b.job)}/build/${b.build}/main-binary`, this.maxBinary);
    if (!(r.status >= 200 && r.status < 300) || r.body.length === 0) throw new HttpFailure("unexpected HTTP reply");
    const digest = createHash("sha256").update(r.body).digest();
    const sha256 = digest.toString("hex");
    if (r.etag !== undefined) {
      const tag = r.etag.replace(/^W\//, "").replace(/^"|"$/g, "");
      if (tag !== digest.toString("base64") && tag.toLowerCase() !== sha256) {
        throw new HttpFailure(`the downloaded binary's SHA-256 ${sha256} is not the one the builder announced (ETag ${tag.slice(0, 100)})`);
      }
    }
    let back: Build;
    try {
      back = await this.buildOfHash(sha256);
    } catch (e) {
      throw new HttpFailure(`the builder does not know the downloaded binary (SHA-256 ${sha256}): ${(e as Error).message}`);
    }
    if (back.job !== b.job || back.build !== b.build) {
      throw new HttpFailure(`the downloaded binary (SHA-256 ${sha256}) belongs to ${back.job}/${back.build}, not ${b.job}/${b.build}`);
    }
    return { image: new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.length), sha256 };
  }

  /** A text file of a build (`/job/<job>/build/<uuid>/f/<file>`); null on 404. */
  async file(b: Build, file: string): Promise<string | null> {
    const r = await this.follow(`/job/${encodeURIComponent(b.job)}/build/${b.build}/f/${file}`, this.maxText);
    if (r.status === 404) return null;
    if (!(r.status >= 200 && r.status < 300)) throw new HttpFailure(`unexpected HTTP reply ${r.status} for ${file}`);
    return r.body.toString("utf8");
  }

  /**
   * What changed from `left` to `right`: the builder's compare JSON, else both opam-switch
   * exports; an Error (not thrown) when neither is available, with the reasons.
   */
  async diff(left: Build, right: Build): Promise<BuildDiff | Error> {
    let why: string;
    try {
      const r = await this.follow(`/compare/${left.build}/${right.build}`, this.maxText, "application/json");
      if (r.status >= 200 && r.status < 300) {
        let json: unknown;
        try {
          json = JSON.parse(r.body.toString("utf8"));
        } catch {
          throw new DiffError("compare: the reply is not JSON");
        }
        return diffFromCompare(json);
      }
      why = `compare: HTTP ${r.status}`;
    } catch (e) {
      why = (e as Error).message;
    }
    try {
      const [l, rt] = await Promise.all([this.file(left, "opam-switch"), this.file(right, "opam-switch")]);
      if (l === null || rt === null) return new Error(`${why}; opam-switch: not found`);
      return diffFromSwitches(l, rt);
    } catch (e) {
      return new Error(`${why}; ${(e as Error).message}`);
    }
  }
}
