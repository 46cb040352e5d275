// The albatross wire version 5 data model (wire.md §4–§11). Pure types, no behaviour.
//
// Conventions:
// - UTF8String fields that upstream treats as arbitrary bytes (console lines, argv, failure
//   and success strings) are `Bytes`; device/bridge/tap names are `string`.
// - INTEGERs are `number` (safe-integer range) except where values reach 2^62-1
//   (policy `unikernels`, `console-add` budget): those are `bigint`. Int64 fields are `bigint`.
// - Sets (cpuids, exit codes) are ascending arrays without duplicates; lists that upstream
//   keeps as lists (block devices, bridges) keep their decoded order.

import type { Name } from "../core/name.js";

export type Bytes = Uint8Array;

export const WIRE_VERSION = 5;

export interface Header {
  readonly version: number;
  readonly sequence: bigint;
  readonly name: Name;
}

export type Payload =
  | { readonly kind: "command"; readonly command: Command }
  | { readonly kind: "reply"; readonly reply: Success }
  | { readonly kind: "failure"; readonly message: Bytes }
  | { readonly kind: "data"; readonly data: Data };

export interface Wire {
  readonly header: Header;
  readonly payload: Payload;
}

// ---------------------------------------------------------------------------------------
// Policies (wire.md §8)

export interface Policy {
  /** max number of unikernels in the subtree (root policy: 2^62-1) */
  readonly unikernels: bigint;
  /** allowed CPU ids, ascending, unique */
  readonly cpuids: readonly number[];
  /** MB */
  readonly memory: number;
  /** MB of block storage; absent = no block devices allowed */
  readonly block?: number;
  /** allowed bridges, ascending bytewise, unique */
  readonly bridges: readonly string[];
}

// ---------------------------------------------------------------------------------------
// Unikernel configuration (wire.md §7)

export type Typ = "solo5" | "bhyve";

export type FailBehaviour =
  | { readonly kind: "quit" }
  /** empty exitCodes = restart on any exit code (except the never-restart ones) */
  | { readonly kind: "restart"; readonly exitCodes: readonly number[] };

export interface BlockDevice {
  /** device name as seen by the unikernel (manifest name) */
  readonly name: string;
  /** host block device label (default = name) */
  readonly device?: string;
  /** bytes */
  readonly sectorSize?: number;
}

export interface NetDevice {
  /** device name as seen by the unikernel (manifest name) */
  readonly netif: string;
  /** host bridge (default = netif) */
  readonly bridge?: string;
  /** 6 bytes */
  readonly mac?: Bytes;
}

/** Fields shared by a configuration and restart arguments. */
export interface UnikernelArguments {
  readonly failBehaviour: FailBehaviour;
  /** start order priority; absent = 50 */
  readonly startup?: number;
  readonly addName: boolean;
  readonly cpuids: readonly number[];
  /** MB */
  readonly memory: number;
  readonly blockDevices: readonly BlockDevice[];
  readonly bridges: readonly NetDevice[];
  /** absent = no argv (distinct from an empty argv) */
  readonly argv?: readonly Bytes[];
  /** BHyve vCPUs; default 1 */
  readonly numcpus: number;
  readonly linuxBootPartition?: string;
}

export interface UnikernelConfig extends UnikernelArguments {
  readonly typ: Typ;
  /** image is a zlib stream */
  readonly compressed: boolean;
  readonly image: Bytes;
}

export interface BlockInfo {
  readonly unikernelDevice: string;
  readonly hostDevice: string;
  readonly sectorSize: number;
  /** MB, 0 if unknown */
  readonly blockSize: number;
}

export interface NetInfo {
  readonly unikernelDevice: string;
  readonly hostDevice: string;
  readonly mac: Bytes;
}

export interface UnikernelInfo {
  readonly typ: Typ;
  readonly startup?: number;
  readonly failBehaviour: FailBehaviour;
  readonly cpuids: readonly number[];
  readonly memory: number;
  /** solo5: SHA-256 of the uncompressed image; bhyve: the VM name */
  readonly digest: Bytes;
  readonly blockDevices: readonly BlockInfo[];
  readonly bridges: readonly NetInfo[];
  readonly argv?: readonly Bytes[];
  /** absent on the wire -> Unix epoch */
  readonly started: Date;
  readonly numcpus: number;
  readonly linuxBootPartition?: string;
}

// ---------------------------------------------------------------------------------------
// Commands (wire.md §5)

export type SinceCount = { readonly kind: "since"; readonly since: Date } | { readonly kind: "count"; readonly count: number };

export interface StatsNetwork {
  /** unikernel-side netif name */
  readonly bridge: string;
  /** host tap device */
  readonly tap: string;
}

export type Command =
  // console
  | { readonly kind: "console-add"; readonly budget: bigint }
  | { readonly kind: "console-subscribe"; readonly sinceCount: SinceCount }
  | { readonly kind: "console-list-inactive" }
  // statistics
  | { readonly kind: "stats-add"; readonly vmmdev: string; readonly pid: number; readonly network: readonly StatsNetwork[] }
  | { readonly kind: "stats-remove" }
  | { readonly kind: "stats-subscribe" }
  | { readonly kind: "stats-initial" }
  // unikernel
  | { readonly kind: "unikernel-destroy" }
  | { readonly kind: "unikernel-create"; readonly config: UnikernelConfig }
  | { readonly kind: "unikernel-force-create"; readonly config: UnikernelConfig }
  | { readonly kind: "unikernel-get"; readonly level: number }
  /** args absent = restart with the unchanged configuration */
  | { readonly kind: "unikernel-restart"; readonly args?: UnikernelArguments }
  /** `info` [19]; `info-v5` [18] and `info-v4` [15] ask for the old reply encodings */
  | { readonly kind: "unikernel-info" }
  | { readonly kind: "unikernel-info-v5" }
  | { readonly kind: "unikernel-info-v4" }
  // policy
  | { readonly kind: "policy-info" }
  | { readonly kind: "policy-add"; readonly policy: Policy }
  | { readonly kind: "policy-remove" }
  // block
  | { readonly kind: "block-info" }
  | { readonly kind: "block-add"; readonly size: number }
  | { readonly kind: "block-remove" }
  | { readonly kind: "block-add-old"; readonly size: number; readonly compressed: boolean; readonly data?: Bytes }
  | { readonly kind: "block-set-old"; readonly compressed: boolean; readonly data: Bytes }
  | { readonly kind: "block-dump-old"; readonly level: number }
  | { readonly kind: "block-dump"; readonly level: number }
  | { readonly kind: "block-set"; readonly compressed: boolean };

