// Pure planning of pool refills and return requests, run on the VG as it will
// be once the pass's replay is committed.
//
//   reserve   = reservePermille of the VG's extents: pools are never refilled from it
//   available = VG free extents - reserve
//   hosts below low-water, or with a demand (extents their waiting extends need), smallest
//   pool first: grant min(max(quantum, demand + low-water - pool), available) extents
//     -> appendRanges to thinlv_<host>_free (createLv when the pool LV is absent)
//     -> thinlv_grant_gen=<gen+1> on thinlv_<host>_grants, in the same commit
//   if a host below low-water got less than a quantum, every host holding more than
//   twice the quantum is asked (a grants-ring record) to return its excess
//
// Why a grant repeated after a crash is harmless: the generation bump is in the
// same commit as the extents, and the grants-ring record that follows carries
// the pool's whole content at that generation, so writing it twice changes
// nothing, and a host ignores a generation it already applied.

import { chooseExtents } from '../extent/chooseExtents.js';
import { ExtentSet } from '../extent/extentSet.js';
import type { PhysicalRange } from '../extent/types.js';
import { TAG, hostLvNames, type ThinlvVg } from '../format/thinlvVg.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { linearSegments, type VgMetadata } from '../metadata/vgModel.js';

export interface PlannedGrant {
  readonly host: string;
  readonly generation: number;
  readonly ranges: readonly PhysicalRange[];
  readonly extentCount: number;
}

export interface PlannedReturnRequest {
  readonly host: string;
  readonly extentCount: number;
}

export interface RefillPlan {
  readonly changes: readonly MetadataChange[];
  readonly grants: readonly PlannedGrant[];
  readonly returnRequests: readonly PlannedReturnRequest[];
  readonly reserveExtentCount: number;
  readonly vgFreeExtentCountAfter: number;
}

export function reserveExtentCount(vg: VgMetadata, reservePermille: number): number {
  const total = vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  return Math.ceil((total * reservePermille) / 1000);
}

/**
 * `vg` is the metadata as it will be after this pass's replay; `thinlv` holds the
 * settings and generations read before it (a replay does not change them).
 */
export function planRefill(vg: VgMetadata, thinlv: ThinlvVg, demands: ReadonlyMap<string, number> = new Map()): RefillPlan {
  const { quantumExtents, lowWaterExtents, reservePermille } = thinlv.settings;
  const reserve = reserveExtentCount(vg, reservePermille);
  let vgFree = computeFreeExtents(vg);
  const changes: MetadataChange[] = [];
  const grants: PlannedGrant[] = [];

  const pools = [...thinlv.hosts.values()]
    .map((host) => {
      const freeLv = vg.lvs.find((lv) => lv.name === hostLvNames(host.host).free);
      const segments = freeLv ? (linearSegments(freeLv) ?? []) : [];
      return { host, segments, poolExtentCount: segments.reduce((sum, s) => sum + s.extentCount, 0), exists: freeLv !== undefined };
    })
    .sort((a, b) => a.poolExtentCount - b.poolExtentCount || a.host.host.localeCompare(b.host.host));

  let starved = false;
  for (const pool of pools) {
    const demand = demands.get(pool.host.host) ?? 0;
    // A demand is met in one grant, however many quanta that takes, with low-water to spare.
    const shortfall = demand > 0 ? demand + lowWaterExtents - pool.poolExtentCount : 0;
    if (pool.poolExtentCount >= lowWaterExtents && shortfall <= 0) continue;
    const wanted = Math.max(quantumExtents, shortfall);
    const available = Math.max(0, vgFree.extentCount - reserve);
    const grantExtentCount = Math.min(wanted, available);
    if (grantExtentCount < wanted) starved = true;
    if (grantExtentCount === 0) continue;
    const chosen = chooseExtents(vgFree, pool.segments, grantExtentCount);
    if (!chosen.ok) continue;
    vgFree = vgFree.difference(ExtentSet.fromRanges(chosen.ranges));
    const names = hostLvNames(pool.host.host);
    changes.push(
      pool.exists
        ? { kind: 'appendRanges', lv: names.free, ranges: chosen.ranges }
        : { kind: 'createLv', name: names.free, ranges: chosen.ranges, activationSkip: true },
    );
    const generation = pool.host.grantGeneration + 1;
    changes.push({ kind: 'setTag', lv: names.grants, tag: `${TAG.grantGeneration}${generation}`, replacingPrefix: TAG.grantGeneration });
    grants.push({ host: pool.host.host, generation, ranges: chosen.ranges, extentCount: grantExtentCount });
  }

  const returnRequests: PlannedReturnRequest[] = [];
  if (starved) {
    for (const pool of pools) {
      if (pool.poolExtentCount > 2 * quantumExtents) {
        returnRequests.push({ host: pool.host.host, extentCount: pool.poolExtentCount - quantumExtents });
      }
    }
  }
  return { changes, grants, returnRequests, reserveExtentCount: reserve, vgFreeExtentCountAfter: vgFree.extentCount };
}
