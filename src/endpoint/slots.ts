// Shares of a bounded resource, granted in arrival order (first come, first served: a large
// request is not starved by smaller ones behind it).
// * Budget: a weighted semaphore. The endpoint's memory for client certificate chains over
//   100 KiB (gate.ts): a connection reserves its chain's size until it closes.
// * Slots: at most `size` holders, each waiter for at most its own timeout. The endpoint holds
//   one slot per create whose image it collects (the image must be whole before it goes to
//   hostd in one frame), which bounds the memory all connections together can pin with images
//   to slots × --max-image-size.

export class Budget {
  private used = 0;
  private readonly queue: Array<{ amount: number; grant: () => void }> = [];

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`invalid capacity ${capacity}`);
  }

  /** In use, and requests waiting (tests, statistics, log lines). */
  get inUse(): number {
    return this.used;
  }
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Reserve `amount` (at most `capacity`): `grant` is called — at once or later — with the
   * release function. The returned function withdraws a request not yet granted, or
   * releases a grant (either, once).
   */
  request(amount: number, grant: (release: () => void) => void): () => void {
    if (amount > this.capacity) throw new RangeError(`${amount} over the capacity of ${this.capacity}`);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.used -= amount;
      this.drain();
    };
    let granted = false;
    const entry = {
      amount,
      grant: () => {
        granted = true;
        this.used += amount;
        grant(release);
      },
    };
    this.queue.push(entry);
    this.drain();
    return () => {
      if (granted) return release();
      const i = this.queue.indexOf(entry);
      if (i >= 0) this.queue.splice(i, 1);
      this.drain();
    };
  }

  private drain(): void {
    while (this.queue.length > 0 && this.used + this.queue[0]!.amount <= this.capacity) this.queue.shift()!.grant();
  }
}

export class Slots {
  private readonly budget: Budget;

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`invalid slot count ${size}`);
    this.budget = new Budget(size);
  }

  /** A slot (resolves to its release function), or null after `timeoutMs` without one. */
  acquire(timeoutMs: number): Promise<(() => void) | null> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      let granted = false;
      const withdraw = this.budget.request(1, (release) => {
        granted = true;
        if (timer) clearTimeout(timer);
        resolve(release);
      });
      if (granted) return;
      timer = setTimeout(() => {
        withdraw();
        resolve(null);
      }, timeoutMs);
      timer.unref?.();
    });
  }

  /** Slots in use and requests waiting (tests, statistics). */
  get inUse(): number {
    return this.budget.inUse;
  }
  get queued(): number {
    return this.budget.waiting;
  }
}
