// Builds the device-mapper table of a linear LV, in the text `dmsetup load` reads on stdin:
//
//   <startSector> <lengthSectors> linear <device> <offsetSector>
//
//   segment logical 0..9 -> pv0:100..109, extent = 8192 sectors, pv0 pe_start = 2048
//   => "0 81920 linear /dev/sdb 821248"          821248 = 2048 + 100 * 8192
//
// Sector numbers pass 2^32 on ordinary LUNs; they stay exact as long as they stay at or
// below Number.MAX_SAFE_INTEGER (2^53 - 1 sectors = 4 EiB), which is asserted, not assumed.

import { assertNonNegativeSafeInteger, assertPositiveSafeInteger } from './argumentChecks.js';
import { ExtentArgumentError } from './extentErrors.js';
import { assertValidSegments, coalesceSegments, ValidSegments } from './segments.js';
import type { LinearSegment } from './types.js';

/** Where a PV's extents start on its block device. */
export interface PvLocation {
  /** Block device the dm target maps to: a path ("/dev/sdb") or "major:minor". */
  readonly devicePath: string;
  /** The PV's pe_start, in 512-byte sectors: extent 0 begins here. */
  readonly peStartSectors: number;
}

/** PV key (as in PhysicalRange.pv) to its location. */
export type PvLocations = ReadonlyMap<string, PvLocation> | Readonly<Record<string, PvLocation>>;

/** One line of a dm table for the `linear` target; all numbers in 512-byte sectors. */
export interface DmTableLine {
  readonly startSector: number;
  readonly lengthSectors: number;
  readonly targetType: 'linear';
  readonly devicePath: string;
  readonly offsetSector: number;
}

/**
 * The dm table for an LV with `segments`: one line per coalesced segment, in logical
 * order. Segments are coalesced first, so neighbours that continue each other on the same
 * PV become one target (the kernel would accept two, but the table would then differ from
 * the one LVM builds and from the one another host builds for the same mapping).
 * An LV with no segments yields no lines. A ValidSegments is not validated again.
 */
export function linearTable(
  lv: readonly LinearSegment[] | ValidSegments,
  pvs: PvLocations,
  extentSizeSectors: number,
): DmTableLine[] {
  assertPositiveSafeInteger(extentSizeSectors, 'extentSizeSectors');
  const segments = lv instanceof ValidSegments ? lv.segments : lv;
  if (!(lv instanceof ValidSegments)) assertValidSegments(segments, 'segments');
  return coalesceSegments(segments).map((segment) => {
    const location = lookUpPv(pvs, segment.pv);
    return {
      startSector: sectorProduct(segment.logicalStart, extentSizeSectors, `start sector of logical extent ${segment.logicalStart}`),
      lengthSectors: sectorProduct(segment.extentCount, extentSizeSectors, `length of ${segment.extentCount} extents`),
      targetType: 'linear',
      devicePath: location.devicePath,
      offsetSector: sectorSum(
        location.peStartSectors,
        sectorProduct(segment.firstExtent, extentSizeSectors, `offset of extent ${segment.firstExtent} on ${segment.pv}`),
        `offset of extent ${segment.firstExtent} on ${segment.pv}`,
      ),
    };
  });
}

/**
 * The table as `dmsetup load` takes it: one line per target, each ending in a newline.
 * Checks the lines first (contiguous from sector 0, lengths >= 1, device without
 * whitespace), because the kernel's answer to a bad table is a terse EINVAL.
 */
export function formatDmTable(lines: readonly DmTableLine[]): string {
  let expectedStartSector = 0;
  return lines
    .map((line, index) => {
      const what = `lines[${index}]`;
      assertNonNegativeSafeInteger(line.startSector, `${what}.startSector`);
      assertPositiveSafeInteger(line.lengthSectors, `${what}.lengthSectors`);
      assertNonNegativeSafeInteger(line.offsetSector, `${what}.offsetSector`);
      assertDevicePath(line.devicePath, `${what}.devicePath`);
      if (line.targetType !== 'linear') {
        throw new ExtentArgumentError('EXTENT_INVALID_ARGUMENT', `${what}.targetType must be "linear", got ${String(line.targetType)}`);
      }
      if (line.startSector !== expectedStartSector) {
        throw new ExtentArgumentError(
          'EXTENT_INVALID_ARGUMENT',
          `${what} starts at sector ${line.startSector} but the table so far ends at ${expectedStartSector}; dm tables must be contiguous from 0`,
          { index, startSector: line.startSector, expectedStartSector },
        );
      }
      expectedStartSector = sectorSum(line.startSector, line.lengthSectors, `end of ${what}`);
      return `${line.startSector} ${line.lengthSectors} linear ${line.devicePath} ${line.offsetSector}\n`;
    })
    .join('');
}

function lookUpPv(pvs: PvLocations, pv: string): PvLocation {
  // Object.hasOwn keeps a PV named "constructor" or "__proto__" from finding Object's.
  const location = isLocationMap(pvs) ? pvs.get(pv) : Object.hasOwn(pvs, pv) ? pvs[pv] : undefined;
  if (location === undefined) {
    throw new ExtentArgumentError('EXTENT_NOT_PRESENT', `no device known for PV ${pv}; pass its devicePath and peStartSectors`, {
      pv,
    });
  }
  assertDevicePath(location.devicePath, `devicePath of PV ${pv}`);
  assertNonNegativeSafeInteger(location.peStartSectors, `peStartSectors of PV ${pv}`);
  return location;
}

function isLocationMap(pvs: PvLocations): pvs is ReadonlyMap<string, PvLocation> {
  return pvs instanceof Map;
}

function assertDevicePath(devicePath: unknown, what: string): asserts devicePath is string {
  // The table is whitespace-separated, so a space in a path would shift every field after it.
  if (typeof devicePath !== 'string' || devicePath.length === 0 || /\s/.test(devicePath)) {
    throw new ExtentArgumentError(
      'EXTENT_INVALID_ARGUMENT',
      `${what} must be a non-empty device path without whitespace, got ${JSON.stringify(devicePath)}`,
      { what, devicePath },
    );
  }
}

// Both operands are safe integers; if the exact result passes 2^53 - 1 the rounded one
// does too (rounding is monotonic and 2^53 is representable), so isSafeInteger catches it.
function sectorProduct(count: number, sectorsPerUnit: number, what: string): number {
  return assertSafeSector(count * sectorsPerUnit, what);
}

function sectorSum(a: number, b: number, what: string): number {
  return assertSafeSector(a + b, what);
}

function assertSafeSector(sector: number, what: string): number {
  if (!Number.isSafeInteger(sector)) {
    throw new ExtentArgumentError(
      'EXTENT_SECTOR_OVERFLOW',
      `${what} is beyond ${Number.MAX_SAFE_INTEGER} sectors and cannot be computed exactly; check extentSizeSectors and the extent numbers`,
      { what, sector },
    );
  }
  return sector;
}
