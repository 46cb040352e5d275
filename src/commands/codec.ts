// The albatross wire v5 codec (wire.md §4–§11): DER <-> the data model of types.ts.
//
// Decoders mirror upstream vmm_asn.ml (asn1-combinators, DER mode) and only ever throw
// DecodeError, whose message carries the byte offset and a dotted path such as
// `wire.payload.command.unikernel.create.config.memory`. Encoders produce exactly the
// bytes upstream produces (SET OF sorted by encoding, EXPLICIT tags, Int64 as 8-byte
// OCTET STRING, the current alternative of every versioned CHOICE); they throw RangeError
// for values upstream cannot encode either (old info forms with != 1 CPU id, integers
// outside the 63-bit range, duplicate state keys).
//
// Untagged nested CHOICEs (upstream `choice2 (choice6 ...) (choice6 ...)`) are transparent
// on the wire, so each is decoded here as one flat tag table.
//
// Decoded byte fields (images, argv, console lines) are zero-copy views into the input.
// Pure: no I/O.

import { Cursor, DecodeError, TAG, ctx, decodeAll, tlvHeader, type Bytes } from "./der.js";
import { NameError, compareLabels, nameLabels, nameToString, parseName, type Name } from "../core/name.js";
import type {
  BlockDevice,
  BlockDeviceEntry,
  BlockInfo,
  CertExtension,
  Command,
  Data,
  FailBehaviour,
  Header,
  Ifdata,
  KinfoMem,
  NetDevice,
  NetInfo,
  Payload,
  Policy,
  PolicyEntry,
  Rusage,
  SinceCount,
  State,
  StatePolicy,
  StateUnikernel,
  StateVersion,
  StatsData,
  StatsNetwork,
  Success,
  Timeval,
  Typ,
  UnikernelArguments,
  UnikernelConfig,
  UnikernelInfo,
  UnikernelInfoEntry,
  VmmStat,
  Wire,
} from "./types.js";
import { WIRE_VERSION } from "./types.js";
import { encode, encodedSize, encodePieces, type Out } from "./writer.js";

// =======================================================================================
// Decoding helpers

/** Decoders build results field by field (conditional spreads allocate per field). */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

type Alt<T> = readonly [name: string, decode: (c: Cursor) => T];

const hex2 = (n: number): string => n.toString(16).padStart(2, "0");

/**
 * Decode a CHOICE whose alternatives are all `[n] EXPLICIT` (tag byte -> alternative). The
 * alternative's content must be exactly one value. `what` names the CHOICE in the path
 * ("" when the CHOICE is the whole content of an enclosing explicit tag).
 */
function choice<T>(c: Cursor, what: string, typeName: string, alts: ReadonlyMap<number, Alt<T>>): T {
  const tag = c.peekTag();
  if (tag === undefined) return what ? c.fail(`missing ${what}`, what) : c.fail(`missing ${typeName}`);
  const alt = alts.get(tag);
  if (!alt) {
    const reason = `unknown CHOICE tag 0x${hex2(tag)} for ${typeName}`;
    return what ? c.fail(reason, what) : c.fail(reason);
  }
  const name = what ? `${what}.${alt[0]}` : alt[0];
  const t = c.next(name);
  const inner = Cursor.child(c, t.contentStart, t.end, name);
  const v = alt[1](inner);
  inner.done();
  return v;
}

const alts = <T>(entries: ReadonlyArray<readonly [number, string, (c: Cursor) => T]>): ReadonlyMap<number, Alt<T>> =>
  new Map(entries.map(([n, name, f]) => [0xa0 | n, [name, f] as const]));

/** Decode `f` on the content of a SEQUENCE named `what`, requiring it to be fully consumed. */
function sequence<T>(c: Cursor, what: string, f: (c: Cursor) => T): T {
  const inner = c.into(TAG.SEQUENCE, what);
  const v = f(inner);
  inner.done();
  return v;
}

/** SEQUENCE OF / SET OF: decode every element in wire order. */
function listOf<T>(c: Cursor, tag: number, what: string, f: (c: Cursor, what: string) => T): T[] {
  const inner = c.into(tag, what);
  const out: T[] = [];
  for (let i = 0; !inner.atEnd(); i++) out.push(f(inner, String(i)));
  return out;
}

/** An optional `[n] EXPLICIT` field holding one value. */
function optExplicit<T>(c: Cursor, n: number, what: string, f: (c: Cursor) => T): T | undefined {
  const inner = c.intoOptional(0xa0 | n, what);
  if (!inner) return undefined;
  const v = f(inner);
  inner.done();
  return v;
}

const latin1 = new TextDecoder("latin1");

function decName(c: Cursor, what: string): Name {
  const t = c.expect(TAG.UTF8String, what);
  // Labels are ASCII-only, so any byte >= 0x80 makes the name invalid anyway; latin1-style
  // decoding avoids a UTF-8 error that would hide the real reason.
  let s = "";
  if (t.end - t.contentStart > 64) s = latin1.decode(c.buf.subarray(t.contentStart, t.end));
  else for (let i = t.contentStart; i < t.end; i++) s += String.fromCharCode(c.buf[i]!);
  try {
    return parseName(s);
  } catch (e) {
    if (e instanceof NameError) throw new DecodeError(e.message, t.start, c.sub(what));
    throw e;
  }
}

const ascendingUnique = (xs: number[]): number[] => {
  xs.sort((a, b) => a - b);
  return xs.filter((x, i) => i === 0 || x !== xs[i - 1]);
};

function intSet(c: Cursor, tag: number, what: string): number[] {
  return ascendingUnique(listOf(c, tag, what, (e, i) => e.int(i)));
}

const utf8Enc = new TextEncoder();

/** Bytewise (UTF-8) order of strings, as OCaml's String.compare. */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const x = utf8Enc.encode(a),
    y = utf8Enc.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

function stringSet(xs: readonly string[]): string[] {
  const s = [...xs].sort(compareUtf8);
  return s.filter((x, i) => i === 0 || x !== s[i - 1]);
}

// =======================================================================================
// Encoding helpers (encoders write to an `Out`, see writer.ts)

const seqOf = (o: Out, body: () => void): void => o.tlv(TAG.SEQUENCE, body);
const explicitly = (o: Out, n: number, body: () => void): void => o.tlv(0xa0 | n, body);
const nullIn = (o: Out, n: number): void => o.tlv(0xa0 | n, () => o.null());
const octets = (o: Out, b: Bytes): void => o.prim(TAG.OCTET_STRING, b);
const utf8Bytes = (o: Out, b: Bytes): void => o.prim(TAG.UTF8String, b);
const nameEnc = (o: Out, n: Name): void => o.utf8(nameToString(n));

function checkInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${what}: ${v} is not a safe integer`);
  return v;
}

function int32(o: Out, v: number, what: string): void {
  if (!Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) throw new RangeError(`${what}: ${v} outside the Int32 range`);
  o.int(v);
}

function uniqueSortedInts(xs: readonly number[], what: string): number[] {
  for (const x of xs) checkInt(x, what);
  return ascendingUnique([...xs]);
}

const intSetEnc = (o: Out, xs: readonly number[], what: string): void => o.setOf(uniqueSortedInts(xs, what), (x) => o.int(x));

function singleCpu(cpuids: readonly number[], what: string): number {
  const u = uniqueSortedInts(cpuids, "cpuid");
  if (u.length !== 1) throw new RangeError(`expected a single CPUid for ${what}, got ${u.length}`);
  return u[0]!;
}

// =======================================================================================
// Shared building blocks (wire.md §7)

const typAlts = alts<Typ>([
  [0, "solo5", (c) => (c.null("null"), "solo5")],
  [1, "bhyve", (c) => (c.null("null"), "bhyve")],
]);
const decTyp = (c: Cursor): Typ => choice(c, "typ", "Typ", typAlts);
const encTyp = (o: Out, t: Typ): void => nullIn(o, t === "solo5" ? 0 : 1);

const failAlts = alts<FailBehaviour>([
  [0, "quit", (c) => (c.null("null"), { kind: "quit" })],
  [1, "restart", (c) => ({ kind: "restart", exitCodes: intSet(c, TAG.SET, "exit-codes") })],
]);
const decFail = (c: Cursor): FailBehaviour => choice(c, "fail-behaviour", "FailBehaviour", failAlts);
function encFail(o: Out, f: FailBehaviour): void {
  if (f.kind === "quit") nullIn(o, 0);
  else explicitly(o, 1, () => intSetEnc(o, f.exitCodes, "exit code"));
}

function decMac(c: Cursor, what: string): Bytes {
  const t = c.expect(TAG.OCTET_STRING, what);
  const n = t.end - t.contentStart;
  if (n !== 6) throw new DecodeError(`bad mac address: expected 6 bytes, got ${n}`, t.start, c.sub(what));
  return c.buf.subarray(t.contentStart, t.end);
}

function encMac(o: Out, m: Bytes): void {
  if (m.length !== 6) throw new RangeError(`MAC address must be 6 bytes, got ${m.length}`);
  octets(o, m);
}

function decBlockDevice(c: Cursor, what: string): BlockDevice {
  return sequence(c, what, (s) => {
    const r: Mutable<BlockDevice> = { name: s.utf8("block-name") };
    if (s.peekTag() === TAG.UTF8String) r.device = s.utf8("block-device-name");
    if (s.peekTag() === TAG.INTEGER) r.sectorSize = s.int("block-sector-size");
    return r;
  });
}

function encBlockDevice(o: Out, b: BlockDevice): void {
  seqOf(o, () => {
    o.utf8(b.name);
    if (b.device !== undefined) o.utf8(b.device);
    if (b.sectorSize !== undefined) o.int(checkInt(b.sectorSize, "sector size"));
  });
}

function decNetDevice(c: Cursor, what: string): NetDevice {
  return sequence(c, what, (s) => {
    const r: Mutable<NetDevice> = { netif: s.utf8("netif") };
    if (s.peekTag() === TAG.UTF8String) r.bridge = s.utf8("bridge");
    if (s.peekTag() === TAG.OCTET_STRING) r.mac = decMac(s, "mac");
    return r;
  });
}

function encNetDevice(o: Out, n: NetDevice): void {
  seqOf(o, () => {
    o.utf8(n.netif);
    if (n.bridge !== undefined) o.utf8(n.bridge);
    if (n.mac !== undefined) encMac(o, n.mac);
  });
}

const decArgv = (c: Cursor): Bytes[] => listOf(c, TAG.SEQUENCE, "arguments", (e, i) => e.utf8Bytes(i));
const encArgv = (o: Out, argv: readonly Bytes[]): void =>
  seqOf(o, () => {
    for (const a of argv) utf8Bytes(o, a);
  });

/** The optional `[0] blocks`, `[1] bridges`, `[2] arguments` tail shared by V3+ forms. */
function decDevicesAndArgv(c: Cursor, r: Mutable<Pick<UnikernelArguments, "blockDevices" | "bridges" | "argv">>): void {
  r.blockDevices = optExplicit(c, 0, "blocks", (e) => listOf(e, TAG.SET, "set", decBlockDevice)) ?? [];
  r.bridges = optExplicit(c, 1, "bridges", (e) => listOf(e, TAG.SET, "set", decNetDevice)) ?? [];
  const argv = optExplicit(c, 2, "arguments", decArgv);
  if (argv !== undefined) r.argv = argv;
}

/** The `[3] cpus` (absent -> 1) and `[4] linux-boot-partition` tail of current forms. */
function decCpusAndBoot(c: Cursor, r: Mutable<Pick<UnikernelArguments, "numcpus" | "linuxBootPartition">>): void {
  r.numcpus = optExplicit(c, 3, "cpus", (e) => e.int("int")) ?? 1;
  const lbp = optExplicit(c, 4, "linux-boot-partition", (e) => e.utf8("string"));
  if (lbp !== undefined) r.linuxBootPartition = lbp;
}

/** Encoders omit empty device lists and an absent argv (`Some []` is `[2]{30 00}`). */
function encDevicesAndArgv(o: Out, a: UnikernelArguments): void {
  if (a.blockDevices.length > 0) explicitly(o, 0, () => o.setOf(a.blockDevices, (b) => encBlockDevice(o, b)));
  if (a.bridges.length > 0) explicitly(o, 1, () => o.setOf(a.bridges, (n) => encNetDevice(o, n)));
  const argv = a.argv;
  if (argv !== undefined) explicitly(o, 2, () => encArgv(o, argv));
}

/** The `[3] cpus` (always emitted) and `[4] linux-boot-partition` tail. */
function encCpusAndBoot(o: Out, a: UnikernelArguments): void {
  explicitly(o, 3, () => o.int(checkInt(a.numcpus, "numcpus")));
  const lbp = a.linuxBootPartition;
  if (lbp !== undefined) explicitly(o, 4, () => o.utf8(lbp));
}

/** Defaults of wire.md §7.3 for fields older forms do not carry. */
const OLD_DEFAULTS = { addName: true, numcpus: 1 } as const;

// =======================================================================================
// Unikernel configurations (wire.md §7.1, §7.3)

function decConfigV6Body(s: Cursor): UnikernelConfig {
  const typ = decTyp(s);
  const compressed = s.bool("compressed");
  const image = s.octets("image");
  const startup = s.peekTag() === TAG.INTEGER ? s.int("startup") : undefined;
  const r: Mutable<UnikernelConfig> = {
    typ,
    compressed,
    image,
    addName: s.bool("add-name"),
    failBehaviour: decFail(s),
    cpuids: intSet(s, TAG.SET, "cpuids"),
    memory: s.int("memory"),
    blockDevices: [],
    bridges: [],
    numcpus: 1,
  };
  if (startup !== undefined) r.startup = startup;
  decDevicesAndArgv(s, r);
  decCpusAndBoot(s, r);
  return r;
}

function encConfigV6(o: Out, u: UnikernelConfig): void {
  seqOf(o, () => {
    encTyp(o, u.typ);
    o.bool(u.compressed);
    octets(o, u.image);
    if (u.startup !== undefined) o.int(checkInt(u.startup, "startup"));
    o.bool(u.addName);
    encFail(o, u.failBehaviour);
    intSetEnc(o, u.cpuids, "cpuid");
    o.int(checkInt(u.memory, "memory"));
    encDevicesAndArgv(o, u);
    encCpusAndBoot(o, u);
  });
}

/** V4: create [16]/[17], state [5]. */
function decConfigV4Body(s: Cursor): UnikernelConfig {
  const typ = decTyp(s);
  const compressed = s.bool("compressed");
  const image = s.octets("image");
  const startup = s.peekTag() === TAG.INTEGER ? s.int("startup") : undefined;
  const addName = s.bool("add-name");
  const failBehaviour = decFail(s);
  const r: Mutable<UnikernelConfig> = {
    typ,
    compressed,
    image,
    addName,
    failBehaviour,
    cpuids: [s.int("cpuid")],
    memory: s.int("memory"),
    blockDevices: [],
    bridges: [],
    numcpus: 1,
  };
  if (startup !== undefined) r.startup = startup;
  decDevicesAndArgv(s, r);
  return r;
}

/** V3: create [9]/[10], state [3]/[4]. */
function decConfigV3Body(s: Cursor): UnikernelConfig {
  const typ = decTyp(s);
  const compressed = s.bool("compressed");
  const image = s.octets("image");
  const failBehaviour = decFail(s);
  const r: Mutable<UnikernelConfig> = {
    typ,
    compressed,
    image,
    ...OLD_DEFAULTS,
    failBehaviour,
    cpuids: [s.int("cpuid")],
    memory: s.int("memory"),
    blockDevices: [],
    bridges: [],
  };
  decDevicesAndArgv(s, r);
  return r;
}

const nameOnlyBlocks = (c: Cursor): BlockDevice[] => optExplicit(c, 0, "blocks", (e) => listOf(e, TAG.SET, "set", (x, i) => ({ name: x.utf8(i) }))) ?? [];

/** V2: state [2] only. Blocks are names only; bridges a SEQUENCE OF (netif, bridge?). */
function decConfigV2Body(s: Cursor): UnikernelConfig {
  const typ = decTyp(s);
  const compressed = s.bool("compressed");
  const image = s.octets("image");
  const failBehaviour = decFail(s);
  const cpuid = s.int("cpuid");
  const memory = s.int("memory");
  const blockDevices = nameOnlyBlocks(s);
  const bridges =
    optExplicit(s, 1, "bridges", (e) =>
      listOf(
        e,
        TAG.SEQUENCE,
        "list",
        (x, i): NetDevice =>
          sequence(x, i, (b) => {
            const netif = b.utf8("netif");
            const bridge = b.peekTag() === TAG.UTF8String ? b.utf8("bridge") : undefined;
            return { netif, ...(bridge !== undefined && { bridge }) };
          }),
      ),
    ) ?? [];
  const argv = optExplicit(s, 2, "arguments", decArgv);
  return {
    typ,
    compressed,
    image,
    ...OLD_DEFAULTS,
    failBehaviour,
    cpuids: [cpuid],
    memory,
    blockDevices,
    bridges,
    ...(argv !== undefined && { argv }),
  };
}

/** V1: state [0] only. Blocks and bridges are names only. */
function decConfigV1Body(s: Cursor): UnikernelConfig {
  const typ = decTyp(s);
  const compressed = s.bool("compressed");
  const image = s.octets("image");
  const failBehaviour = decFail(s);
  const cpuid = s.int("cpuid");
  const memory = s.int("memory");
  const blockDevices = nameOnlyBlocks(s);
  const bridges = optExplicit(s, 1, "bridges", (e) => listOf(e, TAG.SET, "set", (x, i) => ({ netif: x.utf8(i) }))) ?? [];
  const argv = optExplicit(s, 2, "arguments", decArgv);
  return {
    typ,
    compressed,
    image,
    ...OLD_DEFAULTS,
    failBehaviour,
    cpuids: [cpuid],
    memory,
    blockDevices,
    bridges,
    ...(argv !== undefined && { argv }),
  };
}

const v0ImageAlts = alts<{ compressed: boolean; image: Bytes }>([
  [0, "hvt-amd64", (c) => ({ compressed: false, image: c.octets("octets") })],
  [1, "hvt-arm64", (c) => ({ compressed: false, image: c.octets("octets") })],
  [2, "hvt-amd64-compressed", (c) => ({ compressed: true, image: c.octets("octets") })],
]);

/** V0: state [1] only; decode-only. Always solo5 with fail behaviour quit. */
function decConfigV0Body(s: Cursor): UnikernelConfig {
  const cpu = s.int("cpu");
  const memory = s.int("memory");
  const block = s.peekTag() === TAG.UTF8String ? s.utf8("block") : undefined;
  const netifs = s.peekTag() === TAG.SEQUENCE ? listOf(s, TAG.SEQUENCE, "network-interfaces", (e, i) => e.utf8(i)) : [];
  const { compressed, image } = choice(s, "image", "V0 image", v0ImageAlts);
  const argv = s.peekTag() === TAG.SEQUENCE ? decArgv(s) : undefined;
  return {
    typ: "solo5",
    compressed,
    image,
    ...OLD_DEFAULTS,
    failBehaviour: { kind: "quit" },
    cpuids: [cpu],
    memory,
    blockDevices: block === undefined ? [] : [{ name: block }],
    bridges: netifs.map((netif) => ({ netif })),
    ...(argv !== undefined && { argv }),
  };
}

const configDecoders: Record<StateVersion, (s: Cursor) => UnikernelConfig> = {
  0: decConfigV1Body,
  1: decConfigV0Body,
  2: decConfigV2Body,
  3: decConfigV3Body,
  4: decConfigV3Body,
  5: decConfigV4Body,
  6: decConfigV6Body,
};

// =======================================================================================
// Restart arguments (wire.md §7.2)

function decArgsV3(s: Cursor): UnikernelArguments {
  const failBehaviour = decFail(s);
  const startup = s.peekTag() === TAG.INTEGER ? s.int("startup") : undefined;
  const r: Mutable<UnikernelArguments> = {
    failBehaviour,
    addName: s.bool("add-name"),
    cpuids: intSet(s, TAG.SET, "cpuids"),
    memory: s.int("memory"),
    blockDevices: [],
    bridges: [],
    numcpus: 1,
  };
  if (startup !== undefined) r.startup = startup;
  decDevicesAndArgv(s, r);
  decCpusAndBoot(s, r);
  return r;
}

function decArgsV1(s: Cursor): UnikernelArguments {
  const failBehaviour = decFail(s);
  const startup = s.peekTag() === TAG.INTEGER ? s.int("startup") : undefined;
  const r: Mutable<UnikernelArguments> = {
    failBehaviour,
    addName: s.bool("add-name"),
    cpuids: [s.int("cpuid")],
    memory: s.int("memory"),
    blockDevices: [],
    bridges: [],
    numcpus: 1,
  };
  if (startup !== undefined) r.startup = startup;
  decDevicesAndArgv(s, r);
  return r;
}

function decArgsV0(s: Cursor): UnikernelArguments {
  const failBehaviour = decFail(s);
  const r: Mutable<UnikernelArguments> = {
    failBehaviour,
    ...OLD_DEFAULTS,
    cpuids: [s.int("cpuid")],
    memory: s.int("memory"),
    blockDevices: [],
    bridges: [],
  };
  decDevicesAndArgv(s, r);
  return r;
}

function encArgs(o: Out, a: UnikernelArguments): void {
  seqOf(o, () => {
    encFail(o, a.failBehaviour);
    if (a.startup !== undefined) o.int(checkInt(a.startup, "startup"));
    o.bool(a.addName);
    intSetEnc(o, a.cpuids, "cpuid");
    o.int(checkInt(a.memory, "memory"));
    encDevicesAndArgv(o, a);
    encCpusAndBoot(o, a);
  });
}

// =======================================================================================
// Policy (wire.md §8)

function decPolicyBody(s: Cursor): Policy {
  const cpuids = intSet(s, TAG.SEQUENCE, "cpuids");
  const unikernels = s.bigint("unikernels");
  const memory = s.int("memory");
  const block = s.peekTag() === TAG.INTEGER ? s.int("block") : undefined;
  const r: Mutable<Policy> = { unikernels, cpuids, memory, bridges: [] };
  if (block !== undefined) r.block = block;
  r.bridges = stringSet(listOf(s, TAG.SEQUENCE, "bridges", (e, i) => e.utf8(i)));
  return r;
}

const decPolicyIn = (c: Cursor, what: string): Policy => sequence(c, what, decPolicyBody);

/** Both lists are SEQUENCE OF, emitted ascending and without duplicates (upstream sets). */
function encPolicyEnc(o: Out, p: Policy): void {
  seqOf(o, () => {
    const cpuids = uniqueSortedInts(p.cpuids, "cpuid");
    seqOf(o, () => {
      for (const c of cpuids) o.int(c);
    });
    o.bigint(p.unikernels);
    o.int(checkInt(p.memory, "policy memory"));
    if (p.block !== undefined) o.int(checkInt(p.block, "policy block"));
    const bridges = stringSet(p.bridges);
    seqOf(o, () => {
      for (const b of bridges) o.utf8(b);
    });
  });
}

// =======================================================================================
// Commands (wire.md §5)

const sinceCountAlts = alts<SinceCount>([
  [0, "since", (c) => ({ kind: "since", since: c.time("time") })],
  [1, "count", (c) => ({ kind: "count", count: c.int("int") })],
]);

const consoleAlts = alts<Command>([
  [0, "add", (c) => ({ kind: "console-add", budget: c.bigint("int") })],
  [2, "subscribe", (c) => ({ kind: "console-subscribe", sinceCount: choice(c, "", "SinceCount", sinceCountAlts) })],
  [3, "list-inactive", (c) => (c.null("null"), { kind: "console-list-inactive" })],
]);

const statsAlts = alts<Command>([
  [
    0,
    "add",
    (c) =>
      sequence(c, "seq", (s) => {
        const vmmdev = s.utf8("vmmdev");
        const pid = s.int("pid");
        const network = listOf(s, TAG.SEQUENCE, "network", (e, i): StatsNetwork => sequence(e, i, (n) => ({ bridge: n.utf8("bridge"), tap: n.utf8("tap") })));
        return { kind: "stats-add", vmmdev, pid, network };
      }),
  ],
  [1, "remove", (c) => (c.null("null"), { kind: "stats-remove" })],
  [2, "subscribe", (c) => (c.null("null"), { kind: "stats-subscribe" })],
  [3, "initial", (c) => (c.null("null"), { kind: "stats-initial" })],
]);

const restartAlts = alts<UnikernelArguments | undefined>([
  [0, "no-arguments", (c) => (c.null("null"), undefined)],
  [1, "new-arguments-v0", (c) => sequence(c, "args", decArgsV0)],
  [2, "new-arguments-v1", (c) => sequence(c, "args", decArgsV1)],
  [3, "new-arguments", (c) => sequence(c, "args", decArgsV3)],
]);

const config = (f: (s: Cursor) => UnikernelConfig) => (c: Cursor) => sequence(c, "config", f);

const unikernelAlts = alts<Command>([
  [3, "destroy", (c) => (c.null("null"), { kind: "unikernel-destroy" })],
  [9, "create-v3", (c) => ({ kind: "unikernel-create", config: config(decConfigV3Body)(c) })],
  [10, "force-create-v3", (c) => ({ kind: "unikernel-force-create", config: config(decConfigV3Body)(c) })],
  [11, "get", (c) => ({ kind: "unikernel-get", level: c.int("level") })],
  [
    14,
    "restart",
    (c) => {
      const args = choice(c, "", "RestartArgs", restartAlts);
      return args === undefined ? { kind: "unikernel-restart" } : { kind: "unikernel-restart", args };
    },
  ],
  [15, "info-v4", (c) => (c.null("null"), { kind: "unikernel-info-v4" })],
  [16, "create-v4", (c) => ({ kind: "unikernel-create", config: config(decConfigV4Body)(c) })],
  [17, "force-create-v4", (c) => ({ kind: "unikernel-force-create", config: config(decConfigV4Body)(c) })],
  [18, "info-v5", (c) => (c.null("null"), { kind: "unikernel-info-v5" })],
  [19, "info", (c) => (c.null("null"), { kind: "unikernel-info" })],
  [20, "create", (c) => ({ kind: "unikernel-create", config: config(decConfigV6Body)(c) })],
  [21, "force-create", (c) => ({ kind: "unikernel-force-create", config: config(decConfigV6Body)(c) })],
]);

const policyAlts = alts<Command>([
  [0, "info", (c) => (c.null("null"), { kind: "policy-info" })],
  [1, "add", (c) => ({ kind: "policy-add", policy: decPolicyIn(c, "policy") })],
  [2, "remove", (c) => (c.null("null"), { kind: "policy-remove" })],
]);

const blockAlts = alts<Command>([
  [0, "info", (c) => (c.null("null"), { kind: "block-info" })],
  [1, "add", (c) => ({ kind: "block-add", size: c.int("size") })],
  [2, "remove", (c) => (c.null("null"), { kind: "block-remove" })],
  [
    3,
    "add-old",
    (c) =>
      sequence(c, "seq", (s) => {
        const size = s.int("size");
        const compressed = s.bool("compress");
        const data = s.peekTag() === TAG.OCTET_STRING ? s.octets("data") : undefined;
        return { kind: "block-add-old", size, compressed, ...(data !== undefined && { data }) };
      }),
  ],
  [4, "set-old", (c) => sequence(c, "seq", (s) => ({ kind: "block-set-old", compressed: s.bool("compress"), data: s.octets("data") }))],
  [5, "dump-old", (c) => ({ kind: "block-dump-old", level: c.int("level") })],
  [6, "dump", (c) => ({ kind: "block-dump", level: c.int("level") })],
  [7, "set", (c) => ({ kind: "block-set", compressed: c.bool("compress") })],
]);

function logDropped(message: string) {
  return (c: Cursor): never => c.fail(message, undefined, c.pos);
}

const commandAlts = alts<Command>([
  [0, "console", (c) => choice(c, "", "ConsoleCmd", consoleAlts)],
  [1, "statistics", (c) => choice(c, "", "StatsCmd", statsAlts)],
  // Upstream maps the obsolete log alternative to a parse error.
  [2, "log", logDropped("support for log dropped")],
  [3, "unikernel", (c) => choice(c, "", "UnikernelCmd", unikernelAlts)],
  [4, "policy", (c) => choice(c, "", "PolicyCmd", policyAlts)],
  [5, "block", (c) => choice(c, "", "BlockCmd", blockAlts)],
]);

const decCommandIn = (c: Cursor, what: string): Command => choice(c, what, "Command", commandAlts);

/** Command: `[group] EXPLICIT` around `[alt] EXPLICIT` around the alternative's value. */
function encCommandEnc(o: Out, cmd: Command): void {
  const wrap = (group: number, alt: number, inner: () => void): void => explicitly(o, group, () => explicitly(o, alt, inner));
  const nul = () => o.null();
  const int = (v: number, what: string) => () => o.int(checkInt(v, what));
  switch (cmd.kind) {
    case "console-add":
      return wrap(0, 0, () => o.bigint(cmd.budget));
    case "console-subscribe": {
      const sc = cmd.sinceCount;
      return wrap(0, 2, () => (sc.kind === "since" ? explicitly(o, 0, () => o.time(sc.since)) : explicitly(o, 1, int(sc.count, "count"))));
    }
    case "console-list-inactive":
      return wrap(0, 3, nul);
    case "stats-add":
      return wrap(1, 0, () =>
        seqOf(o, () => {
          o.utf8(cmd.vmmdev);
          o.int(checkInt(cmd.pid, "pid"));
          seqOf(o, () => {
            for (const n of cmd.network) {
              seqOf(o, () => {
                o.utf8(n.bridge);
                o.utf8(n.tap);
              });
            }
          });
        }),
      );
    case "stats-remove":
      return wrap(1, 1, nul);
    case "stats-subscribe":
      return wrap(1, 2, nul);
    case "stats-initial":
      return wrap(1, 3, nul);
    case "unikernel-destroy":
      return wrap(3, 3, nul);
    case "unikernel-create":
      return wrap(3, 20, () => encConfigV6(o, cmd.config));
    case "unikernel-force-create":
      return wrap(3, 21, () => encConfigV6(o, cmd.config));
    case "unikernel-get":
      return wrap(3, 11, int(cmd.level, "level"));
    case "unikernel-restart": {
      const args = cmd.args;
      return wrap(3, 14, () => (args === undefined ? nullIn(o, 0) : explicitly(o, 3, () => encArgs(o, args))));
    }
    case "unikernel-info":
      return wrap(3, 19, nul);
    case "unikernel-info-v5":
      return wrap(3, 18, nul);
    case "unikernel-info-v4":
      return wrap(3, 15, nul);
    case "policy-info":
      return wrap(4, 0, nul);
    case "policy-add":
      return wrap(4, 1, () => encPolicyEnc(o, cmd.policy));
    case "policy-remove":
      return wrap(4, 2, nul);
    case "block-info":
      return wrap(5, 0, nul);
    case "block-add":
      return wrap(5, 1, int(cmd.size, "size"));
    case "block-remove":
      return wrap(5, 2, nul);
    case "block-add-old": {
      const data = cmd.data;
      return wrap(5, 3, () =>
        seqOf(o, () => {
          o.int(checkInt(cmd.size, "size"));
          o.bool(cmd.compressed);
          if (data !== undefined) octets(o, data);
        }),
      );
    }
    case "block-set-old":
      return wrap(5, 4, () =>
        seqOf(o, () => {
          o.bool(cmd.compressed);
          octets(o, cmd.data);
        }),
      );
    case "block-dump-old":
      return wrap(5, 5, int(cmd.level, "level"));
    case "block-dump":
      return wrap(5, 6, int(cmd.level, "level"));
    case "block-set":
      return wrap(5, 7, () => o.bool(cmd.compressed));
  }
}

// =======================================================================================
// Replies (wire.md §6.1) and unikernel info (§7.4)

function decBlockInfo(c: Cursor, what: string): BlockInfo {
  return sequence(c, what, (s) => ({
    unikernelDevice: s.utf8("unikernel-device"),
    hostDevice: s.utf8("host-device"),
    sectorSize: s.int("sector-size"),
    blockSize: s.int("block-size"),
  }));
}

const encBlockInfo = (o: Out, b: BlockInfo): void =>
  seqOf(o, () => {
    o.utf8(b.unikernelDevice);
    o.utf8(b.hostDevice);
    o.int(checkInt(b.sectorSize, "sector size"));
    o.int(checkInt(b.blockSize, "block size"));
  });

function decNetInfo(c: Cursor, what: string): NetInfo {
  return sequence(c, what, (s) => ({
    unikernelDevice: s.utf8("unikernel-device"),
    hostDevice: s.utf8("host-device"),
    mac: decMac(s, "mac"),
  }));
}

const encNetInfo = (o: Out, n: NetInfo): void =>
  seqOf(o, () => {
    o.utf8(n.unikernelDevice);
    o.utf8(n.hostDevice);
    encMac(o, n.mac);
  });

type InfoForm = "v4" | "v5" | "v6";

function decInfoBody(s: Cursor, form: InfoForm): UnikernelInfo {
  const typ = decTyp(s);
  const startup = form !== "v4" && s.peekTag() === TAG.INTEGER ? s.int("startup") : undefined;
  const failBehaviour = decFail(s);
  const cpuids = form === "v6" ? intSet(s, TAG.SET, "cpuids") : [s.int("cpuid")];
  const memory = s.int("memory");
  const digest = s.octets("digest");
  const blockDevices = optExplicit(s, 0, "blocks", (e) => listOf(e, TAG.SET, "set", decBlockInfo)) ?? [];
  const bridges = optExplicit(s, 1, "bridges", (e) => listOf(e, TAG.SET, "set", decNetInfo)) ?? [];
  const argv = optExplicit(s, 2, "arguments", decArgv);
  // absent `started` decodes as the Unix epoch (upstream Ptime.epoch)
  const started = optExplicit(s, 3, "started", (e) => e.time("time")) ?? new Date(0);
  let numcpus = 1;
  let lbp: string | undefined;
  if (form === "v6") {
    numcpus = optExplicit(s, 4, "cpus", (e) => e.int("int")) ?? 1;
    lbp = optExplicit(s, 5, "linux-boot-partition", (e) => e.utf8("string"));
  }
  return {
    typ,
    ...(startup !== undefined && { startup }),
    failBehaviour,
    cpuids,
    memory,
    digest,
    blockDevices,
    bridges,
    ...(argv !== undefined && { argv }),
    started,
    numcpus,
    ...(lbp !== undefined && { linuxBootPartition: lbp }),
  };
}

function encInfo(o: Out, u: UnikernelInfo, form: InfoForm): void {
  // the old forms carry a single cpuid; upstream fails to encode anything else
  const cpuid = form === "v6" ? 0 : singleCpu(u.cpuids, `${form} unikernel info`);
  seqOf(o, () => {
    encTyp(o, u.typ);
    if (form !== "v4" && u.startup !== undefined) o.int(checkInt(u.startup, "startup"));
    encFail(o, u.failBehaviour);
    if (form === "v6") intSetEnc(o, u.cpuids, "cpuid");
    else o.int(cpuid);
    o.int(checkInt(u.memory, "memory"));
    octets(o, u.digest);
    if (u.blockDevices.length > 0) explicitly(o, 0, () => o.setOf(u.blockDevices, (b) => encBlockInfo(o, b)));
    if (u.bridges.length > 0) explicitly(o, 1, () => o.setOf(u.bridges, (n) => encNetInfo(o, n)));
    const argv = u.argv;
    if (argv !== undefined) explicitly(o, 2, () => encArgv(o, argv));
    explicitly(o, 3, () => o.time(u.started));
    if (form === "v6") {
      explicitly(o, 4, () => o.int(checkInt(u.numcpus, "numcpus")));
      const lbp = u.linuxBootPartition;
      if (lbp !== undefined) explicitly(o, 5, () => o.utf8(lbp));
    }
  });
}

function infoList(form: InfoForm) {
  return (c: Cursor): UnikernelInfoEntry[] =>
    listOf(c, TAG.SEQUENCE, "list", (e, i) => sequence(e, i, (s) => ({ name: decName(s, "name"), info: sequence(s, "info", (x) => decInfoBody(x, form)) })));
}

const encInfoList = (o: Out, xs: readonly UnikernelInfoEntry[], form: InfoForm): void =>
  seqOf(o, () => {
    for (const x of xs) {
      seqOf(o, () => {
        nameEnc(o, x.name);
        encInfo(o, x.info, form);
      });
    }
  });

const successAlts = alts<Success>([
  [0, "empty", (c) => (c.null("null"), { kind: "empty" })],
  [1, "string", (c) => ({ kind: "string", text: c.utf8Bytes("string") })],
  [
    2,
    "policies",
    (c) => ({
      kind: "policies",
      policies: listOf(c, TAG.SEQUENCE, "list", (e, i): PolicyEntry => sequence(e, i, (s) => ({ name: decName(s, "name"), policy: decPolicyIn(s, "policy") }))),
    }),
  ],
  [
    4,
    "block-devices",
    (c) => ({
      kind: "block-devices",
      devices: listOf(
        c,
        TAG.SEQUENCE,
        "list",
        (e, i): BlockDeviceEntry => sequence(e, i, (s) => ({ name: decName(s, "name"), size: s.int("size"), active: s.bool("active") })),
      ),
    }),
  ],
  [6, "unikernel-image", (c) => sequence(c, "seq", (s) => ({ kind: "unikernel-image", compressed: s.bool("compressed"), image: s.octets("image") }))],
  [
    7,
    "old-block-device-image",
    (c) => sequence(c, "seq", (s) => ({ kind: "old-block-device-image", compressed: s.bool("compressed"), image: s.octets("image") })),
  ],
  [9, "old-unikernel-info4", (c) => ({ kind: "old-unikernel-info4", unikernels: infoList("v4")(c) })],
  [10, "block-device-image", (c) => ({ kind: "block-device-image", compressed: c.bool("compressed") })],
  [11, "old-unikernel-info5", (c) => ({ kind: "old-unikernel-info5", unikernels: infoList("v5")(c) })],
  [12, "consoles", (c) => ({ kind: "consoles", names: listOf(c, TAG.SEQUENCE, "list", decName) })],
  [13, "unikernel-info", (c) => ({ kind: "unikernel-info", unikernels: infoList("v6")(c) })],
]);

const decSuccessIn = (c: Cursor, what: string): Success => choice(c, what, "Success", successAlts);

function encSuccessEnc(o: Out, s: Success): void {
  const image = (compressed: boolean, img: Bytes) => () =>
    seqOf(o, () => {
      o.bool(compressed);
      octets(o, img);
    });
  switch (s.kind) {
    case "empty":
      return nullIn(o, 0);
    case "string":
      return explicitly(o, 1, () => utf8Bytes(o, s.text));
    case "policies":
      return explicitly(o, 2, () =>
        seqOf(o, () => {
          for (const p of s.policies) {
            seqOf(o, () => {
              nameEnc(o, p.name);
              encPolicyEnc(o, p.policy);
            });
          }
        }),
      );
    case "block-devices":
      return explicitly(o, 4, () =>
        seqOf(o, () => {
          for (const d of s.devices) {
            seqOf(o, () => {
              nameEnc(o, d.name);
              o.int(checkInt(d.size, "size"));
              o.bool(d.active);
            });
          }
        }),
      );
    case "unikernel-image":
      return explicitly(o, 6, image(s.compressed, s.image));
    case "old-block-device-image":
      return explicitly(o, 7, image(s.compressed, s.image));
    case "old-unikernel-info4":
      return explicitly(o, 9, () => encInfoList(o, s.unikernels, "v4"));
    case "block-device-image":
      return explicitly(o, 10, () => o.bool(s.compressed));
    case "old-unikernel-info5":
      return explicitly(o, 11, () => encInfoList(o, s.unikernels, "v5"));
    case "consoles":
      return explicitly(o, 12, () =>
        seqOf(o, () => {
          for (const n of s.names) nameEnc(o, n);
        }),
      );
    case "unikernel-info":
      return explicitly(o, 13, () => encInfoList(o, s.unikernels, "v6"));
  }
}

// =======================================================================================
// Data and statistics (wire.md §6.3, §9)

const decTimeval = (c: Cursor, what: string): Timeval => sequence(c, what, (s) => ({ seconds: s.int64("seconds"), microseconds: s.int("microseconds") }));
const encTimeval = (o: Out, t: Timeval): void =>
  seqOf(o, () => {
    o.int64(t.seconds);
    o.int(checkInt(t.microseconds, "microseconds"));
  });

const RUSAGE_I64 = [
  "maxrss",
  "ixrss",
  "idrss",
  "isrss",
  "minflt",
  "majflt",
  "nswap",
  "inblock",
  "outblock",
  "msgsnd",
  "msgrcv",
  "nsignals",
  "nvcsw",
  "nivcsw",
] as const;

function decRusage(c: Cursor): Rusage {
  return sequence(c, "resource-usage", (s) => {
    const r: Record<string, unknown> = { utime: decTimeval(s, "utime"), stime: decTimeval(s, "stime") };
    for (const k of RUSAGE_I64) r[k] = s.int64(k);
    return r as unknown as Rusage;
  });
}

const encRusage = (o: Out, r: Rusage): void =>
  seqOf(o, () => {
    encTimeval(o, r.utime);
    encTimeval(o, r.stime);
    for (const k of RUSAGE_I64) o.int64(r[k]);
  });

const KINFO_I64 = ["vsize", "rss", "tsize", "dsize", "ssize", "runtime"] as const;

function decKinfoBody(s: Cursor): KinfoMem {
  const r: Record<string, unknown> = {};
  for (const k of KINFO_I64) r[k] = s.int64(k);
  r.cow = s.int("cow");
  r.start = decTimeval(s, "start");
  return r as unknown as KinfoMem;
}

const IFDATA_I32 = ["flags", "sendLength", "maxSendLength", "sendDrops", "mtu"] as const;
const IFDATA_I64 = [
  "baudrate",
  "inputPackets",
  "inputErrors",
  "outputPackets",
  "outputErrors",
  "collisions",
  "inputBytes",
  "outputBytes",
  "inputMcast",
  "outputMcast",
  "inputDropped",
  "outputDropped",
] as const;

function decIfdata(c: Cursor, what: string): Ifdata {
  return sequence(c, what, (s) => {
    const r: Record<string, unknown> = { bridge: s.utf8("bridge") };
    for (const k of IFDATA_I32) r[k] = s.int32(k);
    for (const k of IFDATA_I64) r[k] = s.int64(k);
    return r as unknown as Ifdata;
  });
}

const encIfdata = (o: Out, i: Ifdata): void =>
  seqOf(o, () => {
    o.utf8(i.bridge);
    for (const k of IFDATA_I32) int32(o, i[k], k);
    for (const k of IFDATA_I64) o.int64(i[k]);
  });

function decStats(c: Cursor): StatsData {
  return sequence(c, "stats", (s) => {
    const rusage = decRusage(s);
    const ifdata = listOf(s, TAG.SEQUENCE, "ifdata", decIfdata);
    const vmm = optExplicit(s, 0, "vmm-stats", (e) =>
      listOf(e, TAG.SEQUENCE, "list", (x, i): VmmStat => sequence(x, i, (kv) => ({ key: kv.utf8("key"), value: kv.int64("value") }))),
    );
    // kinfo-mem is the one IMPLICIT tag of the protocol: 0xa1 replaces the SEQUENCE tag.
    const km = s.intoOptional(0xa1, "kinfo-mem");
    let kinfoMem: KinfoMem | undefined;
    if (km) {
      kinfoMem = decKinfoBody(km);
      km.done();
    }
    return { rusage, ifdata, ...(vmm !== undefined && { vmm }), ...(kinfoMem !== undefined && { kinfoMem }) };
  });
}

function encStats(o: Out, d: StatsData): void {
  seqOf(o, () => {
    encRusage(o, d.rusage);
    seqOf(o, () => {
      for (const i of d.ifdata) encIfdata(o, i);
    });
    const vmm = d.vmm;
    if (vmm !== undefined) {
      explicitly(o, 0, () =>
        seqOf(o, () => {
          for (const v of vmm) {
            seqOf(o, () => {
              o.utf8(v.key);
              o.int64(v.value);
            });
          }
        }),
      );
    }
    const k = d.kinfoMem;
    if (k !== undefined) {
      // [1] IMPLICIT: the context tag replaces the SEQUENCE tag
      o.tlv(0xa1, () => {
        for (const f of KINFO_I64) o.int64(k[f]);
        o.int(checkInt(k.cow, "cow"));
        encTimeval(o, k.start);
      });
    }
  });
}

const blockDataAlts = alts<Data>([
  [0, "some-data", (c) => ({ kind: "block-data", data: c.octets("octets") })],
  [1, "no-data", (c) => (c.null("null"), { kind: "block-end" })],
]);

const dataAlts = alts<Data>([
  [1, "statistics", (c) => ({ kind: "statistics", stats: decStats(c) })],
  [2, "log", logDropped("support for log was dropped")],
  [3, "console", (c) => sequence(c, "seq", (s) => ({ kind: "console", timestamp: s.time("timestamp"), line: s.utf8Bytes("data") }))],
  [4, "block", (c) => choice(c, "", "block Data", blockDataAlts)],
]);

const decDataIn = (c: Cursor, what: string): Data => choice(c, what, "Data", dataAlts);

function encDataEnc(o: Out, d: Data): void {
  switch (d.kind) {
    case "statistics":
      return explicitly(o, 1, () => encStats(o, d.stats));
    case "console":
      return explicitly(o, 3, () =>
        seqOf(o, () => {
          o.time(d.timestamp);
          utf8Bytes(o, d.line);
        }),
      );
    case "block-data":
      return explicitly(o, 4, () => explicitly(o, 0, () => octets(o, d.data)));
    case "block-end":
      return explicitly(o, 4, () => nullIn(o, 1));
  }
}

// =======================================================================================
// Header, payload, wire (wire.md §4, §13)

/** `unknown version number 0x%X` as upstream prints it (OCaml %X of a 63-bit int). */
function checkVersion(c: Cursor, what: string): number {
  const start = c.pos;
  const v = c.bigint(what);
  if (v !== BigInt(WIRE_VERSION)) {
    const shown = (v < 0n ? BigInt.asUintN(63, v) : v).toString(16).toUpperCase();
    throw new DecodeError(`unknown version number 0x${shown}`, start, c.sub(what));
  }
  return WIRE_VERSION;
}

function decHeaderIn(c: Cursor, what: string): Header {
  return sequence(c, what, (s) => {
    const version = checkVersion(s, "version");
    const sequence_ = s.int64("sequence");
    const name = decName(s, "name");
    return { version, sequence: sequence_, name };
  });
}

function encHeaderEnc(o: Out, h: Header): void {
  seqOf(o, () => {
    o.int(checkInt(h.version, "version"));
    o.int64(h.sequence);
    nameEnc(o, h.name);
  });
}

const payloadAlts = alts<Payload>([
  [0, "command", (c) => ({ kind: "command", command: decCommandIn(c, "") })],
  [1, "reply", (c) => ({ kind: "reply", reply: decSuccessIn(c, "") })],
  [2, "failure", (c) => ({ kind: "failure", message: c.utf8Bytes("message") })],
  [3, "data", (c) => ({ kind: "data", data: decDataIn(c, "") })],
]);

function encPayloadEnc(o: Out, p: Payload): void {
  switch (p.kind) {
    case "command":
      return explicitly(o, 0, () => encCommandEnc(o, p.command));
    case "reply":
      return explicitly(o, 1, () => encSuccessEnc(o, p.reply));
    case "failure":
      return explicitly(o, 2, () => utf8Bytes(o, p.message));
    case "data":
      return explicitly(o, 3, () => encDataEnc(o, p.data));
  }
}

// =======================================================================================
// Persisted state (wire.md §10)

interface TrieEntry<T> {
  readonly name: Name;
  readonly value: T;
}

function decTrie<T>(c: Cursor, what: string, f: (s: Cursor) => T): TrieEntry<T>[] {
  const seen = new Set<string>();
  return listOf(c, TAG.SEQUENCE, what, (e, i) =>
    sequence(e, i, (s) => {
      const keyStart = s.pos;
      const name = decName(s, "name");
      // Keys compare as label lists: `foo:` and `:foo` are the same trie node. Upstream
      // asserts on a duplicate (an exception); here it is a decode error.
      const key = nameLabels(name).join(":");
      if (seen.has(key)) throw new DecodeError(`duplicate key ${nameToString(name)}`, keyStart, s.sub("name"));
      seen.add(key);
      const value = sequence(s, "value", f);
      return { name, value };
    }),
  );
}

/** Trie pre-order: ascending label lists, a node before its children. */
function trieOrder<T extends { readonly name: Name }>(xs: readonly T[], what: string): T[] {
  const keyed = xs.map((x) => ({ x, labels: nameLabels(x.name) }));
  keyed.sort((a, b) => compareLabels(a.labels, b.labels));
  for (let i = 1; i < keyed.length; i++) {
    if (compareLabels(keyed[i - 1]!.labels, keyed[i]!.labels) === 0) {
      throw new RangeError(`duplicate ${what} key ${nameToString(keyed[i]!.x.name)}`);
    }
  }
  return keyed.map((k) => k.x);
}

type DecodedState = { state: State; version: StateVersion };

function oldUnikernelsOnly(v: 0 | 1 | 2 | 3) {
  return (c: Cursor): DecodedState => ({
    state: { unikernels: unikernelsOf(decTrie(c, "unikernels", configDecoders[v])), policies: [] },
    version: v,
  });
}

function unikernelsAndPolicies(v: 4 | 5 | 6) {
  return (c: Cursor): DecodedState =>
    sequence(c, "seq", (s) => {
      const unikernels = unikernelsOf(decTrie(s, "unikernels", configDecoders[v]));
      // Policies live at paths. Upstream's trie keys by label list, so a key written `:foo`
      // is the policy of path `foo`; the model always uses the path name (`foo:`).
      const policies = decTrie(s, "policies", decPolicyBody).map((p): StatePolicy => ({ name: { path: nameLabels(p.name), label: null }, policy: p.value }));
      return { state: { unikernels, policies }, version: v };
    });
}

const stateAlts = alts<DecodedState>([
  [0, "unikernels-v1", oldUnikernelsOnly(0)],
  [1, "unikernels-v0", oldUnikernelsOnly(1)],
  [2, "unikernels-v2", oldUnikernelsOnly(2)],
  [3, "unikernels-v3", oldUnikernelsOnly(3)],
  [4, "unikernels-and-policies-old", unikernelsAndPolicies(4)],
  [5, "unikernels-and-policies-v4", unikernelsAndPolicies(5)],
  [6, "unikernels-and-policies", unikernelsAndPolicies(6)],
  // [7] is reserved: upstream raises invalid_arg on it (an exception, the daemon aborts)
  [7, "reserved", (c) => c.fail("state format [7] is reserved and has no decoder (albatross aborts on it too)")],
]);

function unikernelsOf(xs: TrieEntry<UnikernelConfig>[]): StateUnikernel[] {
  return xs.map((x) => ({ name: x.name, config: x.value }));
}

// =======================================================================================
// Public API

const encWire = (o: Out, w: Wire): void =>
  seqOf(o, () => {
    encHeaderEnc(o, w.header);
    encPayloadEnc(o, w.payload);
  });

export const encodeWire = (w: Wire): Bytes => encode(encWire, w);

/**
 * encodeWire as pieces whose concatenation is byte for byte `encodeWire(w)`: contents of at
 * least `threshold` bytes (a create's image) are handed out as they are, not copied.
 */
export const encodeWirePieces = (w: Wire, threshold: number): Bytes[] => encodePieces(encWire, w, threshold);

/** Decode a wire message; any header version other than 5 is rejected first (wire.md §13). */
export function decodeWire(b: Bytes): Wire {
  return decodeAll(b, "", (c) =>
    sequence(c, "wire", (s) => {
      const header = decHeaderIn(s, "header");
      const payload = choice(s, "payload", "Payload", payloadAlts);
      return { header, payload };
    }),
  );
}

export const encodeHeader = (h: Header): Bytes => encode(encHeaderEnc, h);
export const decodeHeader = (b: Bytes): Header => decodeAll(b, "", (c) => decHeaderIn(c, "header"));

export const encodeCommand = (c: Command): Bytes => encode(encCommandEnc, c);
export const decodeCommand = (b: Bytes): Command => decodeAll(b, "", (c) => decCommandIn(c, "command"));

export const encodeSuccess = (s: Success): Bytes => encode(encSuccessEnc, s);
export const decodeSuccess = (b: Bytes): Success => decodeAll(b, "", (c) => decSuccessIn(c, "reply"));

export const encodeData = (d: Data): Bytes => encode(encDataEnc, d);
export const decodeData = (b: Bytes): Data => decodeAll(b, "", (c) => decDataIn(c, "data"));

export const encodePolicy = (p: Policy): Bytes => encode(encPolicyEnc, p);
export const decodePolicy = (b: Bytes): Policy => decodeAll(b, "", (c) => decPolicyIn(c, "policy"));

/** The current (`[20]`/state `[6]`) UnikernelConfig SEQUENCE. */
export const encodeUnikernelConfig = (u: UnikernelConfig): Bytes => encode(encConfigV6, u);
export const decodeUnikernelConfig = (b: Bytes): UnikernelConfig => decodeAll(b, "", (c) => sequence(c, "config", decConfigV6Body));

/** The current restart arguments SEQUENCE (`[14][3]`). */
export const encodeUnikernelArguments = (a: UnikernelArguments): Bytes => encode(encArgs, a);
export const decodeUnikernelArguments = (b: Bytes): UnikernelArguments => decodeAll(b, "", (c) => sequence(c, "args", decArgsV3));

/** The current UnikernelInfo SEQUENCE (as inside success `[13]`). */
export const encodeUnikernelInfo = (u: UnikernelInfo): Bytes => encode((o, x: UnikernelInfo) => encInfo(o, x, "v6"), u);
export const decodeUnikernelInfo = (b: Bytes): UnikernelInfo => decodeAll(b, "", (c) => sequence(c, "info", (s) => decInfoBody(s, "v6")));

export function encodeCertExtension(e: CertExtension): Bytes {
  return encode(
    (o, x: CertExtension) =>
      seqOf(o, () => {
        o.int(checkInt(x.version, "version"));
        encCommandEnc(o, x.command);
      }),
    e,
  );
}

/** The extnValue content of OID 1.3.6.1.4.1.49836.42; the version must be 5. */
export function decodeCertExtension(b: Bytes): CertExtension {
  return decodeAll(b, "", (c) =>
    sequence(c, "extension", (s) => {
      const version = checkVersion(s, "version");
      return { version, command: decCommandIn(s, "command") };
    }),
  );
}

/**
 * Always the `[6]` form, entries in trie pre-order (ascending label lists, a node before
 * its children). Throws RangeError on duplicate keys (compared as label lists).
 */
export function encodeState(st: State): Bytes {
  // name texts computed once, not in both writer passes
  const unikernels = trieOrder(st.unikernels, "unikernel").map((u) => ({ key: nameToString(u.name), config: u.config }));
  const policies = trieOrder(st.policies, "policy").map((p) => ({ key: nameToString(p.name), policy: p.policy }));
  return encode(
    (o, _: State) =>
      explicitly(o, 6, () =>
        seqOf(o, () => {
          seqOf(o, () => {
            for (const u of unikernels) {
              seqOf(o, () => {
                o.utf8(u.key);
                encConfigV6(o, u.config);
              });
            }
          });
          seqOf(o, () => {
            for (const p of policies) {
              seqOf(o, () => {
                o.utf8(p.key);
                encPolicyEnc(o, p.policy);
              });
            }
          });
        }),
      ),
    st,
  );
}

/**
 * encodeState as pieces whose concatenation is byte for byte `encodeState(st)`: the
 * headers first, then the pieces of each unikernel entry, encoded only when the iterator
 * gets to it — its images not copied but handed out as they are (encodePieces) — then
 * the policies. For writing a state file of any size without building it in one buffer
 * and without copying the images (hostd's fold). Throws like encodeState.
 */
export function encodeStatePieces(st: State): { readonly size: number; readonly pieces: Iterable<Bytes> } {
  const unikernels = trieOrder(st.unikernels, "unikernel").map((u) => ({ key: nameToString(u.name), config: u.config }));
  const policies = trieOrder(st.policies, "policy").map((p) => ({ key: nameToString(p.name), policy: p.policy }));
  const entry = (o: Out, u: { key: string; config: UnikernelConfig }): void =>
    seqOf(o, () => {
      o.utf8(u.key);
      encConfigV6(o, u.config);
    });
  const sizes = unikernels.map((u) => encodedSize(entry, u));
  const policyBytes = encode(
    (o, ps: typeof policies) =>
      seqOf(o, () => {
        for (const p of ps) {
          seqOf(o, () => {
            o.utf8(p.key);
            encPolicyEnc(o, p.policy);
          });
        }
      }),
    policies,
  );
  const uLen = sizes.reduce((a, b) => a + b, 0);
  const uHeader = tlvHeader(TAG.SEQUENCE, uLen);
  const seqLen = uHeader.length + uLen + policyBytes.length;
  const seqHeader = tlvHeader(TAG.SEQUENCE, seqLen);
  const outer = tlvHeader(ctx(6), seqHeader.length + seqLen);
  const size = outer.length + seqHeader.length + seqLen;
  function* pieces(): Generator<Bytes> {
    yield Uint8Array.from([...outer, ...seqHeader, ...uHeader]);
    for (const u of unikernels) yield* encodePieces(entry, u, 64 * 1024);
    yield policyBytes;
  }
  return { size, pieces: { [Symbol.iterator]: pieces } };
}

/** Any state form [0]..[6]; entries are returned in file order. */
export function decodeState(b: Bytes): { state: State; version: StateVersion } {
  return decodeAll(b, "", (c) => choice(c, "state", "State", stateAlts));
}
