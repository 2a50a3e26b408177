import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import {
  appendSegments,
  coalesceSegments,
  ExtentArgumentError,
  ExtentSet,
  removeExtentsFromSegments,
  segmentsExtentCount,
  segmentsToExtentSet,
  validateSegments,
  type LinearSegment,
  type PhysicalRange,
} from '../../src/extent/index.js';
import { assertValidSegments, ValidSegments } from '../../src/extent/segments.js';

// Model of an LV: the physical extent ("pv:extent") behind each logical extent, in order.
function logicalMap(segments: readonly LinearSegment[]): string[] {
  const mapping: string[] = [];
  for (const segment of [...segments].sort((a, b) => a.logicalStart - b.logicalStart)) {
    for (let offset = 0; offset < segment.extentCount; offset += 1) {
      mapping[segment.logicalStart + offset] = `${segment.pv}:${segment.firstExtent + offset}`;
    }
  }
  return mapping;
}

/**
 * Segments with contiguous logical starts where each step either continues the previous
 * segment physically (so coalescing has work) or jumps somewhere else.
 */
const segmentWalkArbitrary: fc.Arbitrary<LinearSegment[]> = fc
  .array(
    fc.record({
      continuesPrevious: fc.boolean(),
      pv: fc.constantFrom('pv0', 'pv1'),
      firstExtent: fc.nat(60),
      extentCount: fc.integer({ min: 1, max: 5 }),
    }),
    { maxLength: 12 },
  )
  .map((steps) => {
    const segments: LinearSegment[] = [];
    let logicalStart = 0;
    for (const step of steps) {
      const previous = segments[segments.length - 1];
      const placed =
        step.continuesPrevious && previous !== undefined
          ? { pv: previous.pv, firstExtent: previous.firstExtent + previous.extentCount }
          : { pv: step.pv, firstExtent: step.firstExtent };
      segments.push({ ...placed, extentCount: step.extentCount, logicalStart });
      logicalStart += step.extentCount;
    }
    return segments;
  });

/** A valid LV: disjoint physical ranges, split into pieces and shuffled, appended in order. */
const validLvArbitrary: fc.Arbitrary<LinearSegment[]> = fc
  .array(
    fc.record({ pv: fc.constantFrom('pv0', 'pv1', 'pv2'), firstExtent: fc.nat(40), extentCount: fc.integer({ min: 1, max: 8 }) }),
    { maxLength: 8 },
  )
  .chain((ranges) => {
    const pieces: PhysicalRange[] = [];
    for (const range of ExtentSet.fromRanges(ranges).ranges()) {
      // Split long runs in two so the LV has physically adjacent pieces to coalesce.
      if (range.extentCount >= 2) {
        const headCount = Math.ceil(range.extentCount / 2);
        pieces.push({ pv: range.pv, firstExtent: range.firstExtent, extentCount: headCount });
        pieces.push({ pv: range.pv, firstExtent: range.firstExtent + headCount, extentCount: range.extentCount - headCount });
      } else {
        pieces.push(range);
      }
    }
    return fc.shuffledSubarray(pieces, { minLength: pieces.length });
  })
  .map((pieces) => appendSegments([], pieces));

describe('validateSegments', () => {
  test('a contiguous list from logical extent 0 has no problems', () => {
    expect(
      validateSegments([
        { pv: 'pv0', firstExtent: 10, extentCount: 4, logicalStart: 0 },
        { pv: 'pv1', firstExtent: 0, extentCount: 2, logicalStart: 4 },
      ]),
    ).toEqual([]);
    expect(validateSegments([])).toEqual([]);
  });

  test('reports a gap, a logical overlap, a physical overlap and a malformed segment', () => {
    const problems = validateSegments([
      { pv: 'pv0', firstExtent: 10, extentCount: 4, logicalStart: 1 },
      { pv: 'pv0', firstExtent: 12, extentCount: 2, logicalStart: 4 },
      { pv: 'pv1', firstExtent: 0, extentCount: 2, logicalStart: 6 },
      { pv: 'pv1', firstExtent: -3, extentCount: 2, logicalStart: 7 },
    ]);
    expect(problems.map((problem) => [problem.kind, problem.segmentIndex])).toEqual([
      ['logical-gap', 0],
      ['logical-overlap', 1],
      ['physical-overlap', 1],
      ['invalid-segment', 3],
    ]);
    expect(problems[0]?.message).toMatch(/starts at logical extent 1; extents from 0 are not mapped/);
    expect(problems[2]?.message).toMatch(/segments\[1\] and segments\[0\] both map physical extents pv0:12\+2/);
  });
});

