// A stand-in for robur's builder-web (https://builds.robur.coop; robur-coop/builder-web
// lib/builder_web.ml) on 127.0.0.1 — a TEST DOUBLE serving the endpoints `update` and
// `fleet` use, with builder-web's shapes:
//
//   GET /hash?sha256=<hex>                  redirect to /job/<job>/build/<uuid> (404 unknown)
//   GET /job/<job>/build/latest             307 to /job/<job>/build/<uuid> (404 unknown job)
//   GET /job/<job>/build/<uuid>/main-binary redirect to /job/<job>/build/<uuid>/f/bin/<job>.hvt
//   GET /job/<job>/build/<uuid>/f/<path>    the artifact; ETag = base64 of its SHA-256
//                                           (opam-switch, build-environment, system-packages)
//   GET /compare/<a>/<b>                    Accept: application/json -> compare_builds_json
//                                           (views.ml), otherwise an HTML page
//
// Knobs for hostile cases: no compare JSON (older builders), a binary redirect leaving the
// origin, a binary whose bytes are not what the builder announces. `startBuilder({ tls })`
// serves https (node:https) with the given key and certificate chain instead of http.
// Test support only.

import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";

export interface BuildSpec {
  readonly image: Uint8Array;
  /** opam packages: name -> version */
  readonly packages: Readonly<Record<string, string>>;
  /** build environment: variable -> value */
  readonly env?: Readonly<Record<string, string>>;
  /** system packages: name -> version */
  readonly system?: Readonly<Record<string, string>>;
}

interface StoredBuild extends BuildSpec {
  readonly job: string;
  readonly uuid: string;
  readonly start: Date;
  readonly finish: Date;
  readonly sha256: Buffer;
}

export interface BuilderKnobs {
  /** /compare answers 404 (a builder without the JSON view): clients fall back to opam-switch */
  compareJson: boolean;
  /** main-binary redirects to another origin */
  foreignRedirect: string | null;
  /** the served binary of these builds differs from the one the builder knows */
  tampered: Set<string>;
}

export interface BuilderStandin {
  readonly url: string;
  readonly knobs: BuilderKnobs;
  /** every request: "GET /path accept" */
  readonly requests: string[];
  /** a new build of `job` (it becomes the latest); its uuid */
  addBuild(job: string, spec: BuildSpec): string;
  close(): Promise<void>;
}

/** The `opam switch export` text (OpamFile.SwitchExport) of a package set. */
export function opamSwitchText(packages: Readonly<Record<string, string>>): string {
  const names = Object.keys(packages).sort();
  const installed = names.map((n) => `  "${n}.${packages[n]}"`).join("\n");
  const meta = names.map((n) => `package "${n}" {\n  opam-version: "2.0"\n  version: "${packages[n]}"\n}`).join("\n");
  return `opam-version: "2.0"\ncompiler: ["ocaml-base-compiler.4.14.2"]\nroots: ["${names[0] ?? "none"}.${packages[names[0] ?? ""] ?? ""}"]\ninstalled: [\n${installed}\n]\n${meta}\n`;
}

/** builder-web's diff_map: (added = only in b, removed = only in a, changed). */
function diffMap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) {
  const added = Object.keys(b)
    .filter((k) => !(k in a))
    .sort()
    .map((k) => ({ name: k, version: b[k]! }));
  const removed = Object.keys(a)
    .filter((k) => !(k in b))
    .sort()
    .map((k) => ({ name: k, version: a[k]! }));
  const changed = Object.keys(a)
    .filter((k) => k in b && a[k] !== b[k])
    .sort()
    .map((k) => ({ name: k, version_left: a[k]!, version_right: b[k]! }));
  // utils.ml diff_map_to_json names them (left, right, different_versions) in this order
  return { left_packages: added, right_packages: removed, different_versions: changed };
}

function compareJson(l: StoredBuild, r: StoredBuild): unknown {
  const side = (b: StoredBuild) => ({
    job: b.job,
    uuid: b.uuid,
    platform: "debian-12",
    start_time: b.start.toISOString(),
    finish_time: b.finish.toISOString(),
    main_binary: true,
    main_binary_size: b.image.length,
  });
  const lp = l.packages;
  const rp = r.packages;
  return {
    left: side(l),
    right: side(r),
    env_diff: diffMap(l.env ?? {}, r.env ?? {}),
    package_diff: diffMap(l.system ?? {}, r.system ?? {}),
    opam_diff: {
      // opamdiff.ml compare_to_json
      opam_diff: Object.keys(lp)
        .filter((k) => k in rp && lp[k] === rp[k])
        .map((k) => ({ package_version: `${k}.${lp[k]}`, effectively_equal: true, diff: "" })),
      version_diff: Object.keys(lp)
        .filter((k) => k in rp && lp[k] !== rp[k])
        .sort()
        .map((k) => ({ name: k, version_left: lp[k]!, version_right: rp[k]! })),
      only_in_left: Object.keys(lp)
        .filter((k) => !(k in rp))
        .sort()
        .map((k) => ({ name: k, version: lp[k]! })),
      only_in_right: Object.keys(rp)
        .filter((k) => !(k in lp))
        .sort()
        .map((k) => ({ name: k, version: rp[k]! })),
      duniverse_diff: { left: [], right: [], detailed_diff: [] },
    },
  };
}

