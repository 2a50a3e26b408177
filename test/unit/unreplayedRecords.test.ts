// A host's start-up read of its own unreplayed records (src/host/unreplayedRecords.ts)
// when the master replays and consumes between the host's metadata read and its
// journal read: the records in between must not be skipped.

import { describe, expect, test } from 'vitest';
import { MIN_RING_BYTES, MemoryDisk, createRing, openRingReader, openRingWriter } from '../../journal/index.js';
import { unreplayedRecords } from '../../src/host/unreplayedRecords.js';
import { encodeJournalRecord } from '../../src/records/records.js';

const RING_ID = 'thinlv_h1_journal';

async function journalWithRecords(count: number) {
  const disk = new MemoryDisk(MIN_RING_BYTES);
  const region = disk.open();
  await createRing(region, { ringId: RING_ID });
  const writer = await openRingWriter(region, { ringId: RING_ID });
  for (let i = 1; i <= count; i++) await writer.append(encodeJournalRecord({ kind: 'activity', activeLvCount: i }));
  return { region, lastSeq: writer.lastSeq };
}

describe('unreplayed records at host start-up', () => {
  test('records after the applied seq are returned, in order', async () => {
    const { region, lastSeq } = await journalWithRecords(5);
    const records = await unreplayedRecords(region, RING_ID, 2, lastSeq);
    expect(records?.map((r) => r.seq)).toEqual([3, 4, 5]);
  });

  test('a master that consumed past the applied seq read from metadata means that metadata is stale: undefined, so the host reads it again', async () => {
    const { region, lastSeq } = await journalWithRecords(5);
    // The master committed records 1-4 after the host read metadata (applied seq 2), then consumed them.
    const master = await openRingReader(region, { ringId: RING_ID });
    await master.read({ fromSeq: 1 });
    await master.consume(4);
    expect(await unreplayedRecords(region, RING_ID, 2, lastSeq)).toBeUndefined();
    // With the fresh metadata (applied seq 4) the rest is read.
    expect((await unreplayedRecords(region, RING_ID, 4, lastSeq))?.map((r) => r.seq)).toEqual([5]);
  });
});
