import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { ExtentSet } from '../../src/extent/extentSet.js';
import type { PhysicalRange } from '../../src/extent/types.js';
import {
  checkLayout,
  checkVgReport,
  computeFreeExtents,
  MAX_FINDINGS_PER_CODE,
  METADATA_AREA_ERROR_RATIO,
  METADATA_AREA_WARN_RATIO,
  metadataAreaUsedRatio,
  type Finding,
} from '../../src/metadata/checkLayout.js';
import type { LvLayout, Segment, VgLayout, VgReport } from '../../src/metadata/vgModel.js';

const linear = (logicalStart: number, pv: string, firstExtent: number, extentCount: number): Segment => ({
  logicalStart,
  extentCount,
  type: 'striped',
  stripes: [{ pv, firstExtent }],
});

const lv = (name: string, segments: Segment[], tags: string[] = []): LvLayout => ({ name, uuid: `uuid-${name}`, tags, activationSkip: false, segments });

/** expvg1 as the fixtures have it: one PV of 507 extents, lv1 on 0-9 and 15-17, lv2 on 10-14. */
function cleanVg(): VgLayout {
  return {
    name: 'expvg1',
    uuid: 'uuid-vg',
    seqno: 4,
    extentSizeSectors: 8192,
    tags: ['thinlv_version_1'],
    pvs: [{ device: '/dev/loop0', uuid: 'uuid-pv0', peStartSectors: 34816, peCount: 507 }],
    lvs: [lv('lv1', [linear(0, '/dev/loop0', 0, 10), linear(10, '/dev/loop0', 15, 3)], ['foo']), lv('lv2', [linear(0, '/dev/loop0', 10, 5)])],
  };
}

/** A report that agrees with the layout: free space is exactly the PVs less the LVs. */
function reportOf(vg: VgLayout, overrides: Partial<VgReport> = {}): VgReport {
  const free = computeFreeExtents(vg);
  return {
    ...vg,
    pvs: vg.pvs.map((pv) => ({ ...pv, deviceSizeBytes: 2147483648 })),
    extentCount: vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0),
    freeExtentCount: free.extentCount,
    freeRanges: free.ranges(),
    metadataAreaSizeBytes: 17821696,
    metadataAreaFreeBytes: 8908288,
    ...overrides,
  };
}

const codes = (findings: readonly Finding[]): string[] => findings.map((f) => f.code);
const only = (findings: readonly Finding[], code: string): Finding[] => findings.filter((f) => f.code === code);

