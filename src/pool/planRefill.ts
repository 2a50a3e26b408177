// Pure planning of pool refills and return requests, run on the VG as it will
// be once the pass's replay is committed.
//
//   reserve    = reservePermille of the VG's extents: pools are never refilled from it
//   available  = VG free extents - reserve
//   per host h, from its recent allocation rate (`rateTargets`: extents it allocates in
//   two master intervals), capped at a fair share (available / hosts) so that one busy
//   host cannot take the VG from the others:
//     quantum_h   = max(quantum, target_h)        low-water_h = max(low-water, target_h / 2)
//   round 1, hosts with a demand (extents their waiting extends need; a stalled guest):
//     urgent_h = demand + low-water_h - pool, shared out of `available` (water-filling:
//     each gets what it needs or an equal share of what is left, whichever is smaller)
//   round 2, what is left, shared the same way:
//     hosts below low-water_h (or still short of their demand) up to max(quantum_h, urgent_h)
//   each host's total is one grant: appendRanges to thinlv_<host>_free (createLv when the
//   pool LV is absent), and thinlv_grant_gen=<gen+1> on thinlv_<host>_grants, in the same commit
//   a demand its grant does not cover -> a shortage: 'shared' when several hosts waited at
//   once, else 'vg-full'; and whenever a host got less than it wanted, every host that
//   wants nothing and holds more than twice its quantum_h is asked (a grants-ring record)
//   to return its excess
//
// Why a grant repeated after a crash is harmless: the generation bump is in the
// same commit as the extents, and the grants-ring record that follows carries
// the pool's whole content at that generation, so writing it twice changes
// nothing, and a host ignores a generation it already applied.

import { chooseExtents } from '../extent/chooseExtents.js';
import { ExtentSet } from '../extent/extentSet.js';
import type { LinearSegment, PhysicalRange } from '../extent/types.js';
import { TAG, hostLvNames, type ThinlvHost, type ThinlvVg } from '../format/thinlvVg.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { linearSegments, type VgMetadata } from '../metadata/vgModel.js';
import type { ShortageReason } from '../records/records.js';

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

export interface PlannedShortage {
  readonly host: string;
  readonly reason: ShortageReason;
  readonly demandExtentCount: number;
  readonly grantedExtentCount: number;
}

export interface RefillPlan {
  readonly changes: readonly MetadataChange[];
  readonly grants: readonly PlannedGrant[];
  readonly returnRequests: readonly PlannedReturnRequest[];
  /** Demands this plan does not cover (their hosts' extends keep waiting). */
  readonly shortages: readonly PlannedShortage[];
  /** Hosts whose demand this plan covers (with what their pool already holds). */
  readonly coveredDemands: readonly string[];
  /** Each host's pool once this plan is committed, and the low-water it was planned with. */
  readonly poolLevels: ReadonlyMap<string, { readonly extentCount: number; readonly lowWater: number }>;
  readonly reserveExtentCount: number;
  readonly vgFreeExtentCountAfter: number;
}

export interface RefillNeeds {
  /** Extents each host's waiting extends need in all (its last demand record). */
  readonly demands?: ReadonlyMap<string, number>;
  /** Extents each host allocated, at its recent rate, in two master intervals. */
  readonly rateTargets?: ReadonlyMap<string, number>;
}

export function reserveExtentCount(vg: { readonly pvs: readonly { readonly peCount: number }[] }, reservePermille: number): number {
  const total = vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  return Math.ceil((total * reservePermille) / 1000);
}

interface HostWant {
  readonly host: ThinlvHost;
  readonly segments: readonly LinearSegment[];
  readonly exists: boolean;
  readonly poolExtentCount: number;
  readonly demand: number;
  readonly quantum: number;
  readonly lowWater: number;
  /** Round 1: what the waiting extends need, with low-water to spare. */
  readonly urgent: number;
  /** Everything this host should get this pass (urgent included). */
  readonly total: number;
}

/**
 * `vg` is the metadata as it will be after this pass's replay; `thinlv` holds the
 * settings and generations read before it (a replay does not change them).
 */
