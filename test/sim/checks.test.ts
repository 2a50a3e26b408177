// The simulator's per-step checks find what they exist for: their one-pass forms (a union
// as large as its sum, an acknowledged extend's ranges walked a run at a time) refuse
// exactly what the record-by-record and extent-by-extent forms refuse, with their messages.

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import type { LinearSegment, PhysicalRange } from '../../src/extent/types.js';
import type { LvMetadata } from '../../src/metadata/vgModel.js';
import type { JournalRecord } from '../../src/records/records.js';
import { testVg, TEST_PV_DEVICE } from '../fixtures/pvText.js';
import { type Ack, checkAckExtent, checkAckRanges, checkExtents, type UnreplayedOnDisk } from './checks.js';

const PV = TEST_PV_DEVICE;

function lv(name: string, firstExtent: number, extentCount: number): LvMetadata {
  return {
    name,
    uuid: `uuid-of-${name}-0123456789abcdef`,
    status: ['READ', 'WRITE', 'VISIBLE'],
    activationSkip: false,
    flags: [],
    tags: [],
    segments: [{ logicalStart: 0, extentCount, type: 'striped', stripes: [{ pv: PV, firstExtent }], extra: [] }],
    extra: [],
  };
}

/** h1's unreplayed allocations, seq 1 on, each of one range. */
function unreplayed(...ranges: [number, number][]): Map<string, UnreplayedOnDisk> {
  const records = ranges.map(([firstExtent, extentCount], i) => {
    const record: JournalRecord = { kind: 'allocate', lv: 'disk', lvUuid: 'uuid-of-disk', ranges: [{ pvUuid: 'pv-uuid', firstExtent, extentCount }], extentCountAfter: 1 };
    return { seq: i + 1, record, ranges: [{ pv: PV, firstExtent, extentCount }] };
  });
  return new Map([['h1', { host: 'h1', journalRingId: 'ring', appliedSeq: 0, records }]]);
}

describe('checkExtents', () => {
  // h1's free LV holds extents 100..119; the thin LV "disk" holds 0..9.
  const vg = testVg({ name: 'vg_checks_test', lvs: [lv('disk', 0, 10), lv('thinlv_h1_free', 100, 20)] });

  test('passes unreplayed records that are disjoint and inside their host free LV', () => {
    expect(() => checkExtents(vg, unreplayed([100, 3], [103, 2], [110, 10]))).not.toThrow();
  });

  test('names the record that takes extents another unreplayed record took (I1)', () => {
    expect(() => checkExtents(vg, unreplayed([100, 3], [105, 1], [102, 2]))).toThrow(/^I1: h1 seq 3 \(allocate\) takes extents another unreplayed record took/);
  });

  test('names the record that lies outside its host free LV (I4)', () => {
    expect(() => checkExtents(vg, unreplayed([100, 3], [118, 3]))).toThrow(/^I4: h1 seq 2 \(allocate\) holds extents outside thinlv_h1_free/);
  });

  test('names an LV that shares extents with another in metadata (I1)', () => {
    const shared = testVg({ name: 'vg_checks_shared', lvs: [lv('disk', 0, 10), lv('other', 20, 5), lv('thinlv_h1_free', 9, 3)] });
    expect(() => checkExtents(shared, unreplayed())).toThrow(/^I1: LV thinlv_h1_free shares extents with another LV in metadata/);
  });
});

/** Contiguous logical segments on two PVs, each either continuing the last physically or jumping. */
const layoutArbitrary = fc
  .array(fc.record({ continues: fc.boolean(), pv: fc.constantFrom('pv0', 'pv1'), firstExtent: fc.nat(50), extentCount: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 10 })
  .map((steps) => {
    const segments: LinearSegment[] = [];
    let logicalStart = 0;
    for (const step of steps) {
      const last = segments[segments.length - 1];
      const at = step.continues && last !== undefined ? { pv: last.pv, firstExtent: last.firstExtent + last.extentCount } : { pv: step.pv, firstExtent: step.firstExtent };
      segments.push({ ...at, extentCount: step.extentCount, logicalStart });
      logicalStart += step.extentCount;
    }
    return segments;
  });

/** The physical ranges behind logical extents [from, to) of `layout`, one per extent (merged or not later). */
function rangesBehind(layout: readonly LinearSegment[], from: number, to: number): PhysicalRange[] {
  const out: PhysicalRange[] = [];
  for (const s of layout) {
    for (let i = 0; i < s.extentCount; i++) {
      const logical = s.logicalStart + i;
      if (logical >= from && logical < to) out.push({ pv: s.pv, firstExtent: s.firstExtent + i, extentCount: 1 });
    }
  }
  return out;
}

function merged(ranges: readonly PhysicalRange[]): PhysicalRange[] {
  const out: PhysicalRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && last.pv === r.pv && last.firstExtent + last.extentCount === r.firstExtent) out[out.length - 1] = { ...last, extentCount: last.extentCount + r.extentCount };
    else out.push(r);
  }
  return out;
}

function thrown(run: () => void): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('checkAckRanges', () => {
  test.prop([layoutArbitrary, fc.nat(), fc.nat(), fc.option(fc.record({ at: fc.nat(), shift: fc.integer({ min: 0, max: 3 }), otherPv: fc.boolean() })), fc.boolean()])(
    'refuses an acknowledged extend exactly when one of its extents is out of place, naming the first as the extent-by-extent check does',
    (layout, a, b, damage, beyondEnd) => {
      const size = layout.reduce((sum, s) => sum + s.extentCount, 0);
      const from = a % size;
      const to = from + 1 + (b % (size - from)) + (beyondEnd ? 1 : 0);
      let ranges = rangesBehind(layout, from, to);
      if (to > size) ranges.push({ pv: 'pv0', firstExtent: 99, extentCount: 1 });
      if (damage !== null) {
        const i = damage.at % ranges.length;
        const pv = (r: PhysicalRange) => (damage.otherPv ? (r.pv === 'pv0' ? 'pv1' : 'pv0') : r.pv);
        ranges = ranges.map((r, k) => (k === i ? { pv: pv(r), firstExtent: r.firstExtent + damage.shift, extentCount: 1 } : r));
      }
      const ack: Ack = { host: 'h1', journalRingId: 'ring', seq: 7, lv: 'disk', lvUuid: 'uuid', ranges: merged(ranges), extentCountAfter: to };
      const perExtent = thrown(() => ranges.forEach((r, k) => checkAckExtent(ack, layout, from + k, `${r.pv}:${r.firstExtent}`)));
      expect(thrown(() => checkAckRanges(ack, layout))).toBe(perExtent);
    },
  );
});
