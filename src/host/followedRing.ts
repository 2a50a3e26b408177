// The host's reader of its grants ring, kept on the ring the master writes. The master
// recreates a grants ring it cannot read (src/master/grantsRing.ts: a bit flipped in its
// header or consumer block); a reader still on the old ring would never see the records
// written since, nor a stop. So now and then (every `checkEveryMs`, and at every poll
// while the ring cannot be read) the header is read again, one block; when the ring is a
// new one, a new reader reads it from its start. Grants there are applied only if newer
// than the host's (HostAllocator.applyGrant), so reading from the start is safe.

import { openRingReader, type BlockRegion, type RingReader } from '../../journal/index.js';
import type { Logger } from '../log.js';
import { unreadableRing } from '../rings/unreadableRing.js';

/** How often a running daemon re-reads its grants ring's header (one block). */
export const GRANTS_HEADER_CHECK_MS = 2_000;

export interface FollowedRingDeps {
  readonly region: BlockRegion;
  readonly ringId: string;
  readonly log: Logger;
  readonly nowMs: () => number;
  readonly checkEveryMs?: number;
}

export class FollowedRing {
  private reader: RingReader | undefined;
  private checkedAtMs: number;
  private complained = false;

  private constructor(private readonly deps: FollowedRingDeps) {
    this.checkedAtMs = deps.nowMs();
  }

  /** Opens the ring; a ring that cannot be read is not an error here (the master recreates it when it next writes). */
  static async open(deps: FollowedRingDeps): Promise<FollowedRing> {
    const ring = new FollowedRing(deps);
    await ring.reopen();
    return ring;
  }

  /** The reader to poll with, on the ring the master writes now; undefined while the ring cannot be read. */
  async current(): Promise<RingReader | undefined> {
    if (this.reader === undefined || this.deps.nowMs() - this.checkedAtMs >= (this.deps.checkEveryMs ?? GRANTS_HEADER_CHECK_MS)) await this.check();
    return this.reader;
  }

  private async check(): Promise<void> {
    this.checkedAtMs = this.deps.nowMs();
    if (this.reader !== undefined) {
      try {
        if (await this.reader.stillCurrent()) return;
      } catch (error) {
        // Damaged on disk: the reader keeps the header it read, and its records still read.
        if (!unreadableRing(error)) throw error;
        this.complain(error);
        return;
      }
      this.deps.log.warn({ ringId: this.deps.ringId }, 'the master recreated this host\'s grants ring: reading it from its start');
    }
    await this.reopen();
  }

  private async reopen(): Promise<void> {
    try {
      this.reader = await openRingReader(this.deps.region, { ringId: this.deps.ringId });
      this.complained = false;
    } catch (error) {
      if (!unreadableRing(error)) throw error;
      this.reader = undefined;
      this.complain(error);
    }
  }

  private complain(error: unknown): void {
    if (this.complained) return;
    this.complained = true;
    this.deps.log.warn({ ringId: this.deps.ringId, err: error }, "this host's grants ring cannot be read: no grants until the master recreates it at its next write");
  }
}
