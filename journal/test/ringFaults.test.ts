// Fault tests: damage the disk in the ways the failure model lists and check that
// nothing invalid is ever returned and that every acknowledged record the damage did
// not reach (and that no damaged record precedes) is still returned.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BLOCK_BYTES,
  DATA_OFFSET_BYTES,
  CONSUMER_BLOCK_OFFSET_BYTES,
  crc32c,
  isJournalError,
  MemoryDisk,
  openRingReader,
  openRingWriter,
  createRing,
  type JournalErrorCode,
} from '../index.js';
import { appendAll, freshMemoryRing, hex, locateRecord, taggedPayload, TEST_RING_ID } from './helpers.js';

const RING_BYTES = 256 * 1024;
const OPTIONS = { ringId: TEST_RING_ID };

async function readAll(disk: MemoryDisk): Promise<{ seq: number; payload: Uint8Array }[]> {
  const reader = await openRingReader(disk.open(), OPTIONS);
  return (await reader.read({ fromSeq: reader.consumedSeq + 1 })).records;
}

async function expectOpenFails(disk: MemoryDisk, codes: readonly JournalErrorCode[]): Promise<void> {
  for (const open of [() => openRingReader(disk.open(), OPTIONS), () => openRingWriter(disk.open(), OPTIONS)]) {
    const error = await open().then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(codes.some((code) => isJournalError(error, code)), `expected one of ${codes.join(', ')}, got ${String(error)}`).toBe(true);
  }
}

/** A ring with records 1..n acknowledged, n chosen so the ring has wrapped once. */
async function wrappedRing(sizes: readonly number[]): Promise<{ disk: MemoryDisk; payloads: Map<number, Uint8Array> }> {
  const disk = await freshMemoryRing(RING_BYTES);
  const writer = await openRingWriter(disk.open(), OPTIONS);
  const reader = await openRingReader(disk.open(), OPTIONS);
  // A first lap, consumed, so that the ring holds stale records behind the live ones.
  const firstLap = await appendAll(writer, Array(40).fill(100), 1000);
  await reader.read({ fromSeq: 1 });
  await reader.consume(firstLap.size);
  const payloads = await appendAll(writer, sizes);
  return { disk, payloads };
}

