// `thinlv format VG`: prepares an existing VG for thinlv in ONE metadata commit
// (format tag and settings), so a crash leaves the VG either untouched or
// formatted; running the command again after a crash either formats it or
// reports that it already is, with the settings it holds.

import { ErrorCode, ThinlvError, UsageError } from '../errors.js';
import { TAG, THINLV_FORMAT_VERSION, defaultSettings, isFormatted, readThinlvVg, type ThinlvSettings } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../lvm/commitBatch.js';
import { readVgReport } from '../lvm/readVgReport.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import { SECTOR_BYTES } from '../metadata/vgModel.js';
import { reserveExtentCount } from '../pool/planRefill.js';
import type { FaultPoints } from '../faults.js';

/**
 * Metadata text one LV costs, generously: name, uuid, tags, then each segment (measured:
 * about 450 bytes for a one-segment LV, 150 more per segment; a pool in service of 313 LVs
 * and 2413 segments took 497 KB, 1588 bytes an LV).
 */
export const METADATA_BYTES_PER_LV_BASE = 384;
export const METADATA_BYTES_PER_SEGMENT = 160;
export const DEFAULT_EXPECTED_LV_COUNT = 1000;
/** Segments per LV a pool in service reaches (issue 14's median target); 4 costs 1 KiB an LV. */
export const DEFAULT_EXPECTED_SEGMENTS_PER_LV = 4;

export function metadataBytesPerLv(segmentsPerLv: number): number {
  return METADATA_BYTES_PER_LV_BASE + METADATA_BYTES_PER_SEGMENT * segmentsPerLv;
}

export interface FormatOptions {
  readonly quantumExtents?: number | undefined;
  readonly lowWaterExtents?: number | undefined;
  readonly reservePermille?: number | undefined;
  readonly expectedLvCount?: number | undefined;
  readonly expectedSegmentsPerLv?: number | undefined;
  readonly faults?: FaultPoints;
}

export interface FormatResult {
  readonly vg: string;
  readonly seqno: number;
  readonly settings: ThinlvSettings;
}

function positive(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
    throw new UsageError(ErrorCode.invalidArgument, `${name} must be a whole number of at least 1, got ${value}`, { [name]: value });
  }
}

/** METADATA_AREA_TOO_SMALL unless half the area (LVM keeps room for two copies) holds the expected LVs and segments. */
function refuseSmallMetadataArea(vgName: string, metadataAreaSizeBytes: number, expectedLvCount: number, segmentsPerLv: number): void {
  const capacityBytes = metadataAreaSizeBytes / 2;
  const perLvBytes = metadataBytesPerLv(segmentsPerLv);
  if (expectedLvCount * perLvBytes <= capacityBytes) return;
  throw new ThinlvError(
    ErrorCode.metadataAreaTooSmall,
    `VG ${vgName}'s metadata area (${metadataAreaSizeBytes} bytes per PV) holds about ${Math.floor(capacityBytes / perLvBytes)} LVs of ${segmentsPerLv} segments, fewer than the ${expectedLvCount} expected; recreate the PVs with a larger --metadatasize (64m holds over 30,000 such LVs) or pass smaller expected counts`,
    { vg: vgName, metadataAreaSizeBytes, expectedLvCount, expectedSegmentsPerLv: segmentsPerLv },
  );
}

export async function formatVg(lvm: LvmRunner, vgName: string, options: FormatOptions = {}): Promise<FormatResult> {
  positive('quantumExtents', options.quantumExtents);
  positive('lowWaterExtents', options.lowWaterExtents);
  positive('expectedLvCount', options.expectedLvCount);
  positive('expectedSegmentsPerLv', options.expectedSegmentsPerLv);
  const reservePermille = options.reservePermille;
  if (reservePermille !== undefined && (!Number.isSafeInteger(reservePermille) || reservePermille < 0 || reservePermille > 500)) {
    throw new UsageError(ErrorCode.invalidArgument, `reservePermille must be a whole number from 0 to 500, got ${reservePermille}`);
  }

  const report = await readVgReport(lvm, vgName);
  const metadata = await readVgMetadata(lvm, vgName);
  if (isFormatted(metadata)) {
    const existing = readThinlvVg(metadata);
    throw new ThinlvError('ALREADY_FORMATTED', `VG ${vgName} is already formatted for thinlv (quantum ${existing.settings.quantumExtents} extents, low-water ${existing.settings.lowWaterExtents}, reserve ${existing.settings.reservePermille}‰); nothing was changed`, {
      vg: vgName,
      settings: existing.settings,
    });
  }

  refuseSmallMetadataArea(vgName, report.metadataAreaSizeBytes, options.expectedLvCount ?? DEFAULT_EXPECTED_LV_COUNT, options.expectedSegmentsPerLv ?? DEFAULT_EXPECTED_SEGMENTS_PER_LV);

  const defaults = defaultSettings(report.extentCount, report.extentSizeSectors * SECTOR_BYTES);
  const quantumExtents = options.quantumExtents ?? defaults.quantumExtents;
  const settings: ThinlvSettings = {
    quantumExtents,
    lowWaterExtents: options.lowWaterExtents ?? (options.quantumExtents !== undefined ? Math.max(1, Math.floor(quantumExtents / 2)) : defaults.lowWaterExtents),
    reservePermille: reservePermille ?? defaults.reservePermille,
  };
  if (settings.lowWaterExtents > settings.quantumExtents) {
    throw new UsageError(ErrorCode.invalidArgument, `the low-water mark (${settings.lowWaterExtents} extents) must not exceed the quantum (${settings.quantumExtents} extents)`);
  }
  const neededExtents = reserveExtentCount(metadata, settings.reservePermille) + settings.quantumExtents;
  if (report.freeExtentCount < neededExtents) {
    throw new ThinlvError(
      'VG_TOO_FULL',
      `VG ${vgName} has ${report.freeExtentCount} free extents; thinlv needs at least ${neededExtents} (the ${settings.reservePermille}‰ reserve plus one ${settings.quantumExtents}-extent quantum); free space or add a PV`,
      { vg: vgName, freeExtentCount: report.freeExtentCount, neededExtents },
    );
  }

  const result = await commitBatch(lvm, metadata, [
    { kind: 'setTag', tag: `${TAG.format}${THINLV_FORMAT_VERSION}`, replacingPrefix: TAG.format },
    { kind: 'setTag', tag: `${TAG.quantumExtents}${settings.quantumExtents}`, replacingPrefix: TAG.quantumExtents },
    { kind: 'setTag', tag: `${TAG.lowWaterExtents}${settings.lowWaterExtents}`, replacingPrefix: TAG.lowWaterExtents },
    { kind: 'setTag', tag: `${TAG.reservePermille}${settings.reservePermille}`, replacingPrefix: TAG.reservePermille },
  ], options.faults ? { faults: options.faults } : {});
  return { vg: vgName, seqno: result.seqno, settings };
}
