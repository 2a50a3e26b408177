// Every named limit, at and past its bound, plus the identity checks at open.

import { describe, expect, it } from 'vitest';
import {
  BLOCK_BYTES,
  createRing,
  FULL_POLL_INTERVAL_MS,
  isJournalError,
  MAX_FULL_WAIT_MS,
  MAX_GROUP_COMMIT_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_QUEUED_APPENDS,
  MAX_RECORD_BYTES,
  MAX_RECORDS_PER_GROUP_COMMIT,
  MAX_RECORDS_PER_READ,
  MAX_RING_BYTES,
  MAX_RING_ID_BYTES,
  READ_CHUNK_BYTES,
  MemoryDisk,
  MIN_RING_BYTES,
  openRingReader,
  openRingWriter,
  crc32c,
  type BlockRegion,
  type JournalErrorCode,
} from '../index.js';
import { appendAll, freshMemoryRing, hex, taggedPayload, TEST_RING_ID } from './helpers.js';

const OPTIONS = { ringId: TEST_RING_ID };

async function errorCodeOf(promise: Promise<unknown>): Promise<JournalErrorCode | string> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    return isJournalError(error) ? error.code : String(error);
  }
}

/** Wraps a region to record the size of every write and optionally hold writes until released. */
class RecordingRegion implements BlockRegion {
  readonly writeSizes: number[] = [];
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(private readonly inner: BlockRegion) {}

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get description(): string {
    return this.inner.description;
  }
  allocateBuffer(lengthBytes: number): Uint8Array {
    return this.inner.allocateBuffer(lengthBytes);
  }
  read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    return this.inner.read(offsetBytes, lengthBytes);
  }
  async write(offsetBytes: number, data: Uint8Array): Promise<void> {
    this.writeSizes.push(data.length);
    if (this.gate !== undefined) await this.gate;
    await this.inner.write(offsetBytes, data);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  holdWrites(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  releaseWrites(): void {
    this.openGate?.();
    this.gate = undefined;
  }
}

/** A region of any size that stores only the blocks written to it. */
class SparseRegion implements BlockRegion {
  private readonly blocks = new Map<number, Uint8Array>();
  readonly description = 'sparse';
  constructor(readonly sizeBytes: number) {}
  allocateBuffer(lengthBytes: number): Uint8Array {
    return new Uint8Array(lengthBytes);
  }
  async read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    const out = new Uint8Array(lengthBytes);
    for (let at = 0; at < lengthBytes; at += BLOCK_BYTES) {
      const block = this.blocks.get(offsetBytes + at);
      if (block !== undefined) out.set(block, at);
    }
    return out;
  }
  async write(offsetBytes: number, data: Uint8Array): Promise<void> {
    for (let at = 0; at < data.length; at += BLOCK_BYTES) {
      const block = data.slice(at, at + BLOCK_BYTES);
      if (block.some((byte) => byte !== 0)) this.blocks.set(offsetBytes + at, block);
      else this.blocks.delete(offsetBytes + at);
    }
  }
  async close(): Promise<void> {}
}

describe('payload size', () => {
  it(`accepts a payload of exactly MAX_PAYLOAD_BYTES (${MAX_PAYLOAD_BYTES}) and refuses one byte more with PAYLOAD_TOO_LARGE`, async () => {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    const largest = taggedPayload(1, MAX_PAYLOAD_BYTES);
    expect(await writer.append(largest)).toEqual({ seq: 1 });
    expect(await errorCodeOf(writer.append(new Uint8Array(MAX_PAYLOAD_BYTES + 1)))).toBe('PAYLOAD_TOO_LARGE');
    // The refusal took no sequence number.
    expect(await writer.append(new Uint8Array(0))).toEqual({ seq: 2 });
    const reader = await openRingReader(disk.open(), OPTIONS);
    const records = (await reader.read({ fromSeq: 1 })).records;
    expect(records.map((record) => record.payload.length)).toEqual([MAX_PAYLOAD_BYTES, 0]);
    expect(hex(records[0]!.payload)).toBe(hex(largest));
  });
});

