// Codec throughput: a create command carrying a 16 MiB (compressed) image, and a
// 10,000-entry state file, against zlib alone. Target: codec + zlib <= 1.2x zlib alone.
import { performance } from "node:perf_hooks";
import { deflate, inflate } from "../src/commands/compress.js";
import { decodeState, decodeWire, encodeState, encodeWire } from "../src/commands/codec.js";
import type { State, UnikernelConfig, Wire } from "../src/commands/types.js";
import { parseName } from "../src/core/name.js";

const TARGET = 1.2;

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

/** ~16 MiB resembling an ELF unikernel: code-like pseudo-random runs, text/tables, zero padding. */
function makeImage(size: number): Uint8Array {
  const rnd = prng(1);
  const img = new Uint8Array(size);
  const words = new TextEncoder().encode("mirage solo5 hvt console net block ocaml caml_alloc caml_call_gc tcpip dns resolver ");
  for (let off = 0; off < size; ) {
    const len = Math.min(size - off, 512 + Math.floor(rnd() * 16384));
    const kind = rnd();
    if (kind < 0.45) {
      // machine-code-like: random bytes with a skewed distribution (partly compressible)
      for (let i = 0; i < len; i++) img[off + i] = rnd() < 0.3 ? 0 : Math.floor(rnd() * rnd() * 256);
    } else if (kind < 0.75) {
      for (let i = 0; i < len; i++) img[off + i] = words[(off + i) % words.length]!;
    } else if (kind < 0.85) {
      for (let i = 0; i < len; i++) img[off + i] = Math.floor(rnd() * 256); // incompressible
    } // else: zero padding
    off += len;
  }
  return img;
}

function time<T>(f: () => T, runs: number): { ms: number; value: T } {
  let best = Infinity;
  let value!: T;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    value = f();
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, value };
}

const fmt = (ms: number) => `${ms.toFixed(1).padStart(8)} ms`;
function ratio(label: string, withCodec: number, alone: number): void {
  const r = withCodec / alone;
  console.log(`  ${label.padEnd(44)} ${r.toFixed(3)}x  (target <= ${TARGET}x: ${r <= TARGET ? "ok" : "MISSED"})`);
}

function config(image: Uint8Array, i: number): UnikernelConfig {
  return {
    typ: "solo5",
    compressed: true,
    image,
    startup: i % 100,
    addName: true,
    failBehaviour: i % 3 ? { kind: "quit" } : { kind: "restart", exitCodes: [1, 2] },
    cpuids: [i % 4],
    memory: 32 + (i % 8) * 32,
    blockDevices: i % 2 ? [{ name: "storage", device: `disk${i}` }] : [],
    bridges: [
      { netif: "service", bridge: "br0" },
      { netif: "management", bridge: "br1", mac: Uint8Array.of(2, 0, 0, 0, (i >> 8) & 255, i & 255) },
    ],
    argv: [new TextEncoder().encode(`--ipv4=10.0.${(i >> 8) & 255}.${i & 255}/16`), new TextEncoder().encode("-l *:info")],
    numcpus: 1,
  };
}

