// Values prepared for `--json` output: like the model, but unikernel images (up to
// gigabytes) are replaced by their size and SHA-256, so one message stays one short line.
// Everything else goes through the codec's toJson (bigint, bytes, names, dates, MACs).

import { createHash } from "node:crypto";
import type { Bytes } from "../commands/der.js";
import { toJson } from "../commands/show.js";
import type { Command, Payload, StateUnikernel, Success, UnikernelConfig, Wire } from "../commands/types.js";

interface ImageSummary {
  readonly bytes: number;
  readonly sha256: string;
}

const imageSummary = (b: Bytes): ImageSummary => ({
  bytes: b.length,
  sha256: createHash("sha256").update(b).digest("hex"),
});

export function configView(c: UnikernelConfig): Record<string, unknown> {
  const { image, ...rest } = c;
  return { ...rest, image: imageSummary(image) };
}

function commandView(c: Command): unknown {
  if (c.kind === "unikernel-create" || c.kind === "unikernel-force-create") return { ...c, config: configView(c.config) };
  if (c.kind === "block-add-old" && c.data) return { ...c, data: imageSummary(c.data) };
  if (c.kind === "block-set-old") return { ...c, data: imageSummary(c.data) };
  return c;
}

function successView(s: Success): unknown {
  if (s.kind === "unikernel-image" || s.kind === "old-block-device-image") return { ...s, image: imageSummary(s.image) };
  return s;
}

function payloadView(p: Payload): unknown {
  switch (p.kind) {
    case "command":
      return { kind: p.kind, command: commandView(p.command) };
    case "reply":
      return { kind: p.kind, reply: successView(p.reply) };
    default:
      return p;
  }
}

/** The JSON value of a wire message, images summarised. */
export const wireJson = (w: Wire): unknown => toJson({ header: w.header, payload: payloadView(w.payload) });

export const stateUnikernelJson = (u: StateUnikernel): unknown => toJson({ name: u.name, config: configView(u.config) });

export const commandJson = (c: Command): unknown => toJson(commandView(c));
