// policy.md §13.1 (N1–N11) and the label/name parsing rules of wire.md §2.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  appendLabel,
  compareLabel,
  dropPath,
  dropPrefix,
  nameFileComponent,
  nameToString,
  parentPath,
  parseLabel,
  parseName,
  parsePath,
  pathEquals,
  pathToString,
  rootName,
  rootPath,
  type Name,
} from "../../src/core/name.js";

const n = (path: string[], label: string | null = null): Name => ({ path, label });

test("N1 parse `:` is the root name", () => {
  assert.deepEqual(parseName(":"), rootName);
  assert.equal(nameToString(parseName(":")), ":");
});

test("N2 parse `foo:bar:` is path foo:bar without label", () => {
  assert.deepEqual(parseName("foo:bar:"), n(["foo", "bar"]));
});

test("N3 parse `foo:bar` is path foo, label bar", () => {
  assert.deepEqual(parseName("foo:bar"), n(["foo"], "bar"));
});

test("N4 parse `foo:bar:my-unikernel.hello`, its path and the path's parent", () => {
  const x = parseName("foo:bar:my-unikernel.hello");
  assert.deepEqual(x, n(["foo", "bar"], "my-unikernel.hello"));
  assert.deepEqual(x.path, ["foo", "bar"]);
  assert.deepEqual(parentPath(x.path), ["foo"]);
});

test("N5 append label foo to the root path", () => {
  assert.deepEqual(appendLabel(rootPath, "foo"), ["foo"]);
});

test("N6 append bar to path foo", () => {
  assert.equal(pathToString(appendLabel(parsePath("foo"), "bar")), "foo:bar");
});

test("N7 append baz to foo:bar", () => {
  assert.equal(pathToString(appendLabel(parsePath("foo:bar"), "baz")), "foo:bar:baz");
});

test("N8 drop prefix a:b:c from a:b:c:d:e:foo", () => {
  assert.deepEqual(dropPrefix(parsePath("a:b:c"), parseName("a:b:c:d:e:foo")), parseName("d:e:foo"));
});

test("N9 drop prefix a:b:c from a:b:c:foo is `:foo`", () => {
  const x = dropPrefix(parsePath("a:b:c"), parseName("a:b:c:foo"));
  assert.deepEqual(x, parseName("foo"));
  assert.equal(nameToString(x), ":foo");
});

test("N10 drop path of a:b:c:d:e:foo is `:foo`", () => {
  assert.deepEqual(dropPath(parseName("a:b:c:d:e:foo")), parseName(":foo"));
});

test("N11 drop path of a:b:c:d:e: is the root name", () => {
  assert.deepEqual(dropPath(parseName("a:b:c:d:e:")), rootName);
  assert.equal(nameToString(dropPath(parseName("a:b:c:d:e:"))), ":");
});

// ---------------------------------------------------------------------------------------
// Edge cases

const LABEL_ERROR = "invalid label (only [a-zA-Z0-9-.] allowed, 1 to 63 chars)";

test("labels are normalised to lower case", () => {
  assert.equal(parseLabel("FoO"), "foo");
  assert.deepEqual(parseName("ALPHA:Beta"), n(["alpha"], "beta"));
  assert.deepEqual(parseName("ALPHA:"), parseName("alpha:"));
});

test("63-char labels are accepted, 64-char labels rejected", () => {
  const l63 = "a".repeat(63);
  assert.equal(parseLabel(l63), l63);
  assert.throws(() => parseLabel("a".repeat(64)), { message: LABEL_ERROR });
  assert.throws(() => parsePath(`x:${"b".repeat(64)}`), { message: `invalid path: ${LABEL_ERROR}` });
  assert.throws(() => parseName(`x:${"b".repeat(64)}`), { message: "invalid name" });
});

test("`-` may not start a label, but may follow", () => {
  assert.throws(() => parseLabel("-foo"), { message: LABEL_ERROR });
  assert.throws(() => parseName("-foo"), { message: "invalid name" });
  assert.equal(parseLabel("f-"), "f-");
  assert.equal(parseLabel("0-0"), "0-0");
});

test("`.` is an ordinary label character, also alone and first", () => {
  assert.deepEqual(parseName("."), n([], "."));
  assert.deepEqual(parseName(".foo:a.b"), n([".foo"], "a.b"));
  assert.deepEqual(parseName("a.b"), n([], "a.b")); // dots never create hierarchy
});

test("empty labels: `a::b` and `::` are errors, empty string is `empty name`", () => {
  assert.throws(() => parseName("a::b"), { message: "invalid name" });
  assert.throws(() => parseName("::"), { message: `invalid path: ${LABEL_ERROR}` });
  assert.throws(() => parseName("a::"), { message: `invalid path: ${LABEL_ERROR}` });
  assert.throws(() => parseName(""), { message: "empty name" });
  assert.throws(() => parseLabel(""), { message: LABEL_ERROR });
});

test("only a single leading `:` is dropped when parsing a path", () => {
  assert.deepEqual(parsePath(""), []);
  assert.deepEqual(parsePath(":foo"), ["foo"]);
  assert.throws(() => parsePath("::foo"), { message: `invalid path: ${LABEL_ERROR}` });
});

test("`/` is rejected anywhere in a name; `..` cannot escape a directory", () => {
  for (const s of ["a/b", "../x", "foo:../bar", "/etc/passwd", "foo/:", "foo:/", "x:a/b:"]) {
    assert.throws(() => parseName(s), /invalid (name|path)/, s);
  }
  // `..` is a valid label upstream (only [a-zA-Z0-9-.], not starting with '-'); kept for
  // wire compatibility. Its name text always contains ':', so as a file name component
  // it is `:..` or `foo:..`, never the parent directory.
  const dots = parseName("..");
  assert.deepEqual(dots, n([], ".."));
  assert.equal(nameFileComponent(dots), ":..");
  assert.equal(nameFileComponent(parseName("..:..")), "..:..");
  assert.ok(!nameFileComponent(parseName("..:..")).includes("/"));
});

test("other characters are rejected (space, NUL, unicode, `_`)", () => {
  for (const s of ["a b", "a\u0000", "ä", "a_b", "a\n", "a;b"]) {
    assert.throws(() => parseLabel(s), { message: LABEL_ERROR }, JSON.stringify(s));
  }
});

test("compareLabel is bytewise (UTF-8 order) and pathEquals label-wise", () => {
  assert.ok(compareLabel("a", "b") < 0);
  assert.ok(compareLabel("B", "a") < 0); // uppercase sorts before lowercase bytewise
  assert.ok(compareLabel("a", "a.") < 0);
  assert.ok(compareLabel("a-", "a.") < 0); // '-' 0x2d < '.' 0x2e
  assert.equal(compareLabel("abc", "abc"), 0);
  // U+10000 (UTF-8 F0..) sorts after U+FFFD (UTF-8 EF..), unlike UTF-16 code units.
  assert.ok(compareLabel("\u{10000}", "\ufffd") > 0);
  assert.ok(compareLabel("\ufffd", "\u{10000}") < 0);
  assert.ok(pathEquals(["a", "b"], ["a", "b"]));
  assert.ok(!pathEquals(["a"], ["a", "b"]));
});
