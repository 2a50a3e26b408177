import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { ExtentArgumentError, ExtentSet, findOverlaps, type OwnedRange, type PhysicalRange } from '../../src/extent/index.js';

// Model: a set of "pv:extent" strings over three small PVs, so every extent can be listed.
const PV_NAMES = ['pv0', 'pv1', 'pv2'] as const;
const MAX_EXTENT = 40;

const rangeArbitrary: fc.Arbitrary<PhysicalRange> = fc.record({
  pv: fc.constantFrom(...PV_NAMES),
  firstExtent: fc.nat(MAX_EXTENT),
  extentCount: fc.integer({ min: 1, max: 8 }),
});
const rangesArbitrary = fc.array(rangeArbitrary, { maxLength: 12 });

function modelOf(ranges: readonly PhysicalRange[]): Set<string> {
  const extents = new Set<string>();
  for (const range of ranges) {
    for (let extent = range.firstExtent; extent < range.firstExtent + range.extentCount; extent += 1) {
      extents.add(`${range.pv}:${extent}`);
    }
  }
  return extents;
}

function sortedKeys(extents: Set<string>): string[] {
  return [...extents].sort();
}

function expectMatchesModel(set: ExtentSet, model: Set<string>): void {
  expect(sortedKeys(modelOf(set.ranges()))).toEqual(sortedKeys(model));
  expect(set.extentCount).toBe(model.size);
  expect(set.isEmpty()).toBe(model.size === 0);
}

describe('ExtentSet examples', () => {
  test('overlapping and adjacent input ranges merge into one run per stretch', () => {
    const set = ExtentSet.fromRanges([
      { pv: 'pv1', firstExtent: 9, extentCount: 1 },
      { pv: 'pv0', firstExtent: 2, extentCount: 4 },
      { pv: 'pv0', firstExtent: 0, extentCount: 3 },
      { pv: 'pv0', firstExtent: 6, extentCount: 1 },
    ]);
    expect(set.ranges()).toEqual([
      { pv: 'pv0', firstExtent: 0, extentCount: 7 },
      { pv: 'pv1', firstExtent: 9, extentCount: 1 },
    ]);
    expect(set.extentCount).toBe(8);
    expect(set.toString()).toBe('pv0:0-6 pv1:9');
  });

  test('difference splits a run around the removed extents', () => {
    const set = ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 0, extentCount: 10 }]).difference(
      ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 3, extentCount: 2 }]),
    );
    expect(set.rangesOnPv('pv0')).toEqual([
      { pv: 'pv0', firstExtent: 0, extentCount: 3 },
      { pv: 'pv0', firstExtent: 5, extentCount: 5 },
    ]);
    expect(set.rangesOnPv('pv9')).toEqual([]);
  });

  test('the same extents on different PVs do not overlap', () => {
    const onPv0 = ExtentSet.fromRanges([{ pv: 'pv0', firstExtent: 0, extentCount: 5 }]);
    const onPv1 = ExtentSet.fromRanges([{ pv: 'pv1', firstExtent: 0, extentCount: 5 }]);
    expect(onPv0.overlaps(onPv1)).toBe(false);
    expect(onPv0.intersection(onPv1).isEmpty()).toBe(true);
  });

  test('runContaining returns the whole maximal run around an extent', () => {
    const set = ExtentSet.fromRanges([
      { pv: 'pv0', firstExtent: 4, extentCount: 3 },
      { pv: 'pv0', firstExtent: 10, extentCount: 2 },
    ]);
    expect(set.runContaining('pv0', 5)).toEqual({ pv: 'pv0', firstExtent: 4, extentCount: 3 });
    expect(set.runContaining('pv0', 7)).toBeUndefined();
    expect(set.runContaining('pv0', 11)).toEqual({ pv: 'pv0', firstExtent: 10, extentCount: 2 });
    expect(set.runContaining('pv1', 5)).toBeUndefined();
  });

  test('extent numbers beyond 2^32 are handled exactly', () => {
    const firstExtent = 2 ** 40;
    const set = ExtentSet.fromRanges([{ pv: 'pv0', firstExtent, extentCount: 3 }]);
    expect(set.has('pv0', firstExtent + 2)).toBe(true);
    expect(set.has('pv0', firstExtent + 3)).toBe(false);
  });

  test('ExtentSet.empty() holds nothing and equals any other empty set', () => {
    expect(ExtentSet.empty().isEmpty()).toBe(true);
    expect(ExtentSet.empty().equals(ExtentSet.fromRanges([]))).toBe(true);
    expect(ExtentSet.empty().ranges()).toEqual([]);
    expect(ExtentSet.empty().toString()).toBe('(no extents)');
  });

  test.each([
    [{ pv: '', firstExtent: 0, extentCount: 1 }, /pv must be a non-empty string/],
    [{ pv: 'pv0', firstExtent: -1, extentCount: 1 }, /firstExtent must be a non-negative safe integer, got -1/],
    [{ pv: 'pv0', firstExtent: 1.5, extentCount: 1 }, /firstExtent must be a non-negative safe integer/],
    [{ pv: 'pv0', firstExtent: 0, extentCount: 0 }, /extentCount must be a safe integer >= 1, got 0/],
    [{ pv: 'pv0', firstExtent: Number.NaN, extentCount: 1 }, /firstExtent .* got NaN/],
    [{ pv: 'pv0', firstExtent: Number.MAX_SAFE_INTEGER, extentCount: 1 }, /end \(firstExtent \+ extentCount\)/],
  ])('a malformed range %o is refused with a message naming the field', (range, message) => {
    expect(() => ExtentSet.fromRanges([range])).toThrow(ExtentArgumentError);
    expect(() => ExtentSet.fromRanges([range])).toThrow(message);
    try {
      ExtentSet.fromRanges([range]);
    } catch (error) {
      expect((error as ExtentArgumentError).code).toBe('EXTENT_INVALID_ARGUMENT');
    }
  });
});

