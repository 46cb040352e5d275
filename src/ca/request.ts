// `--csr` mode of every command subcommand (cli.md §1.3): key `<dir>/<cn>.key` (reused or
// generated) and signing request `<dir>/<cn>.req` carrying the command.

import { join } from "node:path";
import { encodeCertExtension } from "../commands/codec.js";
import { WIRE_VERSION, type Command } from "../commands/types.js";
import { KeyError, generateKey, pathExists, readPrivateKeyFile, writeNewFile, writePrivateKeyFile, type KeyType } from "./keys.js";
import { ext } from "./x509.js";
import { CsrError, buildCsr, csrToPem } from "./csr.js";

class RequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RequestError";
  }
}

/**
 * A CN from which `<cn>.key` / `<cn>.req` / `<cn>.pem` may be derived: not empty, not `.` or
 * `..`, no `/` and no NUL. (Upstream fails on `.` when writing the key and with an uncaught
 * exception on the empty CN; we say why instead.) Returns the error text or null.
 */
export function fileNameProblem(cn: string): string | null {
  if (cn === "") return "the common name is empty, no file name can be derived from it";
  if (cn === "." || cn === "..") return `the common name ${JSON.stringify(cn)} is not usable as a file name`;
  if (cn.includes("/") || cn.includes("\0")) return `the common name ${JSON.stringify(cn)} contains a character not allowed in a file name`;
  return null;
}

const exists = (path: string): Promise<boolean> => pathExists(path, (m) => new RequestError(m));

export async function writeCommandRequest(opts: {
  cn: string;
  command: Command;
  keyType: KeyType;
  dir: string;
  keyPassword?: string;
  overwrite?: boolean;
}): Promise<{ keyFile: string; reqFile: string; reusedKey: boolean; replacedRequest: boolean }> {
  const bad = fileNameProblem(opts.cn);
  if (bad) throw new RequestError(bad);
  const keyFile = join(opts.dir, `${opts.cn}.key`);
  const reqFile = join(opts.dir, `${opts.cn}.req`);
  // Refuse before touching anything, so a refused run leaves no new key behind.
  const replacedRequest = await exists(reqFile);
  if (!opts.overwrite && replacedRequest) throw new RequestError(`${reqFile} already exists, not overwriting it`);
  const extension = encodeCertExtension({ version: WIRE_VERSION, command: opts.command });
  try {
    let key;
    let reusedKey = false;
    if (await exists(keyFile)) {
      key = await readPrivateKeyFile(keyFile, opts.keyPassword);
      reusedKey = true;
    } else {
      key = await generateKey(opts.keyType);
      await writePrivateKeyFile(keyFile, key, opts.keyPassword);
    }
    const der = await buildCsr(key, opts.cn, [ext.albatross(extension)]);
    await writeNewFile(reqFile, csrToPem(der), 0o644, opts.overwrite ?? false);
    return { keyFile, reqFile, reusedKey, replacedRequest };
  } catch (e) {
    if (e instanceof KeyError || e instanceof CsrError) throw new RequestError(e.message);
    throw e;
  }
}
