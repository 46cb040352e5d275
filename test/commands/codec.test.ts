// Strictness, old forms and encoder details of the codec. Inputs for old/foreign forms
// are built with der.ts' own small writer (independent of the codec's encoder).
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import {
  DecodeError,
  decodeCertExtension,
  decodeCommand,
  decodeData,
  decodeHeader,
  decodePolicy,
  decodeState,
  decodeSuccess,
  decodeUnikernelConfig,
  decodeWire,
  encodeCommand,
  encodeData,
  encodeHeader,
  encodePolicy,
  encodeState,
  encodeSuccess,
  encodeUnikernelConfig,
  encodeWire,
  type Command,
  type StatsData,
  type UnikernelConfig,
  type UnikernelInfo,
  type Wire,
} from "../../src/commands/index.js";
import { encBool, encInt, encInt64, encNull, encOctets, encUtf8, explicit, seq, setOf, tlv } from "../support/der.js";
import { parseName, rootName } from "../../src/core/name.js";
import { hex, throwsDecode, unhex, utf8 } from "./support.js";
import { rusage } from "../support/rusage.js";

const hdr = (name = ":foo", version = 5) => seq(encInt(version), encInt64(0n), encUtf8(name));
const wireOf = (payload: Uint8Array, name = ":foo", version = 5) => seq(hdr(name, version), payload);
const cmd = (group: number, alt: number, inner: Uint8Array) => explicit(0, explicit(group, explicit(alt, inner)));
const VALID = unhex("30 20 30 13 02 01 05 04 08 00 00 00 00 00 00 00 00 0c 04 3a 66 6f 6f a0 09 a0 07 a2 05 a1 03 02 01 14");

const solo5 = explicit(0, encNull());
const quit = explicit(0, encNull());

