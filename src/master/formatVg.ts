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
 * Metadata text one LV costs, generously: name, uuid, tags and a few segments
 * (measured: about 450 bytes for a one-segment LV, 150 more per segment).
 */
export const METADATA_BYTES_PER_LV = 1024;
export const DEFAULT_EXPECTED_LV_COUNT = 1000;

export interface FormatOptions {
  readonly quantumExtents?: number | undefined;
  readonly lowWaterExtents?: number | undefined;
  readonly reservePermille?: number | undefined;
  readonly expectedLvCount?: number | undefined;
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

export async function formatVg(lvm: LvmRunner, vgName: string, options: FormatOptions = {}): Promise<FormatResult> {
  positive('quantumExtents', options.quantumExtents);
  positive('lowWaterExtents', options.lowWaterExtents);
  positive('expectedLvCount', options.expectedLvCount);
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

  const expectedLvCount = options.expectedLvCount ?? DEFAULT_EXPECTED_LV_COUNT;
  // LVM keeps room for two copies, so one copy may use half the area.
  const capacityBytes = report.metadataAreaSizeBytes / 2;
  const neededBytes = expectedLvCount * METADATA_BYTES_PER_LV;
  if (neededBytes > capacityBytes) {
    throw new ThinlvError(
      ErrorCode.metadataAreaTooSmall,
      `VG ${vgName}'s metadata area (${report.metadataAreaSizeBytes} bytes per PV) holds about ${Math.floor(capacityBytes / METADATA_BYTES_PER_LV)} LVs, fewer than the ${expectedLvCount} expected; recreate the PVs with a larger --metadatasize (64m holds over 30,000) or pass a smaller expected LV count`,
      { vg: vgName, metadataAreaSizeBytes: report.metadataAreaSizeBytes, expectedLvCount },
    );
  }

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
