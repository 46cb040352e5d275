// fast-check arbitraries for the whole wire v5 model, exported for reuse.
//
// Every arbitrary produces *canonical* values, i.e. values that decode(encode(x)) returns
// unchanged: sets (cpuids, exit codes, policy bridges) ascending and unique, SET OF lists
// (block devices, bridges, info devices) in DER order of their element encodings, state
// entries in trie order, absent optional fields omitted (not `undefined`), lower-case
// labels. The DER order is computed with der.ts' small writer, independently of the
// codec's encoder. `canonical*` helpers are exported for hand-made values.
import fc from "fast-check";
import { MAX_INT63, MIN_INT63, compareBytes } from "../../src/commands/der.js";
import { encInt, encOctets, encUtf8, seq } from "../support/der.js";
import type {
  BlockDevice,
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
  Rusage,
  State,
  StatsData,
  Success,
  Timeval,
  UnikernelArguments,
  UnikernelConfig,
  UnikernelInfo,
  Wire,
} from "../../src/commands/types.js";
import { compareLabels, nameLabels, type Name } from "../../src/core/name.js";

type Bytes = Uint8Array;

/** Drop keys whose value is undefined (decoders omit absent optional fields). */
/** `T` with its possibly-undefined properties made optional (what `clean` returns). */
type Clean<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

function clean<T extends object>(o: T): Clean<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as Clean<T>;
}

/** fc.record with ordinary prototypes (deepStrictEqual compares prototypes). */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as unknown as fc.Arbitrary<T>;
}

const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

// --- primitives ------------------------------------------------------------------------

export const arbInt: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: -1000, max: 100_000 }),
  fc.integer(),
  fc.constantFrom(0, 127, 128, 255, 256, -1, -128, -129, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
  fc.maxSafeInteger(),
);
export const arbNat: fc.Arbitrary<number> = fc.oneof(fc.nat({ max: 100_000 }), fc.maxSafeNat());
export const arbInt63: fc.Arbitrary<bigint> = fc.oneof(fc.bigInt({ min: MIN_INT63, max: MAX_INT63 }), fc.constantFrom(MAX_INT63, MIN_INT63, 0n));
export const arbInt64: fc.Arbitrary<bigint> = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
export const arbInt32: fc.Arbitrary<number> = fc.integer({ min: -0x80000000, max: 0x7fffffff });
export const arbBytes: fc.Arbitrary<Bytes> = fc.uint8Array({ maxLength: 48 });
export const arbMac: fc.Arbitrary<Bytes> = fc.uint8Array({ minLength: 6, maxLength: 6 });
/** A device/bridge name: any valid Unicode text (round-trips through UTF-8). */
export const arbText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.constantFrom("service", "br0", "other-net", ""),
);
/** GeneralizedTime range (years 0000..9999), millisecond precision. */
export const arbDate: fc.Arbitrary<Date> = fc.date({
  min: new Date("0000-01-01T00:00:00.000Z"),
  max: new Date("9999-12-31T23:59:59.999Z"),
  noInvalidDate: true,
});

export const arbLabel: fc.Arbitrary<string> = fc.oneof(fc.stringMatching(/^[a-z0-9.][a-z0-9.-]{0,8}$/), fc.constantFrom("foo", "bar", "a.b", ".", "x-1"));
export const arbPath: fc.Arbitrary<readonly string[]> = fc.array(arbLabel, { maxLength: 3 });
export const arbName: fc.Arbitrary<Name> = rec({ path: arbPath, label: fc.option(arbLabel, { nil: null }) });
export const arbFullName: fc.Arbitrary<Name> = rec({ path: arbPath, label: arbLabel });
export const arbPathName: fc.Arbitrary<Name> = arbPath.map((path) => ({ path, label: null }));

const utf8Enc = new TextEncoder();
const sortUnique = (xs: number[]): number[] => [...new Set(xs)].sort((a, b) => a - b);
export const arbIntSet: fc.Arbitrary<number[]> = fc.array(arbInt, { maxLength: 5 }).map(sortUnique);

// --- canonical ordering (independent DER encodings of SET OF elements) -----------------

const byEncoding =
  <T>(enc: (x: T) => Bytes) =>
  (xs: readonly T[]): T[] =>
    xs
      .map((x) => ({ x, e: enc(x) }))
      .sort((a, b) => compareBytes(a.e, b.e))
      .map((p) => p.x);