export interface BuilderServeOptions {
  /** serve https with this key and certificate (chain), both PEM */
  readonly tls?: { readonly key: string; readonly cert: string };
}

export async function startBuilder(o: BuilderServeOptions = {}): Promise<BuilderStandin> {
  const builds = new Map<string, StoredBuild>(); // uuid -> build
  const jobs = new Map<string, string[]>(); // job -> uuids, latest last
  const knobs: BuilderKnobs = { compareJson: true, foreignRedirect: null, tampered: new Set() };
  const requests: string[] = [];
  let clock = Date.parse("2025-01-01T00:00:00Z");

  const handler: http.RequestListener = (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(`${req.method} ${url.pathname}${url.search} ${req.headers.accept ?? ""}`.trim());
    const notFound = (): void => {
      res.writeHead(404, { "content-type": "text/html; charset=utf-8" });
      res.end("<html><body>Page not found</body></html>");
    };
    const redirect = (status: number, to: string): void => {
      res.writeHead(status, { location: to });
      res.end();
    };
    const p = url.pathname.split("/");
    if (url.pathname === "/hash") {
      const h = url.searchParams.get("sha256") ?? "";
      const b = [...builds.values()].find((x) => x.sha256.toString("hex") === h);
      return b ? redirect(302, `/job/${b.job}/build/${b.uuid}`) : notFound();
    }
    if (p[1] === "job" && p[3] === "build" && p.length >= 5) {
      const job = p[2]!;
      if (p[4] === "latest" && p.length === 5) {
        const l = jobs.get(job);
        return l ? redirect(307, `/job/${job}/build/${l[l.length - 1]}`) : notFound();
      }
      const b = builds.get(p[4]!);
      if (!b || b.job !== job) return notFound();
      if (p[5] === "main-binary" && p.length === 6) {
        const to = `/job/${job}/build/${b.uuid}/f/bin/${job}.hvt`;
        return redirect(302, knobs.foreignRedirect !== null ? `${knobs.foreignRedirect}${to}` : to);
      }
      if (p[5] === "f") {
        const file = p.slice(6).join("/");
        let body: Buffer;
        if (file === `bin/${job}.hvt`) {
          body = Buffer.from(b.image);
          if (knobs.tampered.has(b.uuid)) body = Buffer.concat([body, Buffer.from("tampered")]);
        } else if (file === "opam-switch") body = Buffer.from(opamSwitchText(b.packages));
        else if (file === "build-environment")
          body = Buffer.from(
            Object.entries(b.env ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join("\n"),
          );
        else if (file === "system-packages")
          body = Buffer.from(
            Object.entries(b.system ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join("\n"),
          );
        else return notFound();
        // the ETag is the artifact's recorded SHA-256 (a tampered file keeps the recorded one)
        const recorded = file === `bin/${job}.hvt` ? b.sha256 : createHash("sha256").update(body).digest();
        res.writeHead(200, { "content-type": "application/octet-stream", etag: recorded.toString("base64"), "content-length": body.length });
        res.end(body);
        return;
      }
      if (p.length === 5 || (p.length === 6 && p[5] === "")) {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        res.end(`<html><body>build ${b.uuid}</body></html>`);
        return;
      }
      return notFound();
    }
    if (p[1] === "compare" && p.length === 4) {
      const l = builds.get(p[2]!);
      const r = builds.get(p[3]!);
      if (!l || !r) return notFound();
      if (
        (req.headers.accept ?? "")
          .split(",")
          .map((s) => s.trim().split(";")[0])
          .includes("application/json")
      ) {
        if (!knobs.compareJson) return notFound();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(compareJson(l, r)));
        return;
      }
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<html><body>comparison</body></html>");
      return;
    }
    notFound();
  };
  const server = o.tls ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const url = `${o.tls ? "https" : "http"}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    knobs,
    requests,
    addBuild(job, spec) {
      const uuid = randomUUID();
      const start = new Date((clock += 60_000));
      const finish = new Date((clock += 60_000));
      builds.set(uuid, { ...spec, job, uuid, start, finish, sha256: createHash("sha256").update(spec.image).digest() });
      jobs.set(job, [...(jobs.get(job) ?? []), uuid]);
      return uuid;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
