import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import {
  appendSegments,
  chooseExtents,
  coalesceSegments,
  ExtentArgumentError,
  ExtentSet,
  validateSegments,
  type LinearSegment,
  type PhysicalRange,
} from '../../src/extent/index.js';

const rangeArbitrary: fc.Arbitrary<PhysicalRange> = fc.record({
  pv: fc.constantFrom('pv0', 'pv1', 'pv2'),
  firstExtent: fc.nat(40),
  extentCount: fc.integer({ min: 1, max: 8 }),
});

interface GrowCase {
  pool: ExtentSet;
  lvSegments: LinearSegment[];
  extentCount: number;
}

/**
 * An LV and a pool that share no extent (as I1 demands). Often the extents right after the
 * LV's last one are put in the pool, so the tail preference is exercised, not just possible.
 */
const growCaseArbitrary: fc.Arbitrary<GrowCase> = fc
  .record({
    lvRanges: fc.array(rangeArbitrary, { maxLength: 5 }),
    poolRanges: fc.array(rangeArbitrary, { maxLength: 8 }),
    freeAfterTailExtentCount: fc.integer({ min: 0, max: 6 }),
    extentCount: fc.integer({ min: 0, max: 60 }),
  })
  .chain(({ lvRanges, poolRanges, freeAfterTailExtentCount, extentCount }) => {
    const lvExtents = ExtentSet.fromRanges(lvRanges);
    return fc.shuffledSubarray([...lvExtents.ranges()], { minLength: lvExtents.ranges().length }).map((lvPieces) => {
      const lvSegments = appendSegments([], lvPieces);
      const tail = lvSegments[lvSegments.length - 1];
      const afterTail: PhysicalRange[] =
        tail !== undefined && freeAfterTailExtentCount > 0
          ? [{ pv: tail.pv, firstExtent: tail.firstExtent + tail.extentCount, extentCount: freeAfterTailExtentCount }]
          : [];
      const pool = ExtentSet.fromRanges([...poolRanges, ...afterTail]).difference(lvExtents);
      return { pool, lvSegments, extentCount };
    });
  });

function totalExtentCount(ranges: readonly PhysicalRange[]): number {
  return ranges.reduce((sum, range) => sum + range.extentCount, 0);
}

describe('chooseExtents examples', () => {
  const pool = ExtentSet.fromRanges([
    { pv: 'pv0', firstExtent: 30, extentCount: 4 },
    { pv: 'pv0', firstExtent: 50, extentCount: 10 },
    { pv: 'pv1', firstExtent: 0, extentCount: 10 },
    { pv: 'pv2', firstExtent: 5, extentCount: 3 },
  ]);
  const lvSegments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 20, extentCount: 10, logicalStart: 0 }];

  test("a grow takes the extents right after the LV's last one, then the longest runs from their start", () => {
    expect(chooseExtents(pool, lvSegments, 15)).toEqual({
      ok: true,
      ranges: [
        { pv: 'pv0', firstExtent: 30, extentCount: 4 },
        // pv0:50+10 and pv1:0+10 are equally long: the lower pv wins.
        { pv: 'pv0', firstExtent: 50, extentCount: 10 },
        { pv: 'pv1', firstExtent: 0, extentCount: 1 },
      ],
    });
  });

  test("a small grow is served entirely from right after the LV's last extent", () => {
    expect(chooseExtents(pool, lvSegments, 2)).toEqual({ ok: true, ranges: [{ pv: 'pv0', firstExtent: 30, extentCount: 2 }] });
  });

  test('a new LV with no segments starts in the longest run', () => {
    expect(chooseExtents(pool, [], 3)).toEqual({ ok: true, ranges: [{ pv: 'pv0', firstExtent: 50, extentCount: 3 }] });
  });

  test('when the extent after the tail is taken, the longest run is used even if a shorter one fits', () => {
    const tailOnPv2: LinearSegment[] = [{ pv: 'pv2', firstExtent: 0, extentCount: 2, logicalStart: 0 }];
    expect(chooseExtents(pool, tailOnPv2, 3)).toEqual({ ok: true, ranges: [{ pv: 'pv0', firstExtent: 50, extentCount: 3 }] });
  });

  test('a pool too small for the grow takes nothing and reports what it has', () => {
    expect(chooseExtents(pool, lvSegments, 28)).toEqual({ ok: false, availableExtentCount: 27 });
    expect(chooseExtents(ExtentSet.empty(), [], 1)).toEqual({ ok: false, availableExtentCount: 0 });
  });

  test('a grow by zero extents succeeds with no ranges', () => {
    expect(chooseExtents(ExtentSet.empty(), lvSegments, 0)).toEqual({ ok: true, ranges: [] });
  });

  test('a pool that holds an extent the LV already maps is refused as double use', () => {
    const overlappingPool = ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 29, extentCount: 5 }]);
    try {
      chooseExtents(overlappingPool, lvSegments, 1);
      expect.unreachable('a pool overlapping the LV must be refused');
    } catch (error) {
      expect(error).toBeInstanceOf(ExtentArgumentError);
      expect((error as ExtentArgumentError).code).toBe('EXTENT_DOUBLE_USE');
      expect((error as Error).message).toMatch(/pool holds extents the LV already maps: pv0:29/);
    }
  });

  test('a negative or fractional extent count is refused', () => {
    expect(() => chooseExtents(pool, [], -1)).toThrow(/extentCount must be a non-negative safe integer/);
    expect(() => chooseExtents(pool, [], 1.5)).toThrow(ExtentArgumentError);
  });
});

