// Per-key serialisation of async work: concurrent extends of one LV queue, of
// different LVs proceed together.

/** Serialises async work per key. Uncontended, `fn` starts at once, in the caller's turn. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    let next: Promise<T>;
    if (previous === undefined) {
      try {
        next = fn();
      } catch (error) {
        next = Promise.reject(error);
      }
    } else {
      next = previous.then(fn, fn);
    }
    const release = (): void => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
    const tail: Promise<void> = next.then(release, release);
    this.tails.set(key, tail);
    return next;
  }

  /** True while work for `key` runs or waits. */
  isBusy(key: string): boolean {
    return this.tails.has(key);
  }
}
