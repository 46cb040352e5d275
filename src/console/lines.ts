// Splitting a unikernel's console byte stream into lines (daemon.md §3 "FIFO reading
// algorithm", upstream `read_console` in albatross_console.ml). Pure: a state machine fed
// with the results of successive reads.
//
// Upstream reads at most READ_SIZE (512) bytes per step. The result depends on how the
// bytes were cut into reads (e.g. a line that completes inside a read may reach 1023 bytes
// without truncation, while 512 bytes without a newline in one step are truncated), so
// `splitRead` must be called with exactly one read's worth of data; `splitReads` cuts a
// larger buffer into READ_SIZE pieces the way upstream's buffered channel hands out
// `Lwt_io.read ~count:512` results when that many bytes are already available.

export const READ_SIZE = 512;

/** Appended to the first READ_SIZE bytes of an over-long line (leading space included). */
export const TRUNCATED_SUFFIX: Uint8Array = new TextEncoder().encode(" [truncated]");

const NL = 0x0a;
const EMPTY = new Uint8Array(0);

export interface SplitState {
  /** `drop`: discarding the rest of a truncated line up to the next newline */
  readonly mode: "read" | "drop";
  /** incomplete last line of the previous reads (always < READ_SIZE bytes) */
  readonly slack: Uint8Array;
}

export const initialSplitState: SplitState = Object.freeze({ mode: "read", slack: EMPTY });

export interface SplitResult {
  readonly state: SplitState;
  /** complete, non-empty lines, without the `\n` (a `\r` before it is kept) */
  readonly lines: Uint8Array[];
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Lines of data[from..] split on '\n': every piece but the last is a line (empty pieces are
 * discarded, upstream filters them out), the last piece (possibly empty) is the new slack.
 * Lines and slack are copies, so they never pin the (possibly large) read buffer.
 */
function splitFrom(data: Uint8Array, from: number): SplitResult {
  const lines: Uint8Array[] = [];
  let start = from;
  for (;;) {
    const nl = data.indexOf(NL, start);
    if (nl < 0) break;
    if (nl > start) lines.push(data.slice(start, nl));
    start = nl + 1;
  }
  const slack = start === data.length ? EMPTY : data.slice(start);
  return { state: { mode: "read", slack }, lines };
}

/** Process the bytes of one read (0 < chunk.length; upstream reads at most READ_SIZE). */
export function splitRead(state: SplitState, chunk: Uint8Array): SplitResult {
  if (state.mode === "drop") {
    // Slack is always empty in drop mode. Discard up to the first newline; from that
    // newline on (it yields an empty first piece, filtered) split as usual. Upstream does
    // not apply the truncation check to the rest here: it cannot reach READ_SIZE anyway.
    const nl = chunk.indexOf(NL);
    if (nl < 0) return { state, lines: [] };
    return splitFrom(chunk, nl);
  }
  const data = state.slack.length === 0 ? chunk : concat(state.slack, chunk);
  if (data.indexOf(NL) < 0) {
    if (data.length >= READ_SIZE) {
      // No newline in READ_SIZE or more bytes: emit the first READ_SIZE bytes followed by
      // " [truncated]" as one line and drop everything up to the next newline.
      const line = new Uint8Array(READ_SIZE + TRUNCATED_SUFFIX.length);
      line.set(data.subarray(0, READ_SIZE), 0);
      line.set(TRUNCATED_SUFFIX, READ_SIZE);
      return { state: { mode: "drop", slack: EMPTY }, lines: [line] };
    }
    return { state: { mode: "read", slack: data === chunk ? chunk.slice() : data }, lines: [] };
  }
  return splitFrom(data, 0);
}

/**
 * Feed a buffer holding several reads' worth of bytes, cut into READ_SIZE pieces (the last
 * one shorter). Lines come out in order.
 */
export function splitReads(state: SplitState, buf: Uint8Array): SplitResult {
  let st = state;
  let lines: Uint8Array[] | null = null;
  for (let off = 0; off < buf.length; off += READ_SIZE) {
    const r = splitRead(st, buf.subarray(off, Math.min(off + READ_SIZE, buf.length)));
    st = r.state;
    if (r.lines.length > 0) {
      if (lines === null) lines = r.lines;
      else for (const l of r.lines) lines.push(l);
    }
  }
  return { state: st, lines: lines ?? [] };
}
