// `dromedary install-units`, the effectful side: read the templates shipped in
// packaging/systemd/, look at what is on disk, write (temp file, fsync, rename) what the plan
// in units.ts says. Nothing is written when any file is in conflict.
import {
  accessSync,
  closeSync,
  constants as FS,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkUnitPath,
  execCommand,
  planFiles,
  renderUnit,
  SYSTEMD_DEFAULT_PATH,
  SYSUSERS_FILE,
  SYSUSERS_TEMPLATE,
  withHeader,
  type PlannedFile,
} from "./units.js";

export class InstallError extends Error {}

/** The installed package's root: the directory above this module holding dromedary's package.json. */
function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === "dromedary") return dir;
      } catch {
        // not ours; keep looking
      }
    }
    if (dirname(dir) === dir) throw new InstallError(`no dromedary package.json above ${from}`);
  }
}

function packageVersion(root: string = packageRoot()): string {
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
}

const templateDir = (root: string = packageRoot()): string => join(root, "packaging", "systemd");

/**
 * The `dromedary` to name in ExecStart=: the command this process was started as when that is
 * the package's own bin/dromedary.cjs (e.g. npm's /usr/bin/dromedary symlink), else that file.
 */
export function defaultBin(root: string = packageRoot(), argv1: string | undefined = process.argv[1]): string {
  const own = join(root, "bin", "dromedary.cjs");
  if (argv1 !== undefined) {
    try {
      if (realpathSync(argv1) === realpathSync(own)) return resolve(argv1);
    } catch {
      // fall through
    }
  }
  return own;
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, FS.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether `env node` (the bin's interpreter line) finds a node on systemd's default PATH. */
function nodeOnSystemdPath(): boolean {
  return SYSTEMD_DEFAULT_PATH.some((d) => isExecutableFile(join(d, "node")));
}

export interface InstallOptions {
  readonly unitDir: string;
  readonly sysusersDir: string;
  readonly bin: string;
  readonly force: boolean;
  readonly dryRun: boolean;
  /** default: nodeOnSystemdPath() */
  readonly nodeOnPath?: boolean;
  readonly nodePath?: string;
  readonly root?: string;
}

export interface InstallResult {
  readonly files: readonly PlannedFile[];
  /** ExecStart='s program (and node before it when needed) */
  readonly exec: string;
  readonly sysusersFile: string;
  readonly written: boolean;
  readonly warnings: readonly string[];
}

function readOrNull(p: string): string | null {
  try {
    return readFileSync(p, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new InstallError(`cannot read ${p}: ${(e as Error).message}`);
  }
}

function writeAtomically(path: string, content: string): void {
  const tmp = join(dirname(path), `.${path.slice(dirname(path).length + 1)}.tmp.${process.pid}`);
  const fd = openSync(tmp, FS.O_WRONLY | FS.O_CREAT | FS.O_TRUNC, 0o644);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function checkDir(dir: string, what: string, mustExist: boolean): void {
  try {
    if (!statSync(dir).isDirectory()) throw new InstallError(`${what} ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof InstallError) throw e;
    if (mustExist) throw new InstallError(`${what} ${dir} does not exist`);
  }
}

export function installUnits(o: InstallOptions): InstallResult {
  const root = o.root ?? packageRoot();
  const problem = checkUnitPath(o.bin, "--bin");
  if (problem !== null) throw new InstallError(problem);
  if (!isExecutableFile(o.bin)) throw new InstallError(`--bin ${o.bin} is not an executable file`);
  const nodePath = o.nodePath ?? process.execPath;
  const onPath = o.nodeOnPath ?? nodeOnSystemdPath();
  const warnings: string[] = [];
  if (!onPath) {
    const p = checkUnitPath(nodePath, "node");
    if (p !== null) throw new InstallError(`node is not on systemd's PATH and ${p}`);
    warnings.push(`node is not in ${SYSTEMD_DEFAULT_PATH.join(":")} (systemd's PATH), so ExecStart= runs ${nodePath} ${o.bin}`);
  }
  for (const p of [o.bin, nodePath]) {
    if (/^\/(home|root|run\/user)(\/|$)/.test(p) && (p === o.bin || !onPath)) {
      warnings.push(
        `${p} is under /home, /root or /run/user, which the units hide (ProtectHome=yes): install dromedary and node elsewhere (e.g. npm install -g)`,
      );
    }
  }
  const exec = execCommand(o.bin, onPath, nodePath);
  const version = packageVersion(root);
  const dir = templateDir(root);
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => /^dromedary-[a-z]+\.(service|socket)$/.test(n))
      .sort();
  } catch (e) {
    throw new InstallError(`cannot read the unit templates in ${dir}: ${(e as Error).message}`);
  }
  if (names.length === 0) throw new InstallError(`no unit templates in ${dir}`);
  checkDir(o.unitDir, "unit directory", !o.dryRun);
  checkDir(o.sysusersDir, "sysusers directory", false);
  const sysusersFile = join(o.sysusersDir, SYSUSERS_FILE);
  const wanted = [
    ...names.map((n) => ({ path: join(o.unitDir, n), content: renderUnit(n, readFileSync(join(dir, n), "utf8"), exec, version) })),
    { path: sysusersFile, content: withHeader(SYSUSERS_TEMPLATE, readFileSync(join(dir, SYSUSERS_TEMPLATE), "utf8"), version) },
  ];
  const files = planFiles(
    wanted.map((w) => ({ ...w, existing: readOrNull(w.path) })),
    o.force,
  );
  const conflict = files.some((f) => f.action.kind === "conflict");
  if (o.dryRun || conflict) return { files, exec, sysusersFile, written: false, warnings };
  for (const f of files) {
    if (f.action.kind === "unchanged") continue;
    try {
      // /etc/sysusers.d may not exist yet on a system that never used it (its parent must)
      if (f.path === sysusersFile && !existsSync(o.sysusersDir)) mkdirSync(o.sysusersDir, { mode: 0o755 });
      writeAtomically(f.path, f.content);
    } catch (e) {
      throw new InstallError(`cannot write ${f.path}: ${(e as Error).message}`);
    }
  }
  return { files, exec, sysusersFile, written: true, warnings };
}