export async function run(): Promise<void> {
  const SIZE = 16 * 1024 * 1024;
  const image = makeImage(SIZE);
  const compressed = deflate(image, 9);
  console.log(`image ${SIZE} bytes -> ${compressed.length} bytes at level 9 (${((100 * compressed.length) / SIZE).toFixed(1)}%)`);

  const wireOf = (img: Uint8Array): Wire => ({
    header: { version: 5, sequence: 0n, name: parseName("tenant:webserver") },
    payload: { kind: "command", command: { kind: "unikernel-create", config: config(img, 1) } },
  });

  // Interleave the zlib-alone and codec+zlib runs so load changes on the shared machine
  // hit both alike; keep the best of each.
  const defl = { ms: Infinity };
  const enc = { ms: Infinity, value: new Uint8Array(0) };
  for (let i = 0; i < 4; i++) {
    defl.ms = Math.min(defl.ms, time(() => deflate(image, 9), 1).ms);
    const e = time(() => encodeWire(wireOf(deflate(image, 9))), 1);
    if (e.ms < enc.ms) Object.assign(enc, e);
  }
  const encOnly = time(() => encodeWire(wireOf(compressed)), 5);
  const bytes = enc.value;
  const infl = time(() => inflate(compressed, { maxBytes: SIZE }), 5);
  const dec = time(() => {
    const w = decodeWire(bytes);
    if (w.payload.kind !== "command" || w.payload.command.kind !== "unikernel-create") throw new Error("unexpected");
    return inflate(w.payload.command.config.image, { maxBytes: SIZE });
  }, 5);
  const decOnly = time(() => decodeWire(bytes), 5);
  console.log("create with a 16 MiB image:");
  console.log(`  deflate(level 9) alone              ${fmt(defl.ms)}`);
  console.log(`  deflate + encodeWire                ${fmt(enc.ms)}   (encodeWire alone ${fmt(encOnly.ms)})`);
  console.log(`  inflate alone                       ${fmt(infl.ms)}`);
  console.log(`  decodeWire + inflate                ${fmt(dec.ms)}   (decodeWire alone ${fmt(decOnly.ms)})`);
  // The machine is shared: besides the measured combined runs, also give the ratio built
  // from the best time of each part, which is less sensitive to noise.
  ratio("(encodeWire + deflate) / deflate, measured", enc.ms, defl.ms);
  ratio("(encodeWire + deflate) / deflate, from parts", defl.ms + encOnly.ms, defl.ms);
  ratio("(decodeWire + inflate) / inflate, measured", dec.ms, infl.ms);
  ratio("(decodeWire + inflate) / inflate, from parts", infl.ms + decOnly.ms, infl.ms);

  // --- 10,000-entry state file ---
  const rnd = prng(7);
  const N = 10_000;
  const smallImage = (i: number) => Uint8Array.from({ length: 256 }, (_, k) => (i * 31 + k * 7) & 0xff);
  const unikernels = Array.from({ length: N }, (_, i) => ({
    name: parseName(`tenant${Math.floor(rnd() * 100)}:team${i % 10}:unikernel-${i}`),
    config: config(smallImage(i), i),
  }));
  const policies = [parseName(":"), ...Array.from({ length: 100 }, (_, i) => parseName(`tenant${i}:`))].map((name) => ({
    name,
    policy: { unikernels: 100n, cpuids: [0, 1, 2, 3], memory: 65536, block: 100000, bridges: ["br0", "br1"] },
  }));
  const state: State = { unikernels, policies };
  const sEnc = time(() => encodeState(state), 5);
  const stateBytes = sEnc.value;
  const sDefl = time(() => deflate(stateBytes, 6), 5);
  const sDec = time(() => decodeState(stateBytes), 5);
  const sInfl = time(() => inflate(sDefl.value, { maxBytes: stateBytes.length }), 5);
  console.log(`state file: ${N} unikernels + ${policies.length} policies, ${stateBytes.length} bytes:`);
  console.log(`  encodeState ${fmt(sEnc.ms)}   deflate(level 6) of the same bytes ${fmt(sDefl.ms)}   ratio ${(sEnc.ms / sDefl.ms).toFixed(2)}x`);
  console.log(`  decodeState ${fmt(sDec.ms)}   inflate of the same bytes          ${fmt(sInfl.ms)}   ratio ${(sDec.ms / sInfl.ms).toFixed(2)}x`);
  // A persisted state file is not compressed; these ratios only put the structured codec's
  // cost next to zlib's on the same bytes (per entry: see the times above / 10,000).
  ratio("(encodeState + deflate) / deflate", sEnc.ms + sDefl.ms, sDefl.ms);
  ratio("(decodeState + inflate) / inflate", sDec.ms + sInfl.ms, sInfl.ms);
  console.log(`  per entry: encode ${((1000 * sEnc.ms) / N).toFixed(2)} us, decode ${((1000 * sDec.ms) / N).toFixed(2)} us`);
  console.log("  (the structure alone cannot approach inflate's memcpy-like speed; what the target is about");
  console.log("   is the codec's share next to the zlib work on the images a state file carries:)");

  // --- the same 10,000 entries carrying compressed images, as albatross stores them ---
  // The daemon keeps every image exactly as received (compressed by the client) and, on
  // restore, decodes the state file and inflates each image. 32 KiB per image keeps the run
  // short (320 MiB in all); real unikernels are 1-10 MiB, which only lowers the codec's share.
  const IMG = 32 * 1024;
  const variants = Array.from({ length: 16 }, (_, v) => {
    const raw = makeImage(IMG + v);
    return { raw, z: deflate(raw, 9) };
  });
  const withImages: State = {
    unikernels: unikernels.map((u, i) => ({ name: u.name, config: { ...u.config, compressed: true, image: variants[i % 16]!.z } })),
    policies,
  };
  const wEnc = time(() => encodeState(withImages), 3);
  const wBytes = wEnc.value;
  const inflateAll = (imgs: readonly Uint8Array[]) => {
    let n = 0;
    for (const z of imgs) n += inflate(z, { maxBytes: IMG + 16 }).length;
    return n;
  };
  const images = withImages.unikernels.map((u) => u.config.image);
  const wInfl = time(() => inflateAll(images), 3);
  const wRestore = time(() => {
    const { state } = decodeState(wBytes);
    return inflateAll(state.unikernels.map((u) => u.config.image));
  }, 3);
  const wDec = time(() => decodeState(wBytes), 3);
  console.log(`state file with ${N} compressed ${IMG / 1024} KiB images (${(wBytes.length / 2 ** 20).toFixed(0)} MiB), the restore path:`);
  console.log(`  inflate every image alone           ${fmt(wInfl.ms)}`);
  console.log(`  decodeState + inflate every image   ${fmt(wRestore.ms)}   (decodeState alone ${fmt(wDec.ms)}, encodeState ${fmt(wEnc.ms)})`);
  ratio("(decodeState + inflate) / inflate, measured", wRestore.ms, wInfl.ms);
  ratio("(decodeState + inflate) / inflate, from parts", wInfl.ms + wDec.ms, wInfl.ms);
}
