// Listening on a daemon's Unix socket (`<tmpdir>/util/<name>.sock`) or on the socket
// systemd passed (socket activation): the one place for the stale-socket removal and the
// umask that lets the socket's group (albatross) connect.

import { promises as fsp } from "node:fs";
import type net from "node:net";
import { dirname } from "node:path";

/**
 * Upstream listens with backlog 1. Node's Unix-socket connect is non-blocking, and on Linux
 * a full backlog makes it fail with EAGAIN instead of waiting, so a burst of clients would
 * see spurious connect errors. Deviation: a modest backlog.
 */
const UNIX_LISTEN_BACKLOG = 16;

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function listen(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once("error", onError);
    server.listen(options, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/**
 * Listen on `path` (its directory is created; a stale socket file is removed). The socket
 * is bound with the group bits unmasked (upstream: umask (old land 0o707)) so that the
 * socket's group may connect. The bind happens synchronously inside listen().
 */
export async function listenUnix(server: net.Server, path: string): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true });
  try {
    await fsp.unlink(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") throw new Error(`cannot remove ${path}: permission denied (is the daemon running as the right user?)`);
    if (code !== "ENOENT") throw new Error(`cannot remove ${path}: ${errText(e)}`);
  }
  const old = process.umask(0o022);
  process.umask(old & 0o707);
  try {
    const p = listen(server, { path, backlog: UNIX_LISTEN_BACKLOG });
    process.umask(old);
    await p;
  } finally {
    process.umask(old);
  }
}

/** Listen on an inherited, already listening socket (systemd socket activation, fd 3). */
export function listenInherited(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once("error", onError);
    server.listen({ fd }, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