describe("DER strictness", () => {
  it("accepts the reference message", () => {
    assert.equal(decodeWire(VALID).header.version, 5);
  });

  it("rejects a non-minimal length", () => {
    // 30 20 -> 30 81 20
    const b = unhex("30 81 20" + hex(VALID.subarray(2)));
    throwsDecode(() => decodeWire(b), "non-minimal length");
  });

  it("rejects a non-minimal INTEGER", () => {
    const b = wireOf(cmd(0, 2, explicit(1, tlv(0x02, Uint8Array.of(0, 0x14)))));
    throwsDecode(() => decodeWire(b), "non-minimal INTEGER");
    throwsDecode(() => decodeWire(wireOf(cmd(0, 2, explicit(1, tlv(0x02, Uint8Array.of(0xff, 0xff)))))), "non-minimal INTEGER");
  });

  it("rejects an indefinite length", () => {
    const b = unhex("30 80" + hex(VALID.subarray(2)) + "00 00");
    throwsDecode(() => decodeWire(b), "indefinite length");
  });

  it("rejects trailing bytes after the top-level value", () => {
    const e = throwsDecode(() => decodeWire(Uint8Array.of(...VALID, 0)), "trailing bytes");
    assert.equal(e.offset, VALID.length);
  });

  it("rejects trailing bytes inside a SEQUENCE / explicit tag", () => {
    const b = wireOf(cmd(0, 2, explicit(1, encInt(20), encInt(1))));
    throwsDecode(() => decodeWire(b), "trailing bytes");
  });

  it("rejects a length past the end of the buffer", () => {
    throwsDecode(() => decodeWire(VALID.subarray(0, VALID.length - 1)), /length 32 exceeds the 31 available bytes/);
    throwsDecode(() => decodeWire(Uint8Array.of(0x30)), "truncated length");
    throwsDecode(() => decodeWire(new Uint8Array(0)), "missing wire");
    throwsDecode(() => decodeWire(unhex("30 84 ff ff ff ff")), "exceeds");
  });

  it("rejects an unknown CHOICE tag and names the CHOICE", () => {
    const e = throwsDecode(() => decodeWire(wireOf(cmd(3, 4, encNull()))), "unknown CHOICE tag 0xa4 for UnikernelCmd");
    assert.equal(e.path, "wire.payload.command.unikernel");
    throwsDecode(() => decodeWire(wireOf(explicit(4, encNull()))), "unknown CHOICE tag 0xa4 for Payload");
    throwsDecode(() => decodeWire(wireOf(cmd(0, 1, encNull()))), "unknown CHOICE tag 0xa1 for ConsoleCmd");
  });

  it("rejects a wrong version with upstream's message", () => {
    const e = throwsDecode(() => decodeWire(wireOf(cmd(0, 3, encNull()), ":foo", 4)), "unknown version number 0x4");
    assert.equal(e.path, "wire.header.version");
    throwsDecode(() => decodeWire(wireOf(cmd(0, 3, encNull()), ":foo", 26)), "unknown version number 0x1A");
    // the version is checked before anything in the payload
    throwsDecode(() => decodeWire(wireOf(explicit(9, encNull()), ":foo", 3)), "unknown version number 0x3");
    throwsDecode(() => decodeHeader(hdr(":foo", 6)), "unknown version number 0x6");
    throwsDecode(() => decodeCertExtension(seq(encInt(4), explicit(0, explicit(3, encNull())))), "unknown version number 0x4");
  });

  it("rejects the log alternatives", () => {
    throwsDecode(() => decodeWire(wireOf(explicit(0, explicit(2, encNull())))), "support for log dropped");
    throwsDecode(() => decodeWire(wireOf(explicit(3, explicit(2, encNull())))), "support for log was dropped");
  });

  it("rejects constructed strings", () => {
    // UTF8String 0x2c (constructed) holding a primitive 0x0c
    const name = tlv(0x2c, encUtf8(":foo"));
    const b = seq(seq(encInt(5), encInt64(0n), name), cmd(0, 3, encNull()));
    throwsDecode(() => decodeWire(b), "constructed encoding");
    const img = tlv(0x24, encOctets(Uint8Array.of(1)));
    throwsDecode(() => decodeData(explicit(4, explicit(0, img))), "constructed encoding");
  });

  it("rejects an Int64 of the wrong size", () => {
    const short = seq(seq(encInt(5), encOctets(new Uint8Array(7)), encUtf8(":foo")), cmd(0, 3, encNull()));
    throwsDecode(() => decodeWire(short), "Int64 must be 8 bytes, got 7");
    const long = seq(seq(encInt(5), encOctets(new Uint8Array(9)), encUtf8(":foo")), cmd(0, 3, encNull()));
    throwsDecode(() => decodeWire(long), "Int64 must be 8 bytes, got 9");
  });

  it("rejects 9-byte integers and integers beyond 63 bits", () => {
    const nine = tlv(0x02, Uint8Array.of(0x01, 0, 0, 0, 0, 0, 0, 0, 0));
    throwsDecode(() => decodeCommand(explicit(0, explicit(0, nine))), "int overflow");
    const big = tlv(0x02, Uint8Array.of(0x40, 0, 0, 0, 0, 0, 0, 0)); // 2^62
    throwsDecode(() => decodeCommand(explicit(0, explicit(0, big))), "int overflow");
    // 2^62-1 is fine (root policy unikernels)
    const max = tlv(0x02, Uint8Array.of(0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    assert.deepEqual(decodeCommand(explicit(0, explicit(0, max))), { kind: "console-add", budget: (1n << 62n) - 1n });
  });

  it("rejects BOOLEANs that are not one byte, accepts any non-zero byte as TRUE", () => {
    throwsDecode(() => decodeCommand(explicit(5, explicit(7, tlv(0x01, Uint8Array.of(1, 1))))), "BOOLEAN");
    assert.deepEqual(decodeCommand(explicit(5, explicit(7, tlv(0x01, Uint8Array.of(1))))), { kind: "block-set", compressed: true });
  });

  it("rejects invalid names with the name error and path", () => {
    const e = throwsDecode(() => decodeWire(wireOf(cmd(0, 3, encNull()), "a::b")), "invalid name");
    assert.equal(e.path, "wire.header.name");
    throwsDecode(() => decodeWire(wireOf(cmd(0, 3, encNull()), "")), "empty name");
    throwsDecode(() => decodeWire(wireOf(cmd(0, 3, encNull()), "foo/../x")), "invalid name");
  });

  it("reports the byte offset and a dotted path down to the failing field", () => {
    const config = seq(solo5, encBool(false), encOctets(new Uint8Array(0)), encBool(true), quit, setOf([encInt(0)]), encUtf8("x"));
    const e = throwsDecode(() => decodeWire(wireOf(cmd(3, 20, config))), "expected tag 0x02 for memory");
    assert.equal(e.path, "wire.payload.command.unikernel.create.config.memory");
    assert.ok(e.message.includes(`at byte ${e.offset}`));
  });

  it("rejects a bad MAC address", () => {
    const nd = seq(encUtf8("service"), encOctets(new Uint8Array(5)));
    const config = seq(solo5, encBool(false), encOctets(new Uint8Array(0)), encBool(true), quit, setOf([encInt(0)]), encInt(1), explicit(1, setOf([nd])));
    throwsDecode(() => decodeUnikernelConfig(config), "bad mac address");
  });

  it("rejects oversized GeneralizedTime without a stack overflow", () => {
    const t = tlv(0x18, new Uint8Array(1 << 20).fill(0x31));
    throwsDecode(() => decodeData(explicit(3, seq(t, encUtf8("x")))), "invalid GeneralizedTime");
  });
});

describe("GeneralizedTime decoding quirks", () => {
  const decodeTime = (s: string): Date => {
    const d = decodeData(explicit(3, seq(tlv(0x18, utf8(s)), encUtf8("x"))));
    assert.equal(d.kind, "console");
    return (d as { timestamp: Date }).timestamp;
  };
  it("reads 0 and 3 fraction digits as expected", () => {
    assert.equal(decodeTime("20250822130443Z").toISOString(), "2025-08-22T13:04:43.000Z");
    assert.equal(decodeTime("20250822130443.123Z").toISOString(), "2025-08-22T13:04:43.123Z");
    assert.equal(decodeTime("20250822130443.012Z").toISOString(), "2025-08-22T13:04:43.012Z");
  });
  it("takes the fraction as whole milliseconds like upstream (.5 = 5 ms), drops digits 4..7", () => {
    assert.equal(decodeTime("20250822130443.5Z").getUTCMilliseconds(), 5);
    assert.equal(decodeTime("20250822130443.123456Z").getUTCMilliseconds(), 123);
    assert.throws(() => decodeTime("20250822130443.12345678Z"), DecodeError);
  });
  it("accepts zones and optional minutes/seconds; handles years < 100", () => {
    assert.equal(decodeTime("20250822130443+0100").toISOString(), "2025-08-22T12:04:43.000Z");
    assert.equal(decodeTime("2025082213").toISOString(), "2025-08-22T13:00:00.000Z");
    assert.equal(decodeTime("00500101000000Z").getUTCFullYear(), 50);
    assert.throws(() => decodeTime("20250231000000Z"), DecodeError);
  });
  it("encodes milliseconds with exactly 3 digits, none when zero", () => {
    const line = utf8("x");
    const enc = (iso: string) => hex(encodeData({ kind: "console", timestamp: new Date(iso), line }));
    assert.ok(enc("2025-08-22T13:04:43.000Z").includes(hex(utf8("20250822130443Z"))));
    assert.ok(enc("2025-08-22T13:04:43.010Z").includes(hex(utf8("20250822130443.010Z"))));
  });
});

// ---------------------------------------------------------------------------------------

const v3body = (cpuid: number) => [
  solo5,
  encBool(true),
  encOctets(utf8("IMG")),
  explicit(1, setOf([encInt(1)])),
  encInt(cpuid),
  encInt(64),
  explicit(0, setOf([seq(encUtf8("data"), encUtf8("disk"), encInt(4096))])),
  explicit(1, setOf([seq(encUtf8("service"), encUtf8("br0"), encOctets(unhex("02 00 00 00 00 01")))])),
  explicit(2, seq(encUtf8("--x"))),
];
const v3expected: UnikernelConfig = {
  typ: "solo5",
  compressed: true,
  image: utf8("IMG"),
  addName: true,
  numcpus: 1,
  failBehaviour: { kind: "restart", exitCodes: [1] },
  cpuids: [3],
  memory: 64,
  blockDevices: [{ name: "data", device: "disk", sectorSize: 4096 }],
  bridges: [{ netif: "service", bridge: "br0", mac: unhex("02 00 00 00 00 01") }],
  argv: [utf8("--x")],
};

describe("old command forms", () => {
  it("create [9] / force-create [10] with V3 config (startup absent, add-name TRUE, numcpus 1)", () => {
    assert.deepEqual(decodeCommand(explicit(3, explicit(9, seq(...v3body(3))))), { kind: "unikernel-create", config: v3expected });
    assert.deepEqual(decodeCommand(explicit(3, explicit(10, seq(...v3body(3))))), { kind: "unikernel-force-create", config: v3expected });
  });

  it("create [16] / force-create [17] with V4 config (carries startup and add-name)", () => {
    const b = v3body(3);
    const v4 = seq(b[0]!, b[1]!, b[2]!, encInt(7), encBool(false), ...b.slice(3));
    const expected = { ...v3expected, startup: 7, addName: false };
    assert.deepEqual(decodeCommand(explicit(3, explicit(16, v4))), { kind: "unikernel-create", config: expected });
    assert.deepEqual(decodeCommand(explicit(3, explicit(17, v4))), { kind: "unikernel-force-create", config: expected });
  });

  it("restart [14][1] (V0 args) and [14][2] (V1 args)", () => {
    const b = v3body(2).slice(3); // fail, cpuid, memory, blocks, bridges, argv
    const { typ: _t, compressed: _c, image: _i, ...args } = { ...v3expected, cpuids: [2] };
    assert.deepEqual(decodeCommand(explicit(3, explicit(14, explicit(1, seq(...b))))), { kind: "unikernel-restart", args });
    const v1 = seq(b[0]!, encInt(9), encBool(false), ...b.slice(1));
    assert.deepEqual(decodeCommand(explicit(3, explicit(14, explicit(2, v1)))), {
      kind: "unikernel-restart",
      args: { ...args, startup: 9, addName: false },
    });
  });

  it("restart [14][2] with an empty SEQUENCE is rejected", () => {
    throwsDecode(() => decodeCommand(explicit(3, explicit(14, explicit(2, seq())))), "missing fail-behaviour");
  });

  it("info [15] / [18] / [19] and their encoders", () => {
    for (const [n, kind] of [
      [15, "unikernel-info-v4"],
      [18, "unikernel-info-v5"],
      [19, "unikernel-info"],
    ] as const) {
      const b = explicit(3, explicit(n, encNull()));
      assert.deepEqual(decodeCommand(b), { kind });
      assert.equal(hex(encodeCommand({ kind })), hex(b));
    }
  });

  it("removed alternatives are decode errors", () => {
    for (const n of [0, 1, 2, 4, 5, 6, 7, 8, 12, 13, 22]) {
      throwsDecode(() => decodeCommand(explicit(3, explicit(n, encNull()))), "unknown CHOICE tag");
    }
    throwsDecode(() => decodeCommand(explicit(0, explicit(1, encNull()))), "unknown CHOICE tag");
  });

  it("old block commands", () => {
    const cases: Array<[Uint8Array, Command]> = [
      [
        explicit(5, explicit(3, seq(encInt(10), encBool(true), encOctets(utf8("zz"))))),
        { kind: "block-add-old", size: 10, compressed: true, data: utf8("zz") },
      ],
      [explicit(5, explicit(3, seq(encInt(10), encBool(false)))), { kind: "block-add-old", size: 10, compressed: false }],
      [explicit(5, explicit(4, seq(encBool(false), encOctets(utf8("d"))))), { kind: "block-set-old", compressed: false, data: utf8("d") }],
      [explicit(5, explicit(5, encInt(9))), { kind: "block-dump-old", level: 9 }],
      [explicit(5, explicit(6, encInt(0))), { kind: "block-dump", level: 0 }],
      [explicit(5, explicit(7, encBool(true))), { kind: "block-set", compressed: true }],
    ];
    for (const [b, c] of cases) {
      assert.deepEqual(decodeCommand(b), c);
      assert.equal(hex(encodeCommand(c)), hex(b));
    }
  });
});

const info = (cpuids: number[]): UnikernelInfo => ({
  typ: "solo5",
  startup: 3,
  failBehaviour: { kind: "quit" },
  cpuids,
  memory: 32,
  digest: new Uint8Array(32).fill(7),
  blockDevices: [{ unikernelDevice: "data", hostDevice: "data", sectorSize: 512, blockSize: 100 }],
  bridges: [{ unikernelDevice: "service", hostDevice: "br0", mac: unhex("00 80 41 9a 6f 39") }],
  argv: [utf8("-l")],
  started: new Date("2025-01-02T03:04:05.678Z"),
  numcpus: 1,
});

describe("unikernel info replies", () => {
  it("current [13] round-trips (numcpus, linux boot partition, cpuid set)", () => {
    const u = { ...info([0, 2]), numcpus: 2, linuxBootPartition: "p1" };
    const s = { kind: "unikernel-info", unikernels: [{ name: parseName("foo:bar"), info: u }] } as const;
    assert.deepEqual(decodeSuccess(encodeSuccess(s)), s);
  });

  it("old [11] (info5) and [9] (info4) round-trip with exactly one CPU id", () => {
    const u = info([4]);
    const s5 = { kind: "old-unikernel-info5", unikernels: [{ name: parseName(":x"), info: u }] } as const;
    assert.deepEqual(decodeSuccess(encodeSuccess(s5)), s5);
    const { startup: _s, ...u4 } = u; // V4 has no startup
    const s4 = { kind: "old-unikernel-info4", unikernels: [{ name: parseName(":x"), info: u4 }] } as const;
    assert.deepEqual(decodeSuccess(encodeSuccess(s4)), s4);
    assert.equal(encodeSuccess(s4)[0], 0xa9);
  });

  it("old info encoders throw RangeError unless there is exactly one CPU id", () => {
    for (const kind of ["old-unikernel-info4", "old-unikernel-info5"] as const) {
      assert.throws(() => encodeSuccess({ kind, unikernels: [{ name: rootName, info: info([0, 1]) }] }), RangeError);
      assert.throws(() => encodeSuccess({ kind, unikernels: [{ name: rootName, info: info([]) }] }), RangeError);
    }
  });

  it("absent started decodes as the epoch, absent cpus as 1", () => {
    const body = seq(solo5, quit, setOf([encInt(0)]), encInt(1), encOctets(new Uint8Array(0)));
    const s = decodeSuccess(explicit(13, seq(seq(encUtf8(":a"), body))));
    assert.equal(s.kind, "unikernel-info");
    assert.ok(s.kind === "unikernel-info");
    const i = s.unikernels[0]!.info;
    assert.equal(i.started.getTime(), 0);
    assert.equal(i.numcpus, 1);
  });
});

describe("encoder details", () => {
  const cfg: UnikernelConfig = {
    typ: "bhyve",
    compressed: false,
    image: new Uint8Array(0),
    addName: false,
    failBehaviour: { kind: "restart", exitCodes: [255, 3, 3] },
    cpuids: [128, 1, 1],
    memory: 512,
    blockDevices: [],
    bridges: [{ netif: "other-net", bridge: "second-bridge" }, { netif: "service" }],
    argv: [],
    numcpus: 4,
    linuxBootPartition: "part",
  };

  it("SET OF is sorted by encoding; argv Some [] is [2]{30 00}; cpus always emitted", () => {
    const b = encodeUnikernelConfig(cfg);
    const h = hex(b);
    // bridges: `30 09 .. service` before `30 1a .. other-net` (shorter encoding first)
    assert.ok(h.indexOf("30 09 0c 07") < h.indexOf("30 1a 0c 09"));
    assert.ok(h.includes("a2 02 30 00"));
    assert.ok(h.includes("a3 03 02 01 04"));
    assert.ok(h.includes("a4 06 0c 04 70 61 72 74"));
    // cpuids {1, 128}: 02 01 01 sorts before 02 02 00 80
    assert.ok(h.includes("31 07 02 01 01 02 02 00 80"));
    const d = decodeUnikernelConfig(b);
    assert.deepEqual(d.cpuids, [1, 128]);
    assert.deepEqual(d.failBehaviour, { kind: "restart", exitCodes: [3, 255] });
    assert.deepEqual(d.bridges, [{ netif: "service" }, { netif: "other-net", bridge: "second-bridge" }]);
    assert.deepEqual(d.argv, []);
  });

  it("policy lists are SEQUENCE OF, emitted sorted and unique; decode collapses duplicates", () => {
    const p = { cpuids: [3, 1, 1], unikernels: 2n, memory: 10, bridges: ["zeta", "alpha", "Zed", "alpha"] };
    const b = encodePolicy(p);
    assert.deepEqual(decodePolicy(b), { cpuids: [1, 3], unikernels: 2n, memory: 10, bridges: ["Zed", "alpha", "zeta"] });
    const dup = seq(seq(encInt(2), encInt(2), encInt(0)), encInt(1), encInt(1), seq(encUtf8("b"), encUtf8("a"), encUtf8("b")));
    assert.deepEqual(decodePolicy(dup), { cpuids: [0, 2], unikernels: 1n, memory: 1, bridges: ["a", "b"] });
  });

  it("integers outside the 63-bit range are a RangeError", () => {
    assert.throws(() => encodePolicy({ cpuids: [], unikernels: 1n << 62n, memory: 1, bridges: [] }), RangeError);
    assert.throws(() => encodeCommand({ kind: "block-add", size: 2 ** 53 }), RangeError);
  });

  it("header round trip with a 64-bit sequence", () => {
    const h = { version: 5, sequence: -1n, name: parseName("a:b:") };
    assert.equal(hex(encodeHeader(h)), "30 13 02 01 05 04 08 ff ff ff ff ff ff ff ff 0c 04 61 3a 62 3a");
    assert.deepEqual(decodeHeader(encodeHeader(h)), h);
  });

  it("statistics: kinfo-mem is [1] IMPLICIT (0xa1), vmm [0] EXPLICIT", () => {
    const tv = { seconds: 1n, microseconds: 2 };
    const z = 0n;
    const stats: StatsData = {
      rusage: rusage({
        utime: tv,
        stime: tv,
        maxrss: -1n,
        nivcsw: 9n,
      }),
      ifdata: [
        {
          bridge: "service",
          flags: -1,
          sendLength: 0,
          maxSendLength: 2147483647,
          sendDrops: -2147483648,
          mtu: 1500,
          baudrate: z,
          inputPackets: 1n,
          inputErrors: z,
          outputPackets: z,
          outputErrors: z,
          collisions: z,
          inputBytes: 1n << 40n,
          outputBytes: z,
          inputMcast: z,
          outputMcast: z,
          inputDropped: z,
          outputDropped: -(1n << 63n),
        },
      ],
      vmm: [{ key: "vcpu0", value: 5n }],
      kinfoMem: { vsize: 1n, rss: 2n, tsize: 3n, dsize: 4n, ssize: 5n, runtime: 6n, cow: 7, start: tv },
    };
    const d = { kind: "statistics", stats } as const;
    const b = encodeData(d);
    assert.deepEqual(decodeData(b), d);
    const h = hex(b);
    assert.ok(h.includes("a1 4e 04 08 00 00 00 00 00 00 00 01"), h);
    assert.ok(h.includes("a0 15 30 13 30 11 0c 05 76 63 70 75 30"));
  });

  it("Int32 fields are reduced modulo 2^32 on decode, as upstream", () => {
    const r = decodeData(rebuildIfdataFlags(2n ** 32n + 1n));
    assert.equal(r.kind, "statistics");
    assert.equal(r.kind === "statistics" && r.stats.ifdata[0]!.flags, 1);
    assert.throws(() => encodeData({ kind: "statistics", stats: { rusage: zeroRusage(), ifdata: [{ ...ifd(0), mtu: 2 ** 31 }] } }), RangeError);
  });
});

function zeroRusage() {
  const tv = { seconds: 0n, microseconds: 0 };
  return rusage({
    utime: tv,
    stime: tv,
  });
}
function ifd(flags: number) {
  const z = 0n;
  return {
    bridge: "x",
    flags,
    sendLength: 0,
    maxSendLength: 0,
    sendDrops: 0,
    mtu: 0,
    baudrate: z,
    inputPackets: z,
    inputErrors: z,
    outputPackets: z,
    outputErrors: z,
    collisions: z,
    inputBytes: z,
    outputBytes: z,
    inputMcast: z,
    outputMcast: z,
    inputDropped: z,
    outputDropped: z,
  };
}
function rebuildIfdataFlags(flags: bigint): Uint8Array {
  const i64 = (): Uint8Array => encInt64(0n);
  const tv = seq(encInt64(0n), encInt(0));
  const ru = seq(tv, tv, ...Array.from({ length: 14 }, () => i64()));
  const flagsEnc = tlv(0x02, unhex(flags.toString(16).padStart(10, "0")));
  const ifdata = seq(encUtf8("x"), flagsEnc, encInt(0), encInt(0), encInt(0), encInt(0), ...Array.from({ length: 12 }, () => i64()));
  return explicit(1, seq(ru, seq(ifdata)));
}

// ---------------------------------------------------------------------------------------

const ukv6 = (mem: number) => seq(solo5, encBool(false), encOctets(new Uint8Array(0)), encBool(true), quit, setOf([encInt(0)]), encInt(mem));
const pol = seq(seq(), encInt(1), encInt(1), seq());
const entry = (k: string, v: Uint8Array) => seq(encUtf8(k), v);

describe("state files", () => {
  it("[6] writes entries in trie pre-order, root policy first", () => {
    const c = decodeUnikernelConfig(ukv6(1));
    const p = decodePolicy(pol);
    const names = ["b:a", ":b", "a:z:q", ":a", "a:z", "a:b", ":ab", ":a.b", ":a-b"].map(parseName);
    const st = {
      unikernels: names.map((name) => ({ name, config: c })),
      policies: [parseName("b:"), rootName, parseName("a:")].map((name) => ({ name, policy: p })),
    };
    const { state, version } = decodeState(encodeState(st));
    assert.equal(version, 6);
    // bytewise on label lists: "-" (2d) < "." (2e) < letters; node before children
    assert.deepEqual(
      state.unikernels.map((u) => [...u.name.path, u.name.label].join("/")),
      ["a", "a/b", "a/z", "a/z/q", "a-b", "a.b", "ab", "b", "b/a"],
    );
    assert.deepEqual(
      state.policies.map((u) => u.name),
      [rootName, parseName("a:"), parseName("b:")],
    );
  });

  it("encodeState rejects duplicate keys (label lists)", () => {
    const c = decodeUnikernelConfig(ukv6(1));
    assert.throws(
      () =>
        encodeState({
          unikernels: [
            { name: parseName(":foo"), config: c },
            { name: parseName("foo:"), config: c },
          ],
          policies: [],
        }),
      RangeError,
    );
  });

  it("decodes [4] and [5] with policies, [1] V0 configs", () => {
    const v3 = seq(...v3body(1));
    const s4 = decodeState(explicit(4, seq(seq(entry("x", v3)), seq(entry(":", pol), entry("x:", pol)))));
    assert.equal(s4.version, 4);
    assert.deepEqual(s4.state.unikernels[0]!.config, { ...v3expected, cpuids: [1] });
    assert.deepEqual(
      s4.state.policies.map((p) => p.name),
      [rootName, parseName("x:")],
    );

    const b = v3body(1);
    const v4 = seq(b[0]!, b[1]!, b[2]!, encBool(true), ...b.slice(3));
    const s5 = decodeState(explicit(5, seq(seq(entry("y:x", v4)), seq())));
    assert.equal(s5.version, 5);
    assert.deepEqual(s5.state.unikernels[0]!.name, parseName("y:x"));

    const v0 = seq(encInt(2), encInt(64), encUtf8("disk"), seq(encUtf8("net0"), encUtf8("net1")), explicit(2, encOctets(utf8("Z"))), seq(encUtf8("-v")));
    const s1 = decodeState(explicit(1, seq(entry("hello", v0))));
    assert.equal(s1.version, 1);
    assert.deepEqual(s1.state.unikernels[0]!.config, {
      typ: "solo5",
      compressed: true,
      image: utf8("Z"),
      addName: true,
      numcpus: 1,
      failBehaviour: { kind: "quit" },
      cpuids: [2],
      memory: 64,
      blockDevices: [{ name: "disk" }],
      bridges: [{ netif: "net0" }, { netif: "net1" }],
      argv: [utf8("-v")],
    });
    const v0min = seq(encInt(0), encInt(1), explicit(1, encOctets(new Uint8Array(0))));
    assert.deepEqual(decodeState(explicit(1, seq(entry("h", v0min)))).state.unikernels[0]!.config.bridges, []);
  });

  it("rejects [7], duplicate keys (foo: vs :foo) and unparsable keys", () => {
    throwsDecode(() => decodeState(explicit(7, encNull())), "state format [7] is reserved");
    throwsDecode(() => decodeState(explicit(6, seq(seq(entry(":foo", ukv6(1)), entry("foo:", ukv6(2))), seq()))), "duplicate key foo:");
    throwsDecode(() => decodeState(explicit(6, seq(seq(), seq(entry(":", pol), entry(":", pol))))), "duplicate key :");
    throwsDecode(() => decodeState(explicit(3, seq(entry("a::b", seq(...v3body(0)))))), "invalid name");
    throwsDecode(() => decodeState(explicit(8, encNull())), "unknown CHOICE tag 0xa8 for State");
  });
});

describe("wire round trip of a full create", () => {
  it("keeps a large image intact (zero-copy decode)", () => {
    const image = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    const w: Wire = {
      header: { version: 5, sequence: 42n, name: parseName("a:b") },
      payload: {
        kind: "command",
        command: {
          kind: "unikernel-force-create",
          config: {
            typ: "solo5",
            compressed: true,
            image,
            startup: 0,
            addName: true,
            failBehaviour: { kind: "quit" },
            cpuids: [],
            memory: 1,
            blockDevices: [],
            bridges: [],
            numcpus: 1,
          },
        },
      },
    };
    const b = encodeWire(w);
    assert.deepEqual(decodeWire(b), w);
  });
});

describe("state policy keys", () => {
  it("a policy key written as a full name (:foo) is the policy of path foo", () => {
    const { state } = decodeState(explicit(6, seq(seq(), seq(entry(":foo", pol), entry("a:b", pol)))));
    assert.deepEqual(
      state.policies.map((p) => p.name),
      [parseName("foo:"), parseName("a:b:")],
    );
  });
});
