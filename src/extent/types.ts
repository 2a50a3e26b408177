// Shared shapes of the extent model. Everything under src/extent/ is pure: no I/O,
// no clock, no randomness, so it can be property-tested exhaustively.

/** A run of physical extents on one PV: [firstExtent, firstExtent + extentCount). */
export interface PhysicalRange {
  /** PV key as the caller names PVs (the metadata text's "pv0", or a device path). */
  readonly pv: string;
  readonly firstExtent: number;
  readonly extentCount: number;
}

/** One linear segment of an LV: logical extents [logicalStart, logicalStart + extentCount) map to a physical range. */
export interface LinearSegment extends PhysicalRange {
  readonly logicalStart: number;
}
