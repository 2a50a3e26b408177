// Daemons stopped in their tracks (issue 13): a VM paused, a process SIGSTOPped. A
// frozen process runs no code: its effect points block, its timers' wake-ups wait
// (the lease renewals stop), and requests sent to it wait in its socket. Thawing
// lets them all go on, late, with the clock where it is then: what a stopped
// daemon finds when it resumes. Thaw order is the caller's choice (requests first,
// or the woken timers and blocked points first), since either may come first.

import type { SimProcess } from './simKernel.js';

interface Frozen {
  readonly requests: Promise<void>;
  readonly effects: Promise<void>;
  readonly releaseRequests: () => void;
  readonly releaseEffects: () => void;
}

export class Freezer {
  private readonly frozen = new Map<SimProcess, Frozen>();

  isFrozen(proc: SimProcess): boolean {
    return this.frozen.has(proc);
  }

  freeze(proc: SimProcess): void {
    if (this.frozen.has(proc)) return;
    let releaseRequests = (): void => undefined;
    let releaseEffects = (): void => undefined;
    const requests = new Promise<void>((resolve) => (releaseRequests = resolve));
    const effects = new Promise<void>((resolve) => (releaseEffects = resolve));
    this.frozen.set(proc, { requests, effects, releaseRequests, releaseEffects });
  }

  /** What an effect point or a timer's wake-up of `proc` waits for; undefined when it runs. */
  effectGate(proc: SimProcess): Promise<void> | undefined {
    return this.frozen.get(proc)?.effects;
  }

  /** Runs a request to `proc` now, or once it thaws (it waited in the socket). */
  whenRunning<T>(proc: SimProcess, run: () => Promise<T>): Promise<T> {
    const frozen = this.frozen.get(proc);
    return frozen === undefined ? run() : frozen.requests.then(run);
  }

  /** Lets `proc` run again; `drain` runs between the two releases (microtasks settle). */
  async thaw(proc: SimProcess, requestsFirst: boolean, drain: () => Promise<void>): Promise<void> {
    const frozen = this.frozen.get(proc);
    if (frozen === undefined) return;
    this.frozen.delete(proc);
    const [first, second] = requestsFirst ? [frozen.releaseRequests, frozen.releaseEffects] : [frozen.releaseEffects, frozen.releaseRequests];
    first();
    await drain();
    second();
  }
}
