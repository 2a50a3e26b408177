// Pure planning of one replay pass: journal records in, metadata changes out.
//
//   for each host, records seq = appliedSeq+1, +2, ... (contiguous, checked):
//     undecodable, unknown PV, extents not in the host's pool,
//     or a target that exists but is not a thin LV                 -> rejected (counted, never applied)
//     allocate to an LV that exists with the record's uuid        -> moveRanges free LV -> LV
//     allocate to an LV that is gone (or replaced by a namesake)  -> releaseRanges to VG free space
//     return                                                      -> releaseRanges to VG free space
//     activity                                                    -> thinlv_active_lvs=<count> (last one wins)
//   then, in the same commit: thinlv_applied_seq=<last seq> on the host's journal LV
//   (and thinlv_rejected=<total>), and the free LV is removed if replay emptied it.
//
// Why this is idempotent (I5): the applied sequence number travels in the same
// atomic metadata commit as the moves it describes. A pass repeated after a
// crash reads the cursor back and starts after it, so a record is applied
// exactly once however often the pass runs.

import { assert } from '../errors.js';
import { ExtentSet } from '../extent/extentSet.js';
import type { PhysicalRange } from '../extent/types.js';
import { TAG, hostLvNames, type ThinlvVg } from '../format/thinlvVg.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { linearSegments, lvExtentCount, type VgMetadata } from '../metadata/vgModel.js';
import { decodeJournalRecord, type PvExtentRange } from '../records/records.js';

export interface JournalRecordBytes {
  readonly seq: number;
  readonly payload: Uint8Array;
}

export interface RejectedRecord {
  readonly host: string;
  readonly seq: number;
  readonly reason: string;
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
}

/** An applied allocation whose LV size afterwards differs from what the host computed. */
export interface SizeMismatch {
  readonly host: string;
  readonly seq: number;
  readonly lv: string;
  readonly expectedExtentCount: number;
  readonly actualExtentCount: number;
}

export interface ReplayPlan {
  readonly changes: readonly MetadataChange[];
  readonly hosts: readonly HostReplayPlan[];
  readonly sizeMismatches: readonly SizeMismatch[];
}

/** Converts record ranges (PV uuids) to model ranges (device paths); undefined if a PV is unknown. */
export function toDeviceRanges(vg: VgMetadata, ranges: readonly PvExtentRange[]): PhysicalRange[] | undefined {
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

export function poolOf(vg: VgMetadata, host: string): ExtentSet {
  const free = vg.lvs.find((lv) => lv.name === hostLvNames(host).free);
  if (free === undefined) return ExtentSet.empty();
  const segments = linearSegments(free);
  assert(segments !== undefined, `free LV ${free.name} is not linear`);
  return ExtentSet.fromRanges(segments);
}

/** Plans the replay of `recordsByHost` (each list contiguous from the host's applied seq + 1). */
export function planReplay(vg: VgMetadata, thinlv: ThinlvVg, recordsByHost: ReadonlyMap<string, readonly JournalRecordBytes[]>): ReplayPlan {
  const changes: MetadataChange[] = [];
  const hosts: HostReplayPlan[] = [];
  const lvsByName = new Map(vg.lvs.map((lv) => [lv.name, lv]));
  const lvSizes = new Map(vg.lvs.map((lv) => [lv.name, lvExtentCount(lv)]));
  const sizeMismatches: SizeMismatch[] = [];

  for (const [host, records] of recordsByHost) {
    const info = thinlv.hosts.get(host);
    assert(info !== undefined, `replay for unknown host ${host}`);
    if (records.length === 0) continue;
    const names = hostLvNames(host);
    let pool = poolOf(vg, host);
    const poolBefore = pool;
    const rejected: RejectedRecord[] = [];
    let movedExtentCount = 0;
    let releasedExtentCount = 0;
    let expectedSeq = info.appliedSeq + 1;
    let activeLvCount = info.activeLvCount;

    for (const record of records) {
      assert(record.seq === expectedSeq, `journal of ${host} skipped from seq ${expectedSeq - 1} to ${record.seq}`, { host });
      expectedSeq++;
      const reject = (reason: string): void => {
        rejected.push({ host, seq: record.seq, reason });
      };
      const decoded = decodeJournalRecord(record.payload);
      if (!decoded.ok) {
        reject(`undecodable: ${decoded.reason}`);
        continue;
      }
      if (decoded.record.kind === 'activity') {
        activeLvCount = decoded.record.activeLvCount;
        continue;
      }
      const ranges = toDeviceRanges(vg, decoded.record.ranges);
      if (ranges === undefined) {
        reject('names a PV that is not in the VG');
        continue;
      }
      const claimed = ExtentSet.fromRanges(ranges);
      const claimedCount = ranges.reduce((sum, r) => sum + r.extentCount, 0);
      if (claimed.extentCount !== claimedCount) {
        reject('lists one extent twice');
        continue;
      }
      if (!pool.containsAll(claimed)) {
        reject(`claims extents outside ${names.free}: ${claimed.difference(pool).toString()}`);
        continue;
      }
      const target = decoded.record.kind === 'allocate' ? lvsByName.get(decoded.record.lv) : undefined;
      // Hosts grow thin LVs only: a record naming a ring, a pool or an LV thinlv does not
      // manage is a bug or an attack, and moving extents into it would break that LV.
      if (decoded.record.kind === 'allocate' && target !== undefined && !thinlv.thinLvs.has(target.name)) {
        reject(`names ${target.name}, which is not a thin LV`);
        continue;
      }
      pool = pool.difference(claimed);
      if (decoded.record.kind === 'allocate' && target !== undefined && target.uuid === decoded.record.lvUuid) {
        changes.push({ kind: 'moveRanges', fromLv: names.free, toLv: target.name, ranges });
        movedExtentCount += claimedCount;
        const sizeBefore = lvSizes.get(target.name) ?? 0;
        lvSizes.set(target.name, sizeBefore + claimedCount);
        if (sizeBefore + claimedCount !== decoded.record.extentCountAfter) {
          // The host mapped these extents at a different logical offset than replay appends
          // them (the LV was changed on the master meanwhile). Applied, but reported.
          sizeMismatches.push({ host, seq: record.seq, lv: target.name, expectedExtentCount: decoded.record.extentCountAfter, actualExtentCount: sizeBefore + claimedCount });
        }
      } else {
        // A return, or an allocation for an LV removed since: the extents go back to VG free space.
        changes.push({ kind: 'releaseRanges', lv: names.free, ranges });
        releasedExtentCount += claimedCount;
      }
    }

    const appliedSeqAfter = expectedSeq - 1;
    if (pool.isEmpty() && !poolBefore.isEmpty()) changes.push({ kind: 'removeLv', name: names.free });
    changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.appliedSeq}${appliedSeqAfter}`, replacingPrefix: TAG.appliedSeq });
    if (rejected.length > 0) {
      changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.rejectedCount}${info.rejectedCount + rejected.length}`, replacingPrefix: TAG.rejectedCount });
    }
    if (activeLvCount !== info.activeLvCount) {
      changes.push({ kind: 'setTag', lv: names.journal, tag: `${TAG.activeLvCount}${activeLvCount}`, replacingPrefix: TAG.activeLvCount });
    }
    hosts.push({
      host,
      appliedSeqBefore: info.appliedSeq,
      appliedSeqAfter,
      appliedRecordCount: records.length - rejected.length,
      movedExtentCount,
      releasedExtentCount,
      rejected,
      poolAfter: pool,
    });
  }
  return { changes, hosts, sizeMismatches };
}
