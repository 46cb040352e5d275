import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatMac, parseMac } from "../../src/solo5/mac.js";
import {
  deterministicMac,
  guestNameArg,
  ocamlIntOfString,
  parseTenderVersion,
  shellQuote,
  tenderCandidates,
  tenderCommandLine,
  tenderNotFound,
  tenderTarget,
  unsupportedTarget,
} from "../../src/solo5/tender.js";
import { parseName } from "../../src/core/name.js";

describe("tender lookup", () => {
  it("lists the four candidates in upstream order", () => {
    assert.deepEqual(tenderCandidates("/var/lib/albatross", "hvt", 2), [
      "/var/lib/albatross/solo5-hvt.2",
      "solo5-hvt.2",
      "/var/lib/albatross/solo5-hvt",
      "solo5-hvt",
    ]);
    assert.deepEqual(tenderCandidates("/db/", "spt", 3), ["/db/solo5-spt.3", "solo5-spt.3", "/db/solo5-spt", "solo5-spt"]);
  });
  it("words the not-found error exactly", () => {
    assert.equal(
      tenderNotFound(tenderCandidates("/var/lib/albatross", "hvt", 2)),
      "tender does not exist, looked for '/var/lib/albatross/solo5-hvt.2', 'solo5-hvt.2', '/var/lib/albatross/solo5-hvt', 'solo5-hvt'",
    );
    assert.equal(shellQuote("it's"), "'it'\\''s'");
  });
});

describe("targets", () => {
  it("accepts hvt and spt only", () => {
    assert.equal(tenderTarget("hvt"), "hvt");
    assert.equal(tenderTarget("spt"), "spt");
    for (const t of ["virtio", "muen", "genode", "xen"] as const) assert.equal(tenderTarget(t), null);
    assert.equal(unsupportedTarget("virtio"), "unsupported solo5 target virtio");
  });
});

describe("parseTenderVersion", () => {
  const real = "solo5-hvt tender, version v0.12.1\nABI version 2\n";
  it("accepts the real tender's output (any line order, trailing whitespace trimmed)", () => {
    assert.equal(parseTenderVersion(real, 2), null);
    assert.equal(parseTenderVersion("ABI version 2\nsolo5-hvt tender, version v0.12.1", 2), null);
    assert.equal(parseTenderVersion("\n\nABI version 2\n\n", 2), null);
    assert.equal(parseTenderVersion("ABI version 2 \t", 2), null); // the whole output is trimmed
  });
  it("reads the number like OCaml's int_of_string", () => {
    assert.equal(parseTenderVersion("ABI version 02", 2), null);
    assert.equal(parseTenderVersion("ABI version 0x2", 2), null);
    assert.equal(parseTenderVersion("ABI version +2", 2), null);
    assert.equal(parseTenderVersion("ABI version 1_0", 10), null);
    assert.equal(ocamlIntOfString("_1"), null);
    assert.equal(ocamlIntOfString(""), null);
    assert.equal(ocamlIntOfString("-0x1"), -1);
    assert.equal(ocamlIntOfString("4611686018427387904"), null); // > max_int
    assert.equal(ocamlIntOfString("0x7fffffffffffffff"), -1); // wraps, like OCaml
  });
  it("rejects near misses with the exact upstream text", () => {
    const expect = (out: string, got: string): void =>
      assert.equal(parseTenderVersion(out, 2), `unexpected solo5 tender --version output, expected one line with 'ABI version 2', got ${got}`);
    expect("ABI version 3\n", "ABI version 3");
    expect("ABI  version 2", "ABI  version 2");
    expect("ABI version 2 \nx", "ABI version 2 \nx"); // ... but not inside
    expect("abi version 2", "abi version 2");
    expect("ABI version 2\r\nfoo", "ABI version 2\r\nfoo");
    expect("", "");
    expect("solo5-hvt tender, version v0.12.1\nABI version two", "solo5-hvt tender, version v0.12.1\nABI version two");
    assert.match(parseTenderVersion("", -1) ?? "", /'ABI version 18446744073709551615'/);
  });
});