describe('checkLayout', () => {
  test('a clean VG has no findings', () => {
    expect(checkLayout(cleanVg())).toEqual([]);
  });

  test('extents in two LVs are EXTENT_DOUBLE_USE naming both LVs and the shared extents', () => {
    const vg = cleanVg();
    const findings = checkLayout({ ...vg, lvs: [...vg.lvs, lv('lv3', [linear(0, '/dev/loop0', 12, 6)])] });
    const doubleUse = only(findings, 'EXTENT_DOUBLE_USE');
    expect(doubleUse).toHaveLength(2);
    expect(doubleUse.map((f) => f.severity)).toEqual(['error', 'error']);
    expect(doubleUse.map((f) => f.data['lvs'])).toEqual(expect.arrayContaining([['lv2', 'lv3'], ['lv1', 'lv3']]));
    expect(doubleUse.map((f) => f.message)).toEqual(
      expect.arrayContaining(['extents /dev/loop0:12-14 belong to both lv2 and lv3', 'extents /dev/loop0:15-17 belong to both lv1 and lv3']),
    );
  });

  test('an LV mapping one extent twice is EXTENT_DOUBLE_USE', () => {
    const findings = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop0', 0, 2), linear(2, '/dev/loop0', 1, 1)])] });
    expect(only(findings, 'EXTENT_DOUBLE_USE').map((f) => f.message)).toEqual(['extents /dev/loop0:1 belong to both lv1 and lv1']);
  });

  test('extents beyond the end of their PV are OUTSIDE_PV', () => {
    const findings = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop0', 500, 10)])] });
    expect(codes(findings)).toEqual(['OUTSIDE_PV']);
    expect(findings[0]?.message).toBe('LV lv1: extents /dev/loop0:500-509 lie beyond the 507 extents of /dev/loop0');
    expect(findings[0]?.data).toEqual({ lv: 'lv1', range: { pv: '/dev/loop0', firstExtent: 500, extentCount: 10 }, peCount: 507 });
  });

  test('the last extent of a PV is inside it', () => {
    expect(checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop0', 506, 1)])] })).toEqual([]);
  });

  test('a segment on a device that is not a PV of the VG is UNKNOWN_PV', () => {
    const findings = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop7', 0, 1)])] });
    expect(codes(findings)).toEqual(['UNKNOWN_PV']);
    expect(findings[0]?.data).toEqual({ lv: 'lv1', pv: '/dev/loop7' });
  });

  test('a logical gap or overlap between segments is SEGMENT_GAP', () => {
    const gap = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop0', 0, 10), linear(12, '/dev/loop0', 20, 3)])] });
    expect(codes(gap)).toEqual(['SEGMENT_GAP']);
    expect(gap[0]?.data).toEqual({ lv: 'lv1', logicalStart: 12, expectedStart: 10 });
    const notAtZero = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(1, '/dev/loop0', 0, 10)])] });
    expect(codes(notAtZero)).toEqual(['SEGMENT_GAP']);
    const overlap = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop0', 0, 10), linear(8, '/dev/loop0', 20, 3)])] });
    expect(codes(overlap)).toEqual(['SEGMENT_GAP']);
  });

  // Regression test for a bug once in src/metadata/checkLayout.ts.
  test('a segment of zero extents is reported as SEGMENT_GAP, not thrown', () => {
    const findings = checkLayout({ ...cleanVg(), lvs: [lv('lv1', [linear(0, '/dev/loop0', 0, 0), linear(0, '/dev/loop0', 1, 2)])] });
    expect(codes(findings)).toContain('SEGMENT_GAP');
  });

  test('an LV with no segments is EMPTY_LV', () => {
    expect(codes(checkLayout({ ...cleanVg(), lvs: [lv('lv1', [])] }))).toEqual(['EMPTY_LV']);
  });

  test('two LVs with one name are DUPLICATE_LV', () => {
    const vg = cleanVg();
    const findings = checkLayout({ ...vg, lvs: [...vg.lvs, lv('lv2', [linear(0, '/dev/loop0', 100, 1)])] });
    expect(codes(findings)).toEqual(['DUPLICATE_LV']);
  });

  test('invalid VG and LV names and tags are INVALID_NAME and INVALID_TAG', () => {
    const findings = checkLayout({
      ...cleanVg(),
      name: 'bad vg',
      tags: ['ok', 'not ok'],
      lvs: [lv('snapshot0', [linear(0, '/dev/loop0', 0, 1)], ['-dash'])],
    });
    expect(codes(findings)).toEqual(['INVALID_NAME', 'INVALID_TAG', 'INVALID_NAME', 'INVALID_TAG']);
    expect(findings.every((f) => f.severity === 'error')).toBe(true);
  });

  test('a segment type thinlv does not manage is an UNMANAGED_SEGMENT warning, not an error', () => {
    const findings = checkLayout({ ...cleanVg(), lvs: [lv('thin1', [{ logicalStart: 0, extentCount: 1000, type: 'thin', stripes: [] }])] });
    expect(findings).toEqual([
      { severity: 'warning', code: 'UNMANAGED_SEGMENT', message: 'LV thin1 has a "thin" segment, which thinlv does not check', data: { lv: 'thin1', type: 'thin' } },
    ]);
  });

  test('a striped segment is checked on every stripe', () => {
    const striped: Segment = { logicalStart: 0, extentCount: 10, type: 'striped', stripes: [{ pv: '/dev/loop0', firstExtent: 0 }, { pv: '/dev/loop0', firstExtent: 503 }] };
    const findings = checkLayout({ ...cleanVg(), lvs: [lv('s', [striped])] });
    expect(codes(findings)).toEqual(['OUTSIDE_PV']);
    expect(findings[0]?.data['range']).toEqual({ pv: '/dev/loop0', firstExtent: 503, extentCount: 5 });
  });

  test(`findings of one kind stop at MAX_FINDINGS_PER_CODE`, () => {
    const lvs = Array.from({ length: MAX_FINDINGS_PER_CODE + 50 }, (_, i) => lv(`lv${i}`, [linear(0, '/dev/loop0', 0, 1)]));
    const findings = checkLayout({ ...cleanVg(), lvs });
    expect(only(findings, 'EXTENT_DOUBLE_USE')).toHaveLength(MAX_FINDINGS_PER_CODE);
  });

  // Random layouts: LVs cut from disjoint runs of two PVs are clean; an extra LV on an
  // extent someone holds is caught, naming both.
  const layoutArbitrary = fc
    .array(fc.record({ pv: fc.constantFrom('/dev/loop0', '/dev/loop1'), firstExtent: fc.nat(60), extentCount: fc.integer({ min: 1, max: 8 }) }), {
      minLength: 1,
      maxLength: 10,
    })
    .chain((ranges) => {
      const runs = ExtentSet.fromRanges(ranges).ranges();
      return fc.tuple(fc.constant(runs), fc.array(fc.nat(3), { minLength: runs.length, maxLength: runs.length }));
    })
    .map(([runs, owners]): VgLayout => {
      const byOwner = new Map<number, PhysicalRange[]>();
      runs.forEach((run, index) => byOwner.set(owners[index]!, [...(byOwner.get(owners[index]!) ?? []), run]));
      const lvs = [...byOwner.entries()].map(([owner, owned]) => {
        let logicalStart = 0;
        return lv(
          `lv${owner}`,
          owned.map((r) => {
            const segment = linear(logicalStart, r.pv, r.firstExtent, r.extentCount);
            logicalStart += r.extentCount;
            return segment;
          }),
        );
      });
      return {
        ...cleanVg(),
        pvs: [
          { device: '/dev/loop0', uuid: 'u0', peStartSectors: 2048, peCount: 70 },
          { device: '/dev/loop1', uuid: 'u1', peStartSectors: 2048, peCount: 70 },
        ],
        lvs,
      };
    });

  test.prop([layoutArbitrary], { numRuns: 100 })('LVs on disjoint extents inside their PVs have no findings', (vg) => {
    expect(checkLayout(vg)).toEqual([]);
    expect(checkVgReport(reportOf(vg)).ok).toBe(true);
  });

  test.prop([layoutArbitrary, fc.nat(), fc.nat()], { numRuns: 100 })('an LV given an extent another LV holds is EXTENT_DOUBLE_USE naming both', (vg, pickLv, pickExtent) => {
    const victim = vg.lvs[pickLv % vg.lvs.length]!;
    const segment = victim.segments[pickExtent % victim.segments.length]!;
    const stripe = segment.stripes[0]!;
    const stolen = linear(0, stripe.pv, stripe.firstExtent + (pickExtent % segment.extentCount), 1);
    const findings = checkLayout({ ...vg, lvs: [...vg.lvs, lv('thief', [stolen])] });
    expect(codes(findings)).toEqual(['EXTENT_DOUBLE_USE']);
    expect(findings[0]?.data['lvs']).toEqual([victim.name, 'thief']);
  });
});