describe('chooseExtents properties', () => {
  test.prop([growCaseArbitrary])('succeeds exactly when the pool holds enough extents', ({ pool, lvSegments, extentCount }) => {
    const result = chooseExtents(pool, lvSegments, extentCount);
    expect(result.ok).toBe(pool.extentCount >= extentCount);
    if (!result.ok) expect(result.availableExtentCount).toBe(pool.extentCount);
  });

  test.prop([growCaseArbitrary])(
    'returns exactly the requested number of extents, all from the pool, none twice',
    ({ pool, lvSegments, extentCount }) => {
      const result = chooseExtents(pool, lvSegments, extentCount);
      if (!result.ok) return;
      const chosen = ExtentSet.fromRanges(result.ranges);
      expect(totalExtentCount(result.ranges)).toBe(extentCount);
      expect(chosen.extentCount).toBe(extentCount);
      expect(pool.containsAll(chosen)).toBe(true);
      for (const range of result.ranges) expect(range.extentCount).toBeGreaterThanOrEqual(1);
    },
  );

  test.prop([growCaseArbitrary])("a grow prefers the extent right after the LV's last one", ({ pool, lvSegments, extentCount }) => {
    const tail = lvSegments[lvSegments.length - 1];
    if (tail === undefined || extentCount === 0) return;
    const afterTailExtent = tail.firstExtent + tail.extentCount;
    const freeRun = pool.runContaining(tail.pv, afterTailExtent);
    const result = chooseExtents(pool, lvSegments, extentCount);
    if (!result.ok || freeRun === undefined) return;
    expect(result.ranges[0]).toEqual({
      pv: tail.pv,
      firstExtent: afterTailExtent,
      extentCount: Math.min(extentCount, freeRun.extentCount),
    });
    // Appending and coalescing must then grow the last segment instead of adding one.
    const grown = coalesceSegments(appendSegments(lvSegments, result.ranges.slice(0, 1)));
    expect(grown.length).toBeLessThanOrEqual(coalesceSegments(lvSegments).length);
  });

  test.prop([growCaseArbitrary])(
    'after the tail, extents come from the start of the longest run (lowest pv, then lowest extent, on ties)',
    ({ pool, lvSegments, extentCount }) => {
      const result = chooseExtents(pool, lvSegments, extentCount);
      if (!result.ok) return;
      const tail = lvSegments[lvSegments.length - 1];
      const tookTail =
        tail !== undefined &&
        result.ranges[0]?.pv === tail.pv &&
        result.ranges[0].firstExtent === tail.firstExtent + tail.extentCount;
      const afterTail = tookTail ? result.ranges.slice(1) : result.ranges;
      const firstOther = afterTail[0];
      if (firstOther === undefined) return;
      const left = pool.difference(ExtentSet.fromRanges(tookTail ? result.ranges.slice(0, 1) : []));
      const longestExtentCount = Math.max(...left.ranges().map((run) => run.extentCount));
      const best = left.ranges().find((run) => run.extentCount === longestExtentCount);
      expect(firstOther.pv).toBe(best?.pv);
      expect(firstOther.firstExtent).toBe(best?.firstExtent);
    },
  );

  test.prop([growCaseArbitrary])('the grown LV is still a valid LV', ({ pool, lvSegments, extentCount }) => {
    const result = chooseExtents(pool, lvSegments, extentCount);
    if (!result.ok) return;
    expect(validateSegments(coalesceSegments(appendSegments(lvSegments, result.ranges)))).toEqual([]);
  });
});
