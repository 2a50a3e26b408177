// An LV's linear segments: logical extents [logicalStart, logicalStart + extentCount) map to
// physical extents [firstExtent, firstExtent + extentCount) on one PV. A valid LV lists its
// segments in logical order, contiguous from logical extent 0, and maps no physical extent
// twice; validateSegments() says what is wrong with one that does not.

import { assertLinearSegment, assertPhysicalRange, describeRange } from './argumentChecks.js';
import { ExtentArgumentError, ExtentError, ExtentInvariantError } from './extentErrors.js';
import { ExtentSet } from './extentSet.js';
import { findOverlaps } from './findOverlaps.js';
import type { LinearSegment, PhysicalRange } from './types.js';

export type SegmentProblemKind =
  /** Not a well-formed segment (negative number, empty pv, zero length, ...). */
  | 'invalid-segment'
  /** Logical extents before this segment are not covered (includes "does not start at 0"). */
  | 'logical-gap'
  /** This segment starts inside logical extents an earlier one already covers. */
  | 'logical-overlap'
  /** This segment maps a physical extent that an earlier segment of the same LV maps too. */
  | 'physical-overlap';

export interface SegmentProblem {
  readonly kind: SegmentProblemKind;
  /** Index in the list passed to validateSegments. */
  readonly segmentIndex: number;
  readonly message: string;
}

/**
 * Everything wrong with an LV's segment list, in list order; empty when it is valid.
 * The list must be in logical order: LVM metadata stores segments that way, and the dm
 * table is built in that order.
 */
export function validateSegments(segments: readonly LinearSegment[]): SegmentProblem[] {
  const problems: SegmentProblem[] = [];
  const wellFormed: Array<{ segment: LinearSegment; index: number }> = [];
  let expectedLogicalStart = 0;
  segments.forEach((segment, index) => {
    try {
      assertLinearSegment(segment, `segments[${index}]`);
    } catch (error) {
      if (!(error instanceof ExtentError)) throw error;
      problems.push({ kind: 'invalid-segment', segmentIndex: index, message: error.message });
      return;
    }
    wellFormed.push({ segment, index });
    if (segment.logicalStart > expectedLogicalStart) {
      problems.push({
        kind: 'logical-gap',
        segmentIndex: index,
        message: `segments[${index}] starts at logical extent ${segment.logicalStart}; extents from ${expectedLogicalStart} are not mapped`,
      });
    } else if (segment.logicalStart < expectedLogicalStart) {
      problems.push({
        kind: 'logical-overlap',
        segmentIndex: index,
        message: `segments[${index}] starts at logical extent ${segment.logicalStart}, inside extents mapped up to ${expectedLogicalStart}`,
      });
    }
    // Continue from the furthest end seen, so one bad segment yields one problem, not a cascade.
    expectedLogicalStart = Math.max(expectedLogicalStart, segment.logicalStart + segment.extentCount);
  });

  const overlaps = findOverlaps(wellFormed.map(({ segment, index }) => ({ owner: `segments[${index}]`, range: segment })));
  for (const overlap of overlaps) {
    const firstIndex = (wellFormed[overlap.aIndex] as { index: number }).index;
    const secondIndex = (wellFormed[overlap.bIndex] as { index: number }).index;
    problems.push({
      kind: 'physical-overlap',
      segmentIndex: secondIndex,
      message: `segments[${secondIndex}] and segments[${firstIndex}] both map physical extents ${describeRange(overlap.overlap)}`,
    });
  }
  problems.sort((x, y) => x.segmentIndex - y.segmentIndex);
  return problems;
}

/** Throws ExtentArgumentError listing every problem when `segments` is not a valid LV. */
export function assertValidSegments(segments: readonly LinearSegment[], what: string): void {
  const problems = validateSegments(segments);
  if (problems.length > 0) {
    throw new ExtentArgumentError(
      problems.some((problem) => problem.kind === 'physical-overlap') ? 'EXTENT_DOUBLE_USE' : 'EXTENT_INVALID_ARGUMENT',
      `${what} is not a valid segment list: ${problems.map((problem) => problem.message).join('; ')}`,
      { what, problems },
    );
  }
}

/**
 * An LV's segment list that passed validation, with its extent set and size worked out
 * once. Only of() builds one, so holding a ValidSegments proves the list was checked:
 * code that grows the same LV many times (the host allocator) validates it once per
 * change instead of once per grow.
 */
export class ValidSegments {
  private constructor(
    readonly segments: readonly LinearSegment[],
    readonly extents: ExtentSet,
    readonly extentCount: number,
  ) {}

