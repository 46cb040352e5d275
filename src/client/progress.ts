// Upload progress on a terminal, for the local and the remote client.

/** A progress line on stderr, redrawn at most every 100 ms; nothing when stderr is no TTY. */
export function ttyProgress(label: string): { update: (sent: number, total: number) => void; done: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, done: () => undefined };
  let last = 0;
  let shown = false;
  const mib = (n: number) => (n / 1048576).toFixed(1);
  const draw = (sent: number, total: number) => {
    const pct = total > 0 ? Math.min(100, Math.floor((sent * 100) / total)) : 100;
    process.stderr.write(`\r${label}: ${mib(sent)} / ${mib(total)} MiB (${pct}%)`);
    shown = true;
  };
  return {
    update: (sent, total) => {
      const now = Date.now();
      if (now - last >= 100 || sent === total) {
        last = now;
        draw(sent, total);
      }
    },
    done: () => {
      if (shown) process.stderr.write("\n");
    },
  };
}
