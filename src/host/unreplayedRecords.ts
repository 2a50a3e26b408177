// A host's own journal records the master has not replayed yet, read back from
// its ring at start-up: they are the extents its pool lacks and the segments its
// LVs have beyond metadata.

import { openRingReader, type BlockRegion } from '../../journal/index.js';
import { ThinlvError } from '../errors.js';
import { decodeJournalRecord } from '../records/records.js';
import type { UnreplayedRecord } from './allocator.js';

/**
 * Own journal records after `appliedSeq`, up to the writer's `lastSeq`. Undefined when
 * the master has consumed records past `appliedSeq`: it committed them after the
 * metadata holding `appliedSeq` was read (a master commits before it consumes), and
 * the ring may no longer hold them, so that metadata must be read again. Taking the
 * records after the consumer pointer instead would lose those extents from the LVs'
 * layouts and leave them in the pool: a double allocation.
 */
export async function unreplayedRecords(region: BlockRegion, ringId: string, appliedSeq: number, lastSeq: number): Promise<UnreplayedRecord[] | undefined> {
  const reader = await openRingReader(region, { ringId });
  if (reader.consumedSeq > appliedSeq) return undefined;
  const records: UnreplayedRecord[] = [];
  let fromSeq = appliedSeq + 1;
  while (fromSeq <= lastSeq) {
    const { records: batch } = await reader.read({ fromSeq });
    if (batch.length === 0) break;
    for (const record of batch) {
      const decoded = decodeJournalRecord(record.payload);
      // This host wrote every record here, so one it cannot read is corruption.
      if (!decoded.ok) throw new ThinlvError('JOURNAL_CORRUPT', `record ${record.seq} of this host's journal is unreadable: ${decoded.reason}`, { seq: record.seq });
      records.push({ seq: record.seq, record: decoded.record });
    }
    fromSeq = batch[batch.length - 1]!.seq + 1;
  }
  if (fromSeq <= lastSeq) {
    throw new ThinlvError('JOURNAL_CORRUPT', `this host's journal ends at seq ${fromSeq - 1} though its writer found seq ${lastSeq}`, { lastSeq });
  }
  return records;
}
