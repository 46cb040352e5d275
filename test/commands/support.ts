// Shared helpers for the codec tests: fixtures, hex, DecodeError assertions.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as assert from "node:assert/strict";
import { DecodeError } from "../../src/commands/der.js";

/** fixtures/vectors, from both test/commands (ts) and dist/test/commands (js). */
export const VECTORS = fileURLToPath(new URL(import.meta.url.includes("/dist/") ? "../../../fixtures/vectors/" : "../../fixtures/vectors/", import.meta.url));

export const readVector = (name: string): string => readFileSync(VECTORS + name, "utf8");

export function unhex(s: string): Uint8Array {
  const clean = s.replace(/[^0-9a-fA-F]/g, "");
  if (clean.length % 2) throw new Error("odd hex");
  return Uint8Array.from(clean.match(/../g) ?? [], (x) => parseInt(x, 16));
}

export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

export const b64vector = (name: string): Uint8Array => new Uint8Array(Buffer.from(readVector(name).trim(), "base64"));
export const hexVector = (name: string): Uint8Array => unhex(readVector(name));

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Assert that `f` throws a DecodeError whose message contains `needle`. */
export function throwsDecode(f: () => unknown, needle: string | RegExp): DecodeError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DecodeError, `expected a DecodeError, got ${caught === undefined ? "no error" : String(caught)}`);
  if (typeof needle === "string") assert.ok(caught.message.includes(needle), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(needle)}`);
  else assert.match(caught.message, needle);
  return caught;
}
