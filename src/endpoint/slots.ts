// A counting semaphore: at most `size` holders; the others wait in arrival order, each for
// at most its own timeout. The endpoint holds one slot per create whose image it collects
// (the image must be whole before it goes to hostd in one frame), which bounds the memory
// all connections together can pin with images to slots × --max-image-size.

export class Slots {
  private used = 0;
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`invalid slot count ${size}`);
  }

  /** A slot (resolves to its release function), or null after `timeoutMs` without one. */
  acquire(timeoutMs: number): Promise<(() => void) | null> {
    if (this.used < this.size) {
      this.used++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const w = {
        grant: () => {
          clearTimeout(timer);
          resolve(this.releaser());
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(null);
      }, timeoutMs);
      timer.unref?.();
      this.waiting.push(w);
    });
  }

  /** Slots in use and requests waiting (tests, statistics). */
  get inUse(): number {
    return this.used;
  }
  get queued(): number {
    return this.waiting.length;
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next.grant(); // the slot passes on directly
      else this.used--;
    };
  }
}
