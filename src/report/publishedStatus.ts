// Reading what the master published in thinlv_status (src/master/masterStatus.ts), on
// any host, read-only. The status is a report: when it cannot be read, reports say why
// and show the rest.

import type { BlockRegion } from '../../journal/index.js';
import { isJournalError } from '../../journal/index.js';
import { InvariantError, ThinlvError } from '../errors.js';
import { STATUS_LV, readThinlvVg } from '../format/thinlvVg.js';
import { MASTER_STATUS_VERSION, type MasterStatus } from '../master/masterStatus.js';
import type { VgLayout } from '../metadata/vgModel.js';
import { statusLocation, type RegionOpener } from '../rings/ringRegions.js';
import { readStatusRegion } from '../rings/statusBlock.js';

export type PublishedStatus = { readonly published: true; readonly status: MasterStatus } | { readonly published: false; readonly reason: string };

/** The master's last published status for `vg`, or why there is none. */
export async function readPublishedStatus(regions: RegionOpener, vg: VgLayout): Promise<PublishedStatus> {
  if (readThinlvVg(vg).statusLv === undefined) return { published: false, reason: `no master has run on VG ${vg.name} yet (it creates ${STATUS_LV} at its start, to publish its status in)` };
  let region: BlockRegion | undefined;
  try {
    region = await regions.open(statusLocation(vg));
    const slot = await readStatusRegion(region);
    if (slot.kind === 'absent') return { published: false, reason: 'the master has not published a status yet' };
    if (slot.kind === 'corrupt') return { published: false, reason: `the published status cannot be read: ${slot.reason}` };
    return asStatus(slot.payload, vg.name);
  } catch (error) {
    if (isJournalError(error) || (error instanceof ThinlvError && !(error instanceof InvariantError))) return { published: false, reason: `${error.code}: ${error.message}` };
    throw error;
  } finally {
    await region?.close();
  }
}

function asStatus(payload: unknown, vgName: string): PublishedStatus {
  const status = payload as Partial<MasterStatus> | null;
  if (typeof status !== 'object' || status === null || status.version !== MASTER_STATUS_VERSION) {
    return { published: false, reason: `the published status has version ${String(status?.version)}; this thinlv reads version ${MASTER_STATUS_VERSION}` };
  }
  if (status.vg !== vgName || !Array.isArray(status.hosts) || typeof status.writtenAtMs !== 'number') {
    return { published: false, reason: 'the published status is not a status of this VG (a stale copy on reused extents?)' };
  }
  return { published: true, status: status as MasterStatus };
}
