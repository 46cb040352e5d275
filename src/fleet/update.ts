// Updating one unikernel on one host (cli.md §5, and beyond it as robur's web UI does):
//
//   info -> the build of the running image (/hash) -> the job's latest build -> what changed
//   (compare JSON or opam-switch) -> [--dryrun stops] -> download (SHA-256 checked against
//   the builder) -> manifest check against the running devices -> [ask on a terminal] ->
//   get the running image and keep it (store.ts) -> force-create with the same
//   configuration -> health check -> on failure force-create the previous image again.
//
// At every point the host runs either the old or the new image: force-create replaces one
// with the other in hostd, the previous image is kept before anything is touched, and a
// failed health check puts it back. `rollbackNow` is `dromedary rollback NAME`.

import { hex } from "../core/hex.js";
import { deflate } from "../commands/compress.js";
import type { UnikernelInfo } from "../commands/types.js";
import { nameToString, type Name } from "../core/name.js";
import { checkManifest, readSolo5Manifest } from "../solo5/elf.js";
import { EXIT } from "../core/exit.js";
import { HttpFailure, type Build, type Builder } from "./builder.js";
import { isEmptyDiff, renderDiff, type BuildDiff } from "./diff.js";
import { checkHealth, type HealthSpec } from "./health.js";
import { configWith, StoreError, type KeptConfig, type RollbackStore } from "./store.js";
import { TargetError, forceCreate, getImage, infos, type Target } from "./target.js";

/** What happened, for summaries, --json and the exit status. */
export type UpdateOutcome =
  | { readonly kind: "up-to-date"; readonly build: Build }
  | { readonly kind: "available"; readonly from: Build; readonly to: Build; readonly diff: BuildDiff | null }
  | { readonly kind: "declined"; readonly from: Build; readonly to: Build }
  | { readonly kind: "updated"; readonly from: Build; readonly to: Build; readonly digest: string }
  | { readonly kind: "rolled-back"; readonly from: Build; readonly to: Build; readonly reason: string }
  | { readonly kind: "failed"; readonly stage: string; readonly message: string; readonly exitCode: number; readonly state: "old" | "new" | "unknown" };

export const outcomeExit = (o: UpdateOutcome): number => (o.kind === "failed" ? o.exitCode : o.kind === "rolled-back" ? EXIT.REMOTE_FAILURE : EXIT.OK);

export interface UpdateContext {
  readonly target: Target;
  readonly builder: Builder;
  readonly store: RollbackStore;
  readonly name: Name;
  /** zlib level for the force-create image (0 = uncompressed) */
  readonly level: number;
  readonly dryRun: boolean;
  readonly health: HealthSpec;
  /** ask before deploying (a terminal without --yes); resolves true to go on */
  readonly confirm?: (question: string) => Promise<boolean>;
  /** a line of output (stdout); `event` is the --json form */
  readonly say: (text: string, event: Record<string, unknown>) => void;
  /** a warning (stderr) */
  readonly warn: (text: string) => void;
}

const compressor =
  (level: number) =>
  (b: Uint8Array): Uint8Array | null =>
    level > 0 ? deflate(b, level) : null;

function singleSolo5(list: readonly { info: UnikernelInfo }[]): UnikernelInfo | null {
  if (list.length !== 1) return null;
  const i = list[0]!.info;
  return i.typ === "solo5" ? i : null;
}

const failed = (stage: string, message: string, exitCode: number, state: "old" | "new" | "unknown"): UpdateOutcome => ({
  kind: "failed",
  stage,
  message,
  exitCode,
  state,
});

/** The digest running now (hex), or null when the unikernel is not running / the host does not answer. */
async function runningDigest(t: Target, name: Name): Promise<string | null> {
  try {
    const i = singleSolo5(await infos(t, name));
    return i ? hex(i.digest) : null;
  } catch {
    return null;
  }
}

/**
 * Put `image` with `config` back and check it runs; returns null on success or the reason.
 */
async function restore(c: UpdateContext, config: KeptConfig, image: Uint8Array, digest: string): Promise<string | null> {
  try {
    await forceCreate(c.target, c.name, configWith(config, image, compressor(c.level)));
  } catch (e) {
    return (e as Error).message;
  }
  const now = await runningDigest(c.target, c.name);
  return now === digest ? null : now === null ? "the restored unikernel is not running" : `the host runs ${now}, not ${digest}`;
}

