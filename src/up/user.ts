// `dromedary up --user NAME`: who the unprivileged daemons run as, and the runtime directories
// made ready for that user and its group, as the systemd units do it (hostd runs as root in
// that group; the FIFOs and sockets are the group's; packaging/systemd/dromedary-hostd.service).
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { FIFO_DIR_MODE, fifoDir } from "../hostd/paths.js";
import { socketDir } from "../transport/routes.js";

export interface RunAs {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** A passwd(5) line (getent's output): the name, uid and primary gid; null if it is not one. */
export function parsePasswd(line: string): RunAs | null {
  const f = line.trim().split(":");
  if (f.length < 7) return null;
  const [name, , uid, gid] = f;
  if (!/^[0-9]+$/.test(uid!) || !/^[0-9]+$/.test(gid!) || name === "") return null;
  return { name: name!, uid: Number(uid), gid: Number(gid) };
}

/**
 * The user `name` through the system's user database (getent: /etc/passwd, and whatever
 * nsswitch.conf adds, which Node cannot ask itself); null if there is no such user.
 */
export function lookupUser(name: string): RunAs | null {
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name)) return null;
  let out: string;
  try {
    out = execFileSync("getent", ["passwd", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 });
  } catch {
    return null; // exit 2: no such user
  }
  const u = parsePasswd(out.split("\n")[0] ?? "");
  return u !== null && u.name === name ? u : null;
}

/** Whether `u` may enter directory `dir` (its mode bits; ACLs are not looked at). */
export function searchable(dir: string, u: RunAs): boolean {
  const st = statSync(dir);
  if (u.uid === 0) return true;
  if (st.uid === u.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === u.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/**
 * `<tmpdir>/util` (the daemons' sockets) and `<tmpdir>/fifo` (the consoles' FIFOs) made the
 * group's, mode 2770 as hostd makes `fifo` (setgid: what is made in them is the group's too); FIFOs already there
 * (left by albatross, say) become the group's. Returns what it created.
 */
export function prepareRuntimeDirs(tmpdir: string, u: RunAs): string[] {
  const created: string[] = [];
  const fifo = fifoDir(tmpdir);
  for (const dir of [socketDir(tmpdir), fifo]) {
    try {
      statSync(dir);
    } catch {
      mkdirSync(dir, { recursive: true });
      created.push(dir);
    }
    chownSync(dir, 0, u.gid);
    chmodSync(dir, FIFO_DIR_MODE);
  }
  for (const f of readdirSync(fifo)) chownSync(join(fifo, f), -1, u.gid);
  return created;
}
