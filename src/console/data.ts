// Framed `Data console` messages, many at once (the console daemon's hot path). Pure.
//
// Byte-identical to encodeFrame(encodeWire(...)) per entry (checked by the tests), but all
// entries of a batch go into one buffer, the header is encoded once, and the timestamp once
// per distinct value (all lines of one read share it):
//
//   frame  = int32be(len W) W
//   W      = 30 len  Header Payload          -- Wire
//   Payload= a3 len  D                       -- payload: data [3] (EXPLICIT)
//   D      = a3 len  S                       -- Data: console [3] (EXPLICIT)
//   S      = 30 len  18 len <time>  0c len <line bytes>

import { encodeHeader } from "../commands/index.js";
import { formatGeneralizedTime } from "../commands/der.js";
import type { Name } from "../core/name.js";
import type { ConsoleEntry } from "./ring.js";

const lenSize = (n: number): number => (n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1000000 ? 4 : 5);
const tlvSize = (content: number): number => 1 + lenSize(content) + content;

function putLen(buf: Uint8Array, off: number, n: number): number {
  if (n < 0x80) {
    buf[off] = n;
    return off + 1;
  }
  const k = lenSize(n) - 1;
  buf[off++] = 0x80 | k;
  for (let i = k - 1; i >= 0; i--) buf[off++] = Math.floor(n / 2 ** (8 * i)) & 0xff;
  return off;
}

function timeTlv(ms: number): Uint8Array {
  const s = formatGeneralizedTime(new Date(ms));
  const out = new Uint8Array(2 + s.length);
  out[0] = 0x18;
  out[1] = s.length; // at most 19 characters
  for (let i = 0; i < s.length; i++) out[2 + i] = s.charCodeAt(i);
  return out;
}

/**
 * The concatenated frames of one `Data console` message per entry, with header
 * (version, sequence 0, name) — what a subscriber receives for new lines or history.
 */
export function encodeConsoleData(version: number, name: Name, entries: readonly ConsoleEntry[]): Uint8Array {
  const header = encodeHeader({ version, sequence: 0n, name });
  let lastMs = NaN;
  let time: Uint8Array = new Uint8Array(0);
  const times: Uint8Array[] = new Array<Uint8Array>(entries.length);
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.timestamp !== lastMs) {
      lastMs = e.timestamp;
      time = timeTlv(lastMs);
    }
    times[i] = time;
    const s = tlvSize(time.length + tlvSize(e.line.length));
    total += 4 + tlvSize(header.length + tlvSize(tlvSize(s)));
  }
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  for (let i = 0; i < entries.length; i++) {
    const line = entries[i]!.line;
    const t = times[i]!;
    const sLen = t.length + tlvSize(line.length);
    const dLen = tlvSize(sLen);
    const pLen = tlvSize(dLen);
    const wLen = header.length + tlvSize(pLen);
    view.setInt32(o, tlvSize(wLen), false);
    o += 4;
    buf[o++] = 0x30;
    o = putLen(buf, o, wLen);
    buf.set(header, o);
    o += header.length;
    buf[o++] = 0xa3;
    o = putLen(buf, o, pLen);
    buf[o++] = 0xa3;
    o = putLen(buf, o, dLen);
    buf[o++] = 0x30;
    o = putLen(buf, o, sLen);
    buf.set(t, o);
    o += t.length;
    buf[o++] = 0x0c;
    o = putLen(buf, o, line.length);
    buf.set(line, o);
    o += line.length;
  }
  return buf;
}