describe('ExtentSet agrees with a set-of-extents model', () => {
  test.prop([rangesArbitrary])('fromRanges holds exactly the extents the ranges cover', (ranges) => {
    expectMatchesModel(ExtentSet.fromRanges(ranges), modelOf(ranges));
  });

  test.prop([rangesArbitrary])('ranges() are sorted by pv then firstExtent, disjoint and never touching', (ranges) => {
    const normalized = ExtentSet.fromRanges(ranges).ranges();
    for (let index = 1; index < normalized.length; index += 1) {
      const previous = normalized[index - 1] as PhysicalRange;
      const current = normalized[index] as PhysicalRange;
      expect(current.extentCount).toBeGreaterThanOrEqual(1);
      if (previous.pv === current.pv) {
        // Strictly greater: equal would mean the two runs touch and should have merged.
        expect(current.firstExtent).toBeGreaterThan(previous.firstExtent + previous.extentCount);
      } else {
        expect(previous.pv < current.pv).toBe(true);
      }
    }
  });

  test.prop([rangesArbitrary, rangesArbitrary])('union, difference and intersection match the model', (left, right) => {
    const leftSet = ExtentSet.fromRanges(left);
    const rightSet = ExtentSet.fromRanges(right);
    const leftModel = modelOf(left);
    const rightModel = modelOf(right);
    expectMatchesModel(leftSet.union(rightSet), new Set([...leftModel, ...rightModel]));
    expectMatchesModel(leftSet.difference(rightSet), new Set([...leftModel].filter((key) => !rightModel.has(key))));
    expectMatchesModel(leftSet.intersection(rightSet), new Set([...leftModel].filter((key) => rightModel.has(key))));
  });

  test.prop([rangesArbitrary, rangesArbitrary])('overlaps, containsAll and equals match the model', (left, right) => {
    const leftSet = ExtentSet.fromRanges(left);
    const rightSet = ExtentSet.fromRanges(right);
    const leftModel = modelOf(left);
    const rightModel = modelOf(right);
    expect(leftSet.overlaps(rightSet)).toBe([...leftModel].some((key) => rightModel.has(key)));
    expect(leftSet.containsAll(rightSet)).toBe([...rightModel].every((key) => leftModel.has(key)));
    expect(leftSet.equals(rightSet)).toBe(sortedKeys(leftModel).join() === sortedKeys(rightModel).join());
  });

  test.prop([rangesArbitrary, fc.constantFrom(...PV_NAMES), fc.nat(MAX_EXTENT + 10)])(
    'has() and runContaining() match the model',
    (ranges, pv, extent) => {
      const set = ExtentSet.fromRanges(ranges);
      const model = modelOf(ranges);
      expect(set.has(pv, extent)).toBe(model.has(`${pv}:${extent}`));
      const run = set.runContaining(pv, extent);
      if (run !== undefined) {
        expect(set.ranges()).toContainEqual(run);
        expect(extent).toBeGreaterThanOrEqual(run.firstExtent);
        expect(extent).toBeLessThan(run.firstExtent + run.extentCount);
      }
    },
  );

  test.prop([rangesArbitrary.chain((ranges) => fc.tuple(fc.constant(ranges), fc.shuffledSubarray(ranges, { minLength: ranges.length })))])(
    'a set does not depend on the order its ranges were given in',
    ([ranges, shuffled]) => {
      expect(ExtentSet.fromRanges(shuffled).equals(ExtentSet.fromRanges(ranges))).toBe(true);
    },
  );
});