describe('torn writes', () => {
  it('a multi-block record missing its middle block is not returned, and the records before it are', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    const acknowledged = await appendAll(writer, [10, 20, 30]);
    disk.tearNextWrite(() => [0, 2]);
    await expect(writer.append(taggedPayload(99, 3 * BLOCK_BYTES))).rejects.toThrow();
    disk.crash();
    const records = await readAll(disk);
    expect(records.map((record) => record.seq)).toEqual([1, 2, 3]);
    records.forEach((record) => expect(hex(record.payload)).toBe(hex(acknowledged.get(record.seq)!)));
  });

  it('a record whose first 512-byte sector landed but not the rest of its block is not returned', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, [10]);
    disk.tearNextWrite(() => [0], 512);
    await expect(writer.append(taggedPayload(7, 2000))).rejects.toThrow();
    disk.crash();
    expect((await readAll(disk)).map((record) => record.seq)).toEqual([1]);
  });

  it('any tear of a group commit yields a prefix of the group and never a record after a missing one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 9000 }), { minLength: 2, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 64 }),
        fc.constantFrom(512, BLOCK_BYTES),
        async (sizes, landMask, unitBytes) => {
          const disk = await freshMemoryRing(RING_BYTES);
          const writer = await openRingWriter(disk.open(), OPTIONS);
          await appendAll(writer, [1, 2], 500);
          disk.tearNextWrite((unitCount) => [...Array(unitCount).keys()].filter((index) => landMask[index % landMask.length]), unitBytes);
          const group = sizes.map((size, index) => taggedPayload(index + 1, size));
          await Promise.allSettled(group.map((payload) => writer.append(payload)));
          disk.crash();
          const records = await readAll(disk);
          const seqs = records.map((record) => record.seq);
          expect(seqs.slice(0, 2)).toEqual([1, 2]);
          seqs.forEach((seq, index) => expect(seq).toBe(index + 1));
          records.slice(2).forEach((record, index) => expect(hex(record.payload)).toBe(hex(group[index]!)));
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('ghost records', () => {
  // The hazard: a group write of 11 and 12 tears so that only 12 lands; the writer
  // dies before acknowledging either; the next writer writes a new 11 of the same
  // size at the same place; the old 12 right behind it has a valid CRC and the next
  // seq. It was never acknowledged and must never be returned.
  for (const unsafeSkipTornSpanZeroing of [false, true]) {
    it(`a stale, never-acknowledged record behind a rewritten one is never returned${unsafeSkipTornSpanZeroing ? ' (epoch rule alone)' : ''}`, async () => {
      const disk = await freshMemoryRing(RING_BYTES);
      let writer = await openRingWriter(disk.open(), { ...OPTIONS, unsafeSkipTornSpanZeroing });
      await appendAll(writer, Array(10).fill(50));
      disk.tearNextWrite(() => [1]); // of the two one-block records, only the second (seq 12) lands
      const dying = [writer.append(taggedPayload(111, 50)), writer.append(taggedPayload(112, 50))];
      await Promise.allSettled(dying);
      disk.crash();
      const ghost = locateRecord(disk, 12);

      writer = await openRingWriter(disk.open(), { ...OPTIONS, unsafeSkipTornSpanZeroing });
      expect(writer.lastSeq).toBe(10);
      const replacement = taggedPayload(211, 50);
      expect(await writer.append(replacement)).toEqual({ seq: 11 });
      expect(locateRecord(disk, 11).offsetBytes + BLOCK_BYTES).toBe(ghost.offsetBytes);

      const reader = await openRingReader(disk.open(), OPTIONS);
      const records = (await reader.read({ fromSeq: 1 })).records;
      expect(records.map((record) => record.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect(hex(records[10]!.payload)).toBe(hex(replacement));

      // Once 11 is consumed, the ghost sits right at the consumer position; the
      // consumer block's epoch still keeps it out, for this reader and a new one.
      await reader.consume(11);
      expect((await reader.read({ fromSeq: 12 })).records).toEqual([]);
      expect((await readAll(disk)).length).toBe(0);
      // And a crash-restarted writer does not adopt it either.
      writer = await openRingWriter(disk.open(), { ...OPTIONS, unsafeSkipTornSpanZeroing });
      expect(writer.lastSeq).toBe(11);
    });
  }
});

describe('bit flips', () => {
  it('a flipped bit anywhere in the data area never yields an invalid record and keeps every record before the damage', async () => {
    const { disk, payloads } = await wrappedRing(Array.from({ length: 30 }, (_, i) => (i % 7 === 3 ? 5000 : 40 + i)));
    const liveSeqs = [...payloads.keys()];
    const pristine = disk.bytes.slice();
    const locations = liveSeqs.map((seq) => ({ seq, ...locateRecord(disk, seq) }));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: DATA_OFFSET_BYTES * 8, max: RING_BYTES * 8 - 1 }), async (bit) => {
        disk.bytes.set(pristine);
        const byte = bit >> 3;
        disk.bytes[byte]! ^= 1 << (bit & 7);
        // The first record whose checked bytes (64-byte header plus payload) hold the flip.
        const damaged = locations.find((where) => byte >= where.offsetBytes && byte < where.offsetBytes + 64 + where.payloadBytes);
        const records = await readAll(disk);
        const expectedSeqs = liveSeqs.filter((seq) => damaged === undefined || seq < damaged.seq);
        expect(records.map((record) => record.seq)).toEqual(expectedSeqs);
        records.forEach((record) => expect(hex(record.payload)).toBe(hex(payloads.get(record.seq)!)));
      }),
      { numRuns: 1500 },
    );
  });

  it('a flipped bit in the ring header makes opening fail with a typed error', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const pristine = disk.bytes.slice();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: BLOCK_BYTES * 8 - 1 }), async (bit) => {
        disk.bytes.set(pristine);
        disk.bytes[bit >> 3]! ^= 1 << (bit & 7);
        await expectOpenFails(disk, ['NOT_A_RING', 'RING_VERSION', 'HEADER_CORRUPT']);
      }),
      { numRuns: 200 },
    );
  });

  it('a flipped bit in the consumer fields makes opening fail with CONSUMER_CORRUPT', async () => {
    const { disk } = await wrappedRing([10, 20]);
    const pristine = disk.bytes.slice();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 64 * 8 - 1 }), async (bit) => {
        disk.bytes.set(pristine);
        disk.bytes[CONSUMER_BLOCK_OFFSET_BYTES + (bit >> 3)]! ^= 1 << (bit & 7);
        await expectOpenFails(disk, ['CONSUMER_CORRUPT']);
      }),
      { numRuns: 100 },
    );
  });

  it('after a flip, a restarted writer continues after the last intact record and the reader sees only valid records', async () => {
    const { disk, payloads } = await wrappedRing([30, 30, 30, 30, 30]);
    const third = locateRecord(disk, 40 + 3);
    disk.bytes[third.offsetBytes + 70]! ^= 0x10;
    const writer = await openRingWriter(disk.open(), OPTIONS);
    expect(writer.lastSeq).toBe(42);
    const fresh = taggedPayload(5000, 30);
    expect(await writer.append(fresh)).toEqual({ seq: 43 });
    const records = await readAll(disk);
    expect(records.map((record) => record.seq)).toEqual([41, 42, 43]);
    expect(hex(records[0]!.payload)).toBe(hex(payloads.get(41)!));
    expect(hex(records[2]!.payload)).toBe(hex(fresh));
  });
});