export function planRefill(vg: VgMetadata, thinlv: ThinlvVg, needs: RefillNeeds = {}): RefillPlan {
  const reserve = reserveExtentCount(vg, thinlv.settings.reservePermille);
  let vgFree = computeFreeExtents(vg);
  const available = Math.max(0, vgFree.extentCount - reserve);
  const wants = hostWants(vg, thinlv, needs, available);
  const urgentGiven = waterFill(wants.filter((w) => w.urgent > 0).map((w) => [w.host.host, w.urgent]), available);
  const leftAfterUrgent = available - sum(urgentGiven.values());
  const restGiven = waterFill(wants.map((w) => [w.host.host, w.total - (urgentGiven.get(w.host.host) ?? 0)]), leftAfterUrgent);

  const changes: MetadataChange[] = [];
  const grants: PlannedGrant[] = [];
  for (const want of [...wants].sort((a, b) => a.host.host.localeCompare(b.host.host))) {
    const count = (urgentGiven.get(want.host.host) ?? 0) + (restGiven.get(want.host.host) ?? 0);
    if (count === 0) continue;
    const chosen = chooseExtents(vgFree, want.segments, count);
    if (!chosen.ok) continue;
    vgFree = vgFree.difference(ExtentSet.fromRanges(chosen.ranges));
    const generation = want.host.grantGeneration + 1;
    changes.push(...grantChanges(want, chosen.ranges, generation));
    grants.push({ host: want.host.host, generation, ranges: chosen.ranges, extentCount: count });
  }
  const granted = new Map(grants.map((g) => [g.host, g.extentCount]));
  return {
    changes,
    grants,
    ...demandOutcomes(wants, granted),
    returnRequests: wants.some((w) => (granted.get(w.host.host) ?? 0) < w.total) ? returnRequests(wants) : [],
    poolLevels: new Map(wants.map((w) => [w.host.host, { extentCount: w.poolExtentCount + (granted.get(w.host.host) ?? 0), lowWater: w.lowWater }])),
    reserveExtentCount: reserve,
    vgFreeExtentCountAfter: vgFree.extentCount,
  };
}

/** What each host should get this pass, before the VG's free space is shared out. */
function hostWants(vg: VgMetadata, thinlv: ThinlvVg, needs: RefillNeeds, available: number): HostWant[] {
  const { quantumExtents, lowWaterExtents } = thinlv.settings;
  const fairShare = Math.floor(available / Math.max(1, thinlv.hosts.size));
  return [...thinlv.hosts.values()].map((host) => {
    const freeLv = vg.lvs.find((lv) => lv.name === hostLvNames(host.host).free);
    const segments = freeLv ? (linearSegments(freeLv) ?? []) : [];
    const poolExtentCount = sum(segments.map((s) => s.extentCount));
    const target = Math.min(needs.rateTargets?.get(host.host) ?? 0, fairShare);
    const quantum = Math.max(quantumExtents, target);
    const lowWater = Math.max(lowWaterExtents, Math.ceil(target / 2));
    const demand = needs.demands?.get(host.host) ?? 0;
    const urgent = demand > 0 ? Math.max(0, demand + lowWater - poolExtentCount) : 0;
    const total = poolExtentCount < lowWater || urgent > 0 ? Math.max(quantum, urgent) : 0;
    return { host, segments, exists: freeLv !== undefined, poolExtentCount, demand, quantum, lowWater, urgent, total };
  });
}

/**
 * Shares `available` among `asks` ([id, amount]): the smallest asks are met in full,
 * and the rest get equal shares of what is left (max-min fairness).
 */
export function waterFill(asks: readonly (readonly [string, number])[], available: number): Map<string, number> {
  const given = new Map<string, number>();
  const sorted = asks.filter(([, amount]) => amount > 0).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  let left = available;
  for (const [index, [id, amount]] of sorted.entries()) {
    const share = Math.floor(left / (sorted.length - index));
    const give = Math.min(amount, share);
    given.set(id, give);
    left -= give;
  }
  return given;
}

function grantChanges(want: HostWant, ranges: readonly PhysicalRange[], generation: number): MetadataChange[] {
  const names = hostLvNames(want.host.host);
  return [
    want.exists ? { kind: 'appendRanges', lv: names.free, ranges } : { kind: 'createLv', name: names.free, ranges, activationSkip: true },
    { kind: 'setTag', lv: names.grants, tag: `${TAG.grantGeneration}${generation}`, replacingPrefix: TAG.grantGeneration },
  ];
}

/** Which demands the grants cover, and a shortage for each one they do not. */
function demandOutcomes(wants: readonly HostWant[], granted: ReadonlyMap<string, number>): Pick<RefillPlan, 'shortages' | 'coveredDemands'> {
  const demanders = wants.filter((w) => w.demand > 0);
  const shortages: PlannedShortage[] = [];
  const coveredDemands: string[] = [];
  for (const want of demanders) {
    const grantedExtentCount = granted.get(want.host.host) ?? 0;
    if (want.poolExtentCount + grantedExtentCount >= want.demand) {
      coveredDemands.push(want.host.host);
      continue;
    }
    // 'shared' when another waiting host got extents this pass: the VG's rest was split.
    const shared = demanders.some((other) => other !== want && (granted.get(other.host.host) ?? 0) > 0);
    const reason: ShortageReason = shared ? 'shared' : 'vg-full';
    shortages.push({ host: want.host.host, reason, demandExtentCount: want.demand, grantedExtentCount });
  }
  return { shortages, coveredDemands };
}

/** Hosts that want nothing and hold more than twice their quantum give back the excess. */
function returnRequests(wants: readonly HostWant[]): PlannedReturnRequest[] {
  return wants
    .filter((w) => w.total === 0 && w.poolExtentCount > 2 * w.quantum)
    .map((w) => ({ host: w.host.host, extentCount: w.poolExtentCount - w.quantum }));
}

const sum = (values: Iterable<number>): number => {
  let total = 0;
  for (const value of values) total += value;
  return total;
};
