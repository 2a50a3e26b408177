// How full a thinlv VG is: `thinlv free`'s numbers, from one metadata snapshot and
// each host's journal records after its applied seq. Pure: the CLI reads, this counts.
//
//   VG extents = thin LVs + ordinary LVs + thinlv metadata + Σ pools (as in metadata) + free
//   pool (as in metadata) of host h = pool_h + unreplayed_h
//     unreplayed_h  extents h has journaled out of its pool (allocations to LVs, returns
//                   to VG free) that the master has not replayed into metadata yet
//     pool_h        what h can still allocate from without the master
//   committed = VG extents - free   (everything allocated to any LV, pools included)
//   level     = critical when committed >= criticalPermille of the VG,
//               warning  when committed >= warnPermille, else ok
//
// Every extent is counted once: by its LV's physical segments, and free as the PVs less
// the LVs. Metadata with an extent in two LVs is refused (`thinlv check` names them),
// so the sum above is an invariant, asserted on every report.
//
// Unreplayed records are counted as replay will apply them (src/replay/planReplay.ts):
// a record that does not decode, names an unknown PV or an extent twice, or extents outside what is left of
// the host's pool moves nothing and is counted as ignored. Records replay refuses for
// the allocation rule (src/replay/allocationRule.ts: owner, virtual size, size) are
// counted as allocations: a host refuses such an extend before it journals anything.

import { ExtentSet } from '../extent/extentSet.js';
import { hostLvNames, readThinlvVg, type AlertLevels, type ThinlvVg } from '../format/thinlvVg.js';
import { ErrorCode, ThinlvError, assert } from '../errors.js';
import { ownedRanges, pvExtents } from '../metadata/checkLayout.js';
import { SECTOR_BYTES, type VgLayout } from '../metadata/vgModel.js';
import { decodeJournalRecord } from '../records/records.js';
import { toDeviceRanges, type JournalRecordBytes } from '../replay/planReplay.js';
import { reserveExtentCount } from '../pool/planRefill.js';
import { growthReport, soonestFull, type GrowthReport } from './growth.js';
import type { PublishedStatus } from './publishedStatus.js';

const NOT_READ: PublishedStatus = { published: false, reason: 'the master status was not read' };

/** A host's journal as the reader found it: its records after the applied seq (undecoded), or why it could not be read. */
export type HostJournal = { readonly readable: true; readonly records: readonly JournalRecordBytes[] } | { readonly readable: false; readonly reason: string };

export type AlertLevel = 'ok' | 'warning' | 'critical';

export interface HostFreeSpace {
  readonly host: string;
  readonly appliedSeq: number;
  /** What the host can still allocate from: its free LV less its unreplayed records. */
  readonly poolExtents: number;
  /** Journaled out of the pool, not yet replayed (allocations and returns). */
  readonly unreplayedExtents: number;
  /** Of unreplayedExtents, those going back to VG free space (returns, allocations to LVs removed since). */
  readonly unreplayedReturnExtents: number;
  /** Records after the applied seq (of every kind). */
  readonly unreplayedRecords: number;
  /** Of those, records replay would refuse (undecodable, unknown PV, an extent twice, extents outside the pool): they move nothing. */
  readonly ignoredRecords: number;
  readonly journalReadable: boolean;
  /** Why the journal could not be read; null when it was. */
  readonly journalError: string | null;
}

/** `thinlv free --json`: documented in README.md; add fields, never rename. */
export interface FreeSpaceReport {
  readonly vg: string;
  readonly seqno: number;
  readonly extentSizeBytes: number;
  readonly extentCount: number;
  readonly thinLvCount: number;
  readonly thinAllocatedExtents: number;
  readonly otherAllocatedExtents: number;
  readonly thinlvMetadataExtents: number;
  readonly poolExtents: number;
  readonly unreplayedExtents: number;
  readonly freeExtents: number;
  readonly reserveExtents: number;
  readonly committedExtents: number;
  readonly virtualBytes: number;
  readonly overcommitRatio: number;
  readonly committedRatio: number;
  readonly level: AlertLevel;
  readonly warnRatio: number;
  readonly criticalRatio: number;
  readonly hosts: readonly HostFreeSpace[];
  /** When free space and host pools run out at the recent rate (the sooner of growth's windows); null without enough history or growth. */
  readonly timeToFullSeconds: number | null;
  /** Allocation rates and top growers from the master's published history. */
  readonly growth: GrowthReport;
}

