// Pure parts of the client: value parsers (flags.ts) and text rendering (render.ts).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { FlagError, parseBlockSpec, parseDestination, parseHttpHost, parseMac, parseNetSpec, parseTimestamp } from "../../src/cli/flags.js";
import { commonNameFor, destinationOf } from "../../src/client/jump.js";
import { escapeOcaml, hexdump, infoText, policyText, rfc3339, statsText, wireText } from "../../src/commands/render.js";
import { endpointOf } from "../../src/transport/routes.js";
import { jobAndBuild } from "../../src/fleet/builder.js";
import { parseName } from "../../src/core/name.js";
import { rusage } from "../support/rusage.js";

describe("flag parsers", () => {
  test("block specs", () => {
    assert.deepEqual(parseBlockSpec("storage"), { name: "storage" });
    assert.deepEqual(parseBlockSpec("storage:disk"), { name: "storage", device: "disk" });
    assert.deepEqual(parseBlockSpec("storage@4096"), { name: "storage", sectorSize: 4096 });
    assert.deepEqual(parseBlockSpec("storage:disk@512"), { name: "storage", device: "disk", sectorSize: 512 });
    for (const bad of ["a@511", "a@768", "a@0", "a@-512", "a@256"]) {
      assert.throws(() => parseBlockSpec(bad), { message: "sector size must be a power of two greater than or equal 512" });
    }
    assert.throws(() => parseBlockSpec("a@x"), { message: "sector size must be an integer" });
    // upstream checks the sector size before the name part
    assert.throws(() => parseBlockSpec("a:b:c@100"), { message: "sector size must be a power of two greater than or equal 512" });
    assert.throws(() => parseBlockSpec("a:b:c@1024"), { message: "format is 'name' or 'name:device-name'" });
  });

  test("net specs and MACs", () => {
    assert.deepEqual(parseNetSpec("service"), { netif: "service" });
    assert.deepEqual(parseNetSpec("service:br0"), { netif: "service", bridge: "br0" });
    const n = parseNetSpec("service:br0@0A:0b:0c:0d:0e:0f");
    assert.deepEqual(Array.from(n.mac!), [10, 11, 12, 13, 14, 15]);
    assert.deepEqual(Array.from(parseMac("00-11-22-33-44-55")), [0, 0x11, 0x22, 0x33, 0x44, 0x55]);
    for (const bad of ["00:11:22:33:44", "00:11:22:33:44:55:66", "0g:11:22:33:44:55", "00:11-22:33:44:55"]) {
      assert.throws(() => parseMac(bad), FlagError);
    }
  });

  test("timestamps: RFC 3339 with any offset, or a date at UTC midnight", () => {
    assert.equal(parseTimestamp("2023-03-12T23:42:15Z").toISOString(), "2023-03-12T23:42:15.000Z");
    assert.equal(parseTimestamp("2023-03-12T23:42:15+01:00").toISOString(), "2023-03-12T22:42:15.000Z");
    assert.equal(parseTimestamp("2023-03-12T23:42:15.123456-00:00").toISOString(), "2023-03-12T23:42:15.123Z");
    assert.equal(parseTimestamp("2023-03-12").toISOString(), "2023-03-12T00:00:00.000Z");
    for (const bad of ["2023-02-30", "2023-03-12T25:00:00Z", "2023-03-12T23:42:15", "12.03.2023", ""]) {
      assert.throws(() => parseTimestamp(bad), { message: "couldn't parse timestamp" });
    }
  });

  test("destinations: split at the last colon", () => {
    assert.deepEqual(parseDestination("example.com"), { host: "example.com", port: 1025 });
    assert.deepEqual(parseDestination("example.com:4443"), { host: "example.com", port: 4443 });
    assert.deepEqual(parseDestination("192.0.2.1"), { host: "192.0.2.1", port: 1025 });
    assert.deepEqual(parseDestination("::1:1025"), { host: "::1", port: 1025 });
    assert.deepEqual(parseDestination("-:1025"), { host: "-", port: 1025 });
    assert.throws(() => parseDestination("example.com:http"), { message: "failed to parse port" });
    assert.throws(() => parseDestination("::1"), FlagError);
    assert.throws(() => parseDestination("[::1]:1025"), FlagError);
    assert.throws(() => parseDestination("bad_host!"), FlagError);
  });

  test("http hosts", () => {
    assert.equal(parseHttpHost("https://builds.robur.coop"), "https://builds.robur.coop");
    assert.equal(parseHttpHost("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
    for (const bad of ["ftp://x", "https://", "https://x/y", "builds.robur.coop"]) {
      assert.throws(() => parseHttpHost(bad), { message: "expected http[s]://hostname" });
    }
  });

  test("mutually exclusive destinations", () => {
    assert.deepEqual(destinationOf({}), { kind: "local" });
    assert.deepEqual(destinationOf({ csr: true }), { kind: "csr" });
    assert.throws(() => destinationOf({ csr: true, socket: "-" }), {
      message: "The options --csr, --destination, and --socket are mutually exclusive",
    });
  });

  test("common names (cli.md §1.1)", async () => {
    assert.equal(await commonNameFor({ kind: "unikernel-destroy" }, parseName("foo")), "foo");
    assert.equal(await commonNameFor({ kind: "unikernel-info" }, parseName(":")), ".");
    assert.equal(await commonNameFor({ kind: "policy-remove" }, parseName("foo:bar:")), "foo:bar");
    assert.equal(await commonNameFor({ kind: "policy-info" }, parseName(":")), "");
    await assert.rejects(() => commonNameFor({ kind: "unikernel-destroy" }, parseName("foo:bar")), { message: "non-empty path" });
  });

  test("builder-web locations", () => {
    assert.deepEqual(jobAndBuild("/job/hello/build/abc"), { job: "hello", build: "abc" });
    assert.deepEqual(jobAndBuild("/job/hello/build/abc/"), { job: "hello", build: "abc" });
    assert.throws(() => jobAndBuild("https://x/job/hello/build/abc"), {
      message: "expected '/job/<jobname>/build/<uuid>', got: https://x/job/hello/build/abc",
    });
  });
});

describe("rendering", () => {
  test("OCaml String.escaped", () => {
    const b = Uint8Array.from([0x5c, 0x22, 0x0a, 0x09, 0x0d, 0x08, 0x27, 0x00, 0x7f, 0xc3, 0xa9, 0x20, 0x7e]);
    assert.equal(escapeOcaml(b), "\\\\\\\"\\n\\t\\r\\b'\\000\\127\\195\\169 ~");
  });

  test("escaped output never contains control characters, and printable ASCII is kept", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        const s = escapeOcaml(b);
        assert.ok(/^[\x20-\x7e]*$/.test(s));
        const plain = b.every((c) => c >= 0x20 && c <= 0x7e && c !== 0x5c && c !== 0x22);
        if (plain) assert.equal(s, Buffer.from(b).toString("latin1"));
      }),
    );
  });

  test("RFC 3339 at second precision with -00:00", () => {
    assert.equal(rfc3339(new Date("2025-08-22T13:04:43.999Z")), "2025-08-22T13:04:43-00:00");
  });

  test("hexdump: 16 bytes a line, two groups of 8", () => {
    const b = Uint8Array.from({ length: 18 }, (_, i) => i);
    assert.equal(hexdump(b), "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10 11");
    assert.equal(hexdump(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])), "01 02 03 04 05 06 07 08");
    assert.equal(hexdump(new Uint8Array(0)), "");
  });

  test("policy (upstream Policy.pp)", () => {
    assert.equal(policyText({ unikernels: 1n, cpuids: [0], memory: 512, bridges: [] }), "policy: 1 unikernels 0 CPUids 512 MB memory no block");
  });

  test("unikernel info", () => {
    const s = infoText({
      typ: "solo5",
      failBehaviour: { kind: "restart", exitCodes: [3, 4] },
      cpuids: [0, 1],
      memory: 32,
      digest: Uint8Array.from([0xab, 0xcd]),
      blockDevices: [{ unikernelDevice: "storage", hostDevice: "disk", sectorSize: 512, blockSize: 10 }],
      bridges: [{ unikernelDevice: "service", hostDevice: "br0", mac: Uint8Array.from([0, 0x80, 0x41, 1, 2, 3]) }],
      started: new Date("2025-01-01T00:00:00Z"),
      numcpus: 1,
    });
    assert.equal(
      s,
      "typ solo5 started 2025-01-01T00:00:00-00:00 fail behaviour restart 3, 4 startup at not specified CPUids 0, 1 32 MB memory" +
        " block devices storage -> disk (sector-size: 512 bytes, size 10 MB) bridge service -> br0 (mac 00:80:41:01:02:03)" +
        " digest abcd #cpus 1 linux_boot_partition not specified",
    );
  });

  test("statistics", () => {
    const tv = { seconds: 1n, microseconds: 5 };
    const s = statsText({
      rusage: rusage({
        utime: tv,
        stime: tv,
        maxrss: 100n,
        nivcsw: -1n,
      }),
      ifdata: [],
    });
    assert.ok(s.startsWith("utime 1.000005 stime 1.000005 maxrss 100 "));
    assert.ok(s.includes("nivcsw 18446744073709551615\nno kinfo_mem stats\nno vmm stats\n"));
  });

  test("failure text escapes control characters", () => {
    const w = wireText({
      header: { version: 5, sequence: 0n, name: parseName("x") },
      payload: { kind: "failure", message: Uint8Array.from([0x62, 0x1b, 0x5b, 0x32, 0x4a]) },
    });
    assert.equal(w, "host [unikernel: :x]: command failed b\\027[2J");
  });

  test("endpoints (daemon.md §1)", () => {
    assert.deepEqual(endpointOf({ kind: "block-dump", level: 0 }), { socket: "vmmd", mode: "dump" });
    assert.deepEqual(endpointOf({ kind: "stats-subscribe" }), { socket: "stat", mode: "read" });
    assert.deepEqual(endpointOf({ kind: "stats-add", vmmdev: "", pid: 1, network: [] }), { socket: "stat", mode: "single" });
    assert.deepEqual(endpointOf({ kind: "console-list-inactive" }), { socket: "console", mode: "single" });
    assert.deepEqual(endpointOf({ kind: "console-subscribe", sinceCount: { kind: "count", count: 1 } }), { socket: "console", mode: "read" });
    assert.deepEqual(endpointOf({ kind: "block-set", compressed: false }), { socket: "vmmd", mode: "single" });
    assert.deepEqual(endpointOf({ kind: "policy-info" }), { socket: "vmmd", mode: "single" });
  });
});
