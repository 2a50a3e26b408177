// The allocator's journal: records appended to the host's ring, only while this
// daemon holds the host's lease. The lease is checked before a write starts (so a
// daemon that lost it writes nothing) and after (so a write that outlived the lease's
// validity is acknowledged only once a fresh look at the lease block shows nobody
// took over meanwhile: see the timing argument in src/ownership/hostLease.ts).

import { isJournalError, type RingWriter } from '../../journal/index.js';
import { ThinlvError } from '../errors.js';
import type { HeldLease } from '../ownership/index.js';
import { encodeJournalRecord, type JournalRecord } from '../records/records.js';
import type { HostJournal } from './allocator.js';

/** Journal refusals that happen before anything is written: the allocator may keep the extents. */
const REFUSED_BEFORE_WRITE = ['RING_FULL', 'APPEND_QUEUE_FULL', 'PAYLOAD_TOO_LARGE'];

export interface LeaseWhere {
  readonly vg: string;
  readonly host: string;
}

/** Resolves while this daemon holds the host's lease; else throws LEASE_LOST (or the lease's own code) saying nothing was done. */
export function leaseGuard(lease: HeldLease, where: LeaseWhere): () => Promise<void> {
  return async () => {
    try {
      await lease.ensureHeld();
    } catch (error) {
      throw new ThinlvError(codeOf(error), `host ${where.host} no longer holds its journal: ${(error as Error).message}`, { ...where, notWritten: true }, { cause: error });
    }
  };
}

export function leasedJournal(writer: RingWriter, lease: HeldLease, where: LeaseWhere): HostJournal {
  const ensureHeld = leaseGuard(lease, where);
  // Also right before each group write: an append checked below may wait behind a slow
  // write and start after the lease's validity (hostLease.ts, point 1).
  writer.gateWrites(ensureHeld);
  return {
    async append(record: JournalRecord): Promise<{ seq: number }> {
      await ensureHeld();
      let result: { seq: number };
      try {
        result = await writer.append(encodeJournalRecord(record));
      } catch (error) {
        if (isJournalError(error) && REFUSED_BEFORE_WRITE.includes(error.code)) {
          throw new ThinlvError(
            'JOURNAL_FULL',
            `host ${where.host}'s journal has no room (${error.code}): the master has not replayed it; check that "thinlv master ${where.vg}" runs`,
            { ...where, notWritten: true, journalCode: error.code },
          );
        }
        throw error;
      }
      // Written, but acknowledged only if nobody can have taken the journal over meanwhile.
      await lease.ensureHeld();
      return result;
    },
    consumedSeq: () => writer.readConsumedSeq(),
  };
}

const codeOf = (error: unknown): string => (error instanceof ThinlvError ? error.code : 'LEASE_LOST');