// ---------------------------------------------------------------------------------------
// Replies (wire.md §6)

export interface PolicyEntry {
  readonly name: Name;
  readonly policy: Policy;
}

export interface BlockDeviceEntry {
  readonly name: Name;
  /** MB */
  readonly size: number;
  readonly active: boolean;
}

export interface UnikernelInfoEntry {
  readonly name: Name;
  readonly info: UnikernelInfo;
}

export type Success =
  | { readonly kind: "empty" }
  | { readonly kind: "string"; readonly text: Bytes }
  | { readonly kind: "policies"; readonly policies: readonly PolicyEntry[] }
  | { readonly kind: "block-devices"; readonly devices: readonly BlockDeviceEntry[] }
  | { readonly kind: "unikernel-image"; readonly compressed: boolean; readonly image: Bytes }
  | { readonly kind: "old-block-device-image"; readonly compressed: boolean; readonly image: Bytes }
  /** [9]: each info must have exactly one CPU id to encode */
  | { readonly kind: "old-unikernel-info4"; readonly unikernels: readonly UnikernelInfoEntry[] }
  | { readonly kind: "block-device-image"; readonly compressed: boolean }
  /** [11]: each info must have exactly one CPU id to encode */
  | { readonly kind: "old-unikernel-info5"; readonly unikernels: readonly UnikernelInfoEntry[] }
  | { readonly kind: "consoles"; readonly names: readonly Name[] }
  | { readonly kind: "unikernel-info"; readonly unikernels: readonly UnikernelInfoEntry[] };

// ---------------------------------------------------------------------------------------
// Data (wire.md §6.3) and statistics (§9)

export interface Timeval {
  readonly seconds: bigint;
  readonly microseconds: number;
}

export interface Rusage {
  readonly utime: Timeval;
  readonly stime: Timeval;
  readonly maxrss: bigint;
  readonly ixrss: bigint;
  readonly idrss: bigint;
  readonly isrss: bigint;
  readonly minflt: bigint;
  readonly majflt: bigint;
  readonly nswap: bigint;
  readonly inblock: bigint;
  readonly outblock: bigint;
  readonly msgsnd: bigint;
  readonly msgrcv: bigint;
  readonly nsignals: bigint;
  readonly nvcsw: bigint;
  readonly nivcsw: bigint;
}

export interface KinfoMem {
  readonly vsize: bigint;
  readonly rss: bigint;
  readonly tsize: bigint;
  readonly dsize: bigint;
  readonly ssize: bigint;
  /** microseconds */
  readonly runtime: bigint;
  readonly cow: number;
  readonly start: Timeval;
}

export interface Ifdata {
  /** NOTE: upstream fills this with the unikernel-side netif name */
  readonly bridge: string;
  readonly flags: number;
  readonly sendLength: number;
  readonly maxSendLength: number;
  readonly sendDrops: number;
  readonly mtu: number;
  readonly baudrate: bigint;
  readonly inputPackets: bigint;
  readonly inputErrors: bigint;
  readonly outputPackets: bigint;
  readonly outputErrors: bigint;
  readonly collisions: bigint;
  readonly inputBytes: bigint;
  readonly outputBytes: bigint;
  readonly inputMcast: bigint;
  readonly outputMcast: bigint;
  readonly inputDropped: bigint;
  readonly outputDropped: bigint;
}

export interface VmmStat {
  readonly key: string;
  readonly value: bigint;
}

export interface StatsData {
  readonly rusage: Rusage;
  readonly ifdata: readonly Ifdata[];
  readonly vmm?: readonly VmmStat[];
  readonly kinfoMem?: KinfoMem;
}

export type Data =
  | { readonly kind: "statistics"; readonly stats: StatsData }
  | { readonly kind: "console"; readonly timestamp: Date; readonly line: Bytes }
  /** a piece of a block dump */
  | { readonly kind: "block-data"; readonly data: Bytes }
  /** end of a block dump */
  | { readonly kind: "block-end" };

// ---------------------------------------------------------------------------------------
// Persisted state (wire.md §10) and the certificate extension (§11)

/** Which CHOICE alternative a state file used ([0]..[6]). Only 6 is written. */
export type StateVersion = 0 | 1 | 2 | 3 | 4 | 5 | 6;

export interface StateUnikernel {
  readonly name: Name;
  readonly config: UnikernelConfig;
}

export interface StatePolicy {
  /** a path name (no label) */
  readonly name: Name;
  readonly policy: Policy;
}

export interface State {
  readonly unikernels: readonly StateUnikernel[];
  readonly policies: readonly StatePolicy[];
}

export interface CertExtension {
  readonly version: number;
  readonly command: Command;
}

/** OID 1.3.6.1.4.1.49836.42 */
export const ALBATROSS_OID = "1.3.6.1.4.1.49836.42";
