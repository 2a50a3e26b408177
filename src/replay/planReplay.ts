// Pure planning of one replay pass: journal records in, metadata changes out.
//
//   phase 1, for each host, records seq = appliedSeq+1, +2, ... (contiguous, checked):
//     undecodable, unknown PV, extents not in the host's pool, or
//     an allocation src/replay/allocationRule.ts refuses            -> rejected (counted, never applied)
//     allocate to an LV that exists with the record's uuid        -> moveRanges free LV -> LV
//     allocate to an LV that is gone (or replaced by a namesake)  -> releaseRanges to VG free space
//     return                                                      -> releaseRanges to VG free space
//     activity                                                    -> thinlv_active_lvs=<count> (last one wins)
//     release of an LV the host owns                              -> owner cleared
//     claim                                                       -> kept for phase 2
//     deflate                                                     -> kept for phase 1b
//     demand                                                      -> reported (the last one wins): the
//                                                                    refill sizes this host's grant by it
//   then, in the same commit: thinlv_applied_seq=<last seq> on the host's journal LV
//   (and thinlv_rejected=<total>, thinlv_rejected_last=<seq>.<code>), and the free LV
//   is removed if replay emptied it.
//   phase 1b, deflates in host then seq order: a thin LV that nobody owns once every
//   host's records of this pass are in loses its extents past the record's count
//   (releaseRanges to VG free space); one held by a host keeps them (that host may have
//   mapped them: DESIGN I8). The deflating host released the LV just before, and any
//   later use of it needs a claim, granted in phase 2 of this pass at the earliest, so
//   the next holder reads the deflated LV from metadata.
//   phase 2, claims in host then seq order: an LV nobody owns once every host's
//   releases of this pass are in goes to the first claimant (thinlv_owner=<host>);
//   the others are denied, which the claimant reads from metadata. Claims come last
//   so that a migration's release on the source and claim on the destination, in
//   the same pass, hand the LV over; and a claim is granted only in a commit that
//   also holds every earlier allocation of the LV, so the new owner's first read of
//   metadata after the grant shows all of them.
//
// Why this is idempotent (I5): the applied sequence number travels in the same
// atomic metadata commit as the moves it describes. A pass repeated after a
// crash reads the cursor back and starts after it, so a record is applied
// exactly once however often the pass runs.

import { assert } from '../errors.js';
import { ExtentSet } from '../extent/extentSet.js';
import { appendSegments, keepFirstExtents, tailRanges } from '../extent/segments.js';
import type { LinearSegment, PhysicalRange } from '../extent/types.js';
import { TAG, hostLvNames, type ThinlvVg } from '../format/thinlvVg.js';
import { allocationProblem } from './allocationRule.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { linearSegments, lvExtentCount, type VgLayout, type VgMetadata } from '../metadata/vgModel.js';
import { decodeJournalRecord, type JournalRecord, type PvExtentRange } from '../records/records.js';

export interface JournalRecordBytes {
  readonly seq: number;
  readonly payload: Uint8Array;
}

export interface RejectedRecord {
  readonly host: string;
  readonly seq: number;
  /** Short and stable (tag-safe): what `thinlv check` reports and operators search for. */
  readonly code: string;
  readonly reason: string;
}

/** A claim that lost: someone else owns the LV, or it is gone. Not an error; the host reads the outcome from metadata. */
export interface DeniedClaim {
  readonly host: string;
  readonly seq: number;
  readonly lv: string;
  readonly owner: string | undefined;
}

export interface HostReplayPlan {
  readonly host: string;
  readonly appliedSeqBefore: number;
  readonly appliedSeqAfter: number;
  readonly appliedRecordCount: number;
  readonly movedExtentCount: number;
  readonly releasedExtentCount: number;
  readonly rejected: readonly RejectedRecord[];
  /** Extents left in the host's pool once the plan is committed. */
  readonly poolAfter: ExtentSet;
  /**
   * What the host's waiting extends need, from its last demand record this pass: 0 when
   * they stopped waiting, undefined when the pass read no demand record.
   */
  readonly demandExtentCount: number | undefined;
}

export interface ReplayPlan {
  readonly changes: readonly MetadataChange[];
  readonly hosts: readonly HostReplayPlan[];
  readonly deniedClaims: readonly DeniedClaim[];
  /** Deflates applied (the LV's extent count before and after) and skipped (it was held, or gone). */
  readonly deflates: readonly DeflateOutcome[];
}

