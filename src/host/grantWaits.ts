// Extends waiting for a grant: what they need in all (the demand the host journals),
// when to say it again, and, when one gives up, why.
//
//   an extend the pool cannot serve  -> waits; the host journals demand {all waiting extents}
//   every DEMAND_REPEAT_MS waiting   -> the demand again (a master restarted since forgot it)
//   a grant or a shortage record     -> the master answered; a grant wakes every waiter
//   the bound passes                 -> OUT_OF_SPACE, with the reason:
//       no answer for MASTER_SILENT_MS         'master-not-answering'
//       the last answer was a shortage         'vg-full' or 'shared' (its figures)
//       otherwise (grants came, other extends took them; a bound shorter than a pass)
//                                              'no-grant-in-time'
//   the client goes away             -> CANCELLED, nothing taken
//   a waiter that gives up           -> demand {what the rest still need}, often 0, so the
//                                       master stops planning for it

import { ThinlvError } from '../errors.js';
import type { ShortageRecord } from '../records/records.js';

/** A waiting host repeats its demand this often. */
export const DEMAND_REPEAT_MS = 1_000;
/** No answer to a demand for this long means the master is not running its passes. */
export const MASTER_SILENT_MS = 2_000;

export type OutOfSpaceReason = 'master-not-answering' | 'vg-full' | 'shared' | 'no-grant-in-time';

export interface WhyNotServed {
  readonly reason: OutOfSpaceReason;
  /** How long the master has not answered (master-not-answering). */
  readonly silentMs: number;
  /** The last shortage the master sent during this wait, if any. */
  readonly shortage: ShortageRecord | undefined;
}

export interface GrantWaitsEffects {
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number) => Promise<void>;
  /** Journals demand {extentCount} (best effort: a lost one only delays a grant). */
  readonly announce: (extentCount: number) => void;
}

export class GrantWaits {
  private waitingExtents = 0;
  private waiters: (() => void)[] = [];
  /** Set when a demand went out and nothing answered it yet. */
  private unansweredSinceMs: number | undefined;
  private lastShortage: ShortageRecord | undefined;
  private lastAnswerMs: number | undefined;

  constructor(private readonly effects: GrantWaitsEffects) {}

  isWaiting(): boolean {
    return this.waitingExtents > 0;
  }

  /** A grant arrived: every waiter tries again. */
  noteGrant(): void {
    this.answered(undefined);
    this.wakeAll();
  }

  /** The master could not cover this host's demand: waiters keep waiting, and know why. */
  noteShortage(record: ShortageRecord): void {
    this.answered(record);
  }

  /** Wakes every waiter (a grant, or the allocator halting). */
  wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Waits until `take()` returns extents, up to `waitMs`; `take` throws to end the wait
   * (the allocator halted). `giveUp` builds the error when the bound passes.
   */
  async waitFor<T>(needed: number, take: () => T | undefined, options: { waitMs: number; signal?: AbortSignal | undefined; giveUp: (why: WhyNotServed) => Error }): Promise<T> {
    const startedMs = this.effects.nowMs();
    this.waitingExtents += needed;
    let served = false;
    try {
      this.announce();
      const taken = await this.waitLoop(startedMs, take, options);
      served = true;
      return taken;
    } finally {
      this.waitingExtents -= needed;
      // Gave up (bound, client gone, halt): the master must not keep planning for it.
      if (!served) this.effects.announce(this.waitingExtents);
    }
  }

  private async waitLoop<T>(startedMs: number, take: () => T | undefined, options: { waitMs: number; signal?: AbortSignal | undefined; giveUp: (why: WhyNotServed) => Error }): Promise<T> {
    const deadline = startedMs + options.waitMs;
    let announcedMs = startedMs;
    for (;;) {
      if (options.signal?.aborted === true) throw cancelled();
      const now = this.effects.nowMs();
      if (now >= deadline) throw options.giveUp(this.whyNotServed(startedMs));
      if (now - announcedMs >= DEMAND_REPEAT_MS) {
        this.announce();
        announcedMs = now;
      }
      await this.sleepUntilWoken(Math.min(deadline - now, 100), options.signal);
      const taken = take();
      if (taken !== undefined) return taken;
    }
  }

  private announce(): void {
    this.unansweredSinceMs ??= this.effects.nowMs();
    this.effects.announce(this.waitingExtents);
  }

  private answered(shortage: ShortageRecord | undefined): void {
    this.unansweredSinceMs = undefined;
    this.lastShortage = shortage;
    this.lastAnswerMs = this.effects.nowMs();
  }

  private whyNotServed(startedMs: number): WhyNotServed {
    const now = this.effects.nowMs();
    const silentMs = this.unansweredSinceMs === undefined ? 0 : now - this.unansweredSinceMs;
    const answeredDuringWait = this.lastAnswerMs !== undefined && this.lastAnswerMs >= startedMs;
    if (silentMs >= MASTER_SILENT_MS) return { reason: 'master-not-answering', silentMs, shortage: undefined };
    if (answeredDuringWait && this.lastShortage !== undefined) return { reason: this.lastShortage.reason, silentMs, shortage: this.lastShortage };
    return { reason: 'no-grant-in-time', silentMs, shortage: undefined };
  }

  private sleepUntilWoken(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        signal?.removeEventListener('abort', finish);
        resolve();
      };
      this.waiters.push(finish);
      signal?.addEventListener('abort', finish, { once: true });
      void this.effects.sleepMs(timeoutMs).then(finish);
    });
  }
}

function cancelled(): ThinlvError {
  return new ThinlvError('CANCELLED', 'the client went away while its extend waited for a grant; nothing was allocated for it');
}
