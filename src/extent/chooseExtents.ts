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
//
// Where a new segment starts in its run (`newSegments`):
//   'start'   at the run's first extent (above): VG free space, where the master places
//             new LVs and grants, each grant continuing its pool's last run
//   'spread'  in the middle of the run, the free extents split evenly before and after it:
//             a host's pool, which many LVs grow from at once. Taken from the start, the
//             next LV's new segment lands right after this one's, and every later grow of
//             either LV starts a segment of its own (LVs interleave extent by extent);
//             from the middle, each LV keeps about half a run of room after its tail, and
//             the run before it keeps room for the LV in front (a buddy split, as XFS and
//             ext4 spread new files). With k LVs growing in a pool of P extents, each has
//             about P/2k extents to grow into before it needs a new segment.
//     pool pv0: [0 ............................. 99]     LV a grows by 4, then LV b by 4:
//       'start'    a 0..3, b 4..7; a's next grow starts a segment at 8
//       'spread'   a 48..51, b 22..25 (middle of 0..47); a's next grow continues at 52

import { assertNonNegativeSafeInteger, comparePvNames } from './argumentChecks.js';
import { ExtentArgumentError, ExtentInvariantError } from './extentErrors.js';
import { ExtentSet } from './extentSet.js';
import { ValidSegments } from './segments.js';
import type { LinearSegment, PhysicalRange } from './types.js';

export type NewSegmentPlacement = 'start' | 'spread';

export interface ChooseExtentsOptions {
  /** Where a range that does not continue the LV's tail starts in its run (see the top of this file); default 'start'. */
  readonly newSegments?: NewSegmentPlacement;
}

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
  options: ChooseExtentsOptions = {},
): ChooseExtentsResult {
  assertNonNegativeSafeInteger(extentCount, 'extentCount');
  const placement = options.newSegments ?? 'start';
  if (placement !== 'start' && placement !== 'spread') {
    throw new ExtentArgumentError('EXTENT_INVALID_ARGUMENT', `newSegments must be 'start' or 'spread', got ${String(placement)}`, { newSegments: placement });
  }
  const spread = placement === 'spread';
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
      // Only a run taken in part has room to split; a whole run starts where it starts.
      const offset = spread ? Math.floor((run.extentCount - takenExtentCount) / 2) : 0;
      chosen.push({ pv: run.pv, firstExtent: run.firstExtent + offset, extentCount: takenExtentCount });
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
