// A grant record names the host's whole pool in at most MAX_RANGES_PER_RECORD ranges:
// a pool in more pieces is sent as its largest pieces, in disk order.

import { describe, expect, test } from 'vitest';
import { largestRanges } from '../../src/master/replayPass.js';
import { MAX_RANGES_PER_RECORD, decodeGrantRecord, encodeGrantRecord, type PvExtentRange } from '../../src/records/records.js';

const PV = 'pv-uuid-0123456789-abcdefghij-0123456';

describe('grant snapshots of fragmented pools', () => {
  test('a pool of exactly MAX_RANGES_PER_RECORD pieces is sent whole', () => {
    const pool: PvExtentRange[] = Array.from({ length: MAX_RANGES_PER_RECORD }, (_, i) => ({ pvUuid: PV, firstExtent: i * 10, extentCount: 1 + (i % 7) }));
    expect(largestRanges(pool, MAX_RANGES_PER_RECORD)).toEqual(pool);
  });

  test('a pool of more pieces is sent as its largest, in disk order, and the record encodes and decodes', () => {
    // 700 pieces: sizes 1..7 repeating; the 188 smallest (all of size 1, and some of size 2) are left out.
    const pool: PvExtentRange[] = Array.from({ length: 700 }, (_, i) => ({ pvUuid: PV, firstExtent: i * 10, extentCount: 1 + (i % 7) }));
    const sent = largestRanges(pool, MAX_RANGES_PER_RECORD);
    expect(sent).toHaveLength(MAX_RANGES_PER_RECORD);
    expect(sent.map((r) => r.firstExtent)).toEqual([...sent.map((r) => r.firstExtent)].sort((a, b) => a - b));
    const smallestSent = Math.min(...sent.map((r) => r.extentCount));
    const left = pool.filter((r) => !sent.includes(r));
    expect(Math.max(...left.map((r) => r.extentCount))).toBeLessThanOrEqual(smallestSent);
    const record = { kind: 'grant' as const, generation: 9, appliedSeq: 100, freeRanges: sent };
    expect(decodeGrantRecord(encodeGrantRecord(record))).toEqual({ ok: true, record });
    // The whole pool could not be one record.
    expect(() => encodeGrantRecord({ ...record, freeRanges: pool })).toThrow(/undecodable/);
  });
});