describe('group commit', () => {
  it(`appends issued while a write is in flight share the next write, at most MAX_RECORDS_PER_GROUP_COMMIT (${MAX_RECORDS_PER_GROUP_COMMIT}) per write`, async () => {
    const disk = new MemoryDisk(8 * 1024 * 1024);
    await createRing(disk.open(), OPTIONS);
    const region = new RecordingRegion(disk.open());
    const writer = await openRingWriter(region, OPTIONS);
    region.writeSizes.length = 0;
    const count = 2 * MAX_RECORDS_PER_GROUP_COMMIT + 50;
    const results = await Promise.all(Array.from({ length: count }, (_, i) => writer.append(taggedPayload(i, 16))));
    expect(results.map((result) => result.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(region.writeSizes).toEqual([MAX_RECORDS_PER_GROUP_COMMIT, MAX_RECORDS_PER_GROUP_COMMIT, 50].map((records) => records * BLOCK_BYTES));
  });

  it(`no write exceeds MAX_GROUP_COMMIT_BYTES (${MAX_GROUP_COMMIT_BYTES})`, async () => {
    const disk = new MemoryDisk(8 * 1024 * 1024);
    await createRing(disk.open(), OPTIONS);
    const region = new RecordingRegion(disk.open());
    const writer = await openRingWriter(region, OPTIONS);
    region.writeSizes.length = 0;
    await Promise.all(Array.from({ length: 40 }, (_, i) => writer.append(taggedPayload(i, MAX_PAYLOAD_BYTES))));
    const perWrite = MAX_GROUP_COMMIT_BYTES / MAX_RECORD_BYTES;
    expect(region.writeSizes).toEqual([perWrite, perWrite, 40 - 2 * perWrite].map((records) => records * MAX_RECORD_BYTES));
  });

  it('each caller\'s promise resolves only after the write holding its record completed', async () => {
    const disk = await freshMemoryRing(1024 * 1024);
    const region = new RecordingRegion(disk.open());
    const writer = await openRingWriter(region, OPTIONS);
    region.holdWrites();
    let resolved = 0;
    const appends = Array.from({ length: 5 }, (_, i) => writer.append(taggedPayload(i, 10)).then(() => (resolved += 1)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(resolved).toBe(0);
    region.releaseWrites();
    await Promise.all(appends);
    expect(resolved).toBe(5);
  });

  it(`refuses appends beyond MAX_QUEUED_APPENDS (${MAX_QUEUED_APPENDS}) with APPEND_QUEUE_FULL`, async () => {
    const disk = await freshMemoryRing(32 * 1024 * 1024);
    const region = new RecordingRegion(disk.open());
    const writer = await openRingWriter(region, OPTIONS);
    region.holdWrites();
    const first = writer.append(taggedPayload(0, 1));
    await new Promise((resolve) => setTimeout(resolve, 5)); // the first write is now in flight
    const queued = Array.from({ length: MAX_QUEUED_APPENDS }, (_, i) => writer.append(taggedPayload(i + 1, 1)));
    expect(await errorCodeOf(writer.append(taggedPayload(-1, 1)))).toBe('APPEND_QUEUE_FULL');
    region.releaseWrites();
    await Promise.all([first, ...queued]);
    expect(writer.lastSeq).toBe(MAX_QUEUED_APPENDS + 1);
  });
});

describe('a full ring', () => {
  async function fullRing(): Promise<{ disk: MemoryDisk; count: number }> {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    let count = 0;
    for (;;) {
      const code = await errorCodeOf(writer.append(taggedPayload(count, 100)));
      if (code !== 'no error') {
        expect(code).toBe('RING_FULL');
        break;
      }
      count += 1;
    }
    return { disk, count };
  }

  it('refuses an append with RING_FULL, overwriting nothing (not even the last consumed record), and accepts again once the consumer frees space', async () => {
    const { disk, count } = await fullRing();
    // Records start only where a maximal record fits before the end, hence not every data block holds one.
    expect(count).toBe((MIN_RING_BYTES - MAX_RECORD_BYTES) / BLOCK_BYTES - 1);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    expect(await errorCodeOf(writer.append(taggedPayload(1, 10)))).toBe('RING_FULL');
    const reader = await openRingReader(disk.open(), OPTIONS);
    const before = await reader.read({ fromSeq: 1 });
    expect(before.records.length).toBe(count);
    // The last consumed record (the anchor) is kept: consuming record 1 frees nothing,
    // consuming through 2 frees record 1's block.
    await reader.consume(1);
    expect(await errorCodeOf(writer.append(taggedPayload(1, 10)))).toBe('RING_FULL');
    await reader.consume(2);
    expect(await writer.append(taggedPayload(1, 10))).toEqual({ seq: count + 1 });
    expect(await errorCodeOf(writer.append(taggedPayload(2, 10)))).toBe('RING_FULL');
    const after = await reader.read({ fromSeq: 3 });
    expect(after.records.map((record) => record.seq)).toEqual(Array.from({ length: count - 1 }, (_, i) => i + 3));
  });

  it('a ring consumed to the end, with its tail wrapped to the start, still opens after the writer crashes and fills to the kept record', async () => {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    let writer = await openRingWriter(disk.open(), OPTIONS);
    // One-block records; after this many the next must wrap to the first data block.
    const perLap = (MIN_RING_BYTES - MAX_RECORD_BYTES) / BLOCK_BYTES - 1;
    for (let i = 0; i < perLap; i++) await writer.append(taggedPayload(i, 10));
    const reader = await openRingReader(disk.open(), OPTIONS);
    expect((await reader.read({ fromSeq: 1 })).records.length).toBe(perLap);
    await reader.consume(perLap);
    // The writer's process dies; the next session zeroes the span a torn write could have
    // covered, from the first data block on. It must stop before the last consumed
    // record, or no record at seq >= consumedSeq is left and every open fails with
    // CONSUMER_AHEAD.
    disk.crash();
    writer = await openRingWriter(disk.open(), OPTIONS);
    const fresh = await openRingReader(disk.open(), OPTIONS);
    expect(fresh.consumedSeq).toBe(perLap);
    let written = 0;
    while ((await errorCodeOf(writer.append(taggedPayload(1000 + written, 10)))) === 'no error') written += 1;
    // A lap less the kept record's block.
    expect(written).toBe(perLap - 1);
    expect((await fresh.read({ fromSeq: perLap + 1 })).records.map((record) => record.seq)).toEqual(Array.from({ length: written }, (_, i) => perLap + 1 + i));
    expect((await openRingReader(disk.open(), OPTIONS)).consumedSeq).toBe(perLap);
  });

  it('with onFull {waitMs}, an append waits for the consumer and succeeds when it frees space in time', async () => {
    const { disk, count } = await fullRing();
    const writer = await openRingWriter(disk.open(), { ...OPTIONS, onFull: { waitMs: 5_000 } });
    const reader = await openRingReader(disk.open(), OPTIONS);
    await reader.read({ fromSeq: 1 });
    const pending = writer.append(taggedPayload(7, 10));
    await new Promise((resolve) => setTimeout(resolve, 10 * FULL_POLL_INTERVAL_MS));
    await reader.consume(3);
    expect(await pending).toEqual({ seq: count + 1 });
  });

  it('with onFull {waitMs}, an append fails with RING_FULL once the wait runs out', async () => {
    const { disk } = await fullRing();
    let now = 0;
    const writer = await openRingWriter(disk.open(), {
      ...OPTIONS,
      onFull: { waitMs: 1_000 },
      nowMs: () => now,
      sleepMs: async (ms) => {
        now += ms;
      },
    });
    expect(await errorCodeOf(writer.append(taggedPayload(7, 10)))).toBe('RING_FULL');
    expect(now).toBeGreaterThanOrEqual(1_000);
    expect(now).toBeLessThan(1_000 + 2 * FULL_POLL_INTERVAL_MS);
  });

  it(`refuses a wait longer than MAX_FULL_WAIT_MS (${MAX_FULL_WAIT_MS})`, async () => {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    expect(await errorCodeOf(openRingWriter(disk.open(), { ...OPTIONS, onFull: { waitMs: MAX_FULL_WAIT_MS } }))).toBe('no error');
    expect(await errorCodeOf(openRingWriter(disk.open(), { ...OPTIONS, onFull: { waitMs: MAX_FULL_WAIT_MS + 1 } }))).toBe('INVALID_ARGUMENT');
    expect(await errorCodeOf(openRingWriter(disk.open(), { ...OPTIONS, maxRecordsPerGroupCommit: MAX_RECORDS_PER_GROUP_COMMIT + 1 }))).toBe('INVALID_ARGUMENT');
  });
});

describe('ring size bounds', () => {
  it(`accepts MIN_RING_BYTES (${MIN_RING_BYTES}) and refuses one block less with REGION_INVALID`, async () => {
    expect(await errorCodeOf(createRing(new MemoryDisk(MIN_RING_BYTES).open(), OPTIONS))).toBe('no error');
    expect(await errorCodeOf(createRing(new MemoryDisk(MIN_RING_BYTES - BLOCK_BYTES).open(), OPTIONS))).toBe('REGION_INVALID');
  });

  it(`accepts MAX_RING_BYTES (${MAX_RING_BYTES}) and refuses one block more with REGION_INVALID`, async () => {
    const region = new SparseRegion(MAX_RING_BYTES);
    await createRing(region, OPTIONS);
    const writer = await openRingWriter(region, OPTIONS);
    expect(await writer.append(taggedPayload(1, 10))).toEqual({ seq: 1 });
    const reader = await openRingReader(region, OPTIONS);
    expect((await reader.read({ fromSeq: 1 })).records.length).toBe(1);
    expect(await errorCodeOf(createRing(new SparseRegion(MAX_RING_BYTES + BLOCK_BYTES), OPTIONS))).toBe('REGION_INVALID');
  });

  it('refuses a region that is not whole blocks', async () => {
    expect(await errorCodeOf(createRing(new SparseRegion(MIN_RING_BYTES + 512), OPTIONS))).toBe('REGION_INVALID');
  });
});

describe('reads', () => {
  it(`returns at most MAX_RECORDS_PER_READ (${MAX_RECORDS_PER_READ}) records and refuses a larger maxRecords`, async () => {
    const disk = await freshMemoryRing(32 * 1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    for (let done = 0; done < MAX_RECORDS_PER_READ + 10; done += 1000) {
      const batch = Math.min(1000, MAX_RECORDS_PER_READ + 10 - done);
      await Promise.all(Array.from({ length: batch }, (_, i) => writer.append(taggedPayload(done + i, 8))));
    }
    const reader = await openRingReader(disk.open(), OPTIONS);
    const first = await reader.read({ fromSeq: 1 });
    expect(first.records.length).toBe(MAX_RECORDS_PER_READ);
    expect(first.stopReason).toBe('max-records');
    const rest = await reader.read({ fromSeq: MAX_RECORDS_PER_READ + 1 });
    expect(rest.records.map((record) => record.seq)).toEqual(Array.from({ length: 10 }, (_, i) => MAX_RECORDS_PER_READ + 1 + i));
    expect(await errorCodeOf(reader.read({ fromSeq: 1, maxRecords: MAX_RECORDS_PER_READ + 1 }))).toBe('INVALID_ARGUMENT');
  });

  it('a reader opened with survey: false reads what a surveying one reads, and opening reads two blocks, not the ring', async () => {
    const disk = await freshMemoryRing(4 * 1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, Array(40).fill(100));
    const consumer = await openRingReader(disk.open(), OPTIONS);
    await consumer.read({ fromSeq: 1 });
    await consumer.consume(25);
    const reads: number[] = [];
    const inner = disk.open();
    const counting: BlockRegion = { ...inner, sizeBytes: inner.sizeBytes, description: inner.description, allocateBuffer: (n) => inner.allocateBuffer(n), write: (o, d) => inner.write(o, d), close: () => inner.close(), read: (o, n) => (reads.push(n), inner.read(o, n)) };
    const quick = await openRingReader(counting, { ...OPTIONS, survey: false });
    expect(reads.reduce((sum, n) => sum + n, 0)).toBe(2 * BLOCK_BYTES);
    const surveyed = await openRingReader(disk.open(), OPTIONS);
    expect(quick.consumedSeq).toBe(25);
    expect(await quick.read({ fromSeq: 26 })).toEqual(await surveyed.read({ fromSeq: 26 }));
  });

  it('a consumer never moves the consumer pointer back behind another that consumed further', async () => {
    const disk = await freshMemoryRing(1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, Array(10).fill(20));
    const slow = await openRingReader(disk.open(), OPTIONS);
    const fast = await openRingReader(disk.open(), OPTIONS);
    await slow.read({ fromSeq: 1 });
    await fast.read({ fromSeq: 1 });
    await fast.consume(8);
    await slow.consume(5);
    expect((await openRingReader(disk.open(), OPTIONS)).consumedSeq).toBe(8);
    expect(slow.consumedSeq).toBe(8);
    // The slower one still moves it forward when it is ahead.
    await slow.consume(10);
    expect((await openRingReader(disk.open(), OPTIONS)).consumedSeq).toBe(10);
  });

  it('starts at any seq after the consumed one (the master\'s applied seq may be ahead) and refuses consumed ones', async () => {
    const disk = await freshMemoryRing(1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, Array(10).fill(20));
    const reader = await openRingReader(disk.open(), OPTIONS);
    expect((await reader.read({ fromSeq: 7 })).records.map((record) => record.seq)).toEqual([7, 8, 9, 10]);
    expect((await reader.read({ fromSeq: 11 })).records).toEqual([]);
    expect((await reader.read({ fromSeq: 50 })).records).toEqual([]);
    await reader.consume(8);
    const fresh = await openRingReader(disk.open(), OPTIONS);
    expect(fresh.consumedSeq).toBe(8);
    expect(await errorCodeOf(fresh.read({ fromSeq: 8 }))).toBe('SEQ_ALREADY_CONSUMED');
    expect(await errorCodeOf(fresh.consume(10))).toBe('SEQ_NOT_READ');
    expect((await fresh.read({ fromSeq: 10 })).records.map((record) => record.seq)).toEqual([10]);
    await fresh.consume(10);
    await fresh.consume(9); // already consumed: repeating after a crash is harmless
    expect(fresh.consumedSeq).toBe(10);
  });

  it(`a read that finds nothing new reads one block; one that finds records reads up to READ_CHUNK_BYTES (${READ_CHUNK_BYTES}) at a time`, async () => {
    const disk = await freshMemoryRing(4 * 1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    const reads: number[] = [];
    const counting = (region: BlockRegion): BlockRegion => ({
      sizeBytes: region.sizeBytes,
      description: region.description,
      allocateBuffer: (length) => region.allocateBuffer(length),
      read: (offset, length) => {
        reads.push(length);
        return region.read(offset, length);
      },
      write: (offset, data) => region.write(offset, data),
      close: () => region.close(),
    });
    const reader = await openRingReader(counting(disk.open()), OPTIONS);
    // A host polling its grants ring: nothing new, again and again.
    for (let poll = 0; poll < 5; poll++) {
      reads.length = 0;
      expect((await reader.read({ fromSeq: reader.consumedSeq + 1 })).records).toEqual([]);
      expect(reads).toEqual([BLOCK_BYTES]);
    }
    // 300 one-block records (1.2 MiB): the first block alone, then whole chunks.
    await Promise.all(Array.from({ length: 300 }, (_, i) => writer.append(taggedPayload(i, 8))));
    reads.length = 0;
    expect((await reader.read({ fromSeq: 1 })).records.length).toBe(300);
    expect(reads[0]).toBe(BLOCK_BYTES);
    expect(reads.slice(1, 5)).toEqual([READ_CHUNK_BYTES, READ_CHUNK_BYTES, READ_CHUNK_BYTES, READ_CHUNK_BYTES]);
    expect(reads.length).toBeLessThanOrEqual(7);
  });

  it('a record of a newer record version at the next seq is a RECORD_VERSION error, not a silent stop', async () => {
    const disk = await freshMemoryRing(1024 * 1024);
    const writer = await openRingWriter(disk.open(), OPTIONS);
    await appendAll(writer, [10, 10]);
    const reader = await openRingReader(disk.open(), OPTIONS);
    expect((await reader.read({ fromSeq: 1 })).records.length).toBe(2);
    // Turn record 2 into a version-2 record (CRC recomputed as a future writer would).
    const offset = 2 * BLOCK_BYTES + BLOCK_BYTES;
    const view = new DataView(disk.bytes.buffer, offset, 64);
    view.setUint16(4, 2, true);
    view.setUint32(60, crc32c(Uint8Array.from([...disk.bytes.subarray(offset, offset + 60), ...disk.bytes.subarray(offset + 64, offset + 74)])), true);
    const fresh = await openRingReader(disk.open(), OPTIONS);
    expect(await errorCodeOf(fresh.read({ fromSeq: 1 }))).toBe('RECORD_VERSION');
  });
});

describe('ring identity', () => {
  it('opening a region that holds no ring is NOT_A_RING', async () => {
    const disk = new MemoryDisk(MIN_RING_BYTES);
    expect(await errorCodeOf(openRingReader(disk.open(), OPTIONS))).toBe('NOT_A_RING');
    expect(await errorCodeOf(openRingWriter(disk.open(), OPTIONS))).toBe('NOT_A_RING');
  });

  it('opening a ring of another format version is RING_VERSION', async () => {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    new DataView(disk.bytes.buffer).setUint32(8, 2, true);
    expect(await errorCodeOf(openRingReader(disk.open(), OPTIONS))).toBe('RING_VERSION');
    expect(await errorCodeOf(openRingWriter(disk.open(), OPTIONS))).toBe('RING_VERSION');
  });

  it('opening with the wrong ring id is RING_ID_MISMATCH', async () => {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    expect(await errorCodeOf(openRingReader(disk.open(), { ringId: 'thinlv_other_grants' }))).toBe('RING_ID_MISMATCH');
    expect(await errorCodeOf(openRingWriter(disk.open(), { ringId: 'thinlv_other_grants' }))).toBe('RING_ID_MISMATCH');
  });

  it('creating a ring over a live ring needs force', async () => {
    const disk = await freshMemoryRing(MIN_RING_BYTES);
    expect(await errorCodeOf(createRing(disk.open(), { ringId: 'thinlv_other_grants' }))).toBe('RING_EXISTS');
    expect(await errorCodeOf(createRing(disk.open(), { ringId: 'thinlv_other_grants', force: true }))).toBe('no error');
    expect(await errorCodeOf(openRingReader(disk.open(), { ringId: 'thinlv_other_grants' }))).toBe('no error');
  });

  it(`ring ids are 1 to MAX_RING_ID_BYTES (${MAX_RING_ID_BYTES}) characters from [A-Za-z0-9._:-]`, async () => {
    const disk = new MemoryDisk(MIN_RING_BYTES);
    expect(await errorCodeOf(createRing(disk.open(), { ringId: 'a'.repeat(MAX_RING_ID_BYTES) }))).toBe('no error');
    for (const ringId of ['', 'a'.repeat(MAX_RING_ID_BYTES + 1), 'host a', 'hôte']) {
      expect(await errorCodeOf(createRing(disk.open(), { ringId, force: true }))).toBe('INVALID_ARGUMENT');
    }
  });
});