describe('stale and zeroed data', () => {
  it('records of an earlier lap behind the tail are never returned, even copied to the next slot', async () => {
    const { disk } = await wrappedRing([100, 100, 100]);
    const staleSeq = 5; // from the first, consumed lap
    const stale = disk.bytes.slice(locateRecord(disk, staleSeq).offsetBytes, locateRecord(disk, staleSeq).offsetBytes + BLOCK_BYTES);
    const next = locateRecord(disk, 43).offsetBytes + BLOCK_BYTES;
    disk.bytes.set(stale, next);
    const reader = await openRingReader(disk.open(), OPTIONS);
    const result = await reader.read({ fromSeq: 41 });
    expect(result.records.map((record) => record.seq)).toEqual([41, 42, 43]);
    expect(result.stopReason).toBe('seq-mismatch');
  });

  it('a zeroed range stops the reader at the first zeroed record and hides nothing before it', async () => {
    const { disk } = await wrappedRing([100, 100, 100, 100, 100]);
    const start = locateRecord(disk, 43).offsetBytes;
    disk.bytes.fill(0, start, start + 2 * BLOCK_BYTES);
    const reader = await openRingReader(disk.open(), OPTIONS);
    const result = await reader.read({ fromSeq: 41 });
    expect(result.records.map((record) => record.seq)).toEqual([41, 42]);
    expect(result.stopReason).toBe('empty');
  });

  it('records of an earlier ring on the same region are invisible to a ring created over it with force', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, [10, 10, 10]);
    await createRing(disk.open(), { ...OPTIONS, force: true });
    expect(await readAll(disk)).toEqual([]);
    const fresh = await openRingWriter(disk.open(), OPTIONS);
    expect(fresh.lastSeq).toBe(0);
    expect(await fresh.append(taggedPayload(1, 10))).toEqual({ seq: 1 });
  });
});

describe('consumer block that claims too much', () => {
  function forgeConsumer(disk: MemoryDisk, consumedSeq: number, nextRecordOffsetBytes: number): void {
    const block = disk.bytes.subarray(CONSUMER_BLOCK_OFFSET_BYTES, CONSUMER_BLOCK_OFFSET_BYTES + 64);
    const view = new DataView(block.buffer, block.byteOffset, 64);
    view.setBigUint64(24, BigInt(consumedSeq), true);
    view.setBigUint64(32, BigInt(nextRecordOffsetBytes), true);
    view.setUint32(60, crc32c(block.subarray(0, 60)), true);
  }

  it('a consumer position beyond every record ever written is refused by reader and writer', async () => {
    const { disk } = await wrappedRing([10, 10, 10]);
    forgeConsumer(disk, 43 + 100, locateRecord(disk, 43).offsetBytes + BLOCK_BYTES);
    await expectOpenFails(disk, ['CONSUMER_AHEAD']);
  });

  it('a consumer block rewritten behind the writer\'s back (wrong offset) stops the writer when it next needs room', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    const reader = await openRingReader(disk.open(), OPTIONS);
    await appendAll(writer, Array(5).fill(10));
    await reader.read({ fromSeq: 1 });
    await reader.consume(2);
    forgeConsumer(disk, 3, locateRecord(disk, 1).offsetBytes);
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => writer.append(taggedPayload(i, 10))));
    const failure = results.find((result) => result.status === 'rejected');
    expect(failure).toBeDefined();
    expect(isJournalError((failure as PromiseRejectedResult).reason, 'WRITER_FAILED')).toBe(true);
    expect(((failure as PromiseRejectedResult).reason as { data: { causeCode: string } }).data.causeCode).toBe('CONSUMER_CORRUPT');
  });
});