describe('ValidSegments.of', () => {
  /** Valid walks, and walks broken on purpose: a logical start moved, a segment malformed. */
  const anyListArbitrary = fc.tuple(segmentWalkArbitrary, fc.nat(12), fc.constantFrom('none', 'shift', 'malform')).map(([segments, at, damage]) => {
    const index = at % Math.max(segments.length, 1);
    const target = segments[index];
    if (target === undefined || damage === 'none') return segments;
    const broken = damage === 'shift' ? { ...target, logicalStart: target.logicalStart + 1 } : { ...target, extentCount: 0 };
    return segments.map((segment, i) => (i === index ? broken : segment));
  });

  test.prop([fc.oneof(anyListArbitrary, validLvArbitrary)])('accepts exactly the lists validateSegments finds no problem in, and refuses the others with its message', (segments) => {
    const problems = validateSegments(segments);
    if (problems.length === 0) {
      const valid = ValidSegments.of(segments, 'lv');
      expect(valid.segments).toEqual(segments);
      expect(valid.extentCount).toBe(segmentsExtentCount(segments));
      expect(valid.extents.equals(segmentsToExtentSet(segments))).toBe(true);
      return;
    }
    let expected: unknown;
    try {
      assertValidSegments(segments, 'lv');
    } catch (error) {
      expected = error;
    }
    expect(expected).toBeInstanceOf(ExtentArgumentError);
    expect(() => ValidSegments.of(segments, 'lv')).toThrow((expected as Error).message);
  });
});

describe('appendSegments', () => {
  test('new ranges go at the logical end in the order given', () => {
    const lv: LinearSegment[] = [{ pv: 'pv0', firstExtent: 10, extentCount: 4, logicalStart: 0 }];
    expect(
      appendSegments(lv, [
        { pv: 'pv1', firstExtent: 7, extentCount: 3 },
        { pv: 'pv0', firstExtent: 14, extentCount: 1 },
      ]),
    ).toEqual([
      { pv: 'pv0', firstExtent: 10, extentCount: 4, logicalStart: 0 },
      { pv: 'pv1', firstExtent: 7, extentCount: 3, logicalStart: 4 },
      { pv: 'pv0', firstExtent: 14, extentCount: 1, logicalStart: 7 },
    ]);
    expect(lv).toHaveLength(1);
  });

  test('appending an extent the LV already maps is refused as double use', () => {
    const lv: LinearSegment[] = [{ pv: 'pv0', firstExtent: 10, extentCount: 4, logicalStart: 0 }];
    expect(() => appendSegments(lv, [{ pv: 'pv0', firstExtent: 13, extentCount: 2 }])).toThrow(/map physical extents twice: pv0:13\+1/);
  });

  test('appending to a list with a gap is refused', () => {
    expect(() => appendSegments([{ pv: 'pv0', firstExtent: 0, extentCount: 1, logicalStart: 2 }], [])).toThrow(ExtentArgumentError);
  });
});

describe('coalesceSegments', () => {
  test('neighbours contiguous logically and physically on one PV become one segment', () => {
    expect(
      coalesceSegments([
        { pv: 'pv0', firstExtent: 10, extentCount: 4, logicalStart: 0 },
        { pv: 'pv0', firstExtent: 14, extentCount: 2, logicalStart: 4 },
        { pv: 'pv1', firstExtent: 16, extentCount: 1, logicalStart: 6 },
        { pv: 'pv1', firstExtent: 18, extentCount: 1, logicalStart: 7 },
      ]),
    ).toEqual([
      { pv: 'pv0', firstExtent: 10, extentCount: 6, logicalStart: 0 },
      { pv: 'pv1', firstExtent: 16, extentCount: 1, logicalStart: 6 },
      { pv: 'pv1', firstExtent: 18, extentCount: 1, logicalStart: 7 },
    ]);
  });

  test('the same physical extents on another PV do not coalesce', () => {
    const segments: LinearSegment[] = [
      { pv: 'pv0', firstExtent: 0, extentCount: 2, logicalStart: 0 },
      { pv: 'pv1', firstExtent: 2, extentCount: 2, logicalStart: 2 },
    ];
    expect(coalesceSegments(segments)).toEqual(segments);
  });

  test.prop([segmentWalkArbitrary])('coalescing keeps every logical extent on the same physical extent', (segments) => {
    const coalesced = coalesceSegments(segments);
    expect(logicalMap(coalesced)).toEqual(logicalMap(segments));
    expect(segmentsExtentCount(coalesced)).toBe(segmentsExtentCount(segments));
    expect(coalesced.length).toBeLessThanOrEqual(segments.length);
  });

  test.prop([segmentWalkArbitrary])('no two neighbours are left that could still be merged', (segments) => {
    const coalesced = coalesceSegments(segments);
    for (let index = 1; index < coalesced.length; index += 1) {
      const previous = coalesced[index - 1] as LinearSegment;
      const current = coalesced[index] as LinearSegment;
      const mergeable =
        previous.pv === current.pv &&
        previous.firstExtent + previous.extentCount === current.firstExtent &&
        previous.logicalStart + previous.extentCount === current.logicalStart;
      expect(mergeable).toBe(false);
    }
  });
});

