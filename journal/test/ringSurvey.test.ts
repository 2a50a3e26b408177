// The open-time survey reads the data area in chunks, several ahead of the one it scans.
// It must find what a plain scan of the whole area finds, read each byte about once
// (records that cross a chunk end reuse the read ahead), and leave no read in flight.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BLOCK_BYTES, MemoryDisk, openRingReader, openRingWriter, READ_CHUNK_BYTES, SURVEY_READS_AHEAD, type BlockRegion } from '../index.js';
import { decodeRecordHeader, recordCrcMatches } from '../src/layout.js';
import { readRingHeader, surveyDataArea } from '../src/ringChain.js';
import { freshMemoryRing, taggedPayload, TEST_RING_ID } from './helpers.js';

const OPTIONS = { ringId: TEST_RING_ID };

/**
 * `region`, counting bytes read, reads in flight and buffers made (by allocateBuffer and
 * by read()); `readInto` false leaves it out, as a region that cannot read into a buffer.
 */
function counting(region: BlockRegion, readInto = true) {
  const stats = { readBytes: 0, inFlight: 0, maxInFlight: 0, buffersMade: 0 };
  const counted = async <T>(length: number, io: () => Promise<T>): Promise<T> => {
    stats.readBytes += length;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    try {
      return await io();
    } finally {
      stats.inFlight -= 1;
    }
  };
  const wrapped: BlockRegion = {
    sizeBytes: region.sizeBytes,
    description: region.description,
    allocateBuffer: (length) => {
      stats.buffersMade += 1;
      return region.allocateBuffer(length);
    },
    read: (offset, length) => {
      stats.buffersMade += 1;
      return counted(length, () => region.read(offset, length));
    },
    ...(readInto ? { readInto: (offset: number, target: Uint8Array) => counted(target.length, () => region.readInto!(offset, target)) } : {}),
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
        for (const readInto of [true, false]) {
          const counted = counting(disk.open(), readInto);
          const header = await readRingHeader(counted.region, TEST_RING_ID);
          counted.stats.readBytes = 0;
          counted.stats.buffersMade = 0;
          const survey = await surveyDataArea(counted.region, header);
          expect({ maxSeq: survey.maxSeq, maxEpoch: survey.maxEpoch }).toEqual(plainSurvey(disk, header));
          expect(counted.stats.readBytes).toBeLessThanOrEqual(ringBytes);
          expect(counted.stats.inFlight).toBe(0);
          expect(counted.stats.maxInFlight).toBeGreaterThan(1);
          // Reading into buffers it reuses: the chunk scanned, the reads ahead, one to join a record across a chunk end.
          if (readInto) expect(counted.stats.buffersMade).toBeLessThanOrEqual(SURVEY_READS_AHEAD + 2);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('a writer opens on a ring full of unconsumed records with a few buffers, and finds the tail a buffer per read finds', async () => {
    const ringBytes = 2 * 1024 * 1024;
    const disk = await freshMemoryRing(ringBytes);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    // Records of every size, some crossing the survey's and the tail walk's chunk ends.
    for (let i = 0; ; i++) if ((await writer.append(taggedPayload(i, (i * 7919) % 40_000)).catch(() => undefined)) === undefined) break;
    await writer.close();
    const tails = [];
    for (const readInto of [true, false]) {
      const counted = counting(disk.open(), readInto);
      const reopened = await openRingWriter(counted.region, OPTIONS);
      tails.push({ lastSeq: reopened.lastSeq, epoch: reopened.epoch });
      // The survey's buffers and the tail walk's, plus the header, consumer and end-of-region reads and the group-write buffer.
      if (readInto) expect(counted.stats.buffersMade).toBeLessThanOrEqual(SURVEY_READS_AHEAD + 2 + 2 + 8);
      else expect(counted.stats.buffersMade).toBeGreaterThan(ringBytes / READ_CHUNK_BYTES);
      await reopened.close();
    }
    expect(tails[0]).toEqual(tails[1]);
    expect(tails[0]!.lastSeq).toBeGreaterThan(30);
  });
});