describe('checkVgReport', () => {
  test('a clean VG whose report agrees is ok, with its counts', () => {
    const result = checkVgReport(reportOf(cleanVg()));
    expect(result).toMatchObject({ ok: true, findings: [], extentCount: 507, freeExtentCount: 489, allocatedExtentCount: 18 });
  });

  test('a layout error makes the report not ok', () => {
    const vg = cleanVg();
    const result = checkVgReport(reportOf({ ...vg, lvs: [...vg.lvs, lv('lv3', [linear(0, '/dev/loop0', 0, 1)])] }));
    expect(result.ok).toBe(false);
    expect(codes(result.findings)).toContain('EXTENT_DOUBLE_USE');
  });

  test('allocated plus free not adding up to the VG is EXTENT_ACCOUNTING', () => {
    const result = checkVgReport(reportOf(cleanVg(), { freeExtentCount: 488 }));
    expect(result.ok).toBe(false);
    expect(codes(result.findings)).toEqual(['EXTENT_ACCOUNTING']);
    expect(result.findings[0]?.data).toEqual({ allocatedExtentCount: 18, freeExtentCount: 488, extentCount: 507 });
  });

  test('free ranges that differ from the PVs less the LVs are FREE_SPACE_MISMATCH, listing the difference', () => {
    // Same count of free extents, but one is in the wrong place.
    const freeRanges = [
      { pv: '/dev/loop0', firstExtent: 17, extentCount: 1 },
      { pv: '/dev/loop0', firstExtent: 19, extentCount: 488 },
    ];
    const result = checkVgReport(reportOf(cleanVg(), { freeRanges }));
    expect(codes(result.findings)).toEqual(['FREE_SPACE_MISMATCH']);
    expect(result.findings[0]?.data).toEqual({
      onlyInLvm: [{ pv: '/dev/loop0', firstExtent: 17, extentCount: 1 }],
      onlyComputed: [{ pv: '/dev/loop0', firstExtent: 18, extentCount: 1 }],
    });
  });

  test('PV extents not adding up to the VG’s extent count are EXTENT_COUNT_MISMATCH', () => {
    const result = checkVgReport(reportOf(cleanVg(), { extentCount: 600, freeExtentCount: 582 }));
    expect(codes(result.findings)).toEqual(['EXTENT_COUNT_MISMATCH']);
  });

  test('a VG with a segment thinlv does not manage skips the extent accounting but still warns', () => {
    const vg = cleanVg();
    const withThin = { ...vg, lvs: [...vg.lvs, lv('thin1', [{ logicalStart: 0, extentCount: 1000, type: 'thin', stripes: [] }])] };
    const result = checkVgReport(reportOf(withThin, { freeExtentCount: 1, freeRanges: [] }));
    expect(result.ok).toBe(true);
    expect(codes(result.findings)).toEqual(['UNMANAGED_SEGMENT']);
  });

  describe('metadata area use', () => {
    test('an empty VG’s metadata area (17821696 bytes, 8908288 free) reads about 0% and is fine', () => {
      const ratio = metadataAreaUsedRatio({ metadataAreaSizeBytes: 17821696, metadataAreaFreeBytes: 8908288 });
      expect(ratio).toBeGreaterThanOrEqual(0);
      expect(ratio).toBeLessThan(0.001);
      expect(checkVgReport(reportOf(cleanVg())).findings).toEqual([]);
    });

    test('use is measured against half the area, since LVM keeps room for two copies', () => {
      expect(metadataAreaUsedRatio({ metadataAreaSizeBytes: 1_000_000, metadataAreaFreeBytes: 250_000 })).toBe(0.5);
      expect(metadataAreaUsedRatio({ metadataAreaSizeBytes: 1_000_000, metadataAreaFreeBytes: 500_000 })).toBe(0);
      expect(metadataAreaUsedRatio({ metadataAreaSizeBytes: 1_000_000, metadataAreaFreeBytes: 0 })).toBe(1);
    });

    test('the ratio stays within 0 and 1, and an area of size 0 counts as full', () => {
      expect(metadataAreaUsedRatio({ metadataAreaSizeBytes: 1_000, metadataAreaFreeBytes: 900 })).toBe(0);
      expect(metadataAreaUsedRatio({ metadataAreaSizeBytes: 0, metadataAreaFreeBytes: 0 })).toBe(1);
    });

    test.each<[number, string, string]>([
      [250_001, 'just under the warning ratio', 'no finding'],
      [250_000, 'at the warning ratio', 'METADATA_AREA_FILLING'],
      [100_001, 'just under the error ratio', 'METADATA_AREA_FILLING'],
      [100_000, 'at the error ratio', 'METADATA_AREA_FULL'],
      [0, 'full', 'METADATA_AREA_FULL'],
    ])('%i bytes free of 1000000 (%s) gives %s', (freeBytes, _what, code) => {
      const result = checkVgReport(reportOf(cleanVg(), { metadataAreaSizeBytes: 1_000_000, metadataAreaFreeBytes: freeBytes }));
      expect(codes(result.findings)).toEqual(code === 'no finding' ? [] : [code]);
      expect(result.ok).toBe(code !== 'METADATA_AREA_FULL');
      if (code === 'METADATA_AREA_FILLING') expect(result.findings[0]?.severity).toBe('warning');
    });

    test.prop([fc.integer({ min: 2, max: 1 << 30 }), fc.double({ min: 0, max: 1, noNaN: true })], { numRuns: 200 })(
      'the finding follows the thresholds for any area size and use',
      (sizeBytes, freeFraction) => {
        const freeBytes = Math.floor((sizeBytes / 2) * freeFraction);
        const result = checkVgReport(reportOf(cleanVg(), { metadataAreaSizeBytes: sizeBytes, metadataAreaFreeBytes: freeBytes }));
        const ratio = metadataAreaUsedRatio({ metadataAreaSizeBytes: sizeBytes, metadataAreaFreeBytes: freeBytes });
        const expected = ratio >= METADATA_AREA_ERROR_RATIO ? ['METADATA_AREA_FULL'] : ratio >= METADATA_AREA_WARN_RATIO ? ['METADATA_AREA_FILLING'] : [];
        expect(codes(result.findings)).toEqual(expected);
        expect(result.metadataAreaUsedRatio).toBe(ratio);
      },
    );
  });
});
