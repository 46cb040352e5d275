// Mutation fuzzing (seeded, deterministic): real vectors and encoded samples are bit-
// flipped, truncated, extended and spliced; every decoder must either return a value or
// throw DecodeError (never TypeError/RangeError, never hang), and a value decoded from a
// mutation must re-encode to bytes that decode to the same value (modulo SET OF order and
// state entry order, which the encoder canonicalises).
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import fc from "fast-check";
import * as codec from "../../src/commands/codec.js";
import { DecodeError } from "../../src/commands/der.js";
import * as A from "./arbitraries.js";
import { VECTORS, b64vector, hexVector } from "./support.js";

/** mulberry32: tiny seeded PRNG */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Target {
  readonly name: string;
  decode(b: Uint8Array): unknown;
  encode(v: unknown): Uint8Array;
  /** what a successful re-decode must equal */
  expect(v: unknown): unknown;
}

function target<T>(name: string, decode: (b: Uint8Array) => T, encode: (v: T) => Uint8Array): Target {
  return { name, decode, encode: encode as (v: unknown) => Uint8Array, expect: (v) => A.canonicalValue(v) };
}

const targets: Target[] = [
  target("wire", codec.decodeWire, codec.encodeWire),
  target("header", codec.decodeHeader, codec.encodeHeader),
  target("command", codec.decodeCommand, codec.encodeCommand),
  target("success", codec.decodeSuccess, codec.encodeSuccess),
  target("data", codec.decodeData, codec.encodeData),
  target("policy", codec.decodePolicy, codec.encodePolicy),
  target("config", codec.decodeUnikernelConfig, codec.encodeUnikernelConfig),
  target("arguments", codec.decodeUnikernelArguments, codec.encodeUnikernelArguments),
  target("info", codec.decodeUnikernelInfo, codec.encodeUnikernelInfo),
  target("extension", codec.decodeCertExtension, codec.encodeCertExtension),
  {
    name: "state",
    decode: codec.decodeState,
    encode: (v) => codec.encodeState((v as ReturnType<typeof codec.decodeState>).state),
    expect: (v) => ({ state: A.canonicalValue((v as ReturnType<typeof codec.decodeState>).state), version: 6 }),
  },
];

function samples(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const f of readdirSync(VECTORS)) {
    if (f.startsWith("state-") && f.endsWith(".b64")) out.push(b64vector(f));
    if (f.endsWith(".hex")) out.push(hexVector(f));
  }
  const opts = { seed: 4242, numRuns: 40 };
  out.push(...fc.sample(A.arbWire, opts).map(codec.encodeWire));
  out.push(...fc.sample(A.arbState, { ...opts, numRuns: 10 }).map(codec.encodeState));
  out.push(...fc.sample(A.arbCertExtension, { ...opts, numRuns: 10 }).map(codec.encodeCertExtension));
  out.push(...fc.sample(A.arbUnikernelConfig, { ...opts, numRuns: 10 }).map(codec.encodeUnikernelConfig));
  out.push(...fc.sample(A.arbSuccess, { ...opts, numRuns: 20 }).map(codec.encodeSuccess));
  out.push(...fc.sample(A.arbData, { ...opts, numRuns: 10 }).map(codec.encodeData));
  return out;
}

function mutate(src: Uint8Array, pool: Uint8Array[], rnd: () => number): Uint8Array {
  const int = (n: number) => Math.floor(rnd() * n);
  let b = Uint8Array.from(src);
  const steps = 1 + int(3);
  for (let s = 0; s < steps; s++) {
    const pos = b.length ? int(b.length) : 0;
    switch (int(7)) {
      case 0: // flip a bit
        if (b.length) b[pos]! ^= 1 << int(8);
        break;
      case 1: // random byte, biased to interesting values
        if (b.length) b[pos] = [0x00, 0x80, 0xff, 0x30, 0xa0, 0x02, 0x04, 0x0c, 0x7f, int(256)][int(10)]!;
        break;
      case 2: // truncate
        b = b.subarray(0, int(b.length + 1));
        break;
      case 3: // extend with random bytes
        b = Uint8Array.from([...b, ...Array.from({ length: 1 + int(8) }, () => int(256))]);
        break;
      case 4: // delete a range
        b = Uint8Array.from([...b.subarray(0, pos), ...b.subarray(pos + 1 + int(8))]);
        break;
      case 5: {
        // splice in a piece of another sample
        const o = pool[int(pool.length)]!;
        const from = int(o.length + 1);
        const piece = o.subarray(from, from + 1 + int(24));
        b = Uint8Array.from([...b.subarray(0, pos), ...piece, ...b.subarray(pos + int(4))]);
        break;
      }
      case 6: // nudge a byte (lengths, tags, integers)
        if (b.length) b[pos] = (b[pos]! + (rnd() < 0.5 ? 1 : 255)) & 0xff;
        break;
    }
  }
  return b;
}

describe("mutation fuzz", () => {
  it("decoders only return values or throw DecodeError; re-encodings are stable", () => {
    const pool = samples();
    const rnd = prng(0xa1ba7055);
    let decoded = 0;
    const ITERATIONS = 6000;
    for (let i = 0; i < ITERATIONS; i++) {
      const input = mutate(pool[i % pool.length]!, pool, rnd);
      for (const t of targets) {
        let v: unknown;
        try {
          v = t.decode(input);
        } catch (e) {
          if (!(e instanceof DecodeError)) {
            assert.fail(`${t.name} threw ${String(e)} on ${Buffer.from(input).toString("hex")}`);
          }
          assert.ok(e.message.length < 300 && !e.message.includes("\n"), `one short line: ${e.message}`);
          continue;
        }
        decoded++;
        let again: Uint8Array;
        try {
          again = t.encode(v);
        } catch (e) {
          assert.fail(`${t.name}: re-encoding a decoded value threw ${String(e)} (input ${Buffer.from(input).toString("hex")})`);
        }
        assert.deepEqual(t.decode(again), t.expect(v), `${t.name} on ${Buffer.from(input).toString("hex")}`);
      }
    }
    if (process.env.FUZZ_VERBOSE) console.log(`decoded ${decoded} of ${ITERATIONS * targets.length}`);
    // the mutations must not be so destructive that nothing decodes
    assert.ok(decoded > ITERATIONS / 40, `only ${decoded} mutations decoded`);
  });

  it("every truncation of every sample is a DecodeError, never a crash", () => {
    for (const s of samples().slice(0, 60)) {
      for (let n = 0; n < s.length; n++) {
        for (const t of targets) {
          try {
            t.decode(s.subarray(0, n));
          } catch (e) {
            assert.ok(e instanceof DecodeError, `${t.name}: ${String(e)}`);
          }
        }
      }
    }
  });
});