const encBlockDevice = (b: BlockDevice): Bytes =>
  seq(encUtf8(b.name), ...(b.device !== undefined ? [encUtf8(b.device)] : []), ...(b.sectorSize !== undefined ? [encInt(b.sectorSize)] : []));
const encNetDevice = (n: NetDevice): Bytes =>
  seq(encUtf8(n.netif), ...(n.bridge !== undefined ? [encUtf8(n.bridge)] : []), ...(n.mac !== undefined ? [encOctets(n.mac)] : []));
const encBlockInfo = (b: BlockInfo): Bytes => seq(encUtf8(b.unikernelDevice), encUtf8(b.hostDevice), encInt(b.sectorSize), encInt(b.blockSize));
const encNetInfo = (n: NetInfo): Bytes => seq(encUtf8(n.unikernelDevice), encUtf8(n.hostDevice), encOctets(n.mac));

export const canonicalBlockDevices = byEncoding(encBlockDevice);
export const canonicalNetDevices = byEncoding(encNetDevice);
export const canonicalBlockInfos = byEncoding(encBlockInfo);
export const canonicalNetInfos = byEncoding(encNetInfo);

export function canonicalArguments<T extends UnikernelArguments>(a: T): T {
  return { ...a, blockDevices: canonicalBlockDevices(a.blockDevices), bridges: canonicalNetDevices(a.bridges) };
}

export function canonicalInfo(i: UnikernelInfo): UnikernelInfo {
  return { ...i, blockDevices: canonicalBlockInfos(i.blockDevices), bridges: canonicalNetInfos(i.bridges) };
}

/** Trie pre-order (ascending label lists). */
export function canonicalState(s: State): State {
  const order = <T extends { name: Name }>(xs: readonly T[]) => [...xs].sort((a, b) => compareLabels(nameLabels(a.name), nameLabels(b.name)));
  return { unikernels: order(s.unikernels), policies: order(s.policies) };
}

function compareUtf8(a: string, b: string): number {
  return compareBytes(utf8Enc.encode(a), utf8Enc.encode(b));
}

// --- model -----------------------------------------------------------------------------

export const arbPolicy: fc.Arbitrary<Policy> = rec({
  unikernels: arbInt63,
  cpuids: arbIntSet,
  memory: arbInt,
  block: maybe(arbInt),
  bridges: fc.array(arbText, { maxLength: 4 }).map((xs) => [...new Set(xs)].sort(compareUtf8)),
}).map(clean);

export const arbFailBehaviour: fc.Arbitrary<FailBehaviour> = fc.oneof(
  fc.constant({ kind: "quit" } as const),
  arbIntSet.map((exitCodes) => ({ kind: "restart", exitCodes }) as const),
);

export const arbBlockDevice: fc.Arbitrary<BlockDevice> = rec({ name: arbText, device: maybe(arbText), sectorSize: maybe(arbInt) }).map(clean);
export const arbNetDevice: fc.Arbitrary<NetDevice> = rec({ netif: arbText, bridge: maybe(arbText), mac: maybe(arbMac) }).map(clean);
const arbArgv = maybe(fc.array(arbBytes, { maxLength: 4 }));

export const arbUnikernelArguments: fc.Arbitrary<UnikernelArguments> = rec({
  failBehaviour: arbFailBehaviour,
  startup: maybe(arbInt),
  addName: fc.boolean(),
  cpuids: arbIntSet,
  memory: arbInt,
  blockDevices: fc.array(arbBlockDevice, { maxLength: 3 }),
  bridges: fc.array(arbNetDevice, { maxLength: 3 }),
  argv: arbArgv,
  numcpus: arbInt,
  linuxBootPartition: maybe(arbText),
}).map((a) => canonicalArguments(clean(a)));

export const arbUnikernelConfig: fc.Arbitrary<UnikernelConfig> = rec({
  args: arbUnikernelArguments,
  typ: fc.constantFrom("solo5", "bhyve" as const),
  compressed: fc.boolean(),
  image: fc.uint8Array({ maxLength: 256 }),
}).map(({ args, ...rest }) => ({ ...args, ...rest }));

export const arbBlockInfo: fc.Arbitrary<BlockInfo> = rec({
  unikernelDevice: arbText,
  hostDevice: arbText,
  sectorSize: arbInt,
  blockSize: arbInt,
});
export const arbNetInfo: fc.Arbitrary<NetInfo> = rec({ unikernelDevice: arbText, hostDevice: arbText, mac: arbMac });