/** Extents per kind of LV, from metadata alone. */
interface LvCategories {
  readonly thin: number;
  readonly other: number;
  readonly thinlvMetadata: number;
  readonly pools: ReadonlyMap<string, number>;
}

/**
 * The report for `vg`. `journals` holds every host's journal (by host name) as read
 * after this very metadata was read; `alertLevels` come from readAlertLevels.
 */
export function computeFreeSpace(vg: VgLayout, journals: ReadonlyMap<string, HostJournal>, alertLevels: AlertLevels, published: PublishedStatus = NOT_READ): FreeSpaceReport {
  const thinlv = readThinlvVg(vg);
  const extentCount = pvExtents(vg).extentCount;
  const owned = ExtentSet.fromRanges(ownedRanges(vg).map((o) => o.range));
  const freeExtents = extentCount - owned.extentCount;
  const categories = categoriseLvs(vg, thinlv);
  const poolTotal = sum(categories.pools.values());
  const allocated = categories.thin + categories.other + categories.thinlvMetadata + poolTotal;
  if (allocated !== owned.extentCount) {
    throw new ThinlvError(ErrorCode.unsupportedMetadata, `VG ${vg.name}'s LVs hold ${allocated} extents but cover only ${owned.extentCount}: some extent is in two LVs; run "thinlv check ${vg.name}"`, {
      vg: vg.name,
      allocatedExtentCount: allocated,
      coveredExtentCount: owned.extentCount,
    });
  }
  const hosts = [...thinlv.hosts.keys()].sort().map((host) => hostFreeSpace(vg, thinlv, host, journals.get(host)));
  const unreplayedExtents = sum(hosts.map((h) => h.unreplayedExtents));
  const netPools = sum(hosts.map((h) => h.poolExtents));
  // I2, as far as metadata and the journals read can tell.
  assert(categories.thin + categories.other + categories.thinlvMetadata + netPools + unreplayedExtents + freeExtents === extentCount, `free-space categories of VG ${vg.name} do not add up to its ${extentCount} extents`, {
    categories: { ...categories, pools: Object.fromEntries(categories.pools) },
    netPools,
    unreplayedExtents,
    freeExtents,
  });
  const extentSizeBytes = vg.extentSizeSectors * SECTOR_BYTES;
  const committedExtents = extentCount - freeExtents;
  const virtualBytes = sum([...thinlv.thinLvs.values()].map((t) => t.virtualBytes));
  const growth = growthReport(published, freeExtents + netPools);
  return {
    vg: vg.name,
    seqno: vg.seqno,
    extentSizeBytes,
    extentCount,
    thinLvCount: thinlv.thinLvs.size,
    thinAllocatedExtents: categories.thin,
    otherAllocatedExtents: categories.other,
    thinlvMetadataExtents: categories.thinlvMetadata,
    poolExtents: netPools,
    unreplayedExtents,
    freeExtents,
    reserveExtents: reserveExtentCount(vg, thinlv.settings.reservePermille),
    committedExtents,
    virtualBytes,
    overcommitRatio: extentCount === 0 ? 0 : virtualBytes / (extentCount * extentSizeBytes),
    committedRatio: extentCount === 0 ? 0 : committedExtents / extentCount,
    level: alertLevel(committedExtents, extentCount, alertLevels),
    warnRatio: alertLevels.warnPermille / 1000,
    criticalRatio: alertLevels.criticalPermille / 1000,
    hosts,
    timeToFullSeconds: soonestFull(growth),
    growth,
  };
}

/** The level for `committed` of `total` extents; compared in whole numbers, so 750‰ of 1000 extents is warning at exactly 750. */
export function alertLevel(committed: number, total: number, levels: AlertLevels): AlertLevel {
  if (committed * 1000 >= levels.criticalPermille * total) return 'critical';
  if (committed * 1000 >= levels.warnPermille * total) return 'warning';
  return 'ok';
}


/**
 * Each LV's physical extents, by kind: a thin LV (thinlv_virtual_bytes tag), a host's
 * pool (thinlv_<host>_free), thinlv's own LVs (every host's journal and grants, all LVs
 * of a host left half-added or half-removed, the master's status), or anything else.
 */
