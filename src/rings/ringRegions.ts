// Where a ring LV lives on disk, and opening it as a journal region. Rings are
// read and written at their physical offset on the PV, so no device-mapper
// activation is needed and the same code works on a loop device, an iSCSI LUN
// or a plain file.

import { openFileRegion, type BlockRegion, type JournalLogger } from '../../journal/index.js';
import { ErrorCode, ThinlvError } from '../errors.js';
import { SECTOR_BYTES, linearSegments, type VgLayout } from '../metadata/vgModel.js';

export interface RingLocation {
  /**
   * The ring's identity: the LV's uuid. A new LV gets a new uuid, so a stale ring left
   * on reused extents (say, by a removed host of the same name) never passes for it.
   */
  readonly ringId: string;
  readonly device: string;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

export function ringLocation(vg: VgLayout, lvName: string): RingLocation {
  const lv = vg.lvs.find((l) => l.name === lvName);
  if (lv === undefined) throw new ThinlvError(ErrorCode.lvNotFound, `ring LV ${vg.name}/${lvName} does not exist`, { lv: lvName });
  const segments = linearSegments(lv);
  const segment = segments?.[0];
  if (segments === undefined || segments.length !== 1 || segment === undefined) {
    throw new ThinlvError(ErrorCode.unsupportedMetadata, `ring LV ${vg.name}/${lvName} must be one linear segment; it has ${lv.segments.length}`, { lv: lvName });
  }
  const pv = vg.pvs.find((p) => p.device === segment.pv);
  if (pv === undefined) throw new ThinlvError(ErrorCode.unsupportedMetadata, `ring LV ${lvName} sits on unknown PV ${segment.pv}`, { lv: lvName });
  const extentBytes = vg.extentSizeSectors * SECTOR_BYTES;
  return {
    ringId: lv.uuid,
    device: pv.device,
    offsetBytes: pv.peStartSectors * SECTOR_BYTES + segment.firstExtent * extentBytes,
    lengthBytes: segment.extentCount * extentBytes,
  };
}

/** Opens regions; a parameter so tests can substitute in-memory regions. */
export interface RegionOpener {
  open(location: RingLocation): Promise<BlockRegion>;
}

export function fileRegionOpener(logger?: JournalLogger): RegionOpener {
  return {
    open: (location) =>
      openFileRegion(location.device, {
        offsetBytes: location.offsetBytes,
        lengthBytes: location.lengthBytes,
        ...(logger ? { logger } : {}),
      }),
  };
}