export interface DeflateOutcome {
  readonly host: string;
  readonly seq: number;
  readonly lv: string;
  readonly applied: boolean;
  readonly extentCountBefore: number;
  readonly extentCountAfter: number;
  /** Why a skipped deflate was skipped. */
  readonly reason?: string;
}

/** Converts record ranges (PV uuids) to model ranges (device paths); undefined if a PV is unknown. */
export function toDeviceRanges(vg: { readonly pvs: readonly { readonly uuid: string; readonly device: string }[] }, ranges: readonly PvExtentRange[]): PhysicalRange[] | undefined {
  const deviceByUuid = new Map(vg.pvs.map((pv) => [pv.uuid, pv.device]));
  const result: PhysicalRange[] = [];
  for (const range of ranges) {
    const pv = deviceByUuid.get(range.pvUuid);
    if (pv === undefined) return undefined;
    result.push({ pv, firstExtent: range.firstExtent, extentCount: range.extentCount });
  }
  return result;
}

export function toUuidRanges(vg: VgMetadata, ranges: readonly PhysicalRange[]): PvExtentRange[] {
  const uuidByDevice = new Map(vg.pvs.map((pv) => [pv.device, pv.uuid]));
  return ranges.map((range) => {
    const pvUuid = uuidByDevice.get(range.pv);
    assert(pvUuid !== undefined, `range on ${range.pv}, which is not a PV of ${vg.name}`, { range });
    return { pvUuid, firstExtent: range.firstExtent, extentCount: range.extentCount };
  });
}

export function poolOf(vg: VgLayout, host: string): ExtentSet {
  const free = vg.lvs.find((lv) => lv.name === hostLvNames(host).free);
  if (free === undefined) return ExtentSet.empty();
  const segments = linearSegments(free);
  assert(segments !== undefined, `free LV ${free.name} is not linear`);
  return ExtentSet.fromRanges(segments);
}


/** What a pass has decided so far, across hosts: sizes and owners move as records apply. */
interface PassState {
  readonly vg: VgLayout;
  readonly thinlv: ThinlvVg;
  readonly lvsByName: ReadonlyMap<string, VgLayout['lvs'][number]>;
  readonly lvSizes: Map<string, number>;
  readonly owners: Map<string, string | undefined>;
  readonly changes: MetadataChange[];
  readonly claims: { host: string; seq: number; lv: string; lvUuid: string }[];
  readonly deflates: { host: string; seq: number; lv: string; lvUuid: string; extentCount: number }[];
  /** Ranges this pass appends to each LV, in order: a deflate cuts from the LV as replay leaves it. */
  readonly appended: Map<string, PhysicalRange[]>;
  /** Each LV a deflate of this pass cut, as the cut left it. */
  readonly cut: Map<string, LinearSegment[]>;
}

/** One host's progress through its records. */
interface HostProgress {
  readonly host: string;
  pool: ExtentSet;
  movedExtentCount: number;
  releasedExtentCount: number;
  activeLvCount: number;
  demandExtentCount: number | undefined;
  readonly rejected: RejectedRecord[];
}

/** Plans the replay of `recordsByHost` (each list contiguous from the host's applied seq + 1). */
export function planReplay(vg: VgLayout, thinlv: ThinlvVg, recordsByHost: ReadonlyMap<string, readonly JournalRecordBytes[]>): ReplayPlan {
  const state: PassState = {
    vg,
    thinlv,
    lvsByName: new Map(vg.lvs.map((lv) => [lv.name, lv])),
    lvSizes: new Map(vg.lvs.map((lv) => [lv.name, lvExtentCount(lv)])),
    owners: new Map([...thinlv.thinLvs].map(([name, thin]) => [name, thin.owner])),
    changes: [],
    claims: [],
    deflates: [],
    appended: new Map(),
    cut: new Map(),
  };
  const hosts: HostReplayPlan[] = [];
  for (const [host, records] of recordsByHost) {
    if (records.length > 0) hosts.push(replayHost(state, host, records));
  }
  const deflates = state.deflates.map((deflate) => applyDeflate(state, deflate));
  const deniedClaims = grantClaims(state);
  pushOwnerChanges(state);
  return { changes: state.changes, hosts, deniedClaims, deflates };
}

