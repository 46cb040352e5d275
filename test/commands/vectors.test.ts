// Real albatross vectors (fixtures/vectors/README.md), the state files S1..S9 of
// policy.md §13.5, and the derived examples of wire.md §14.2.
import "reflect-metadata";
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { X509Certificate } from "@peculiar/x509";
import {
  ALBATROSS_OID,
  decodeCertExtension,
  decodeState,
  decodeWire,
  encodeCertExtension,
  encodeState,
  encodeWire,
  type State,
  type UnikernelConfig,
  type Wire,
} from "../../src/commands/index.js";
import { compareLabels, nameLabels, nameToString, parseName, rootName } from "../../src/core/name.js";
import { b64vector, hex, hexVector, readVector, unhex, utf8 } from "./support.js";

const consoleFoo: Wire = {
  header: { version: 5, sequence: 0n, name: parseName(":foo") },
  payload: { kind: "command", command: { kind: "console-subscribe", sinceCount: { kind: "count", count: 20 } } },
};

describe("wire vectors", () => {
  it("wire-console-subscribe-foo decodes and re-encodes byte-identically", () => {
    const bytes = hexVector("wire-console-subscribe-foo.hex");
    assert.equal(bytes.length, 34);
    const w = decodeWire(bytes);
    assert.deepEqual(w, consoleFoo);
    assert.deepEqual(w.header.name, { path: [], label: "foo" });
    assert.equal(hex(encodeWire(w)), hex(bytes));
  });

  it("wire-console-subscribe-foo.bar: the dot is part of the label", () => {
    const bytes = hexVector("wire-console-subscribe-foo.bar.hex");
    const w = decodeWire(bytes);
    assert.deepEqual(w, { ...consoleFoo, header: { ...consoleFoo.header, name: { path: [], label: "foo.bar" } } });
    assert.equal(hex(encodeWire(w)), hex(bytes));
  });
});

function albatrossExtension(pem: string): { critical: boolean; value: Uint8Array } | null {
  const cert = new X509Certificate(pem);
  const ext = cert.getExtension(ALBATROSS_OID);
  return ext ? { critical: ext.critical, value: new Uint8Array(ext.value) } : null;
}

describe("certificate extension vectors", () => {
  for (const leaf of ["console-foo", "console-foo.bar"]) {
    it(`ext-${leaf}-leaf.hex equals the extension of the PEM and decodes to console subscribe count 20`, () => {
      const fromHex = hexVector(`ext-${leaf}-leaf.hex`);
      const ext = albatrossExtension(readVector(`cert-${leaf}-leaf.pem`));
      assert.ok(ext, "leaf carries the albatross extension");
      assert.equal(ext.critical, false);
      assert.equal(hex(ext.value), hex(fromHex));
      const decoded = decodeCertExtension(fromHex);
      assert.deepEqual(decoded, { version: 5, command: consoleFoo.payload.kind === "command" ? consoleFoo.payload.command : undefined });
      assert.equal(hex(encodeCertExtension(decoded)), hex(fromHex));
      assert.equal(hex(fromHex), "30 0c 02 01 05 a0 07 a2 05 a1 03 02 01 14");
    });
  }

  it("the test CA has no albatross extension", () => {
    assert.equal(albatrossExtension(readVector("cert-test-ca.pem")), null);
  });
});

// ---------------------------------------------------------------------------------------
// State files (policy.md §13.5)

const base: UnikernelConfig = {
  typ: "solo5",
  compressed: false,
  image: new Uint8Array(0),
  addName: true,
  failBehaviour: { kind: "quit" },
  cpuids: [0],
  memory: 1,
  blockDevices: [],
  bridges: [],
  numcpus: 1,
};
const U1_3: UnikernelConfig = {
  ...base,
  blockDevices: [{ name: "block" }, { name: "secondblock", device: "second-data" }],
  bridges: [{ netif: "service" }, { netif: "other-net", bridge: "second-bridge" }],
  argv: [utf8("-l *:debug")],
};
const U2_3: UnikernelConfig = { ...base, cpuids: [2], memory: 10, bridges: [{ netif: "service", bridge: "bridge-interface" }] };
const U1_2: UnikernelConfig = { ...U1_3, blockDevices: [{ name: "block" }, { name: "second-data" }] };
const U1_1: UnikernelConfig = {
  ...U1_3,
  blockDevices: [{ name: "block" }, { name: "secondblock" }],
  bridges: [{ netif: "service" }, { netif: "other-net" }],
};
const U2_1: UnikernelConfig = { ...U2_3, bridges: [{ netif: "service" }] };