  /** Throws ExtentArgumentError, as assertValidSegments does, when `segments` is not a valid LV. */
  static of(segments: readonly LinearSegment[], what = 'segments'): ValidSegments {
    const valid = ValidSegments.checkedAtOnce(segments);
    if (valid !== undefined) return valid;
    assertValidSegments(segments, what);
    throw new ExtentInvariantError(`${what}: validateSegments found no problem in a list the one-pass check refused`);
  }

  /**
   * The valid case in one pass (the host allocator builds one per extend): well-formed,
   * logically contiguous from 0, and no physical extent twice, which holds exactly when
   * the extent set is as large as the segments' sum. Undefined when anything is off:
   * validateSegments() then names every problem.
   */
  private static checkedAtOnce(segments: readonly LinearSegment[]): ValidSegments | undefined {
    let logicalEnd = 0;
    try {
      for (const segment of segments) {
        assertLinearSegment(segment, 'segment');
        if (segment.logicalStart !== logicalEnd) return undefined;
        logicalEnd += segment.extentCount;
      }
    } catch (error) {
      if (error instanceof ExtentError) return undefined;
      throw error;
    }
    const copy = Object.freeze(segments.map(copySegment));
    const extents = ExtentSet.fromRanges(copy);
    return extents.extentCount === logicalEnd ? new ValidSegments(copy, extents, logicalEnd) : undefined;
  }
}

/** Total extents mapped by the segments (the LV's size in extents when they are valid). */
export function segmentsExtentCount(segments: readonly LinearSegment[]): number {
  let extentCount = 0;
  segments.forEach((segment, index) => {
    assertLinearSegment(segment, `segments[${index}]`);
    extentCount += segment.extentCount;
  });
  return extentCount;
}

/** The physical extents the segments map. */
export function segmentsToExtentSet(segments: readonly LinearSegment[]): ExtentSet {
  return ExtentSet.fromRanges(segments);
}

/**
 * The LV's segments followed by one new segment per range, in the order given, starting at
 * the LV's logical end. Does not coalesce: call coalesceSegments() for the shortest form.
 * Throws EXTENT_DOUBLE_USE if a new range maps an extent the LV (or another new range)
 * already maps: that would be double allocation (I1), so it is refused, not merged.
 */
export function appendSegments(
  lvSegments: readonly LinearSegment[],
  ranges: readonly PhysicalRange[],
): LinearSegment[] {
  assertValidSegments(lvSegments, 'lvSegments');
  const appended: LinearSegment[] = lvSegments.map(copySegment);
  let logicalStart = segmentsExtentCount(lvSegments);
  ranges.forEach((range, index) => {
    assertPhysicalRange(range, `ranges[${index}]`);
    appended.push({ pv: range.pv, firstExtent: range.firstExtent, extentCount: range.extentCount, logicalStart });
    logicalStart += range.extentCount;
  });
  assertNoPhysicalOverlap(appended, 'appending ranges');
  return appended;
}

/**
 * The same mapping in the fewest segments: neighbours that continue each other both
 * logically and physically on one PV become one segment. Fewer segments mean fewer dm
 * targets and smaller metadata.
 *
 *   logical 0..3 -> pv0:10..13, logical 4..5 -> pv0:14..15   =>   logical 0..5 -> pv0:10..15
 *
 * Input segments need not be in order (they are sorted by logicalStart first), but must be
 * well formed.
 */
export function coalesceSegments(segments: readonly LinearSegment[]): LinearSegment[] {
  segments.forEach((segment, index) => assertLinearSegment(segment, `segments[${index}]`));
  const sorted = [...segments].sort((a, b) => a.logicalStart - b.logicalStart);
  const coalesced: LinearSegment[] = [];
  for (const segment of sorted) {
    const last = coalesced[coalesced.length - 1];
    if (
      last !== undefined &&
      last.pv === segment.pv &&
      last.logicalStart + last.extentCount === segment.logicalStart &&
      last.firstExtent + last.extentCount === segment.firstExtent
    ) {
      coalesced[coalesced.length - 1] = { ...last, extentCount: last.extentCount + segment.extentCount };
    } else {
      coalesced.push(copySegment(segment));
    }
  }
  return coalesced;
}