describe('a crash while publishing the consumer position', () => {
  it('a torn consumer-block write leaves the old or the new position, never a broken one', async () => {
    for (const landed of [[0], [1, 2, 3, 4, 5, 6, 7], []]) {
      const disk = await freshMemoryRing(RING_BYTES);
      const writer = await openRingWriter(disk.open(), OPTIONS);
      await appendAll(writer, Array(6).fill(10));
      const reader = await openRingReader(disk.open(), OPTIONS);
      await reader.read({ fromSeq: 1 });
      await reader.consume(2);
      // Every field of the consumer block sits in its first 512-byte sector.
      disk.tearNextWrite(() => landed, 512);
      await expect(reader.consume(5)).rejects.toThrow();
      disk.crash();
      const reopened = await openRingReader(disk.open(), OPTIONS);
      expect(reopened.consumedSeq).toBe(landed.includes(0) ? 5 : 2);
      const records = await reopened.read({ fromSeq: reopened.consumedSeq + 1 });
      expect(records.records.map((record) => record.seq)).toEqual(landed.includes(0) ? [6] : [3, 4, 5, 6]);
      const reopenedWriter = await openRingWriter(disk.open(), OPTIONS);
      expect(reopenedWriter.lastSeq).toBe(6);
    }
  });
});


describe('an I/O error on a write', () => {
  it('stops the writer (WRITER_FAILED) until it is reopened, and the reopened writer continues without a gap', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const inner = disk.open();
    let failNext = false;
    const flaky = {
      sizeBytes: inner.sizeBytes,
      description: 'flaky',
      allocateBuffer: (lengthBytes: number) => inner.allocateBuffer(lengthBytes),
      read: (offsetBytes: number, lengthBytes: number) => inner.read(offsetBytes, lengthBytes),
      close: () => inner.close(),
      write: async (offsetBytes: number, data: Uint8Array): Promise<void> => {
        if (failNext) {
          failNext = false;
          throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        }
        await inner.write(offsetBytes, data);
      },
    };
    const writer = await openRingWriter(flaky, OPTIONS);
    await appendAll(writer, [10, 10]);
    failNext = true;
    const failed = await Promise.allSettled([writer.append(taggedPayload(3, 10)), writer.append(taggedPayload(4, 10))]);
    for (const result of failed) expect(result.status === 'rejected' && isJournalError(result.reason, 'WRITER_FAILED')).toBe(true);
    expect(isJournalError(await writer.append(taggedPayload(5, 10)).catch((error: unknown) => error), 'WRITER_FAILED')).toBe(true);
    const reopened = await openRingWriter(disk.open(), OPTIONS);
    expect(await reopened.append(taggedPayload(6, 10))).toEqual({ seq: 3 });
    expect((await readAll(disk)).map((record) => record.seq)).toEqual([1, 2, 3]);
  });
});

describe('a write gate (the host lease)', () => {
  it('is checked when each group write starts, not when append is called: an append queued behind a slow write is refused, unwritten, once the gate closes', async () => {
    const disk = await freshMemoryRing(RING_BYTES);
    const inner = disk.open();
    let slowNext = false;
    let releaseSlowWrite: (() => void) | undefined;
    const slow = {
      sizeBytes: inner.sizeBytes,
      description: 'slow',
      allocateBuffer: (lengthBytes: number) => inner.allocateBuffer(lengthBytes),
      read: (offsetBytes: number, lengthBytes: number) => inner.read(offsetBytes, lengthBytes),
      close: () => inner.close(),
      write: async (offsetBytes: number, data: Uint8Array): Promise<void> => {
        if (slowNext) {
          slowNext = false;
          await new Promise<void>((resolve) => (releaseSlowWrite = resolve));
        }
        await inner.write(offsetBytes, data);
      },
    };
    const writer = await openRingWriter(slow, OPTIONS);
    let open = true;
    let checks = 0;
    writer.gateWrites(async () => {
      checks++;
      if (!open) throw new Error('lease lost');
    });
    slowNext = true;
    const first = writer.append(taggedPayload(1, 10));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(releaseSlowWrite).toBeDefined(); // the first group is on its way to the disk
    // Queued while the gate is open, behind the slow write; the gate closes before it starts.
    const queued = writer.append(taggedPayload(2, 10));
    open = false;
    releaseSlowWrite!();
    expect(await first).toEqual({ seq: 1 });
    await expect(queued).rejects.toThrow('lease lost');
    expect(checks).toBe(2);
    // Nothing of the refused append reached the disk, and the writer goes on when the gate opens.
    expect((await readAll(disk)).map((record) => record.seq)).toEqual([1]);
    open = true;
    expect(await writer.append(taggedPayload(3, 10))).toEqual({ seq: 2 });
    expect((await readAll(disk)).map((record) => hex(record.payload))).toEqual([hex(taggedPayload(1, 10)), hex(taggedPayload(3, 10))]);
  });
});
