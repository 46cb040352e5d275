// Passwords for keys at rest: from a file (`--key-password-file`), or asked for on a terminal.

import { promises as fs } from "node:fs";
import { createInterface } from "node:readline";
import { isEncryptedPem } from "./keys.js";

export class PasswordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PasswordError";
  }
}

/** The first line of `file` (without its line ending). An empty password is refused. */
async function readPasswordFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (e) {
    throw new PasswordError(`cannot read password file ${file}: ${(e as Error).message.split("\n")[0]}`);
  }
  const pw = text.split(/\r?\n/, 1)[0] ?? "";
  if (pw === "") throw new PasswordError(`password file ${file} is empty`);
  return pw;
}

const interactive = (): boolean => Boolean(process.stdin.isTTY);

/** Ask on the terminal without echo (prompt on stderr). */
async function promptPassword(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // readline echoes typed characters through _writeToOutput; silence it while reading.
  const r = rl as unknown as { _writeToOutput: (s: string) => void };
  let muted = false;
  r._writeToOutput = (s: string) => {
    if (!muted) process.stderr.write(s);
  };
  try {
    process.stderr.write(question);
    muted = true;
    return await new Promise<string>((resolve) => rl.question("", resolve));
  } finally {
    muted = false;
    rl.close();
    process.stderr.write("\n");
  }
}

/**
 * Password for a NEW key: the file's, else (terminal only) asked twice; empty means
 * "store unencrypted" (albatross compatibility). Not a terminal and no file: unencrypted.
 */
export async function newKeyPassword(file: string | undefined, keyFile: string): Promise<string | undefined> {
  if (file !== undefined) return readPasswordFile(file);
  if (!interactive()) return undefined;
  const a = await promptPassword(`password to encrypt ${keyFile} (empty: store unencrypted): `);
  if (a === "") return undefined;
  const b = await promptPassword(`repeat the password for ${keyFile}: `);
  if (a !== b) throw new PasswordError("the passwords differ");
  return a;
}

/** Password for an EXISTING key file, if it is encrypted: the file's, else asked (terminal only). */
export async function existingKeyPassword(file: string | undefined, keyFile: string): Promise<string | undefined> {
  if (file !== undefined) return readPasswordFile(file);
  let pem: string;
  try {
    pem = await fs.readFile(keyFile, "utf8");
  } catch {
    return undefined; // the caller reports the unreadable key
  }
  if (!isEncryptedPem(pem)) return undefined;
  if (!interactive()) throw new PasswordError(`${keyFile} is encrypted: give --key-password-file`);
  return promptPassword(`password for ${keyFile}: `);
}