/**
 * The LV's segments without the given physical extents. The extents left keep their
 * logical order and are renumbered from logical extent 0, and the result is coalesced.
 *
 *   before: [pv0:0..3][pv1:0..1][pv0:4..5]    remove pv1:0..1
 *   after:  [pv0:0..5]                        (pv0:0..3 and pv0:4..5 now touch both ways)
 *
 * The master uses this to move extents out of a host's free LV when it replays that host's
 * journal. Every extent to remove must be in the LV exactly once: a missing one
 * (EXTENT_NOT_PRESENT) means the journal and the metadata disagree, and a range listed twice
 * (EXTENT_DOUBLE_USE) means one extent was handed out twice; both must stop the replay
 * rather than be smoothed over.
 */
export function removeExtentsFromSegments(
  segments: readonly LinearSegment[],
  ranges: readonly PhysicalRange[],
): LinearSegment[] {
  assertValidSegments(segments, 'segments');
  ranges.forEach((range, index) => assertPhysicalRange(range, `ranges[${index}]`));
  const toRemove = ExtentSet.fromRanges(ranges);
  const requestedExtentCount = ranges.reduce((sum, range) => sum + range.extentCount, 0);
  if (toRemove.extentCount !== requestedExtentCount) {
    const overlaps = findOverlaps(ranges.map((range, index) => ({ owner: `ranges[${index}]`, range })));
    throw new ExtentArgumentError(
      'EXTENT_DOUBLE_USE',
      `ranges to remove overlap each other: ${overlaps
        .map((overlap) => `ranges[${overlap.aIndex}] and ranges[${overlap.bIndex}] share ${describeRange(overlap.overlap)}`)
        .join('; ')}`,
      { overlaps },
    );
  }
  const lvExtents = segmentsToExtentSet(segments);
  const missing = toRemove.difference(lvExtents);
  if (!missing.isEmpty()) {
    throw new ExtentArgumentError(
      'EXTENT_NOT_PRESENT',
      `cannot remove extents the LV does not map: ${missing.toString()}`,
      { missing: missing.ranges() },
    );
  }

  const remaining: LinearSegment[] = [];
  let logicalStart = 0;
  for (const segment of segments) {
    // Within one linear segment physical order is logical order, so the pieces left,
    // sorted by firstExtent, keep the LV's byte order.
    const pieces = ExtentSet.fromRanges([segment]).difference(toRemove).ranges();
    for (const piece of pieces) {
      remaining.push({ pv: piece.pv, firstExtent: piece.firstExtent, extentCount: piece.extentCount, logicalStart });
      logicalStart += piece.extentCount;
    }
  }
  const result = coalesceSegments(remaining);

  // Pair assertion: exactly the requested extents left, and the rest is still a valid LV.
  if (!segmentsToExtentSet(result).equals(lvExtents.difference(toRemove)) || validateSegments(result).length > 0) {
    throw new ExtentInvariantError('removeExtentsFromSegments produced a wrong segment list', { segments, ranges, result });
  }
  return result;
}

function copySegment(segment: LinearSegment): LinearSegment {
  return {
    pv: segment.pv,
    firstExtent: segment.firstExtent,
    extentCount: segment.extentCount,
    logicalStart: segment.logicalStart,
  };
}

function assertNoPhysicalOverlap(segments: readonly LinearSegment[], what: string): void {
  const overlaps = findOverlaps(segments.map((segment, index) => ({ owner: `segments[${index}]`, range: segment })));
  if (overlaps.length > 0) {
    throw new ExtentArgumentError(
      'EXTENT_DOUBLE_USE',
      `${what} would map physical extents twice: ${overlaps.map((overlap) => describeRange(overlap.overlap)).join(', ')}`,
      { overlaps: overlaps.map((overlap) => overlap.overlap) },
    );
  }
}

/** The physical ranges past logical extent `keepExtentCount`, in logical order. */
export function tailRanges(segments: readonly { logicalStart: number; extentCount: number; pv: string; firstExtent: number }[], keepExtentCount: number): PhysicalRange[] {
  const ranges: PhysicalRange[] = [];
  for (const segment of segments) {
    const end = segment.logicalStart + segment.extentCount;
    if (end <= keepExtentCount) continue;
    const skip = Math.max(0, keepExtentCount - segment.logicalStart);
    ranges.push({ pv: segment.pv, firstExtent: segment.firstExtent + skip, extentCount: segment.extentCount - skip });
  }
  return ranges;
}

/** The segments that map logical extents below `keepExtentCount`: the LV cut to that size. */
export function keepFirstExtents(segments: readonly LinearSegment[], keepExtentCount: number): LinearSegment[] {
  return segments
    .filter((segment) => segment.logicalStart < keepExtentCount)
    .map((segment) => ({ ...segment, extentCount: Math.min(segment.extentCount, keepExtentCount - segment.logicalStart) }));
}
