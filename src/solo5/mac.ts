// MAC addresses as Solo5 tenders and albatross write them (Macaddr.to_string / of_string).
// Apart from tender.ts so the command line parses --net without loading the tender lookup
// (child_process, crypto).

/** Lower-case `xx:xx:xx:xx:xx:xx` (Macaddr.to_string). */
export function formatMac(mac: Uint8Array): string {
  if (mac.length !== 6) throw new RangeError(`bad mac address (${mac.length} bytes)`);
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Parse `xx:xx:xx:xx:xx:xx` (or with `-` separators, as Macaddr.of_string accepts;
 * the separator must be the same throughout). Hex digits in either case. null if invalid.
 */
export function parseMac(s: string): Uint8Array | null {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(s);
  if (m === null) return null;
  return Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]], (h) => parseInt(h!, 16));
}