/** `form`: "v6" current [13]; "v5"/"v4" old replies [11]/[9] (one CPU id, numcpus 1, ...). */
export function arbUnikernelInfo(form: "v4" | "v5" | "v6" = "v6"): fc.Arbitrary<UnikernelInfo> {
  return rec({
    typ: fc.constantFrom("solo5", "bhyve" as const),
    startup: form === "v4" ? fc.constant(undefined) : maybe(arbInt),
    failBehaviour: arbFailBehaviour,
    cpuids: form === "v6" ? arbIntSet : arbInt.map((x) => [x]),
    memory: arbInt,
    digest: arbBytes,
    blockDevices: fc.array(arbBlockInfo, { maxLength: 3 }),
    bridges: fc.array(arbNetInfo, { maxLength: 3 }),
    argv: arbArgv,
    started: arbDate,
    numcpus: form === "v6" ? arbInt : fc.constant(1),
    linuxBootPartition: form === "v6" ? maybe(arbText) : fc.constant(undefined),
  }).map((i) => canonicalInfo(clean(i)));
}

export const arbCommand: fc.Arbitrary<Command> = fc.oneof(
  arbInt63.map((budget) => ({ kind: "console-add", budget }) as const),
  fc
    .oneof(
      arbDate.map((since) => ({ kind: "since", since }) as const),
      arbInt.map((count) => ({ kind: "count", count }) as const),
    )
    .map((sinceCount) => ({ kind: "console-subscribe", sinceCount }) as const),
  rec({
    vmmdev: arbText,
    pid: arbInt,
    network: fc.array(rec({ bridge: arbText, tap: arbText }), { maxLength: 3 }),
  }).map((r) => ({ kind: "stats-add", ...r }) as const),
  fc
    .constantFrom(
      "console-list-inactive",
      "stats-remove",
      "stats-subscribe",
      "stats-initial",
      "unikernel-destroy",
      "unikernel-info",
      "unikernel-info-v5",
      "unikernel-info-v4",
      "policy-info",
      "policy-remove",
      "block-info",
      "block-remove",
    )
    .map((kind) => ({ kind }) as Command),
  arbUnikernelConfig.map((config) => ({ kind: "unikernel-create", config }) as const),
  arbUnikernelConfig.map((config) => ({ kind: "unikernel-force-create", config }) as const),
  arbInt.map((level) => ({ kind: "unikernel-get", level }) as const),
  maybe(arbUnikernelArguments).map((args): Command => (args === undefined ? { kind: "unikernel-restart" } : { kind: "unikernel-restart", args })),
  arbPolicy.map((policy) => ({ kind: "policy-add", policy }) as const),
  arbInt.map((size) => ({ kind: "block-add", size }) as const),
  rec({ size: arbInt, compressed: fc.boolean(), data: maybe(arbBytes) }).map((r) => clean({ kind: "block-add-old", ...r }) as Command),
  rec({ compressed: fc.boolean(), data: arbBytes }).map((r) => ({ kind: "block-set-old", ...r }) as const),
  arbInt.map((level) => ({ kind: "block-dump-old", level }) as const),
  arbInt.map((level) => ({ kind: "block-dump", level }) as const),
  fc.boolean().map((compressed) => ({ kind: "block-set", compressed }) as const),
);

const infoEntries = (form: "v4" | "v5" | "v6") => fc.array(rec({ name: arbName, info: arbUnikernelInfo(form) }), { maxLength: 3 });

export const arbSuccess: fc.Arbitrary<Success> = fc.oneof(
  fc.constant({ kind: "empty" } as const),
  arbBytes.map((text) => ({ kind: "string", text }) as const),
  fc.array(rec({ name: arbName, policy: arbPolicy }), { maxLength: 3 }).map((policies) => ({ kind: "policies", policies }) as const),
  fc.array(rec({ name: arbName, size: arbInt, active: fc.boolean() }), { maxLength: 3 }).map((devices) => ({ kind: "block-devices", devices }) as const),
  rec({ compressed: fc.boolean(), image: arbBytes }).map((r) => ({ kind: "unikernel-image", ...r }) as const),
  rec({ compressed: fc.boolean(), image: arbBytes }).map((r) => ({ kind: "old-block-device-image", ...r }) as const),
  infoEntries("v4").map((unikernels) => ({ kind: "old-unikernel-info4", unikernels }) as const),
  fc.boolean().map((compressed) => ({ kind: "block-device-image", compressed }) as const),
  infoEntries("v5").map((unikernels) => ({ kind: "old-unikernel-info5", unikernels }) as const),
  fc.array(arbName, { maxLength: 4 }).map((names) => ({ kind: "consoles", names }) as const),
  infoEntries("v6").map((unikernels) => ({ kind: "unikernel-info", unikernels }) as const),
);

