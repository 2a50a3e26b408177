// Opening a consuming reader checks that the consumer block claims no record that was
// never written (CONSUMER_AHEAD). It used to read the whole data area for that; now it
// looks for the kept record just before the consumer position first. These tests pin
// down that the verdict is the full survey's in every history, and that the usual open
// costs a few small reads.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BLOCK_BYTES,
  CONSUMER_BLOCK_OFFSET_BYTES,
  MAX_RECORD_BYTES,
  crc32c,
  isJournalError,
  MemoryDisk,
  openRingReader,
  openRingWriter,
  type BlockRegion,
} from '../index.js';
import { decodeConsumerBlock } from '../src/layout.js';
import { readRingHeader, surveyDataArea } from '../src/ringChain.js';
import { appendAll, freshMemoryRing, locateRecord, taggedPayload, TEST_RING_ID } from './helpers.js';

const OPTIONS = { ringId: TEST_RING_ID };

/** `region`, counting the bytes read through it. */
function counting(region: BlockRegion): { region: BlockRegion; readBytes: () => number } {
  let bytes = 0;
  return {
    region: {
      sizeBytes: region.sizeBytes,
      description: region.description,
      allocateBuffer: (length) => region.allocateBuffer(length),
      read: (offset, length) => {
        bytes += length;
        return region.read(offset, length);
      },
      write: (offset, data) => region.write(offset, data),
      close: () => region.close(),
    },
    readBytes: () => bytes,
  };
}

function forgeConsumer(disk: MemoryDisk, consumedSeq: number, nextRecordOffsetBytes: number, consumedEpoch?: number): void {
  const block = disk.bytes.subarray(CONSUMER_BLOCK_OFFSET_BYTES, CONSUMER_BLOCK_OFFSET_BYTES + 64);
  const view = new DataView(block.buffer, block.byteOffset, 64);
  view.setBigUint64(24, BigInt(consumedSeq), true);
  view.setBigUint64(32, BigInt(nextRecordOffsetBytes), true);
  if (consumedEpoch !== undefined) view.setBigUint64(40, BigInt(consumedEpoch), true);
  view.setUint32(60, crc32c(block.subarray(0, 60)), true);
}

/** What the full survey says of the consumer block on `disk`: would it refuse it? */
async function surveyRefuses(disk: MemoryDisk): Promise<boolean> {
  const region = disk.open();
  const header = await readRingHeader(region, TEST_RING_ID);
  const decoded = decodeConsumerBlock(header, await region.read(CONSUMER_BLOCK_OFFSET_BYTES, BLOCK_BYTES));
  if (decoded.kind !== 'ok') throw new Error('consumer block is damaged');
  return decoded.state.consumedSeq > (await surveyDataArea(region, header)).maxSeq;
}

async function readerOpenRefused(disk: MemoryDisk): Promise<boolean> {
  try {
    await openRingReader(disk.open(), OPTIONS);
    return false;
  } catch (error) {
    if (isJournalError(error, 'CONSUMER_AHEAD')) return true;
    throw error;
  }
}

