// Boundary checks shared by the extent modules. Types already say "number", but callers
// build ranges from parsed metadata text and journal records, where NaN, -1 or 2^60 can
// slip through; catching them here keeps a bad number from reaching a dm table or a commit.

import { ExtentArgumentError } from './extentErrors.js';
import type { LinearSegment, PhysicalRange } from './types.js';

export function assertNonNegativeSafeInteger(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ExtentArgumentError(
      'EXTENT_INVALID_ARGUMENT',
      `${what} must be a non-negative safe integer, got ${String(value)}`,
      { what, value },
    );
  }
}

export function assertPositiveSafeInteger(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ExtentArgumentError(
      'EXTENT_INVALID_ARGUMENT',
      `${what} must be a safe integer >= 1, got ${String(value)}`,
      { what, value },
    );
  }
}

export function assertPvName(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ExtentArgumentError('EXTENT_INVALID_ARGUMENT', `${what} must be a non-empty string, got ${JSON.stringify(value)}`, {
      what,
      value,
    });
  }
}

export function assertPhysicalRange(range: unknown, what: string): asserts range is PhysicalRange {
  if (typeof range !== 'object' || range === null) {
    throw new ExtentArgumentError('EXTENT_INVALID_ARGUMENT', `${what} must be a physical range object, got ${String(range)}`, {
      what,
    });
  }
  const candidate = range as Partial<PhysicalRange>;
  assertPvName(candidate.pv, `${what}.pv`);
  assertNonNegativeSafeInteger(candidate.firstExtent, `${what}.firstExtent`);
  assertPositiveSafeInteger(candidate.extentCount, `${what}.extentCount`);
  // The exclusive end is used everywhere; it must stay exact too.
  assertNonNegativeSafeInteger(candidate.firstExtent + candidate.extentCount, `${what} end (firstExtent + extentCount)`);
}

export function assertLinearSegment(segment: unknown, what: string): asserts segment is LinearSegment {
  assertPhysicalRange(segment, what);
  const candidate = segment as Partial<LinearSegment>;
  assertNonNegativeSafeInteger(candidate.logicalStart, `${what}.logicalStart`);
  assertNonNegativeSafeInteger(
    (candidate.logicalStart as number) + segment.extentCount,
    `${what} logical end (logicalStart + extentCount)`,
  );
}

/** Short human form of a range for error messages: "pv0:10+4" (4 extents from 10). */
export function describeRange(range: PhysicalRange): string {
  return `${range.pv}:${range.firstExtent}+${range.extentCount}`;
}

/** PV names order by UTF-16 code units: locale-independent, so every host sorts alike. */
export function comparePvNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Order by PV, then first extent, then length: the order ExtentSet.ranges() uses. */
export function comparePhysicalRanges(a: PhysicalRange, b: PhysicalRange): number {
  return comparePvNames(a.pv, b.pv) || a.firstExtent - b.firstExtent || a.extentCount - b.extentCount;
}
