// One owner per unikernel name. hostd's lifecycle commands on a name — create,
// force-create, destroy, restart, and the automatic restart after an exit — run one after
// the other, in arrival order: each takes the name, does its whole job (also the part
// where it waits for the old process to exit with the global lock released) and replies,
// then the next one starts and sees the state the previous one left. So five concurrent
// destroys of one unikernel get one `destroyed unikernel` and four answers about a name
// that is no longer running, and ten concurrent force-creates replace the unikernel ten
// times, each answered.
//
// Upstream has no such rule: its second destroy replaces the first one's exit waiter, and
// the first client waits forever (issue 10). The queue of a name is bounded by the
// connections hostd accepts (--max-connections): every waiting command holds one.

export class NameOwners {
  /** per name: the promise the next comer waits for, and how many hold or wait */
  private readonly names = new Map<string, { tail: Promise<void>; count: number }>();

  /** Wait until `name` is ours; the returned function gives it to the next in line. */
  async acquire(name: string): Promise<() => void> {
    let entry = this.names.get(name);
    if (entry === undefined) {
      entry = { tail: Promise.resolve(), count: 0 };
      this.names.set(name, entry);
    }
    const prev = entry.tail;
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    entry.tail = mine;
    entry.count++;
    await prev;
    let done = false;
    const e = entry;
    return () => {
      if (done) return;
      done = true;
      release();
      if (--e.count === 0 && this.names.get(name) === e) this.names.delete(name);
    };
  }

  /** Commands holding or waiting for `name` (tests, diagnostics). */
  waiting(name: string): number {
    return this.names.get(name)?.count ?? 0;
  }

  /** Names with an owner (tests: nothing is left behind). */
  get size(): number {
    return this.names.size;
  }
}