function replayHost(state: PassState, host: string, records: readonly JournalRecordBytes[]): HostReplayPlan {
  const info = state.thinlv.hosts.get(host);
  assert(info !== undefined, `replay for unknown host ${host}`);
  const names = hostLvNames(host);
  const poolBefore = poolOf(state.vg, host);
  const progress: HostProgress = { host, pool: poolBefore, movedExtentCount: 0, releasedExtentCount: 0, activeLvCount: info.activeLvCount, demandExtentCount: undefined, rejected: [] };
  let expectedSeq = info.appliedSeq + 1;
  for (const record of records) {
    assert(record.seq === expectedSeq, `journal of ${host} skipped from seq ${expectedSeq - 1} to ${record.seq}`, { host });
    expectedSeq++;
    const decoded = decodeJournalRecord(record.payload);
    const refusal = decoded.ok ? replayRecord(state, progress, record.seq, decoded.record) : { code: 'undecodable', reason: `undecodable: ${decoded.reason}` };
    if (refusal !== undefined) progress.rejected.push({ host, seq: record.seq, ...refusal });
  }

  const appliedSeqAfter = expectedSeq - 1;
  const changes = state.changes;
  if (progress.pool.isEmpty() && !poolBefore.isEmpty()) changes.push({ kind: 'removeLv', name: names.free });
  changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.appliedSeq}${appliedSeqAfter}`, replacingPrefix: TAG.appliedSeq });
  const lastRejected = progress.rejected.at(-1);
  if (lastRejected !== undefined) {
    changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.rejectedCount}${info.rejectedCount + progress.rejected.length}`, replacingPrefix: TAG.rejectedCount });
    changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.rejectedLast}${lastRejected.seq}.${lastRejected.code}`, replacingPrefix: TAG.rejectedLast });
  }
  if (progress.activeLvCount !== info.activeLvCount) {
    changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.activeLvCount}${progress.activeLvCount}`, replacingPrefix: TAG.activeLvCount });
  }
  return {
    host,
    appliedSeqBefore: info.appliedSeq,
    appliedSeqAfter,
    appliedRecordCount: records.length - progress.rejected.length,
    movedExtentCount: progress.movedExtentCount,
    releasedExtentCount: progress.releasedExtentCount,
    rejected: progress.rejected,
    poolAfter: progress.pool,
    demandExtentCount: progress.demandExtentCount,
  };
}

type Refusal = { readonly code: string; readonly reason: string } | undefined;

/** Applies one decoded record to the pass; returns why it is refused, if it is. */
function replayRecord(state: PassState, progress: HostProgress, seq: number, record: JournalRecord): Refusal {
  switch (record.kind) {
    case 'activity':
      progress.activeLvCount = record.activeLvCount;
      return undefined;
    case 'claim':
      state.claims.push({ host: progress.host, seq, lv: record.lv, lvUuid: record.lvUuid });
      return undefined;
    case 'demand':
      progress.demandExtentCount = record.extentCount;
      return undefined;
    case 'deflate':
      state.deflates.push({ host: progress.host, seq, lv: record.lv, lvUuid: record.lvUuid, extentCount: record.extentCount });
      return undefined;
    case 'release': {
      // Releasing what the host does not own (any more) is harmless: nothing changes.
      const target = state.lvsByName.get(record.lv);
      if (target?.uuid === record.lvUuid && state.owners.get(record.lv) === progress.host) state.owners.set(record.lv, undefined);
      return undefined;
    }
    case 'allocate':
    case 'return':
      return replayRanges(state, progress, record);
  }
}

