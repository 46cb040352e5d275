// src/core/log.ts: one line format for every daemon, levels, JSON, parsing back.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger, formatLine, parseLine, shows, verbosityFrom, type Level } from "../../src/core/log.js";

const T = new Date("2025-06-01T10:00:00.123Z");

describe("core/log", () => {
  it("text: '<RFC 3339 time> <daemon>: [LEVEL] message', albatross's level names", () => {
    assert.equal(formatLine("text", "hostd", "warn", "disk full", T, 7), "2025-06-01T10:00:00.123Z hostd: [WARNING] disk full");
    assert.equal(formatLine("text", "console-daemon", "info", "listening", T, 7), "2025-06-01T10:00:00.123Z console-daemon: [INFO] listening");
    assert.equal(formatLine("text", "endpoint", "error", "x", T, 7, true), "[ERROR] x");
  });

  it("text: a message with newlines stays one line", () => {
    const l = formatLine("text", "hostd", "error", "a\nb\r\nc", T, 1);
    assert.equal(l.split("\n").length, 1);
    assert.equal(parseLine(l)?.msg, "a\\nb\\nc");
  });

  it("json: one object with time, level, daemon, pid, msg", () => {
    const l = formatLine("json", "stats-daemon", "warn", 'a "quoted"\nmessage', T, 42);
    assert.equal(l.split("\n").length, 1);
    assert.deepEqual(JSON.parse(l), { time: "2025-06-01T10:00:00.123Z", level: "warning", daemon: "stats-daemon", pid: 42, msg: 'a "quoted"\nmessage' });
  });

  it("parseLine reads both formats back, and nothing else", () => {
    for (const level of ["debug", "info", "warn", "error"] as Level[]) {
      for (const format of ["text", "json"] as const) {
        assert.deepEqual(parseLine(formatLine(format, "up", level, "m: [x]", T, 1)), { time: T.toISOString(), daemon: "up", level, msg: "m: [x]" });
      }
    }
    for (const junk of ["", "hostd: [INFO] no time", "    at foo (file.js:1:2)", "{not json", '{"time":"t"}', "2025-06-01T10:00:00Z hostd: [LOUD] x"]) {
      assert.equal(parseLine(junk), null, junk);
    }
  });

  it("verbosity: a level is shown at its own verbosity and the chattier ones", () => {
    assert.ok(shows("debug", "debug") && shows("info", "warn") && shows("error", "error"));
    assert.ok(!shows("info", "debug") && !shows("warning", "info") && !shows("quiet", "error"));
  });

  it("-v/-q: daemons info by default; the endpoint as albatross (warning, -v info, -vv debug, -q nothing)", () => {
    assert.equal(verbosityFrom({}), "info");
    assert.equal(verbosityFrom({ verbose: 1 }), "debug");
    assert.equal(verbosityFrom({ verbose: true }), "debug");
    assert.equal(verbosityFrom({ quiet: true }), "warning");
    assert.equal(verbosityFrom({ quiet: true, verbosity: "error" }), "error");
    assert.equal(verbosityFrom({}, "albatross"), "warning");
    assert.equal(verbosityFrom({ verbose: 1 }, "albatross"), "info");
    assert.equal(verbosityFrom({ verbose: 2 }, "albatross"), "debug");
    assert.equal(verbosityFrom({ quiet: true }, "albatross"), "quiet");
  });

  it("createLogger filters by verbosity and writes one line per message", () => {
    const lines: string[] = [];
    const l = createLogger({ daemon: "influx", verbosity: "warning", write: (x) => lines.push(x), now: () => T });
    l.log("debug", "d");
    l.log("info", "i");
    l.log("warn", "w");
    l.log("error", "e");
    assert.deepEqual(lines, ["2025-06-01T10:00:00.123Z influx: [WARNING] w", "2025-06-01T10:00:00.123Z influx: [ERROR] e"]);
    assert.ok(l.shows("warn") && !l.shows("info"));
  });
});