function categoriseLvs(vg: VgLayout, thinlv: ThinlvVg): LvCategories {
  const poolOwner = new Map([...thinlv.hosts.keys()].map((host) => [hostLvNames(host).free, host]));
  const metadataLvs = new Set<string>();
  for (const host of thinlv.hosts.keys()) metadataLvs.add(hostLvNames(host).journal).add(hostLvNames(host).grants);
  for (const host of thinlv.incompleteHosts) for (const name of Object.values(hostLvNames(host))) metadataLvs.add(name);
  if (thinlv.statusLv !== undefined) metadataLvs.add(thinlv.statusLv.name);
  const pools = new Map([...thinlv.hosts.keys()].map((host) => [host, 0]));
  let thin = 0;
  let other = 0;
  let thinlvMetadata = 0;
  for (const { owner, range } of ownedRanges(vg)) {
    const host = poolOwner.get(owner);
    if (host !== undefined) pools.set(host, (pools.get(host) ?? 0) + range.extentCount);
    else if (thinlv.thinLvs.has(owner)) thin += range.extentCount;
    else if (metadataLvs.has(owner)) thinlvMetadata += range.extentCount;
    else other += range.extentCount;
  }
  return { thin, other, thinlvMetadata, pools };
}

function hostFreeSpace(vg: VgLayout, thinlv: ThinlvVg, host: string, journal: HostJournal | undefined): HostFreeSpace {
  const info = thinlv.hosts.get(host);
  assert(info !== undefined, `free-space report for unknown host ${host}`);
  assert(journal !== undefined, `free-space report without host ${host}'s journal (read it, or say why it could not be)`, { host });
  const pool = poolExtentSet(vg, host);
  const base = { host, appliedSeq: info.appliedSeq };
  if (!journal.readable) {
    // Unknown: the pool is shown as metadata has it, which may include allocations not replayed yet.
    return { ...base, poolExtents: pool.extentCount, unreplayedExtents: 0, unreplayedReturnExtents: 0, unreplayedRecords: 0, ignoredRecords: 0, journalReadable: false, journalError: journal.reason };
  }
  const records = journal.records.filter((r) => r.seq > info.appliedSeq);
  const spent = spentFromPool(vg, pool, records);
  return {
    ...base,
    poolExtents: pool.extentCount - spent.allocated - spent.returned,
    unreplayedExtents: spent.allocated + spent.returned,
    unreplayedReturnExtents: spent.returned,
    unreplayedRecords: records.length,
    ignoredRecords: spent.ignored,
    journalReadable: true,
    journalError: null,
  };
}

function poolExtentSet(vg: VgLayout, host: string): ExtentSet {
  const name = hostLvNames(host).free;
  return ExtentSet.fromRanges(ownedRanges(vg).filter((o) => o.owner === name).map((o) => o.range));
}

/** What `records` take out of `pool`, in seq order, checked as replay checks them. */
function spentFromPool(vg: VgLayout, pool: ExtentSet, records: readonly JournalRecordBytes[]): { allocated: number; returned: number; ignored: number } {
  const lvUuids = new Map(vg.lvs.map((lv) => [lv.name, lv.uuid]));
  let left = pool;
  let allocated = 0;
  let returned = 0;
  let ignored = 0;
  for (const { payload } of [...records].sort((a, b) => a.seq - b.seq)) {
    const decoded = decodeJournalRecord(payload);
    if (!decoded.ok) {
      ignored += 1;
      continue;
    }
    const record = decoded.record;
    if (record.kind !== 'allocate' && record.kind !== 'return') continue;
    const ranges = toDeviceRanges(vg, record.ranges);
    const claimed = ExtentSet.fromRanges(ranges ?? []);
    if (ranges === undefined || claimed.extentCount !== sum(ranges.map((r) => r.extentCount)) || !left.containsAll(claimed)) {
      ignored += 1;
      continue;
    }
    left = left.difference(claimed);
    // An allocation to an LV removed since goes back to VG free space, as replay does it.
    if (record.kind === 'allocate' && lvUuids.get(record.lv) === record.lvUuid) allocated += claimed.extentCount;
    else returned += claimed.extentCount;
  }
  return { allocated, returned, ignored };
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
