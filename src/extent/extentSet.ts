// An immutable set of physical extents across PVs.
//
// Stored per PV as sorted, disjoint, non-adjacent half-open intervals, so two sets that
// hold the same extents have the same representation and equality is a plain comparison:
//
//   fromRanges([pv0:0+3, pv0:2+4, pv0:6+1, pv1:9+1])
//     pv0: [0, 7)        overlapping and adjacent input merged
//     pv1: [9, 10)
//
// Every operation walks both sides' interval lists once (two pointers), so union,
// difference and intersection cost O(n + m) intervals, never O(extents).

import {
  assertNonNegativeSafeInteger,
  assertPhysicalRange,
  assertPvName,
  comparePvNames,
} from './argumentChecks.js';
import { ExtentInvariantError } from './extentErrors.js';
import type { PhysicalRange } from './types.js';

/** Half-open interval of extents [startExtent, endExtent) on one PV. */
interface Interval {
  readonly startExtent: number;
  readonly endExtent: number;
}

type IntervalsByPv = ReadonlyMap<string, readonly Interval[]>;

const EMPTY_INTERVALS: readonly Interval[] = Object.freeze([]);

export class ExtentSet {
  /** Keys in comparePvNames order; no PV maps to an empty list. */
  readonly #intervalsByPv: IntervalsByPv;
  readonly #extentCount: number;
  #rangesCache: readonly PhysicalRange[] | undefined;

  private constructor(intervalsByPv: IntervalsByPv) {
    assertNormalized(intervalsByPv);
    this.#intervalsByPv = intervalsByPv;
    let extentCount = 0;
    for (const intervals of intervalsByPv.values()) {
      for (const interval of intervals) extentCount += interval.endExtent - interval.startExtent;
    }
    this.#extentCount = extentCount;
  }

  static empty(): ExtentSet {
    return EMPTY_SET;
  }

  /**
   * Builds the set of extents covered by `ranges`. Overlapping and adjacent ranges are
   * allowed and merged; use findOverlaps() when overlap itself is the thing to detect.
   * Throws ExtentArgumentError (EXTENT_INVALID_ARGUMENT) on a malformed range.
   */
  static fromRanges(ranges: Iterable<PhysicalRange>): ExtentSet {
    const unsortedByPv = new Map<string, Interval[]>();
    let index = 0;
    for (const range of ranges) {
      assertPhysicalRange(range, `ranges[${index}]`);
      index += 1;
      let intervals = unsortedByPv.get(range.pv);
      if (intervals === undefined) {
        intervals = [];
        unsortedByPv.set(range.pv, intervals);
      }
      intervals.push({ startExtent: range.firstExtent, endExtent: range.firstExtent + range.extentCount });
    }
    const byPv = new Map<string, readonly Interval[]>();
    for (const pv of [...unsortedByPv.keys()].sort(comparePvNames)) {
      const intervals = unsortedByPv.get(pv) ?? [];
      intervals.sort((a, b) => a.startExtent - b.startExtent);
      byPv.set(pv, mergeSortedIntervals(intervals));
    }
    return new ExtentSet(byPv);
  }

  /** Total number of extents in the set. */
  get extentCount(): number {
    return this.#extentCount;
  }

  isEmpty(): boolean {
    return this.#extentCount === 0;
  }

