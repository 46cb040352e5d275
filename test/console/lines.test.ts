// The console line splitter (daemon.md §3 "FIFO reading algorithm").
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { initialSplitState, READ_SIZE, splitRead, splitReads, TRUNCATED_SUFFIX } from "../../src/console/lines.js";
import type { SplitState } from "../../src/console/lines.js";

const te = new TextEncoder();
const b = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0)); // latin1, byte-exact
const s = (u: Uint8Array): string => String.fromCharCode(...u);

/** Feed reads one by one; return all lines as latin1 strings and the final state. */
function feed(reads: readonly string[], state: SplitState = initialSplitState): { lines: string[]; state: SplitState } {
  const lines: string[] = [];
  let st = state;
  for (const r of reads) {
    const out = splitRead(st, b(r));
    st = out.state;
    lines.push(...out.lines.map(s));
  }
  return { lines, state: st };
}

const TRUNC = " [truncated]";

describe("console lines: splitRead", () => {
  it("splits complete lines and keeps the incomplete rest as slack", () => {
    const r = feed(["one\ntwo\nthr"]);
    assert.deepEqual(r.lines, ["one", "two"]);
    assert.equal(r.state.mode, "read");
    assert.equal(s(r.state.slack), "thr");
  });

  it("joins lines split across reads", () => {
    assert.deepEqual(feed(["hel", "lo\nwor", "ld", "\n"]).lines, ["hello", "world"]);
  });

  it("keeps \\r of CRLF line ends", () => {
    assert.deepEqual(feed(["a\r\nb\r", "\n"]).lines, ["a\r", "b\r"]);
  });

  it("keeps NUL bytes and invalid UTF-8 as raw bytes", () => {
    const out = splitRead(initialSplitState, Uint8Array.of(0x61, 0x00, 0x62, 0xff, 0xc3, 0x0a));
    assert.deepEqual(out.lines, [Uint8Array.of(0x61, 0x00, 0x62, 0xff, 0xc3)]);
  });

  it("discards empty lines", () => {
    assert.deepEqual(feed(["\n\n a\n\n", "\n", "b\n\n"]).lines, [" a", "b"]);
  });

  it("a 600-byte line: 512 bytes + ' [truncated]', the rest dropped up to the next newline", () => {
    const long = "x".repeat(511) + "y" + "z".repeat(88);
    const r = splitReads(initialSplitState, b(long + "\nnext\n"));
    assert.deepEqual(r.lines.map(s), ["x".repeat(511) + "y" + TRUNC, "next"]);
    assert.equal(r.lines[0]!.length, READ_SIZE + TRUNCATED_SUFFIX.length);
    assert.equal(r.state.mode, "read");
  });

  it("exactly 512 bytes without newline are truncated; 511 are kept as slack", () => {
    const t = feed(["a".repeat(512)]);
    assert.deepEqual(t.lines, ["a".repeat(512) + TRUNC]);
    assert.equal(t.state.mode, "drop");
    const k = feed(["a".repeat(511)]);
    assert.deepEqual(k.lines, []);
    assert.equal(k.state.slack.length, 511);
    assert.equal(k.state.mode, "read");
  });

  it("slack counts: 300 + 300 bytes without newline -> truncated at 512 of the joined data", () => {
    const r = feed(["a".repeat(300), "b".repeat(300), "c\nd\n"]);
    assert.deepEqual(r.lines, ["a".repeat(300) + "b".repeat(212) + TRUNC, "d"]);
  });

  it("upstream quirk: a line completed inside a read is not truncated even beyond 512 bytes", () => {
    const r = feed(["a".repeat(500), "b".repeat(400) + "\n"]);
    assert.deepEqual(r.lines, ["a".repeat(500) + "b".repeat(400)]);
  });

  it("drop mode lasts across reads until a newline, then splits the rest", () => {
    const r = feed(["q".repeat(512), "w".repeat(512), "e".repeat(100), "rest\nline1\nli", "ne2\n"]);
    assert.deepEqual(r.lines, ["q".repeat(512) + TRUNC, "line1", "line2"]);
  });

  it("drop mode: newline at the very end of a read switches back with empty slack", () => {
    const r = feed(["q".repeat(512), "zzz\n", "ok\n"]);
    assert.deepEqual(r.lines, ["q".repeat(512) + TRUNC, "ok"]);
  });

  it("lines and slack do not alias the read buffer", () => {
    const buf = b("abc\ndef");
    const out = splitRead(initialSplitState, buf);
    buf.fill(0x21);
    assert.equal(s(out.lines[0]!), "abc");
    assert.equal(s(out.state.slack), "def");
  });

  it("splitReads cuts a large buffer into 512-byte reads", () => {
    // 1000 bytes without newline: read 1 (512) is truncated, read 2 (488) is dropped.
    const r = splitReads(initialSplitState, b("m".repeat(1000) + "\nafter\n"));
    assert.deepEqual(r.lines.map(s), ["m".repeat(512) + TRUNC, "after"]);
    // the same bytes handed over as 100-byte reads: slack grows until 512 are joined
    const small: string[] = [];
    const all = "m".repeat(1000) + "\nafter\n";
    for (let i = 0; i < all.length; i += 100) small.push(all.slice(i, i + 100));
    assert.deepEqual(feed(small).lines, ["m".repeat(512) + TRUNC, "after"]);
  });

  it("UTF-8 text round-trips byte-exactly", () => {
    const out = splitRead(initialSplitState, te.encode("grüße 🐫\n"));
    assert.deepEqual(out.lines, [te.encode("grüße 🐫")]);
  });
});