describe('opening a consuming reader', () => {
  it('reads the header, the consumer block and one record window, not the whole 16 MiB ring', async () => {
    const disk = await freshMemoryRing(16 * 1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, [10, 5000, 10, 20_000]);
    const first = await openRingReader(disk.open(), OPTIONS);
    await first.read({ fromSeq: 1 });
    await first.consume(4);
    const counted = counting(disk.open());
    const reader = await openRingReader(counted.region, OPTIONS);
    expect(reader.consumedSeq).toBe(4);
    expect(counted.readBytes()).toBeLessThanOrEqual(2 * BLOCK_BYTES + MAX_RECORD_BYTES);
    await writer.append(taggedPayload(5, 10));
    expect((await reader.read({ fromSeq: 5 })).records.map((r) => r.seq)).toEqual([5]);
  });

  it('finds the last consumed record when it ended in the wrap gap (consumer position back at the data start)', async () => {
    const ringBytes = 256 * 1024;
    const disk = await freshMemoryRing(ringBytes);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    const reader = await openRingReader(disk.open(), OPTIONS);
    // Appends until the next record would start at the data start again, consuming as it goes.
    let seq = 0;
    for (;;) {
      seq = (await writer.append(taggedPayload(seq, 3000))).seq;
      await reader.read({ fromSeq: seq });
      await reader.consume(seq);
      if (ringBytes - (locateRecord(disk, seq).offsetBytes + BLOCK_BYTES) < MAX_RECORD_BYTES) break;
    }
    const counted = counting(disk.open());
    expect((await openRingReader(counted.region, OPTIONS)).consumedSeq).toBe(seq);
    expect(counted.readBytes()).toBeLessThanOrEqual(2 * BLOCK_BYTES + 2 * MAX_RECORD_BYTES);
  });

  it('still refuses a consumer block that claims records never written', async () => {
    const disk = await freshMemoryRing(1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, [10, 10, 10]);
    forgeConsumer(disk, 50, locateRecord(disk, 3).offsetBytes + BLOCK_BYTES);
    expect(await readerOpenRefused(disk)).toBe(true);
  });

  it('accepts, as the survey does, a consumer block whose kept record is gone while a later record survives elsewhere', async () => {
    const disk = await freshMemoryRing(1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, Array(40).fill(10));
    // Claims seq 20 consumed but points far from record 20: the window holds no record >= 20.
    forgeConsumer(disk, 20, locateRecord(disk, 2).offsetBytes);
    expect(await surveyRefuses(disk)).toBe(false);
    expect(await readerOpenRefused(disk)).toBe(false);
  });

  it('agrees with the full survey for any forged consumer position over any history (property)', async () => {
    const verdicts = { refused: 0, accepted: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 0, maxLength: 60 }),
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 3 }),
        async (sizes, consumedSeq, atRecord, consumedEpoch) => {
          const disk = await freshMemoryRing(256 * 1024);
          const writer = await openRingWriter(disk.open(), { ...OPTIONS, onFull: 'error' });
          const reader = await openRingReader(disk.open(), OPTIONS);
          // Laps: consume as the ring fills, so old records stay behind the live ones.
          for (const size of sizes) {
            const appended = await writer.append(taggedPayload(size, size)).catch(() => undefined);
            if (appended === undefined) {
              await reader.read({ fromSeq: reader.consumedSeq + 1 });
              const last = (await reader.read({ fromSeq: reader.consumedSeq + 1 })).lastSeq;
              await reader.consume(last);
            }
          }
          const written = writer.lastSeq;
          const position = written === 0 ? 8192 : locateRecord(disk, Math.max(1, Math.min(written, atRecord + reader.consumedSeq))).offsetBytes;
          forgeConsumer(disk, consumedSeq, position, consumedEpoch);
          const refused = await surveyRefuses(disk);
          verdicts[refused ? 'refused' : 'accepted'] += 1;
          expect(await readerOpenRefused(disk)).toBe(refused);
        },
      ),
      { numRuns: 150 },
    );
    // Both verdicts were exercised, or the property says little.
    expect(verdicts.refused).toBeGreaterThan(10);
    expect(verdicts.accepted).toBeGreaterThan(10);
  });

  it('readConsumedRecord returns the last consumed record, also when it ended in the wrap gap, and nothing before any consume', async () => {
    const ringBytes = 256 * 1024;
    const disk = await freshMemoryRing(ringBytes);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    const reader = await openRingReader(disk.open(), OPTIONS);
    expect(await reader.readConsumedRecord()).toBeUndefined();
    const payloads = new Map<number, Uint8Array>();
    let wrapped = 0;
    for (let i = 0; i < 200 && wrapped < 2; i++) {
      const payload = taggedPayload(i, (i * 997) % 9000);
      const { seq } = await writer.append(payload);
      payloads.set(seq, payload);
      await reader.read({ fromSeq: seq });
      await reader.consume(seq);
      const found = await (await openRingReader(disk.open(), OPTIONS)).readConsumedRecord();
      expect(found?.seq).toBe(seq);
      expect(Buffer.from(found!.payload).equals(Buffer.from(payload))).toBe(true);
      const end = locateRecord(disk, seq).offsetBytes + Math.ceil((64 + payload.length) / BLOCK_BYTES) * BLOCK_BYTES;
      if (ringBytes - end < MAX_RECORD_BYTES) wrapped += 1;
    }
    expect(wrapped).toBeGreaterThan(0);
  });
});
