// Finds every pair of owned ranges that share physical extents: the invariant checker's
// "extent X on pv Y is in LV a and in LV b" (I1).
//
// Sort by (pv, firstExtent), then sweep keeping the ranges still open at the current start:
//
//   pv0  a: [0 ......... 10)
//        b:     [3 .. 6)          open when b starts: {a}      -> (a, b) share [3, 6)
//        c:            [8 ... 12) open when c starts: {a}      -> (a, c) share [8, 10)
//                                 (b closed at 6 <= 8, dropped)
//
// Every range still open when another starts overlaps it, so the sweep does O(1) work per
// reported pair: O(n log n + pairs) in all.

import { assertPhysicalRange, assertPvName, comparePvNames } from './argumentChecks.js';
import type { PhysicalRange } from './types.js';

/** A range tagged with who holds it: an LV name, "thinlv_<host>_free", a journal record. */
export interface OwnedRange {
  readonly owner: string;
  readonly range: PhysicalRange;
}

/** Two entries of the input that share extents. `a` comes before `b` in the input. */
export interface ExtentOverlap {
  readonly a: OwnedRange;
  readonly b: OwnedRange;
  /** Indexes of `a` and `b` in the input list, so a report can point at the exact record. */
  readonly aIndex: number;
  readonly bIndex: number;
  /** The extents both hold. */
  readonly overlap: PhysicalRange;
}

interface SweepEntry {
  readonly owned: OwnedRange;
  readonly index: number;
  readonly startExtent: number;
  readonly endExtent: number;
}

/**
 * Every pair (i < j) of entries on the same PV whose ranges share at least one extent,
 * sorted by pv, then overlap.firstExtent, then aIndex, then bIndex. Pairs with the same
 * owner are reported too: an LV whose own segments map one extent twice is just as broken.
 */
export function findOverlaps(owned: readonly OwnedRange[]): ExtentOverlap[] {
  const entries: SweepEntry[] = owned.map((entry, index) => {
    assertPvName(entry.owner, `owned[${index}].owner`);
    assertPhysicalRange(entry.range, `owned[${index}].range`);
    return {
      owned: entry,
      index,
      startExtent: entry.range.firstExtent,
      endExtent: entry.range.firstExtent + entry.range.extentCount,
    };
  });
  entries.sort(
    (x, y) => comparePvNames(x.owned.range.pv, y.owned.range.pv) || x.startExtent - y.startExtent || x.index - y.index,
  );

  const overlaps: ExtentOverlap[] = [];
  let open: SweepEntry[] = [];
  let openPv: string | undefined;
  for (const entry of entries) {
    if (entry.owned.range.pv !== openPv) {
      open = [];
      openPv = entry.owned.range.pv;
    }
    open = open.filter((candidate) => candidate.endExtent > entry.startExtent);
    for (const candidate of open) {
      const [first, second] = candidate.index < entry.index ? [candidate, entry] : [entry, candidate];
      const overlapEnd = Math.min(candidate.endExtent, entry.endExtent);
      overlaps.push({
        a: first.owned,
        b: second.owned,
        aIndex: first.index,
        bIndex: second.index,
        overlap: { pv: openPv, firstExtent: entry.startExtent, extentCount: overlapEnd - entry.startExtent },
      });
    }
    open.push(entry);
  }

  overlaps.sort(
    (x, y) =>
      comparePvNames(x.overlap.pv, y.overlap.pv) ||
      x.overlap.firstExtent - y.overlap.firstExtent ||
      x.aIndex - y.aIndex ||
      x.bIndex - y.bIndex,
  );
  return overlaps;
}
