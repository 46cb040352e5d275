// The console ring buffer of one unikernel (daemon.md §3, upstream `Vmm_ring`). Pure: no I/O,
// no clock — timestamps are passed in by the caller.
//
// Timestamps are kept as milliseconds since the Unix epoch. Upstream keeps Ptime values
// (picoseconds), but every wire timestamp is truncated to milliseconds (wire.md §1) and a
// `since` bound arrives with millisecond precision, so "entry earlier than since" gives the
// same answer on truncated values: floor(x) < s  <=>  x < s for an integer s.

export const RING_SIZE = 1024;

export interface ConsoleEntry {
  /** milliseconds since the Unix epoch */
  readonly timestamp: number;
  /** the raw line: no newline, may hold NUL bytes, `\r` or invalid UTF-8 */
  readonly line: Uint8Array;
}

export class Ring {
  private readonly times: Float64Array;
  private readonly lines: Array<Uint8Array | undefined>;
  /** index of the next slot to write (the oldest entry once the ring is full) */
  private next = 0;
  private filled = 0;

  constructor(readonly capacity: number = RING_SIZE) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be >= 1, got ${capacity}`);
    this.times = new Float64Array(capacity);
    this.lines = new Array<Uint8Array | undefined>(capacity);
  }

  /** Number of buffered entries (at most `capacity`). */
  get size(): number {
    return this.filled;
  }

  /** Append one entry, overwriting the oldest one when the ring is full. */
  push(timestamp: number, line: Uint8Array): void {
    this.times[this.next] = timestamp;
    this.lines[this.next] = line;
    this.next = this.next + 1 === this.capacity ? 0 : this.next + 1;
    if (this.filled < this.capacity) this.filled++;
  }

  /** Entry `back` steps before the newest one (0 = newest); caller guarantees back < size. */
  private at(back: number): ConsoleEntry {
    let i = this.next - 1 - back;
    if (i < 0) i += this.capacity;
    return { timestamp: this.times[i]!, line: this.lines[i]! };
  }

  /**
   * `count c` history: the most recent min(c, capacity) entries, oldest first; fewer when
   * fewer are buffered; c = 0 gives none.
   * Upstream quirk: for c < 0 `Vmm_ring.read_last` never counts down to 0, so it returns
   * every buffered entry while the ring is not full and loops forever once it is. As the
   * spec recommends, a negative count here means "every buffered entry" (at most capacity).
   */
  last(count: number): ConsoleEntry[] {
    const n = count < 0 ? this.filled : Math.min(count, this.filled);
    const out = new Array<ConsoleEntry>(n);
    for (let k = 0; k < n; k++) out[n - 1 - k] = this.at(k);
    return out;
  }

  /**
   * `since t` history (t in ms since the epoch): walking backwards from the newest entry,
   * collect entries until the first one that is earlier than t (upstream stops there even if
   * older entries would match again, e.g. after the wall clock stepped back), at most
   * `capacity` entries; returned oldest first.
   */
  since(t: number): ConsoleEntry[] {
    const out: ConsoleEntry[] = [];
    for (let k = 0; k < this.filled; k++) {
      const e = this.at(k);
      if (e.timestamp < t) break;
      out.push(e);
    }
    return out.reverse();
  }
}
