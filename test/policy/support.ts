// The fixtures of albatross' resource tests (policy.md §13.3): unikernel config `u` and policy `p1`.
import type { Policy, UnikernelConfig } from "../../src/commands/types.js";

export const u: UnikernelConfig = {
  typ: "solo5",
  compressed: false,
  image: new Uint8Array(0),
  failBehaviour: { kind: "quit" },
  addName: true,
  cpuids: [0],
  memory: 10,
  blockDevices: [],
  bridges: [{ netif: "service" }],
  argv: [new TextEncoder().encode("-l *:debug")],
  numcpus: 1,
};

export const p1: Policy = { unikernels: 1n, cpuids: [0], memory: 10, block: 5, bridges: ["service"] };

/** `p` without block storage (the field absent, as a decoded policy without it). */
export function withoutBlock({ block: _, ...rest }: Policy): Policy {
  return rest;
}