export async function updateOne(c: UpdateContext): Promise<UpdateOutcome> {
  // 1. what runs
  let info: UnikernelInfo | null;
  try {
    info = singleSolo5(await infos(c.target, c.name));
  } catch (e) {
    // upstream: any error asking for the info is a communication failure (121)
    return failed("info", (e as Error).message, e instanceof TargetError && e.exitCode !== EXIT.CONNECT ? e.exitCode : EXIT.COMMUNICATION, "old");
  }
  if (!info) return failed("info", `unexpected reply: not exactly one solo5 unikernel named ${nameToString(c.name)}`, EXIT.COMMUNICATION, "old");
  const oldDigest = hex(info.digest);

  // 2. the builder: running build, latest build, the changes
  let from: Build;
  let to: Build;
  try {
    from = await c.builder.buildOfHash(oldDigest);
    to = await c.builder.latest(from.job);
  } catch (e) {
    return failed("builder", `error in HTTP interaction: ${(e as Error).message}`, EXIT.HTTP, "old");
  }
  if (from.build === to.build) {
    c.say("already up to date", { event: "up-to-date", job: from.job, build: from.build });
    return { kind: "up-to-date", build: from };
  }
  const compare = c.builder.compareUrl(from.build, to.build);
  c.say(`compare at ${compare}`, { event: "update-available", job: from.job, build: from.build, latest: to.build, compare });
  const diff = await c.builder.diff(from, to);
  if (diff instanceof Error) c.warn(`no package changes from the builder: ${diff.message}`);
  else {
    c.say(renderDiff(diff).join("\n"), { event: "changes", ...diff, empty: isEmptyDiff(diff) });
  }
  if (c.dryRun) return { kind: "available", from, to, diff: diff instanceof Error ? null : diff };

  // 3. the new image, checked before anything is touched
  let image: Uint8Array;
  let newDigest: string;
  try {
    ({ image, sha256: newDigest } = await c.builder.mainBinary(to));
  } catch (e) {
    return failed("download", `error in HTTP interaction: ${(e as Error).message}`, e instanceof HttpFailure ? EXIT.HTTP : EXIT.INTERNAL, "old");
  }
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
  if (mismatch !== null) return failed("manifest", `manifest failed: ${mismatch}`, EXIT.INTERNAL, "old");

  if (c.confirm && !(await c.confirm(`deploy ${to.job} build ${to.build} to ${nameToString(c.name)} on ${c.target.label}?`))) {
    c.say("not updated", { event: "declined" });
    return { kind: "declined", from, to };
  }

  // 4. keep the running image
  let previous: Uint8Array;
  try {
    previous = await getImage(c.target, c.name);
    await c.store.save(c.target.label, c.name, info, previous, from);
  } catch (e) {
    const code = e instanceof TargetError ? e.exitCode : EXIT.INTERNAL;
    return failed("keep", `could not keep the running image for a rollback, nothing changed: ${(e as Error).message}`, code, "old");
  }
  const kept = (await c.store.load(c.target.label, c.name))!.record.config;

  // 5. deploy
  let text: string;
  try {
    text = await forceCreate(c.target, c.name, configWith(kept, image, compressor(c.level)));
  } catch (e) {
    // A force-create refused before it destroyed anything leaves the old one; if the old one
    // is gone, put it back.
    const msg = (e as Error).message;
    const now = await runningDigest(c.target, c.name);
    if (now === oldDigest) return failed("deploy", msg, EXIT.REMOTE_FAILURE, "old");
    const r = await restore(c, kept, previous, oldDigest);
    if (r === null) {
      c.say(`rolled back to the previous image ${oldDigest}`, { event: "rolled-back", digest: oldDigest });
      return failed("deploy", msg, EXIT.REMOTE_FAILURE, "old");
    }
    return failed("deploy", `${msg}; restoring the previous image failed too: ${r}`, EXIT.INTERNAL, "unknown");
  }
  c.say(`host [unikernel: ${nameToString(c.name)}]: success: ${text}`, { event: "deployed", digest: newDigest, reply: text });
  try {
    await c.store.deployed(c.target.label, c.name, newDigest);
  } catch (e) {
    c.warn(`recording the deployed image failed: ${(e as Error).message}`);
  }

  // 6. health check, rollback
  if (c.health.seconds > 0) {
    c.say(`health check: ${c.health.seconds} s`, { event: "health-check", seconds: c.health.seconds });
    const h = await checkHealth(c.target, c.name, newDigest, c.health);
    if (!h.ok) {
      c.say(`health check failed: ${h.reason}; rolling back`, { event: "health-failed", reason: h.reason });
      const r = await restore(c, kept, previous, oldDigest);
      if (r !== null) return failed("rollback", `health check failed (${h.reason}) and the rollback failed: ${r}`, EXIT.INTERNAL, "unknown");
      c.say(`rolled back to the previous image ${oldDigest}`, { event: "rolled-back", digest: oldDigest });
      return { kind: "rolled-back", from, to, reason: h.reason };
    }
    c.say("health check passed", { event: "healthy" });
  }
  return { kind: "updated", from, to, digest: newDigest };
}

/** `dromedary rollback NAME`: force-create the kept previous image with its configuration. */
export async function rollbackNow(
  c: Pick<UpdateContext, "target" | "store" | "name" | "level" | "say" | "health">,
  o: { force: boolean; windowHours: number },
): Promise<number> {
  let kept;
  try {
    kept = await c.store.load(c.target.label, c.name);
  } catch (e) {
    throw new StoreError((e as Error).message);
  }
  if (kept === null)
    throw new StoreError(`no previous image of ${nameToString(c.name)} on ${c.target.label} kept (in ${c.store.where(c.target.label, c.name)})`);
  const { record, image } = kept;
  const age = (Date.now() - Date.parse(record.savedAt)) / 3_600_000;
  if (!o.force && !(age <= o.windowHours))
    throw new StoreError(`the previous image was kept ${age.toFixed(1)} hours ago, more than --window ${o.windowHours} (--force to roll back anyway)`);
  const now = await runningDigest(c.target, c.name);
  if (now === record.previousDigest) {
    c.say("already running the previous image", { event: "already-previous", digest: now });
    return EXIT.OK;
  }
  if (!o.force && (record.deployedDigest === null || now !== record.deployedDigest)) {
    throw new StoreError(
      `${nameToString(c.name)} runs ${now ?? "nothing"}, not the image the last update deployed (${record.deployedDigest ?? "none"}); --force to roll back anyway`,
    );
  }
  try {
    await forceCreate(c.target, c.name, configWith(record.config, image, compressor(c.level)));
  } catch (e) {
    throw new TargetError(`rollback: ${(e as Error).message}`, e instanceof TargetError ? e.exitCode : EXIT.INTERNAL);
  }
  const after = await runningDigest(c.target, c.name);
  if (after !== record.previousDigest) throw new TargetError(`rollback: the host runs ${after ?? "nothing"} afterwards`, EXIT.REMOTE_FAILURE);
  c.say(`rolled back to the previous image ${record.previousDigest}`, { event: "rolled-back", digest: record.previousDigest });
  return EXIT.OK;
}