const cases: Array<[id: string, file: string, version: number, prefix: string, foo: UnikernelConfig, bar: UnikernelConfig]> = [
  ["S1", "state-wire4-unikernel3.b64", 3, ":", U1_3, U2_3],
  ["S3", "state-wire4-unikernel1.b64", 0, ":", U1_1, U2_1],
  ["S4", "state-wire5-unikernel3.b64", 3, ":", U1_3, U2_3],
  ["S5", "state-wire5-unikernel2.b64", 2, ":", U1_2, U2_3],
  ["S6", "state-wire5-unikernel1.b64", 0, ":", U1_1, U2_1],
  ["S7", "state-wire5-unikernel3-path.b64", 3, "", U1_3, U2_3],
  ["S8", "state-wire5-unikernel2-path.b64", 2, "", U1_2, U2_3],
  ["S9", "state-wire5-unikernel1-path.b64", 0, "", U1_1, U2_1],
];

/** Expected names: root-path labels with dots (`:foo.hello`) or path names (`foo:hello`). */
function expectedName(prefix: string, dom: string, uk: string): string {
  return prefix === ":" ? `:${dom}.${uk}` : `${dom}:${uk}`;
}

describe("state files S1..S9", () => {
  for (const [id, file, version, prefix, foo, bar] of cases) {
    it(`${id}: ${file}`, () => {
      const { state, version: v } = decodeState(b64vector(file));
      assert.equal(v, version);
      assert.deepEqual(state.policies, []);
      // entries in file order: foo.my.nice.unikernel, foo.hello, bar.my.nice.unikernel, bar.hello
      const names = state.unikernels.map((u) => u.name);
      assert.deepEqual(names, [
        parseName(expectedName(prefix, "foo", "my.nice.unikernel")),
        parseName(expectedName(prefix, "foo", "hello")),
        parseName(expectedName(prefix, "bar", "my.nice.unikernel")),
        parseName(expectedName(prefix, "bar", "hello")),
      ]);
      if (prefix === "") assert.deepEqual(names[1], { path: ["foo"], label: "hello" });
      else assert.deepEqual(names[1], { path: [], label: "foo.hello" });
      const [a, b, c, d] = state.unikernels.map((u) => u.config);
      // field by field, so a failure names the field
      for (const [got, want] of [
        [a, foo],
        [b, foo],
        [c, bar],
        [d, bar],
      ] as const) {
        for (const k of Object.keys(want) as (keyof UnikernelConfig)[]) assert.deepEqual(got![k], want[k], `${id} field ${k}`);
        assert.deepEqual(got, want);
      }
      // re-encoding writes [6] in trie order; decoding that gives the same entries
      const again = decodeState(encodeState(state));
      assert.equal(again.version, 6);
      const sorted = [...state.unikernels].sort((x, y) => compareLabels(nameLabels(x.name), nameLabels(y.name)));
      assert.deepEqual(
        sorted.map((u) => nameToString(u.name)),
        prefix === ":"
          ? [":bar.hello", ":bar.my.nice.unikernel", ":foo.hello", ":foo.my.nice.unikernel"]
          : ["bar:hello", "bar:my.nice.unikernel", "foo:hello", "foo:my.nice.unikernel"],
      );
      assert.deepEqual(again.state.unikernels, sorted);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Derived examples (wire.md §14.2)

const hello = parseName(":hello");
const helloHeader = { version: 5, sequence: 0n, name: hello };
const helloConfig: UnikernelConfig = {
  typ: "solo5",
  compressed: false,
  image: new Uint8Array(0),
  addName: true,
  failBehaviour: { kind: "quit" },
  cpuids: [0],
  memory: 32,
  blockDevices: [],
  bridges: [{ netif: "service" }],
  numcpus: 1,
};

const derived: Array<[string, Wire, string]> = [
  [
    "create :hello",
    { header: helloHeader, payload: { kind: "command", command: { kind: "unikernel-create", config: helloConfig } } },
    `30 4b 30 15 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 06 3a 68 65 6c 6c 6f
     a0 32 a3 30 b4 2e 30 2c a0 02 05 00 01 01 00 04 00 01 01 ff a0 02 05 00
     31 03 02 01 00 02 01 20 a1 0d 31 0b 30 09 0c 07 73 65 72 76 69 63 65 a3 03 02 01 01`,
  ],
  [
    "reply string",
    { header: helloHeader, payload: { kind: "reply", reply: { kind: "string", text: utf8("created unikernel") } } },
    `30 2e 30 15 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 06 3a 68 65 6c 6c 6f
     a1 15 a1 13 0c 11 63 72 65 61 74 65 64 20 75 6e 69 6b 65 72 6e 65 6c`,
  ],
  [
    "failure",
    { header: helloHeader, payload: { kind: "failure", message: utf8("destroy: not found") } },
    `30 2d 30 15 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 06 3a 68 65 6c 6c 6f
     a2 14 0c 12 64 65 73 74 72 6f 79 3a 20 6e 6f 74 20 66 6f 75 6e 64`,
  ],
  [
    "console data",
    {
      header: helloHeader,
      payload: { kind: "data", data: { kind: "console", timestamp: new Date("2025-08-22T13:04:43.123Z"), line: utf8("hello") } },
    },
    `30 39 30 15 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 06 3a 68 65 6c 6c 6f
     a3 20 a3 1e 30 1c 18 13 32 30 32 35 30 38 32 32 31 33 30 34 34 33 2e 31 32 33 5a
     0c 05 68 65 6c 6c 6f`,
  ],
  [
    "policy add foo:",
    {
      header: { version: 5, sequence: 1n, name: parseName("foo:") },
      payload: {
        kind: "command",
        command: { kind: "policy-add", policy: { cpuids: [0], unikernels: 1n, memory: 512, bridges: [] } },
      },
    },
    `30 2b 30 13 02 01 05 04 08 00 00 00 00 00 00 00 01 0c 04 66 6f 6f 3a
     a0 14 a4 12 a1 10 30 0e 30 03 02 01 00 02 01 01 02 02 02 00 30 00`,
  ],
  [
    "restart without arguments",
    { header: helloHeader, payload: { kind: "command", command: { kind: "unikernel-restart" } } },
    `30 21 30 15 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 06 3a 68 65 6c 6c 6f
     a0 08 a3 06 ae 04 a0 02 05 00`,
  ],
  [
    "block dump end",
    { header: { version: 5, sequence: 0n, name: parseName(":disk") }, payload: { kind: "data", data: { kind: "block-end" } } },
    `30 1e 30 14 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 05 3a 64 69 73 6b
     a3 06 a4 04 a1 02 05 00`,
  ],
];

describe("derived examples (wire.md §14.2)", () => {
  for (const [title, value, bytes] of derived) {
    it(title, () => {
      const expected = unhex(bytes);
      assert.equal(hex(encodeWire(value)), hex(expected));
      assert.deepEqual(decodeWire(expected), value);
    });
  }

  it("state file [6] with :hello and the root policy", () => {
    const state: State = {
      unikernels: [{ name: hello, config: helloConfig }],
      policies: [
        {
          name: rootName,
          policy: { cpuids: [0, 1], unikernels: (1n << 62n) - 1n, memory: 2048, block: 10000, bridges: ["br0"] },
        },
      ],
    };
    const expected = unhex(`a6 66 30 64
      30 38 30 36 0c 06 3a 68 65 6c 6c 6f
        30 2c a0 02 05 00 01 01 00 04 00 01 01 ff a0 02 05 00 31 03 02 01 00 02 01 20
              a1 0d 31 0b 30 09 0c 07 73 65 72 76 69 63 65 a3 03 02 01 01
      30 28 30 26 0c 01 3a
        30 21 30 06 02 01 00 02 01 01 02 08 3f ff ff ff ff ff ff ff 02 02 08 00
              02 02 27 10 30 05 0c 03 62 72 30`);
    assert.equal(hex(encodeState(state)), hex(expected));
    assert.deepEqual(decodeState(expected), { state, version: 6 });
  });
});