describe("tenderCommandLine", () => {
  it("builds the exact albatross command line (daemon.md §2.7)", () => {
    assert.deepEqual(
      tenderCommandLine({
        tender: "/var/lib/albatross/solo5-hvt.2",
        cpuids: [3, 1, 1],
        memory: 32,
        nets: [
          { netif: "service", tap: "vmmtap0", mac: Uint8Array.of(0, 0x80, 0x41, 0x9a, 0x6f, 0x39) },
          { netif: "management", tap: "vmmtap3", mac: Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff) },
        ],
        blocks: [
          { name: "storage", path: "/var/lib/albatross/block/foo:data", sectorSize: 4096 },
          { name: "other", path: "/var/lib/albatross/block/foo:other" },
          { name: "third", path: "/var/lib/albatross/block/foo:third", sectorSize: 512 },
        ],
        image: "/run/albatross/foo:hello.img",
        nameArg: "hello",
        argv: ["--ipv4=10.0.0.2/24", "-l", "*:debug"],
      }),
      [
        "taskset",
        "-c",
        "1,3",
        "/var/lib/albatross/solo5-hvt.2",
        "--mem=32",
        "--net:service=vmmtap0",
        "--net:management=vmmtap3",
        "--net-mac:service=00:80:41:9a:6f:39",
        "--net-mac:management=aa:bb:cc:dd:ee:ff",
        "--block:storage=/var/lib/albatross/block/foo:data",
        "--block:other=/var/lib/albatross/block/foo:other",
        "--block:third=/var/lib/albatross/block/foo:third",
        "--block-sector-size:storage=4096",
        "--block-sector-size:third=512",
        "--",
        "/run/albatross/foo:hello.img",
        "--name=hello",
        "--ipv4=10.0.0.2/24",
        "-l",
        "*:debug",
      ],
    );
  });
  it("omits --name= without add_name and handles no devices and no cpus", () => {
    assert.deepEqual(tenderCommandLine({ tender: "solo5-spt", cpuids: [0], memory: 512, nets: [], blocks: [], image: "/run/albatross/:hello.img", argv: [] }), [
      "taskset",
      "-c",
      "0",
      "solo5-spt",
      "--mem=512",
      "--",
      "/run/albatross/:hello.img",
    ]);
    assert.deepEqual(tenderCommandLine({ tender: "t", cpuids: [], memory: 1, nets: [], blocks: [], image: "i", nameArg: ":x", argv: ["a"] }), [
      "taskset",
      "-c",
      "",
      "t",
      "--mem=1",
      "--",
      "i",
      "--name=:x",
      "a",
    ]);
  });
  it("derives the --name= value from the name", () => {
    assert.equal(guestNameArg(parseName("foo:bar")), "bar");
    assert.equal(guestNameArg(parseName("foo:bar"), false), "foo:bar");
    assert.equal(guestNameArg(parseName("hello"), false), ":hello");
    assert.equal(guestNameArg(parseName("foo:")), "foo:");
  });
});

describe("MAC addresses", () => {
  it("derives the deterministic MAC of wire.md §2", () => {
    assert.equal(formatMac(deterministicMac("default", "foo:bar")), "00:80:41:9a:6f:39");
    // netif and name are concatenated without separator
    assert.deepEqual(deterministicMac("service", ":hello"), deterministicMac("servic", "e:hello"));
    assert.notDeepEqual(deterministicMac("service", ":hello"), deterministicMac("service", "foo:hello"));
  });
  it("formats and parses", () => {
    assert.equal(formatMac(Uint8Array.of(0, 1, 0xab, 0xcd, 0xef, 0xff)), "00:01:ab:cd:ef:ff");
    assert.deepEqual(parseMac("00:01:AB:cd:ef:ff"), Uint8Array.of(0, 1, 0xab, 0xcd, 0xef, 0xff));
    assert.deepEqual(parseMac("00-01-ab-cd-ef-ff"), Uint8Array.of(0, 1, 0xab, 0xcd, 0xef, 0xff));
    for (const bad of ["", "00:01:ab:cd:ef", "00:01:ab:cd:ef:ff:00", "0:01:ab:cd:ef:ff", "00:01-ab:cd:ef:ff", "g0:01:ab:cd:ef:ff", "00:01:ab:cd:ef:ff\n"])
      assert.equal(parseMac(bad), null, bad);
    assert.throws(() => formatMac(new Uint8Array(5)), RangeError);
  });
});