/**
 * An independent model of upstream's OCaml loop, written on latin1 strings the way
 * albatross_console.ml does it (String.split_on_char, get_slack, filter empty).
 */
function model(reads: readonly string[]): string[] {
  let mode: "read" | "drop" = "read";
  let slack = "";
  const out: string[] = [];
  const getSlack = (lines: string[]): [string[], string] => (lines.length <= 1 ? [lines, ""] : [lines.slice(0, -1), lines[lines.length - 1]!]);
  for (const r of reads) {
    const data = slack !== "" ? slack + r : r;
    let lines: string[];
    if (mode === "drop") {
      const idx = data.indexOf("\n");
      if (idx < 0) {
        lines = [];
        slack = "";
      } else {
        [lines, slack] = getSlack(data.slice(idx).split("\n"));
        mode = "read";
      }
    } else {
      const parts = data.split("\n");
      if (parts.length === 1) {
        const x = parts[0]!;
        if (x.length >= 512) {
          mode = "drop";
          lines = [x.slice(0, 512) + TRUNC];
          slack = "";
        } else {
          lines = [];
          slack = x;
        }
      } else {
        [lines, slack] = getSlack(parts);
      }
    }
    out.push(...lines.filter((l) => l !== ""));
  }
  return out;
}

/** Random console output cut into reads of 1..512 bytes. */
const readsArb = fc
  .array(
    fc.oneof(
      fc.constant("\n"),
      fc.constant("\r\n"),
      fc.constant("\0"),
      fc.string({ unit: fc.constantFrom("a", "b", "\xff", " "), maxLength: 40 }),
      fc.integer({ min: 400, max: 1500 }).map((n) => "L".repeat(n)),
    ),
    { maxLength: 30 },
  )
  .chain((pieces) => {
    const text = pieces.join("");
    return fc.array(fc.integer({ min: 1, max: READ_SIZE }), { minLength: 1, maxLength: 40 }).map((sizes) => {
      const reads: string[] = [];
      let off = 0;
      let i = 0;
      while (off < text.length) {
        const n = sizes[i++ % sizes.length]!;
        reads.push(text.slice(off, off + n));
        off += n;
      }
      return reads;
    });
  });

describe("console lines: properties", () => {
  it("matches a model of upstream's loop for any cut into reads", () => {
    fc.assert(
      fc.property(readsArb, (reads) => {
        assert.deepEqual(feed(reads).lines, model(reads));
      }),
      { numRuns: 400, seed: 7 },
    );
  });

  it("output lines are never empty, never contain \\n, and are truncated only with the suffix", () => {
    fc.assert(
      fc.property(readsArb, (reads) => {
        for (const l of feed(reads).lines) {
          assert.ok(l.length > 0);
          assert.ok(!l.includes("\n"));
          if (l.length >= 512 && !l.endsWith(TRUNC)) assert.ok(l.length < 1024, "only lines completed within a read may pass 512 bytes");
        }
      }),
      { numRuns: 300, seed: 8 },
    );
  });

  it("lines shorter than 512 bytes come out unchanged however the bytes are cut", () => {
    const shortLines = fc.array(fc.string({ unit: fc.constantFrom("a", "\r", "\0", "\xe9"), maxLength: 200 }), { maxLength: 30 });
    fc.assert(
      fc.property(shortLines, fc.array(fc.integer({ min: 1, max: 512 }), { minLength: 1, maxLength: 20 }), (lines, sizes) => {
        const text = lines.map((l) => l + "\n").join("");
        const reads: string[] = [];
        for (let off = 0, i = 0; off < text.length; i++) {
          const n = sizes[i % sizes.length]!;
          reads.push(text.slice(off, off + n));
          off += n;
        }
        assert.deepEqual(
          feed(reads).lines,
          lines.filter((l) => l !== ""),
        );
      }),
      { numRuns: 300, seed: 9 },
    );
  });

  it("splitReads equals feeding 512-byte reads", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("x", "\n", "y"), maxLength: 3000 }), (text) => {
        const reads: string[] = [];
        for (let off = 0; off < text.length; off += READ_SIZE) reads.push(text.slice(off, off + READ_SIZE));
        assert.deepEqual(splitReads(initialSplitState, b(text)).lines.map(s), model(reads));
      }),
      { numRuns: 200, seed: 10 },
    );
  });
});
