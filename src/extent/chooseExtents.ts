// Chooses which free extents a grow takes, so that the LV stays in as few segments (and
// dm targets) as possible:
//
//   LV tail on pv0 ....[LV 20..29]
//   pool   pv0: [30..33]      [50..59]        pv1: [0..9]       pv2: [5..7]
//   grow by 15 extents:
//     1. the extents right after the LV's last one, while they last: pv0:30..33  (4)
//        (they extend the last segment instead of adding one)
//     2. then the longest runs left, each from its start:  pv0:50..59 (10), pv1:0 (1)
//        ties go to the lowest pv, then the lowest firstExtent, so every host and every
//        replay chooses alike
//
// The result, in order, is what appendSegments() takes: the first range continues the tail.

import { assertNonNegativeSafeInteger, comparePvNames } from './argumentChecks.js';
import { ExtentArgumentError, ExtentInvariantError } from './extentErrors.js';
import { ExtentSet } from './extentSet.js';
import { ValidSegments } from './segments.js';
import type { LinearSegment, PhysicalRange } from './types.js';

/**
 * The outcome of chooseExtents. Running short is an ordinary operating condition (the
 * pool is waiting for a refill), not a bug, so it is a value the caller must look at rather
 * than an exception.
 */
export type ChooseExtentsResult =
  | { readonly ok: true; readonly ranges: PhysicalRange[] }
  | { readonly ok: false; readonly availableExtentCount: number };

/**
 * Picks exactly `extentCount` extents from `pool` to grow the LV whose segments are
 * `lv` (a list, validated here, or a ValidSegments, validated when it was built). On success the ranges are disjoint, inside the pool and total exactly
 * `extentCount`; when the pool holds fewer it returns { ok: false, availableExtentCount }
 * and takes nothing. `extentCount` 0 succeeds with no ranges.
 *
 * Throws EXTENT_DOUBLE_USE if the pool holds an extent the LV already maps: pool and LV
 * sharing an extent breaks I1 somewhere upstream, and allocating on top of it would spread
 * the damage.
 */
export function chooseExtents(
  pool: ExtentSet,
  lv: readonly LinearSegment[] | ValidSegments,
  extentCount: number,
): ChooseExtentsResult {
  assertNonNegativeSafeInteger(extentCount, 'extentCount');
  const valid = lv instanceof ValidSegments ? lv : ValidSegments.of(lv, 'lvSegments');
  const lvSegments = valid.segments;
  if (pool.overlaps(valid.extents)) {
    const shared = pool.intersection(valid.extents);
    throw new ExtentArgumentError(
      'EXTENT_DOUBLE_USE',
      `the pool holds extents the LV already maps: ${shared.toString()}; the pool or the LV's segments are wrong`,
      { shared: shared.ranges() },
    );
  }
  if (pool.extentCount < extentCount) return { ok: false, availableExtentCount: pool.extentCount };

  const chosen: PhysicalRange[] = [];
  let remainingExtentCount = extentCount;

  const tail = lvSegments[lvSegments.length - 1];
  if (tail !== undefined && remainingExtentCount > 0) {
    const afterTailExtent = tail.firstExtent + tail.extentCount;
    // The run holding afterTailExtent starts exactly there: an earlier start would put the
    // LV's last extent in the pool, which the overlap check above rules out.
    const run = pool.runContaining(tail.pv, afterTailExtent);
    if (run !== undefined) {
      const takenExtentCount = Math.min(run.extentCount, remainingExtentCount);
      chosen.push({ pv: tail.pv, firstExtent: afterTailExtent, extentCount: takenExtentCount });
      remainingExtentCount -= takenExtentCount;
    }
  }

  if (remainingExtentCount > 0) {
    const runs = [...pool.difference(ExtentSet.fromRanges(chosen)).ranges()].sort(
      (a, b) => b.extentCount - a.extentCount || comparePvNames(a.pv, b.pv) || a.firstExtent - b.firstExtent,
    );
    for (const run of runs) {
      if (remainingExtentCount === 0) break;
      const takenExtentCount = Math.min(run.extentCount, remainingExtentCount);
      chosen.push({ pv: run.pv, firstExtent: run.firstExtent, extentCount: takenExtentCount });
      remainingExtentCount -= takenExtentCount;
    }
  }

  assertChoiceIsSound(pool, chosen, extentCount);
  return { ok: true, ranges: chosen };
}

/** Pair assertion on the result: a wrong choice here is a double allocation on the LUN. */
function assertChoiceIsSound(pool: ExtentSet, chosen: readonly PhysicalRange[], extentCount: number): void {
  const chosenExtents = ExtentSet.fromRanges(chosen);
  const listedExtentCount = chosen.reduce((sum, range) => sum + range.extentCount, 0);
  if (listedExtentCount !== extentCount || chosenExtents.extentCount !== extentCount || !pool.containsAll(chosenExtents)) {
    throw new ExtentInvariantError('chooseExtents chose extents that are not exactly the requested count from the pool', {
      extentCount,
      chosen,
      pool: pool.toString(),
    });
  }
}
