// The real storage: a region of a file opened with O_DIRECT|O_DSYNC, and the
// logged O_DSYNC+fdatasync fallback where O_DIRECT is refused (tmpfs).

import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRing, isJournalError, MIN_RING_BYTES, openFileRegion, openRingReader, openRingWriter, type JournalLogLevel } from '../index.js';
import { taggedPayload, hex } from './helpers.js';

const created: string[] = [];

function sparseFile(directory: string, sizeBytes: number): string {
  const file = path.join(directory, `thinlv-journal-test-${process.pid}-${created.length}-${Date.now()}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeBytes);
  created.push(file);
  return file;
}

afterEach(() => {
  for (const file of created.splice(0)) fs.rmSync(file, { force: true });
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'no error',
    (error: unknown) => (isJournalError(error) ? error.code : String(error)),
  );
}

describe('file region', () => {
  it('a ring at an offset inside a file round-trips through separate writer and reader handles with O_DIRECT', async () => {
    const file = sparseFile(os.tmpdir(), 4 * 1024 * 1024);
    const where = { offsetBytes: 1024 * 1024, lengthBytes: MIN_RING_BYTES };
    const writerRegion = await openFileRegion(file, where);
    expect(writerRegion.mode).toBe('direct');
    await createRing(writerRegion, { ringId: 'thinlv_file_journal' });
    const writer = await openRingWriter(writerRegion, { ringId: 'thinlv_file_journal' });
    const payloads = [taggedPayload(1, 10), taggedPayload(2, 5000), taggedPayload(3, 0)];
    await Promise.all(payloads.map((payload) => writer.append(payload)));
    const readerRegion = await openFileRegion(file, where);
    const reader = await openRingReader(readerRegion, { ringId: 'thinlv_file_journal' });
    const { records } = await reader.read({ fromSeq: 1 });
    expect(records.map((record) => hex(record.payload))).toEqual(payloads.map(hex));
    // Nothing was written outside the region.
    const outside = fs.readFileSync(file);
    expect(outside.subarray(0, where.offsetBytes).every((byte) => byte === 0)).toBe(true);
    expect(outside.subarray(where.offsetBytes + where.lengthBytes).every((byte) => byte === 0)).toBe(true);
    await writerRegion.close();
    await readerRegion.close();
  });

  it('reads into a buffer of its own, or the head of one, what read() returns, and checks the range as read() does', async () => {
    const file = sparseFile(os.tmpdir(), 2 * MIN_RING_BYTES);
    const bytes = Buffer.alloc(MIN_RING_BYTES);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
    fs.writeFileSync(file, bytes, { flag: 'r+' });
    const region = await openFileRegion(file, { offsetBytes: 0, lengthBytes: MIN_RING_BYTES });
    const buffer = region.allocateBuffer(8 * 4096);
    await region.readInto(4096, buffer);
    expect(hex(buffer)).toBe(hex(await region.read(4096, 8 * 4096)));
    await region.readInto(12 * 4096, buffer.subarray(0, 4096));
    expect(hex(buffer.subarray(0, 4096))).toBe(hex(bytes.subarray(12 * 4096, 13 * 4096)));
    expect(await codeOf(region.readInto(MIN_RING_BYTES - 4096, buffer))).not.toBe('no error');
    await region.close();
  });

  it('where O_DIRECT is refused (EINVAL, as tmpfs before Linux 6.6 does), falls back to O_DSYNC plus fdatasync and logs it', async () => {
    const file = sparseFile(os.tmpdir(), MIN_RING_BYTES);
    const logged: { level: JournalLogLevel; message: string }[] = [];
    const openFile = async (filePath: string, flags: number): Promise<number> => {
      if ((flags & fs.constants.O_DIRECT) !== 0) throw Object.assign(new Error('EINVAL: invalid argument'), { code: 'EINVAL' });
      return fs.openSync(filePath, flags);
    };
    const region = await openFileRegion(file, { offsetBytes: 0, lengthBytes: MIN_RING_BYTES, logger: (level, message) => logged.push({ level, message }), openFile });
    expect(region.mode).toBe('dsync-fallback');
    expect(logged).toEqual([expect.objectContaining({ level: 'warn', message: expect.stringContaining('O_DIRECT refused') })]);
    await createRing(region, { ringId: 'thinlv_tmpfs_journal' });
    const writer = await openRingWriter(region, { ringId: 'thinlv_tmpfs_journal' });
    expect(await writer.append(taggedPayload(1, 10))).toEqual({ seq: 1 });
    const reader = await openRingReader(region, { ringId: 'thinlv_tmpfs_journal' });
    expect((await reader.read({ fromSeq: 1 })).records.length).toBe(1);
    await region.close();
  });

  it.skipIf(!fs.existsSync('/dev/shm'))('on tmpfs, the region works in whichever mode the kernel allows and logs only a fallback', async () => {
    const file = sparseFile('/dev/shm', MIN_RING_BYTES);
    const logged: string[] = [];
    const region = await openFileRegion(file, { offsetBytes: 0, lengthBytes: MIN_RING_BYTES, logger: (_level, message) => logged.push(message) });
    expect(logged.length).toBe(region.mode === 'dsync-fallback' ? 1 : 0);
    await createRing(region, { ringId: 'thinlv_tmpfs_journal' });
    const writer = await openRingWriter(region, { ringId: 'thinlv_tmpfs_journal' });
    expect(await writer.append(taggedPayload(1, 10))).toEqual({ seq: 1 });
    await region.close();
  });

  it('refuses regions that are unaligned, out of bounds, past the end of the file, or on a missing path with REGION_INVALID', async () => {
    const file = sparseFile(os.tmpdir(), 1024 * 1024);
    expect(await codeOf(openFileRegion(file, { offsetBytes: 512, lengthBytes: MIN_RING_BYTES }))).toBe('REGION_INVALID');
    expect(await codeOf(openFileRegion(file, { offsetBytes: 0, lengthBytes: MIN_RING_BYTES + 512 }))).toBe('REGION_INVALID');
    expect(await codeOf(openFileRegion(file, { offsetBytes: 0, lengthBytes: MIN_RING_BYTES - 4096 }))).toBe('REGION_INVALID');
    expect(await codeOf(openFileRegion(file, { offsetBytes: 1024 * 1024 - MIN_RING_BYTES + 4096, lengthBytes: MIN_RING_BYTES }))).toBe('REGION_INVALID');
    expect(await codeOf(openFileRegion(path.join(os.tmpdir(), 'thinlv-journal-does-not-exist.img'), { offsetBytes: 0, lengthBytes: MIN_RING_BYTES }))).toBe('REGION_INVALID');
  });
});
