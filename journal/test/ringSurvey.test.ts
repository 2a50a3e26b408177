// The open-time survey reads the data area in chunks, several ahead of the one it scans.
// It must find what a plain scan of the whole area finds, read each byte about once
// (records that cross a chunk end reuse the read ahead), and leave no read in flight.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BLOCK_BYTES, MemoryDisk, openRingReader, openRingWriter, type BlockRegion } from '../index.js';
import { decodeRecordHeader, recordCrcMatches } from '../src/layout.js';
import { readRingHeader, surveyDataArea } from '../src/ringChain.js';
import { freshMemoryRing, taggedPayload, TEST_RING_ID } from './helpers.js';

const OPTIONS = { ringId: TEST_RING_ID };

/** `region`, counting bytes read and reads in flight. */
function counting(region: BlockRegion) {
  const stats = { readBytes: 0, inFlight: 0, maxInFlight: 0 };
  const wrapped: BlockRegion = {
    sizeBytes: region.sizeBytes,
    description: region.description,
    allocateBuffer: (length) => region.allocateBuffer(length),
    read: async (offset, length) => {
      stats.readBytes += length;
      stats.inFlight += 1;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        return await region.read(offset, length);
      } finally {
        stats.inFlight -= 1;
      }
    },
    write: (offset, data) => region.write(offset, data),
    close: () => region.close(),
  };
  return { region: wrapped, stats };
}

/** The survey's answer from one read of the whole ring, block by block. */
function plainSurvey(disk: MemoryDisk, header: Awaited<ReturnType<typeof readRingHeader>>): { maxSeq: number; maxEpoch: number } {
  let maxSeq = 0;
  let maxEpoch = 0;
  for (let offset = header.dataOffsetBytes; offset < header.ringBytes; offset += BLOCK_BYTES) {
    const decoded = decodeRecordHeader(header, disk.bytes.subarray(offset, offset + BLOCK_BYTES));
    if (decoded.kind !== 'ok') continue;
    const recordBytes = decoded.header.recordBlocks * BLOCK_BYTES;
    if (offset + recordBytes > header.ringBytes || !recordCrcMatches(disk.bytes.subarray(offset, offset + recordBytes), decoded.header.payloadBytes)) continue;
    maxSeq = Math.max(maxSeq, decoded.header.seq);
    maxEpoch = Math.max(maxEpoch, decoded.header.epoch);
  }
  return { maxSeq, maxEpoch };
}

describe('the open-time survey', () => {
  it('finds what a plain scan finds, reads each byte about once, with several reads in flight (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 60_000 }), { minLength: 1, maxLength: 80 }), fc.integer({ min: 1, max: 3 }), async (sizes, sessions) => {
        const ringBytes = 2 * 1024 * 1024;
        const disk = await freshMemoryRing(ringBytes);
        // A few writer sessions (so epochs differ), consuming as the ring fills so it laps.
        for (let session = 0; session < sessions; session++) {
          const writer = await openRingWriter(disk.open(), OPTIONS);
          const reader = await openRingReader(disk.open(), OPTIONS);
          for (const size of sizes) {
            if ((await writer.append(taggedPayload(size, size)).catch(() => undefined)) === undefined) {
              const { lastSeq } = await reader.read({ fromSeq: reader.consumedSeq + 1 });
              await reader.consume(lastSeq);
            }
          }
          await writer.close();
        }
        const counted = counting(disk.open());
        const header = await readRingHeader(counted.region, TEST_RING_ID);
        counted.stats.readBytes = 0;
        const survey = await surveyDataArea(counted.region, header);
        expect({ maxSeq: survey.maxSeq, maxEpoch: survey.maxEpoch }).toEqual(plainSurvey(disk, header));
        expect(counted.stats.readBytes).toBeLessThanOrEqual(ringBytes);
        expect(counted.stats.inFlight).toBe(0);
        expect(counted.stats.maxInFlight).toBeGreaterThan(1);
      }),
      { numRuns: 40 },
    );
  });
});
