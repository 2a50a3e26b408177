import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { MemoryDisk } from '../../journal/index.js';
import { STATUS_REGION_BYTES, STATUS_SLOT_BYTES, MAX_STATUS_PAYLOAD_BYTES, decodeStatusSlot, encodeStatusSlot, readStatusRegion, writeStatusRegion } from '../../src/rings/statusBlock.js';

describe('the master status block', () => {
  test('a fresh region reads as absent; each write reads back as the newest, whichever slot it went to', async () => {
    const region = new MemoryDisk(STATUS_REGION_BYTES).open();
    expect(await readStatusRegion(region)).toEqual({ kind: 'absent' });
    for (let counter = 1; counter <= 4; counter++) {
      await writeStatusRegion(region, counter, { n: counter });
      expect(await readStatusRegion(region)).toEqual({ kind: 'status', counter, payload: { n: counter } });
    }
  });

  test.prop([fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 17 })])('a write torn before its last meaningful sector leaves the previous status readable', async (counter, landedUnits) => {
    const disk = new MemoryDisk(STATUS_REGION_BYTES);
    await writeStatusRegion(disk.open(), counter, { n: counter, pad: 'x'.repeat(9000) });
    // The next write (the other slot: 32 + ~9020 bytes, 18 sectors that matter) lands only a
    // prefix of its 512-byte units, then the machine dies.
    disk.tearNextWrite((unitCount) => Array.from({ length: Math.min(landedUnits, unitCount - 1) }, (_, i) => i), 512);
    await writeStatusRegion(disk.open(), counter + 1, { n: counter + 1, pad: 'y'.repeat(9000) }).catch(() => undefined);
    expect(await readStatusRegion(disk.open())).toMatchObject({ kind: 'status', counter, payload: { n: counter } });
  });

  test('damage is reported, never decoded: a flipped payload bit, a newer format, a bad length', () => {
    const slot = encodeStatusSlot(7, { vg: 'vg1' }, new Uint8Array(STATUS_SLOT_BYTES));
    expect(decodeStatusSlot(slot)).toEqual({ kind: 'status', counter: 7, payload: { vg: 'vg1' } });
    const flipped = slot.slice();
    flipped[40]! ^= 1;
    expect(decodeStatusSlot(flipped)).toMatchObject({ kind: 'corrupt', reason: expect.stringContaining('CRC32C') });
    const newer = slot.slice();
    new DataView(newer.buffer).setUint32(8, 2, true);
    expect(decodeStatusSlot(newer)).toMatchObject({ kind: 'corrupt', reason: expect.stringContaining('newer thinlv') });
    const long = slot.slice();
    new DataView(long.buffer).setUint32(12, MAX_STATUS_PAYLOAD_BYTES + 1, true);
    expect(decodeStatusSlot(long)).toMatchObject({ kind: 'corrupt', reason: expect.stringContaining('out of range') });
  });

  test('a payload larger than a slot is refused before anything is written', () => {
    expect(() => encodeStatusSlot(1, { pad: 'x'.repeat(MAX_STATUS_PAYLOAD_BYTES) }, new Uint8Array(STATUS_SLOT_BYTES))).toThrow(/does not fit/);
  });
});
