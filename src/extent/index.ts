// Pure extent model: sets of physical extents, choosing extents for a grow, LV segment
// lists and the dm tables they become. No I/O, no clock, no randomness.

export type { LinearSegment, PhysicalRange } from './types.js';
export { ExtentArgumentError, ExtentError, ExtentInvariantError, type ExtentErrorCode } from './extentErrors.js';
export { comparePhysicalRanges, comparePvNames, describeRange } from './argumentChecks.js';
export { ExtentSet } from './extentSet.js';
export { findOverlaps, type ExtentOverlap, type OwnedRange } from './findOverlaps.js';
export { chooseExtents, type ChooseExtentsOptions, type ChooseExtentsResult, type NewSegmentPlacement } from './chooseExtents.js';
export {
  appendSegments,
  assertValidSegments,
  coalesceSegments,
  removeExtentsFromSegments,
  segmentsExtentCount,
  segmentsToExtentSet,
  validateSegments,
  type SegmentProblem,
  type SegmentProblemKind,
} from './segments.js';
export { formatDmTable, linearTable, type DmTableLine, type PvLocation, type PvLocations } from './dmTable.js';
