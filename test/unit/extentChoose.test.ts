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

describe("chooseExtents with newSegments: 'spread' (a host's pool)", () => {
  const spread = { newSegments: 'spread' } as const;
  const lvAt = (firstExtent: number, extentCount = 1): LinearSegment[] => [{ pv: 'pv0', firstExtent, extentCount, logicalStart: 0 }];

  test('a new segment starts in the middle of the longest run, with the rest split evenly around it', () => {
    const pool = ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 0, extentCount: 100 }]);
    expect(chooseExtents(pool, lvAt(500), 4, spread)).toEqual({ ok: true, ranges: [{ pv: 'pv0', firstExtent: 48, extentCount: 4 }] });
    // The file header's example: b lands in the middle of 0..47, so a keeps room after 51.
    const afterA = pool.difference(ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 48, extentCount: 4 }]));
    expect(chooseExtents(afterA, lvAt(501), 4, spread)).toEqual({ ok: true, ranges: [{ pv: 'pv0', firstExtent: 22, extentCount: 4 }] });
    const afterB = afterA.difference(ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 22, extentCount: 4 }]));
    expect(chooseExtents(afterB, [{ pv: 'pv0', firstExtent: 500, extentCount: 1, logicalStart: 0 }, { pv: 'pv0', firstExtent: 48, extentCount: 4, logicalStart: 1 }], 4, spread)).toEqual({
      ok: true,
      ranges: [{ pv: 'pv0', firstExtent: 52, extentCount: 4 }],
    });
  });

  test('an unknown placement is refused', () => {
    expect(() => chooseExtents(ExtentSet.empty(), [], 0, { newSegments: 'middle' as 'spread' })).toThrow(/newSegments must be 'start' or 'spread'/);
  });

  test("the tail still comes first, and runs taken whole start where they start", () => {
    const pool = ExtentSet.fromRanges([
      { pv: 'pv0', firstExtent: 10, extentCount: 3 },
      { pv: 'pv0', firstExtent: 30, extentCount: 5 },
      { pv: 'pv1', firstExtent: 0, extentCount: 4 },
    ]);
    expect(chooseExtents(pool, lvAt(9), 3 + 5 + 2, spread)).toEqual({
      ok: true,
      ranges: [
        { pv: 'pv0', firstExtent: 10, extentCount: 3 },
        { pv: 'pv0', firstExtent: 30, extentCount: 5 },
        { pv: 'pv1', firstExtent: 1, extentCount: 2 },
      ],
    });
  });

  test.prop([growCaseArbitrary])('returns exactly the requested number of extents, all from the pool, none twice', ({ pool, lvSegments, extentCount }) => {
    const result = chooseExtents(pool, lvSegments, extentCount, spread);
    expect(result.ok).toBe(pool.extentCount >= extentCount);
    if (!result.ok) return;
    const chosen = ExtentSet.fromRanges(result.ranges);
    expect(totalExtentCount(result.ranges)).toBe(extentCount);
    expect(chosen.extentCount).toBe(extentCount);
    expect(pool.containsAll(chosen)).toBe(true);
    expect(validateSegments(coalesceSegments(appendSegments(lvSegments, result.ranges)))).toEqual([]);
  });

  test.prop([growCaseArbitrary])('takes the same runs as the default placement, each at most half its leftover in', ({ pool, lvSegments, extentCount }) => {
    const atStart = chooseExtents(pool, lvSegments, extentCount);
    const spreadOut = chooseExtents(pool, lvSegments, extentCount, spread);
    if (!atStart.ok || !spreadOut.ok) return;
    expect(spreadOut.ranges.length).toBe(atStart.ranges.length);
    for (const [i, range] of spreadOut.ranges.entries()) {
      const run = atStart.ranges[i]!;
      const runInPool = pool.runContaining(run.pv, run.firstExtent)!;
      expect(range.pv).toBe(run.pv);
      expect(range.extentCount).toBe(run.extentCount);
      // The tail's continuation does not move; any other range sits in the middle of its run.
      const tail = lvSegments.at(-1);
      const continuesTail = i === 0 && tail !== undefined && tail.pv === run.pv && tail.firstExtent + tail.extentCount === run.firstExtent;
      const before = range.firstExtent - runInPool.firstExtent;
      const after = runInPool.firstExtent + runInPool.extentCount - (range.firstExtent + range.extentCount);
      if (continuesTail) expect(before).toBe(0);
      else expect(after - before === 0 || after - before === 1).toBe(true);
    }
  });
});

describe('interleaved growth from one pool', () => {
  /**
   * k LVs, each with one extent outside the pool, grow by `extentCount` in each of `rounds`
   * rounds, in a different order each round, from one run of `poolExtentCount`. Returns
   * each LV's segment count at the end.
   */
  function growInterleaved(placement: 'start' | 'spread', k: number, rounds: number, extentCount: number, poolExtentCount: number, order: (round: number) => number[]): number[] {
    let pool = ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 0, extentCount: poolExtentCount }]);
    const lvs: LinearSegment[][] = Array.from({ length: k }, (_, i) => [{ pv: 'pv1', firstExtent: 2 * i, extentCount: 1, logicalStart: 0 }]);
    for (let round = 0; round < rounds; round++) {
      for (const i of order(round)) {
        const chosen = chooseExtents(pool, lvs[i]!, extentCount, { newSegments: placement });
        if (!chosen.ok) throw new Error('pool too small for the test');
        pool = pool.difference(ExtentSet.fromRanges(chosen.ranges));
        lvs[i] = coalesceSegments(appendSegments(lvs[i]!, chosen.ranges));
      }
    }
    return lvs.map((segments) => segments.length);
  }

  const growthCase = fc.record({
    k: fc.integer({ min: 1, max: 24 }),
    rounds: fc.integer({ min: 1, max: 12 }),
    extentCount: fc.integer({ min: 1, max: 8 }),
    slack: fc.integer({ min: 0, max: 200 }),
    seed: fc.integer(),
  });
  const shuffled = (k: number, seed: number) => (round: number): number[] => {
    const order = Array.from({ length: k }, (_, i) => i);
    let state = (seed ^ (round * 0x9e3779b9)) >>> 0;
    for (let i = k - 1; i > 0; i--) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      const j = state % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  };

  test.prop([growthCase])('with spread placement, LVs growing at once from a pool with room for 4x their growth each keep one segment in it', ({ k, rounds, extentCount, slack, seed }) => {
    const poolExtentCount = 4 * k * rounds * extentCount + 4 * k + slack;
    const segments = growInterleaved('spread', k, rounds, extentCount, poolExtentCount, shuffled(k, seed));
    // One segment outside the pool (where the LV was created) and one in it.
    expect(Math.max(...segments), `segment counts ${segments.join(',')} (seed ${seed})`).toBeLessThanOrEqual(2);
  });

  test('the same growth with start placement interleaves: every grow after the first adds a segment', () => {
    const segments = growInterleaved('start', 2, 3, 4, 4 * 2 * 3 * 4 + 8, () => [0, 1]);
    expect(segments).toEqual([4, 4]);
    expect(growInterleaved('spread', 2, 3, 4, 4 * 2 * 3 * 4 + 8, () => [0, 1])).toEqual([2, 2]);
  });
});