describe('findOverlaps', () => {
  const ownedArbitrary: fc.Arbitrary<OwnedRange[]> = fc.array(
    fc.record({ owner: fc.constantFrom('lvA', 'lvB', 'thinlv_host1_free'), range: rangeArbitrary }),
    { maxLength: 10 },
  );

  test('reports which two owners hold an extent and exactly which extents they share', () => {
    const owned: OwnedRange[] = [
      { owner: 'lvA', range: { pv: 'pv0', firstExtent: 0, extentCount: 10 } },
      { owner: 'lvB', range: { pv: 'pv0', firstExtent: 8, extentCount: 4 } },
      { owner: 'lvC', range: { pv: 'pv0', firstExtent: 3, extentCount: 3 } },
      { owner: 'lvD', range: { pv: 'pv1', firstExtent: 3, extentCount: 3 } },
      { owner: 'lvE', range: { pv: 'pv0', firstExtent: 12, extentCount: 1 } },
    ];
    const overlaps = findOverlaps(owned);
    expect(overlaps.map(({ a, b, overlap, aIndex, bIndex }) => ({ a: a.owner, b: b.owner, aIndex, bIndex, overlap }))).toEqual([
      { a: 'lvA', b: 'lvC', aIndex: 0, bIndex: 2, overlap: { pv: 'pv0', firstExtent: 3, extentCount: 3 } },
      { a: 'lvA', b: 'lvB', aIndex: 0, bIndex: 1, overlap: { pv: 'pv0', firstExtent: 8, extentCount: 2 } },
    ]);
  });

  test('ranges that only touch are not an overlap', () => {
    expect(
      findOverlaps([
        { owner: 'lvA', range: { pv: 'pv0', firstExtent: 0, extentCount: 4 } },
        { owner: 'lvB', range: { pv: 'pv0', firstExtent: 4, extentCount: 4 } },
      ]),
    ).toEqual([]);
  });

  test('an empty owner is refused', () => {
    expect(() => findOverlaps([{ owner: '', range: { pv: 'pv0', firstExtent: 0, extentCount: 1 } }])).toThrow(
      /owned\[0\]\.owner must be a non-empty string/,
    );
  });

  test.prop([ownedArbitrary])('finds exactly the pairs the model says share extents', (owned) => {
    const expected: string[] = [];
    for (let i = 0; i < owned.length; i += 1) {
      for (let j = i + 1; j < owned.length; j += 1) {
        const first = owned[i] as OwnedRange;
        const second = owned[j] as OwnedRange;
        const sharedExtents = sortedKeys(modelOf([first.range])).filter((key) => modelOf([second.range]).has(key));
        if (sharedExtents.length > 0) expected.push(`${i}-${j}:${sortedKeys(new Set(sharedExtents)).join()}`);
      }
    }
    const actual = findOverlaps(owned).map((found) => {
      expect(found.a).toBe(owned[found.aIndex]);
      expect(found.b).toBe(owned[found.bIndex]);
      expect(found.aIndex).toBeLessThan(found.bIndex);
      return `${found.aIndex}-${found.bIndex}:${sortedKeys(modelOf([found.overlap])).join()}`;
    });
    expect(actual.sort()).toEqual(expected.sort());
  });

  test('stays fast on many disjoint ranges (sort and sweep, not all pairs)', () => {
    const owned: OwnedRange[] = [];
    for (let index = 0; index < 100_000; index += 1) {
      owned.push({ owner: `lv${index}`, range: { pv: `pv${index % 7}`, firstExtent: index * 2, extentCount: 2 } });
    }
    owned.push({ owner: 'intruder', range: { pv: 'pv0', firstExtent: 0, extentCount: 1 } });
    const startedAt = performance.now();
    const overlaps = findOverlaps(owned);
    expect(performance.now() - startedAt).toBeLessThan(2_000);
    expect(overlaps).toHaveLength(1);
    expect(overlaps[0]?.b.owner).toBe('intruder');
  });
});
