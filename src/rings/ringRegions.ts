// Where a ring LV lives on disk, and opening it as a journal region. Rings are
// read and written at their physical offset on the PV, so no device-mapper
// activation is needed and the same code works on a loop device, an iSCSI LUN
// or a plain file.
//
// A host's journal LV ends with one 4 KiB block that is not part of its ring: the
// host's lease (src/ownership/hostLease.ts), the heartbeat that keeps a second
// daemon from writing the same journal. It lives in the journal LV so that it is
// created, found and removed with the ring it guards.
//
//   thinlv_<host>_journal   [ ring header | consumer | records ... | lease ]

import { MIN_RING_BYTES, openFileRegion, type BlockRegion, type JournalLogger } from '../../journal/index.js';
import { ErrorCode, ThinlvError } from '../errors.js';
import { STATUS_LV, hostLvNames } from '../format/thinlvVg.js';
import { STATUS_REGION_BYTES } from './statusBlock.js';
import { SECTOR_BYTES, linearSegments, type VgLayout } from '../metadata/vgModel.js';

/** The lease block at the end of every journal LV. */
export const LEASE_BLOCK_BYTES = 4096;
const JOURNAL_LV = /^thinlv_.+_journal$/;

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

/** The ring on `lvName`: the whole LV, less the lease block for a journal. */
export function ringLocation(vg: VgLayout, lvName: string): RingLocation {
  const whole = lvLocation(vg, lvName);
  return JOURNAL_LV.test(lvName) ? { ...whole, lengthBytes: whole.lengthBytes - LEASE_BLOCK_BYTES } : whole;
}

/** The master's status region: the first STATUS_REGION_BYTES of thinlv_status. */
export function statusLocation(vg: VgLayout): RingLocation {
  const whole = lvLocation(vg, STATUS_LV);
  if (whole.lengthBytes < STATUS_REGION_BYTES) {
    throw new ThinlvError(ErrorCode.unsupportedMetadata, `${vg.name}/${STATUS_LV} holds ${whole.lengthBytes} bytes, less than the ${STATUS_REGION_BYTES} the status needs`, { lv: STATUS_LV });
  }
  return { ...whole, lengthBytes: STATUS_REGION_BYTES };
}

/** The host's lease block: the last 4 KiB of its journal LV, identified by that LV's uuid. */
export function leaseLocation(vg: VgLayout, host: string): RingLocation {
  const whole = lvLocation(vg, hostLvNames(host).journal);
  return { ...whole, offsetBytes: whole.offsetBytes + whole.lengthBytes - LEASE_BLOCK_BYTES, lengthBytes: LEASE_BLOCK_BYTES };
}

function lvLocation(vg: VgLayout, lvName: string): RingLocation {
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

/**
 * Opens the host's lease block. A file region is at least MIN_RING_BYTES long, so
 * this opens the journal LV's last MIN_RING_BYTES and serves only its last block:
 * every read and write goes to the lease block, never to the ring in front of it.
 */
export async function openLeaseRegion(regions: RegionOpener, location: RingLocation): Promise<BlockRegion> {
  const spanBytes = MIN_RING_BYTES;
  const whole = await regions.open({ ...location, offsetBytes: location.offsetBytes + location.lengthBytes - spanBytes, lengthBytes: spanBytes });
  return tailRegion(whole, location.lengthBytes);
}

/** The last `lengthBytes` of `region`, as a region of its own. */
function tailRegion(region: BlockRegion, lengthBytes: number): BlockRegion {
  const baseBytes = region.sizeBytes - lengthBytes;
  const inside = (offsetBytes: number, length: number): number => {
    if (offsetBytes < 0 || offsetBytes + length > lengthBytes) {
      throw new ThinlvError(ErrorCode.invalidArgument, `I/O at ${offsetBytes}+${length} falls outside the ${lengthBytes}-byte lease block`, { offsetBytes, length });
    }
    return baseBytes + offsetBytes;
  };
  return {
    sizeBytes: lengthBytes,
    description: `${region.description} (last ${lengthBytes} bytes)`,
    allocateBuffer: (length) => region.allocateBuffer(length),
    read: (offsetBytes, length) => region.read(inside(offsetBytes, length), length),
    write: (offsetBytes, data) => region.write(inside(offsetBytes, data.length), data),
    close: () => region.close(),
  };
}