describe('removeExtentsFromSegments', () => {
  test('removing a middle segment renumbers the rest and merges what now touches', () => {
    const segments: LinearSegment[] = [
      { pv: 'pv0', firstExtent: 0, extentCount: 4, logicalStart: 0 },
      { pv: 'pv1', firstExtent: 0, extentCount: 2, logicalStart: 4 },
      { pv: 'pv0', firstExtent: 4, extentCount: 2, logicalStart: 6 },
    ];
    expect(removeExtentsFromSegments(segments, [{ pv: 'pv1', firstExtent: 0, extentCount: 2 }])).toEqual([
      { pv: 'pv0', firstExtent: 0, extentCount: 6, logicalStart: 0 },
    ]);
  });

  test('removing from inside a segment splits it and keeps the order', () => {
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 100, extentCount: 10, logicalStart: 0 }];
    expect(removeExtentsFromSegments(segments, [{ pv: 'pv0', firstExtent: 103, extentCount: 2 }])).toEqual([
      { pv: 'pv0', firstExtent: 100, extentCount: 3, logicalStart: 0 },
      { pv: 'pv0', firstExtent: 105, extentCount: 5, logicalStart: 3 },
    ]);
  });

  test('removing an extent the LV does not map is refused and names it', () => {
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 100, extentCount: 10, logicalStart: 0 }];
    try {
      removeExtentsFromSegments(segments, [{ pv: 'pv0', firstExtent: 108, extentCount: 4 }]);
      expect.unreachable('removal of absent extents must throw');
    } catch (error) {
      expect(error).toBeInstanceOf(ExtentArgumentError);
      expect((error as ExtentArgumentError).code).toBe('EXTENT_NOT_PRESENT');
      expect((error as Error).message).toMatch(/does not map: pv0:110-111/);
    }
  });

  test('a range listed twice for removal is refused as double use', () => {
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 100, extentCount: 10, logicalStart: 0 }];
    expect(() =>
      removeExtentsFromSegments(segments, [
        { pv: 'pv0', firstExtent: 101, extentCount: 2 },
        { pv: 'pv0', firstExtent: 102, extentCount: 1 },
      ]),
    ).toThrow(/ranges\[0\] and ranges\[1\] share pv0:102\+1/);
  });

  test.prop([
    validLvArbitrary.chain((segments) =>
      fc.tuple(fc.constant(segments), fc.subarray(logicalMap(segments))),
    ),
  ])('what is left maps, in logical order, exactly the extents not removed', ([segments, removedKeys]) => {
    const removedRanges: PhysicalRange[] = removedKeys.map((key) => {
      const [pv, extent] = key.split(':') as [string, string];
      return { pv, firstExtent: Number(extent), extentCount: 1 };
    });
    const removed = new Set(removedKeys);
    const remaining = removeExtentsFromSegments(segments, removedRanges);
    expect(logicalMap(remaining)).toEqual(logicalMap(segments).filter((key) => !removed.has(key)));
    expect(validateSegments(remaining)).toEqual([]);
    expect(segmentsToExtentSet(remaining).overlaps(ExtentSet.fromRanges(removedRanges))).toBe(false);
  });

  test.prop([validLvArbitrary])('a valid LV built by appending validates cleanly and round-trips through its extent set', (segments) => {
    expect(validateSegments(segments)).toEqual([]);
    expect(segmentsToExtentSet(segments).extentCount).toBe(segmentsExtentCount(segments));
    expect(validateSegments(coalesceSegments(segments))).toEqual([]);
  });
});