export const arbTimeval: fc.Arbitrary<Timeval> = rec({ seconds: arbInt64, microseconds: arbInt });

const RUSAGE_KEYS = [
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
export const arbRusage: fc.Arbitrary<Rusage> = rec({
  utime: arbTimeval,
  stime: arbTimeval,
  ...(Object.fromEntries(RUSAGE_KEYS.map((k) => [k, arbInt64])) as Record<(typeof RUSAGE_KEYS)[number], fc.Arbitrary<bigint>>),
});

export const arbKinfoMem: fc.Arbitrary<KinfoMem> = rec({
  vsize: arbInt64,
  rss: arbInt64,
  tsize: arbInt64,
  dsize: arbInt64,
  ssize: arbInt64,
  runtime: arbInt64,
  cow: arbInt,
  start: arbTimeval,
});

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
export const arbIfdata: fc.Arbitrary<Ifdata> = rec({
  bridge: arbText,
  flags: arbInt32,
  sendLength: arbInt32,
  maxSendLength: arbInt32,
  sendDrops: arbInt32,
  mtu: arbInt32,
  ...(Object.fromEntries(IFDATA_I64.map((k) => [k, arbInt64])) as Record<(typeof IFDATA_I64)[number], fc.Arbitrary<bigint>>),
});

export const arbStatsData: fc.Arbitrary<StatsData> = rec({
  rusage: arbRusage,
  ifdata: fc.array(arbIfdata, { maxLength: 2 }),
  vmm: maybe(fc.array(rec({ key: arbText, value: arbInt64 }), { maxLength: 3 })),
  kinfoMem: maybe(arbKinfoMem),
}).map(clean);

export const arbData: fc.Arbitrary<Data> = fc.oneof(
  arbStatsData.map((stats) => ({ kind: "statistics", stats }) as const),
  rec({ timestamp: arbDate, line: arbBytes }).map((r) => ({ kind: "console", ...r }) as const),
  arbBytes.map((data) => ({ kind: "block-data", data }) as const),
  fc.constant({ kind: "block-end" } as const),
);

export const arbHeader: fc.Arbitrary<Header> = rec({ version: fc.constant(5), sequence: arbInt64, name: arbName });

export const arbPayload: fc.Arbitrary<Payload> = fc.oneof(
  arbCommand.map((command) => ({ kind: "command", command }) as const),
  arbSuccess.map((reply) => ({ kind: "reply", reply }) as const),
  arbBytes.map((message) => ({ kind: "failure", message }) as const),
  arbData.map((data) => ({ kind: "data", data }) as const),
);

export const arbWire: fc.Arbitrary<Wire> = rec({ header: arbHeader, payload: arbPayload });

export const arbCertExtension: fc.Arbitrary<CertExtension> = rec({ version: fc.constant(5), command: arbCommand });

const labelsKey = (n: Name) => nameLabels(n).join(":");

export const arbState: fc.Arbitrary<State> = rec({
  unikernels: fc.uniqueArray(rec({ name: arbName, config: arbUnikernelConfig }), { selector: (u) => labelsKey(u.name), maxLength: 4 }),
  policies: fc.uniqueArray(rec({ name: arbPathName, policy: arbPolicy }), { selector: (p) => labelsKey(p.name), maxLength: 4 }),
}).map(canonicalState);

/**
 * Canonicalise any decoded model value for comparison with its re-encoding: SET OF lists
 * in DER order and state entries in trie order (everything else already is canonical).
 */
export function canonicalValue<T>(v: T): T {
  return canon(v) as T;
}

function canon(v: unknown): unknown {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || v instanceof Date) return v;
  if (Array.isArray(v)) return v.map(canon);
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) o[k] = canon(x);
  if (Array.isArray(o.blockDevices) && Array.isArray(o.bridges)) {
    if ("digest" in o) {
      o.blockDevices = canonicalBlockInfos(o.blockDevices as BlockInfo[]);
      o.bridges = canonicalNetInfos(o.bridges as NetInfo[]);
    } else {
      o.blockDevices = canonicalBlockDevices(o.blockDevices as BlockDevice[]);
      o.bridges = canonicalNetDevices(o.bridges as NetDevice[]);
    }
  }
  if (Array.isArray(o.unikernels) && Array.isArray(o.policies)) return canonicalState(o as unknown as State);
  return o;
}
