import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { toJson } from "../../src/commands/show.js";
import { parseName, rootName } from "../../src/core/name.js";
import { utf8 } from "./support.js";

describe("toJson", () => {
  it("converts bigints, dates, names, macs and bytes", () => {
    const v = {
      unikernels: (1n << 62n) - 1n,
      small: 12n,
      neg: -(1n << 60n),
      when: new Date("2025-08-22T13:04:43.123Z"),
      name: parseName("foo:bar"),
      root: rootName,
      path: parseName("foo:"),
      mac: Uint8Array.of(0, 0x80, 0x41, 0x9a, 0x6f, 0x39),
      line: utf8("héllo\tworld"),
      control: utf8("a\u0007b"),
      binary: Uint8Array.of(0xff, 0x00),
      absent: undefined,
      list: [1n, { mac: Uint8Array.of(1, 2, 3) }],
      bad: new Date(NaN),
    };
    assert.deepEqual(JSON.parse(JSON.stringify(toJson(v))), {
      unikernels: "4611686018427387903",
      small: 12,
      neg: "-1152921504606846976",
      when: "2025-08-22T13:04:43.123Z",
      name: "foo:bar",
      root: ":",
      path: "foo:",
      mac: "00:80:41:9a:6f:39",
      line: "héllo\tworld",
      control: { hex: "610762" },
      binary: { hex: "ff00" },
      list: [1, { mac: { hex: "010203" } }],
      bad: null,
    });
  });

  it("policy unikernels, console budget and sequence are strings whatever their value; other bigints numbers when exact", () => {
    const small = { header: { sequence: 0n }, policy: { unikernels: 16n, memory: 64 }, budget: 1n, rss: 5n };
    const big = { header: { sequence: 1n << 62n }, policy: { unikernels: (1n << 62n) - 1n, memory: 64 }, budget: (1n << 62n) - 1n, rss: 1n << 60n };
    assert.deepEqual(toJson(small), { header: { sequence: "0" }, policy: { unikernels: "16", memory: 64 }, budget: "1", rss: 5 });
    assert.deepEqual(toJson(big), {
      header: { sequence: "4611686018427387904" },
      policy: { unikernels: "4611686018427387903", memory: 64 },
      budget: "4611686018427387903",
      rss: "1152921504606846976",
    });
  });

  it("leaves objects that merely look like names alone", () => {
    assert.deepEqual(toJson({ path: ["a"], label: null, extra: 1 }), { path: ["a"], label: null, extra: 1 });
  });
});
