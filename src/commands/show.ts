// Plain-JSON view of model values, used by every `--json` output. Pure.
//
//   bigint      -> in the fields of STRING_FIELDS (64-bit limits and identifiers: policy
//                  `unikernels`, whose root value is 2^62-1, a console `budget`, a header's
//                  `sequence`) always its decimal string, whatever the value, so a field
//                  never changes type; any other (statistics counters, times): a number
//                  when it is a safe integer (below 2^53), else its decimal string (never
//                  an inexact number)
//   Uint8Array  -> a 6-byte field named `mac`: "xx:xx:xx:xx:xx:xx";
//                  otherwise a string when the bytes are valid, printable UTF-8,
//                  else { "hex": "..." }
//   Date        -> ISO 8601 string (null for an invalid date)
//   Name        -> its text form (`foo:bar`, `:`) via nameToString
//   undefined object fields are omitted; arrays and plain objects are converted deeply.

import { nameToString, type Name } from "../core/name.js";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function isName(v: object): v is Name {
  const o = v as { path?: unknown; label?: unknown };
  if (!Array.isArray(o.path) || !(o.label === null || typeof o.label === "string")) return false;
  const keys = Object.keys(v);
  return keys.length === 2 && o.path.every((l) => typeof l === "string");
}

/** C0 controls other than tab/newline/carriage return, DEL and C1 controls are not printable. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the class names exactly the control characters
const NON_PRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

function bytesToHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

function macToString(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}

function bytesToJson(b: Uint8Array, key: string | undefined): unknown {
  if (key === "mac" && b.length === 6) return macToString(b);
  try {
    const s = strictUtf8.decode(b);
    if (!NON_PRINTABLE.test(s)) return s;
  } catch {
    // not UTF-8: fall through to hex
  }
  return { hex: bytesToHex(b) };
}

/** bigint fields that are always JSON strings (see above) */
const STRING_FIELDS: ReadonlySet<string> = new Set(["unikernels", "budget", "sequence"]);

function convert(v: unknown, key: string | undefined): unknown {
  switch (typeof v) {
    case "bigint":
      if (key !== undefined && STRING_FIELDS.has(key)) return v.toString();
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "string":
    case "boolean":
      return v;
    case "undefined":
    case "function":
    case "symbol":
      return null;
    case "object":
      break;
  }
  if (v === null) return null;
  if (v instanceof Uint8Array) return bytesToJson(v, key);
  if (v instanceof Date) return Number.isFinite(v.getTime()) ? v.toISOString() : null;
  if (Array.isArray(v)) return v.map((x) => convert(x, undefined));
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), convert(x, String(k))]));
  if (v instanceof Set) return [...v].map((x) => convert(x, undefined));
  if (isName(v)) return nameToString(v);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue;
    out[k] = convert(x, k);
  }
  return out;
}

/** Convert any value of the model (types.ts) into plain JSON-serialisable data. */
export function toJson(v: unknown): unknown {
  return convert(v, undefined);
}
