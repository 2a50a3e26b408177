import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  MAX_RANGES_PER_RECORD,
  decodeGrantRecord,
  decodeJournalRecord,
  encodeGrantRecord,
  encodeJournalRecord,
  type GrantRecord,
  type JournalRecord,
} from '../../src/records/records.js';

const range = fc.record({
  pvUuid: fc.stringMatching(/^[A-Za-z0-9-]{1,38}$/),
  firstExtent: fc.nat({ max: 2 ** 40 }),
  extentCount: fc.integer({ min: 1, max: 2 ** 20 }),
});
const ranges = fc.array(range, { minLength: 1, maxLength: 20 });
const journalRecord: fc.Arbitrary<JournalRecord> = fc.oneof(
  fc.record({
    kind: fc.constant('allocate' as const),
    lv: fc.stringMatching(/^[A-Za-z0-9+_.-]{1,64}$/),
    lvUuid: fc.stringMatching(/^[A-Za-z0-9-]{1,38}$/),
    ranges,
    extentCountAfter: fc.integer({ min: 1, max: 2 ** 30 }),
  }),
  fc.record({ kind: fc.constant('return' as const), ranges }),
  fc.record({ kind: fc.constant('activity' as const), activeLvCount: fc.nat({ max: 100_000 }) }),
  fc.record({ kind: fc.constant('demand' as const), extentCount: fc.nat({ max: 2 ** 30 }) }),
  fc.record({
    kind: fc.constant('deflate' as const),
    lv: fc.stringMatching(/^[A-Za-z0-9+_.-]{1,64}$/),
    lvUuid: fc.stringMatching(/^[A-Za-z0-9-]{1,38}$/),
    extentCount: fc.integer({ min: 1, max: 2 ** 30 }),
  }),
);
const grantRecord: fc.Arbitrary<GrantRecord> = fc.oneof(
  fc.record({
    kind: fc.constant('grant' as const),
    generation: fc.integer({ min: 1, max: 2 ** 40 }),
    appliedSeq: fc.nat({ max: 2 ** 40 }),
    freeRanges: fc.array(range, { maxLength: 20 }),
  }),
  fc.record({ kind: fc.constant('returnRequest' as const), generation: fc.integer({ min: 1, max: 2 ** 40 }), extentCount: fc.integer({ min: 1, max: 2 ** 30 }) }),
  fc.record({
    kind: fc.constant('shortage' as const),
    reason: fc.constantFrom('vg-full' as const, 'shared' as const),
    demandExtentCount: fc.integer({ min: 1, max: 2 ** 30 }),
    grantedExtentCount: fc.nat({ max: 2 ** 30 }),
    vgFreeExtentCount: fc.nat({ max: 2 ** 30 }),
    reserveExtentCount: fc.nat({ max: 2 ** 30 }),
  }),
);

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

describe('ring record payloads', () => {
  test.prop([journalRecord])('a journal record reads back exactly as written', (record) => {
    expect(decodeJournalRecord(encodeJournalRecord(record))).toEqual({ ok: true, record });
  });

  test.prop([grantRecord])('a grant record reads back exactly as written', (record) => {
    expect(decodeGrantRecord(encodeGrantRecord(record))).toEqual({ ok: true, record });
  });

  test.prop([fc.uint8Array({ maxLength: 200 })])('arbitrary bytes never decode into a record by accident', (junk) => {
    // Junk may happen to be valid JSON, but never a versioned thinlv record.
    expect(decodeJournalRecord(junk).ok).toBe(false);
    expect(decodeGrantRecord(junk).ok).toBe(false);
  });

  test.each([
    ['a newer format version', { v: 2, kind: 'return', ranges: [['u', 0, 1]] }, /version/],
    ['an unknown kind', { v: 1, kind: 'shrink', ranges: [['u', 0, 1]] }, /unknown/],
    ['a negative demand', { v: 1, kind: 'demand', extentCount: -1 }, /extentCount/],
    ['a deflate keeping no extent', { v: 1, kind: 'deflate', lv: 'a', lvUuid: 'b', extentCount: 0 }, /extentCount/],
    ['a zero-length range', { v: 1, kind: 'return', ranges: [['u', 0, 0]] }, /extent count/],
    ['a negative first extent', { v: 1, kind: 'return', ranges: [['u', -1, 1]] }, /first extent/],
    ['a fractional count', { v: 1, kind: 'allocate', lv: 'a', lvUuid: 'b', ranges: [['u', 0, 1.5]], extentCountAfter: 2 }, /extent count/],
    ['no ranges', { v: 1, kind: 'return', ranges: [] }, /empty/],
    ['a missing LV uuid', { v: 1, kind: 'allocate', lv: 'a', ranges: [['u', 0, 1]], extentCountAfter: 2 }, /lvUuid/],
    ['too many ranges', { v: 1, kind: 'return', ranges: Array.from({ length: MAX_RANGES_PER_RECORD + 1 }, (_, i) => ['u', i * 2, 1]) }, /more than/],
  ])('a journal record with %s is rejected with a reason', (_what, json, reason) => {
    const result = decodeJournalRecord(bytes(json));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  test('a shortage record with an unknown reason is rejected with a reason', () => {
    const result = decodeGrantRecord(bytes({ v: 1, kind: 'shortage', reason: 'tired', demandExtentCount: 1, grantedExtentCount: 0, vgFreeExtentCount: 0, reserveExtentCount: 0 }));
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/reason/) });
  });
});