function replayRanges(state: PassState, progress: HostProgress, record: Extract<JournalRecord, { kind: 'allocate' | 'return' }>): Refusal {
  const free = hostLvNames(progress.host).free;
  const ranges = toDeviceRanges(state.vg, record.ranges);
  if (ranges === undefined) return { code: 'unknown-pv', reason: 'names a PV that is not in the VG' };
  const claimed = ExtentSet.fromRanges(ranges);
  const claimedCount = ranges.reduce((sum, r) => sum + r.extentCount, 0);
  if (claimed.extentCount !== claimedCount) return { code: 'duplicate-extent', reason: 'lists one extent twice' };
  if (!progress.pool.containsAll(claimed)) return { code: 'outside-pool', reason: `claims extents outside ${free}: ${claimed.difference(progress.pool).toString()}` };
  const target = record.kind === 'allocate' ? state.lvsByName.get(record.lv) : undefined;
  if (record.kind === 'allocate' && target !== undefined && target.uuid === record.lvUuid) {
    const extentCountBefore = state.lvSizes.get(target.name) ?? 0;
    const problem = allocationProblem(state.thinlv, {
      host: progress.host,
      lv: target.name,
      extentCountBefore,
      extentCount: claimedCount,
      extentCountAfter: record.extentCountAfter,
      owner: state.owners.get(target.name),
      extentSizeBytes: state.vg.extentSizeSectors * 512,
    });
    if (problem !== undefined) return { code: problem.code.toLowerCase().replaceAll('_', '-'), reason: problem.reason };
    progress.pool = progress.pool.difference(claimed);
    state.changes.push({ kind: 'moveRanges', fromLv: free, toLv: target.name, ranges });
    state.appended.set(target.name, [...(state.appended.get(target.name) ?? []), ...ranges]);
    state.lvSizes.set(target.name, extentCountBefore + claimedCount);
    progress.movedExtentCount += claimedCount;
    return undefined;
  }
  // A return, or an allocation for an LV removed since: the extents go back to VG free space.
  progress.pool = progress.pool.difference(claimed);
  state.changes.push({ kind: 'releaseRanges', lv: free, ranges });
  progress.releasedExtentCount += claimedCount;
  return undefined;
}

/**
 * Phase 1b: cuts a thin LV nobody holds to the record's extent count. Why repeating it is
 * harmless (I5): it travels in the commit that advances the host's applied seq, and
 * cutting an LV to a size it already has changes nothing.
 */
function applyDeflate(state: PassState, deflate: PassState['deflates'][number]): DeflateOutcome {
  const target = state.lvsByName.get(deflate.lv);
  const extentCountBefore = state.lvSizes.get(deflate.lv) ?? 0;
  const outcome = { host: deflate.host, seq: deflate.seq, lv: deflate.lv, extentCountBefore };
  const skipped = (reason: string): DeflateOutcome => ({ ...outcome, applied: false, extentCountAfter: extentCountBefore, reason });
  if (target?.uuid !== deflate.lvUuid || !state.thinlv.thinLvs.has(deflate.lv)) return skipped('the LV is gone, or is not thin');
  const owner = state.owners.get(deflate.lv);
  if (owner !== undefined) return skipped(`held by host ${owner}`);
  if (extentCountBefore <= deflate.extentCount) return { ...outcome, applied: true, extentCountAfter: extentCountBefore };
  const segments = segmentsAfterReplay(state, target);
  state.changes.push({ kind: 'releaseRanges', lv: deflate.lv, ranges: tailRanges(segments, deflate.extentCount) });
  state.lvSizes.set(deflate.lv, deflate.extentCount);
  state.appended.set(deflate.lv, []);
  state.cut.set(deflate.lv, keepFirstExtents(segments, deflate.extentCount));
  return { ...outcome, applied: true, extentCountAfter: deflate.extentCount };
}

/** The LV's segments as this pass leaves it so far: metadata (or an earlier deflate's cut), then this pass's appends. */
function segmentsAfterReplay(state: PassState, lv: VgLayout['lvs'][number]): LinearSegment[] {
  const base = state.cut.get(lv.name) ?? linearSegments(lv);
  assert(base !== undefined, `thin LV ${lv.name} is not linear`);
  return appendSegments(base, state.appended.get(lv.name) ?? []);
}

/** Phase 2: each claimed LV nobody owns goes to its first claimant; returns the claims denied. */
function grantClaims(state: PassState): DeniedClaim[] {
  const denied: DeniedClaim[] = [];
  for (const claim of state.claims) {
    const target = state.lvsByName.get(claim.lv);
    const owner = state.owners.get(claim.lv);
    const grantable = target?.uuid === claim.lvUuid && state.thinlv.thinLvs.has(claim.lv) && (owner === undefined || owner === claim.host);
    if (grantable) state.owners.set(claim.lv, claim.host);
    else denied.push({ host: claim.host, seq: claim.seq, lv: claim.lv, owner });
  }
  return denied;
}

/** Owner tags for every LV whose owner this pass changed. */
function pushOwnerChanges(state: PassState): void {
  for (const [lv, thin] of state.thinlv.thinLvs) {
    const owner = state.owners.get(lv);
    if (owner === thin.owner) continue;
    if (owner === undefined) state.changes.push({ kind: 'removeTag', lv, tag: `${TAG.owner}${thin.owner!}` });
    else state.changes.push({ kind: 'setTag', lv, tag: `${TAG.owner}${owner}`, replacingPrefix: TAG.owner });
  }
}