  /** PVs that hold at least one extent of the set, in sorted order. */
  pvs(): string[] {
    return [...this.#intervalsByPv.keys()];
  }

  /** Normalized ranges, sorted by PV then firstExtent; no two overlap or touch. */
  ranges(): readonly PhysicalRange[] {
    if (this.#rangesCache === undefined) {
      const ranges: PhysicalRange[] = [];
      for (const [pv, intervals] of this.#intervalsByPv) {
        for (const interval of intervals) ranges.push(intervalToRange(pv, interval));
      }
      this.#rangesCache = Object.freeze(ranges);
    }
    return this.#rangesCache;
  }

  /** Normalized ranges on one PV, sorted by firstExtent; empty if the PV holds none. */
  rangesOnPv(pv: string): PhysicalRange[] {
    assertPvName(pv, 'pv');
    return (this.#intervalsByPv.get(pv) ?? EMPTY_INTERVALS).map((interval) => intervalToRange(pv, interval));
  }

  /** Whether extent `extent` of PV `pv` is in the set. O(log n). */
  has(pv: string, extent: number): boolean {
    return this.runContaining(pv, extent) !== undefined;
  }

  /** The maximal run of the set that contains the extent, or undefined. O(log n). */
  runContaining(pv: string, extent: number): PhysicalRange | undefined {
    assertPvName(pv, 'pv');
    assertNonNegativeSafeInteger(extent, 'extent');
    const intervals = this.#intervalsByPv.get(pv) ?? EMPTY_INTERVALS;
    let low = 0;
    let high = intervals.length;
    // Find the first interval whose end is beyond `extent`; it holds it if it starts at or before.
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((intervals[middle] as Interval).endExtent <= extent) low = middle + 1;
      else high = middle;
    }
    const candidate = intervals[low];
    return candidate !== undefined && candidate.startExtent <= extent ? intervalToRange(pv, candidate) : undefined;
  }

  union(other: ExtentSet): ExtentSet {
    return this.#combine(other, unionIntervals);
  }

  /** Extents in this set and not in `other`. */
  difference(other: ExtentSet): ExtentSet {
    return this.#combine(other, differenceIntervals);
  }

  intersection(other: ExtentSet): ExtentSet {
    return this.#combine(other, intersectionIntervals);
  }

  /** Whether the two sets share at least one extent. Stops at the first shared one. */
  overlaps(other: ExtentSet): boolean {
    for (const [pv, intervals] of this.#intervalsByPv) {
      const otherIntervals = other.#intervalsByPv.get(pv);
      if (otherIntervals !== undefined && intervalsOverlap(intervals, otherIntervals)) return true;
    }
    return false;
  }

  /** Whether every extent of `other` is in this set. */
  containsAll(other: ExtentSet): boolean {
    return other.difference(this).isEmpty();
  }

  equals(other: ExtentSet): boolean {
    if (this === other) return true;
    if (this.#extentCount !== other.#extentCount || this.#intervalsByPv.size !== other.#intervalsByPv.size) return false;
    for (const [pv, intervals] of this.#intervalsByPv) {
      const otherIntervals = other.#intervalsByPv.get(pv);
      if (otherIntervals === undefined || otherIntervals.length !== intervals.length) return false;
      for (let index = 0; index < intervals.length; index += 1) {
        const mine = intervals[index] as Interval;
        const theirs = otherIntervals[index] as Interval;
        if (mine.startExtent !== theirs.startExtent || mine.endExtent !== theirs.endExtent) return false;
      }
    }
    return true;
  }

  /** Compact form for logs and error messages: "pv0:0-6,9 pv1:3-4" (inclusive bounds). */
  toString(): string {
    if (this.isEmpty()) return '(no extents)';
    const parts: string[] = [];
    for (const [pv, intervals] of this.#intervalsByPv) {
      const runs = intervals.map((interval) =>
        interval.endExtent - interval.startExtent === 1
          ? `${interval.startExtent}`
          : `${interval.startExtent}-${interval.endExtent - 1}`,
      );
      parts.push(`${pv}:${runs.join(',')}`);
    }
    return parts.join(' ');
  }

  #combine(
    other: ExtentSet,
    combineIntervals: (mine: readonly Interval[], theirs: readonly Interval[]) => Interval[],
  ): ExtentSet {
    const pvs = new Set([...this.#intervalsByPv.keys(), ...other.#intervalsByPv.keys()]);
    const byPv = new Map<string, readonly Interval[]>();
    for (const pv of [...pvs].sort(comparePvNames)) {
      const combined = combineIntervals(
        this.#intervalsByPv.get(pv) ?? EMPTY_INTERVALS,
        other.#intervalsByPv.get(pv) ?? EMPTY_INTERVALS,
      );
      if (combined.length > 0) byPv.set(pv, combined);
    }
    return new ExtentSet(byPv);
  }
}

const EMPTY_SET: ExtentSet = ExtentSet.fromRanges([]);

function intervalToRange(pv: string, interval: Interval): PhysicalRange {
  return Object.freeze({ pv, firstExtent: interval.startExtent, extentCount: interval.endExtent - interval.startExtent });
}

/** Merges intervals sorted by start into disjoint, non-adjacent ones. */
function mergeSortedIntervals(sorted: readonly Interval[]): Interval[] {
  const merged: Interval[] = [];
  for (const interval of sorted) {
    const last = merged[merged.length - 1];
    // `<=` also merges touching intervals: [0,3) and [3,5) are one run [0,5).
    if (last !== undefined && interval.startExtent <= last.endExtent) {
      if (interval.endExtent > last.endExtent) {
        merged[merged.length - 1] = { startExtent: last.startExtent, endExtent: interval.endExtent };
      }
    } else {
      merged.push(interval);
    }
  }
  return merged;
}

function unionIntervals(mine: readonly Interval[], theirs: readonly Interval[]): Interval[] {
  // Merge the two sorted lists by start, then coalesce: O(n + m).
  const sorted: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < mine.length || j < theirs.length) {
    const a = mine[i];
    const b = theirs[j];
    if (b === undefined || (a !== undefined && a.startExtent <= b.startExtent)) {
      sorted.push(a as Interval);
      i += 1;
    } else {
      sorted.push(b);
      j += 1;
    }
  }
  return mergeSortedIntervals(sorted);
}

function differenceIntervals(mine: readonly Interval[], theirs: readonly Interval[]): Interval[] {
  const remaining: Interval[] = [];
  let first = 0; // First interval of `theirs` that can still reach the current one of `mine`.
  for (const interval of mine) {
    let cursor = interval.startExtent;
    while (first < theirs.length && (theirs[first] as Interval).endExtent <= cursor) first += 1;
    for (let j = first; j < theirs.length && cursor < interval.endExtent; j += 1) {
      const cut = theirs[j] as Interval;
      if (cut.startExtent >= interval.endExtent) break;
      if (cut.startExtent > cursor) remaining.push({ startExtent: cursor, endExtent: cut.startExtent });
      cursor = Math.max(cursor, cut.endExtent);
    }
    if (cursor < interval.endExtent) remaining.push({ startExtent: cursor, endExtent: interval.endExtent });
  }
  return remaining;
}

function intersectionIntervals(mine: readonly Interval[], theirs: readonly Interval[]): Interval[] {
  const shared: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < mine.length && j < theirs.length) {
    const a = mine[i] as Interval;
    const b = theirs[j] as Interval;
    const startExtent = Math.max(a.startExtent, b.startExtent);
    const endExtent = Math.min(a.endExtent, b.endExtent);
    if (startExtent < endExtent) shared.push({ startExtent, endExtent });
    // Drop whichever ends first: it cannot meet anything further on the other side.
    if (a.endExtent <= b.endExtent) i += 1;
    else j += 1;
  }
  return shared;
}

function intervalsOverlap(mine: readonly Interval[], theirs: readonly Interval[]): boolean {
  let i = 0;
  let j = 0;
  while (i < mine.length && j < theirs.length) {
    const a = mine[i] as Interval;
    const b = theirs[j] as Interval;
    if (Math.max(a.startExtent, b.startExtent) < Math.min(a.endExtent, b.endExtent)) return true;
    if (a.endExtent <= b.endExtent) i += 1;
    else j += 1;
  }
  return false;
}

/**
 * Every result goes through here: a set built wrong would make the allocator hand out an
 * extent twice, so a linear check per construction is worth its cost.
 */
function assertNormalized(byPv: IntervalsByPv): void {
  let previousPv: string | undefined;
  for (const [pv, intervals] of byPv) {
    if (previousPv !== undefined && comparePvNames(previousPv, pv) >= 0) {
      throw new ExtentInvariantError(`PVs out of order: ${previousPv} before ${pv}`);
    }
    previousPv = pv;
    if (intervals.length === 0) throw new ExtentInvariantError(`PV ${pv} kept with no extents`);
    let previousEnd = -1;
    for (const interval of intervals) {
      if (interval.startExtent >= interval.endExtent || interval.startExtent <= previousEnd) {
        throw new ExtentInvariantError(
          `intervals on ${pv} not sorted, disjoint and non-adjacent at [${interval.startExtent}, ${interval.endExtent})`,
        );
      }
      previousEnd = interval.endExtent;
    }
  }
}
