// The invariants of ../shared/DESIGN.md, checked after every simulator step from
// what the simulated world holds (LVM's metadata, the rings on the disk, the
// kernels' dm tables), never from what thinlv's processes believe:
//   I1  no extent in two LVs, in metadata and in metadata plus unreplayed records
//   I2  no extent lost: every unreplayed allocation comes out of its host's free LV
//   I4  a host allocates only from its own free LV (records on disk, and the live
//       allocators' pools, lie inside it)
//   I3  every acknowledged extend is in metadata plus unreplayed records exactly
//       once, at the logical position the host used (per extent here; ackLedger.ts
//       keeps the acknowledgements)
//   I6  an active LV's dm table equals its metadata segments plus its unreplayed ones
//   I8  a commit never cuts a thin LV a host holds (and journalWriters.ts: one
//       daemon writes a host's journal)
//   and a host's applied grant generation is one its grants LV reached in metadata
//   and the master consumes a journal only through what metadata says is applied.

import { openRingReader, type BlockRegion, type RingReader } from '../../journal/index.js';
import { readConsumerState } from '../../journal/src/ringChain.js';
import { dmName } from '../../src/dm/deviceMapper.js';
import type { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { formatDmTable, linearTable } from '../../src/extent/dmTable.js';
import { ExtentSet } from '../../src/extent/extentSet.js';
import type { LinearSegment, PhysicalRange } from '../../src/extent/types.js';
import { hostLvNames, readThinlvVg, type ThinlvVg } from '../../src/format/thinlvVg.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { linearSegments, type VgMetadata } from '../../src/metadata/vgModel.js';
import { decodeJournalRecord, type JournalRecord } from '../../src/records/records.js';
import { toDeviceRanges } from '../../src/replay/planReplay.js';
import { ringLocation, type RegionOpener } from '../../src/rings/ringRegions.js';
import type { SimHost } from './simHost.js';

export class InvariantViolation extends Error {}

// Metadata changes only at a commit while the checker runs after every step: what it
// derives from metadata alone is computed once per version (the VgMetadata object LVM
// holds, replaced at each restore) and kept beside it.
const thinlvByVersion = new WeakMap<VgMetadata, ThinlvVg>();
const extentsByVersion = new WeakMap<VgMetadata, Map<string, ExtentSet>>();
const freeByVersion = new WeakMap<VgMetadata, number>();

/** Extents of `vg` in no LV, once per metadata version. */
export function freeExtentCountOf(vg: VgMetadata): number {
  let free = freeByVersion.get(vg);
  if (free === undefined) {
    free = computeFreeExtents(vg).extentCount;
    freeByVersion.set(vg, free);
  }
  return free;
}

/** readThinlvVg of `vg`, once per metadata version (the result is only read). */
export function thinlvOf(vg: VgMetadata): ThinlvVg {
  let thinlv = thinlvByVersion.get(vg);
  if (thinlv === undefined) {
    thinlv = readThinlvVg(vg);
    thinlvByVersion.set(vg, thinlv);
  }
  return thinlv;
}

const violated = (message: string): never => {
  throw new InvariantViolation(message);
};

/** An extend the host acknowledged: where its extents went. */
export interface Ack {
  readonly host: string;
  readonly journalRingId: string;
  readonly seq: number;
  readonly lv: string;
  readonly lvUuid: string;
  readonly ranges: readonly PhysicalRange[];
  readonly extentCountAfter: number;
}

export interface UnreplayedOnDisk {
  readonly host: string;
  readonly journalRingId: string;
  readonly appliedSeq: number;
  readonly records: readonly { seq: number; record: JournalRecord; ranges: readonly PhysicalRange[] }[];
}

/**
 * The checker's kept journal readers, by ring id: opening one surveys the whole ring. With
 * each, the records it decoded by seq, and their bytes: a record is decoded again only when
 * the ring holds other bytes at that seq (every step reads every unreplayed record).
 */
export type CheckerReaders = Map<string, { region: BlockRegion; reader: RingReader; openedAtSeq: number; decoded: DecodedBySeq }>;
type DecodedBySeq = Map<number, { payload: Uint8Array; record: JournalRecord }>;

/** Readers are reopened after this many records, so what they remember stays bounded. */
const CHECKER_READER_SPAN = 4096;

/** Each member host's records after its applied seq, read from its ring as the master would. */
export async function readUnreplayed(vg: VgMetadata, regions: RegionOpener, readers: CheckerReaders): Promise<Map<string, UnreplayedOnDisk>> {
  const out = new Map<string, UnreplayedOnDisk>();
  const members = thinlvOf(vg).hosts;
  const ringIds = new Set([...members.values()].map((h) => h.journalLv.uuid));
  for (const ringId of [...readers.keys()]) if (!ringIds.has(ringId)) readers.delete(ringId);
  for (const info of members.values()) {
    const location = ringLocation(vg, hostLvNames(info.host).journal);
    let kept = readers.get(location.ringId);
    if (kept !== undefined && info.appliedSeq - kept.openedAtSeq > CHECKER_READER_SPAN) {
      readers.delete(location.ringId);
      kept = undefined;
    }
    if (kept === undefined) {
      try {
        const region = await regions.open(location);
        kept = { region, reader: await openRingReader(region, { ringId: location.ringId }), openedAtSeq: info.appliedSeq, decoded: new Map() };
      } catch (error) {
        // A host add that crashed before initialising its ring: nothing can be in it.
        if (info.appliedSeq === 0) {
          out.set(info.host, { host: info.host, journalRingId: location.ringId, appliedSeq: 0, records: [] });
          continue;
        }
        throw error;
      }
      readers.set(location.ringId, kept);
    }
    const reader = kept.reader;
    const consumedOnDisk = (await readConsumerState(kept.region, reader.header)).consumedSeq;
    if (consumedOnDisk > info.appliedSeq) violated(`journal of ${info.host} consumed through ${consumedOnDisk}, past its applied seq ${info.appliedSeq} in metadata`);
    const { records } = await reader.read({ fromSeq: info.appliedSeq + 1 });
    const cache = kept.decoded;
    for (const seq of cache.keys()) if (seq <= info.appliedSeq) cache.delete(seq);
    const decoded = records.map((r) => {
      const record = decodedRecord(cache, r, info.host);
      const raw = record.kind === 'allocate' || record.kind === 'return' ? record.ranges : [];
      const ranges = toDeviceRanges(vg, raw) ?? violated(`journal of ${info.host} seq ${r.seq} names an unknown PV`);
      return { seq: r.seq, record, ranges };
    });
    out.set(info.host, { host: info.host, journalRingId: location.ringId, appliedSeq: info.appliedSeq, records: decoded });
  }
  return out;
}

function decodedRecord(cache: DecodedBySeq, r: { seq: number; payload: Uint8Array }, host: string): JournalRecord {
  const known = cache.get(r.seq);
  if (known !== undefined && Buffer.compare(known.payload, r.payload) === 0) return known.record;
  const d = decodeJournalRecord(r.payload);
  if (!d.ok) return violated(`journal of ${host} seq ${r.seq} has a valid checksum but cannot be decoded: ${d.reason}`);
  cache.set(r.seq, { payload: Uint8Array.from(r.payload), record: d.record });
  return d.record;
}

/** Each LV's extents, by name; I1 and I2 on metadata alone are checked when a version is first seen. */
function lvExtents(vg: VgMetadata): Map<string, ExtentSet> {
  let byLv = extentsByVersion.get(vg);
  if (byLv !== undefined) return byLv;
  byLv = new Map(vg.lvs.map((lv) => [lv.name, ExtentSet.fromRanges(linearSegments(lv) ?? violated(`LV ${lv.name} is not linear`))]));
  const sum = [...byLv.values()].reduce((total, extents) => total + extents.extentCount, 0);
  // Disjoint exactly when the union is as large as the sum; if not, find the LV to name.
  if (ExtentSet.fromRanges([...byLv.values()].flatMap((extents) => extents.ranges())).extentCount !== sum) {
    let all = ExtentSet.empty();
    for (const [name, extents] of byLv) {
      if (all.overlaps(extents)) violated(`I1: LV ${name} shares extents with another LV in metadata`);
      all = all.union(extents);
    }
  }
  const pvTotal = vg.pvs.reduce((s, pv) => s + pv.peCount, 0);
  if (sum > pvTotal) violated(`I2: LVs hold ${sum} extents, the PVs ${pvTotal}`);
  extentsByVersion.set(vg, byLv);
  return byLv;
}

/** I1, I2, I4 on metadata plus the rings. */
export function checkExtents(vg: VgMetadata, unreplayed: ReadonlyMap<string, UnreplayedOnDisk>): void {
  const byLv = lvExtents(vg);
  if (unreplayedRecordsFit(byLv, unreplayed)) return;
  let journaled = ExtentSet.empty();
  for (const host of unreplayed.values()) {
    const free = byLv.get(hostLvNames(host.host).free) ?? ExtentSet.empty();
    for (const entry of host.records) {
      if (entry.ranges.length === 0) continue;
      const extents = ExtentSet.fromRanges(entry.ranges);
      // Replay rejects what is not in the pool; an accepted-looking record outside it is I4 broken
      // only if it was acknowledged (checkAcks); here: two unreplayed records never share extents.
      if (journaled.overlaps(extents)) violated(`I1: ${host.host} seq ${entry.seq} (${entry.record.kind}) takes extents another unreplayed record took`);
      journaled = journaled.union(extents);
      if (!free.containsAll(extents)) violated(`I4: ${host.host} seq ${entry.seq} (${entry.record.kind}) holds extents outside thinlv_${host.host}_free`);
    }
  }
}

/**
 * The passing case of checkExtents in one set per host: no two unreplayed records share an
 * extent (their union is as large as their sum) and each host's lie in its free LV. False
 * when either fails: the record-by-record walk then names the record.
 */
function unreplayedRecordsFit(byLv: ReadonlyMap<string, ExtentSet>, unreplayed: ReadonlyMap<string, UnreplayedOnDisk>): boolean {
  const all: PhysicalRange[] = [];
  for (const host of unreplayed.values()) {
    const ranges = host.records.flatMap((entry) => entry.ranges);
    const free = byLv.get(hostLvNames(host.host).free) ?? ExtentSet.empty();
    if (ranges.length > 0 && !free.containsAll(ExtentSet.fromRanges(ranges))) return false;
    all.push(...ranges);
  }
  return ExtentSet.fromRanges(all).extentCount === all.reduce((sum, r) => sum + r.extentCount, 0);
}

/** I4 on the hosts: a live allocator's pool lies in its free LV, less what it journaled. */
export function checkPools(vg: VgMetadata, unreplayed: ReadonlyMap<string, UnreplayedOnDisk>, hosts: readonly SimHost[]): void {
  const byLv = lvExtents(vg);
  for (const host of hosts) {
    const name = host.deps.host;
    const onDisk = unreplayed.get(name);
    if (onDisk === undefined || onDisk.journalRingId !== host.journalRingId || host.halted !== undefined) continue;
    const free = byLv.get(hostLvNames(name).free) ?? ExtentSet.empty();
    const taken = ExtentSet.fromRanges(onDisk.records.flatMap((r) => r.ranges));
    // A host applies only grants its grants ring carried, each committed first: a generation
    // past metadata's is state of an earlier incarnation of the host (a removed and re-added
    // host resurrecting its old state would ignore every new grant, and starve).
    const applied = host.allocator.status().lastGrantGeneration;
    const committed = thinlvOf(vg).hosts.get(name)?.grantGeneration ?? 0;
    if (applied > committed) violated(`grants: ${name} applied grant generation ${applied}, but its grants LV is at generation ${committed} in metadata`);
    const pool = host.allocator.poolExtents();
    if (!free.containsAll(pool)) violated(`I4: ${name}'s pool holds ${pool.difference(free).extentCount} extents outside its free LV: ${pool.difference(free).toString()}`);
    if (pool.overlaps(taken)) violated(`I1: ${name}'s pool still holds ${pool.intersection(taken).extentCount} extents its journal gave to an LV`);
  }
}

/**
 * Each LV's segments (by uuid) as metadata plus every unreplayed allocation of it, for one
 * check of one world: built per LV on first use, since many acknowledged extends and
 * active LVs ask for the same few LVs.
 */
export class Layouts {
  private readonly lvByUuid: Map<string, VgMetadata['lvs'][number]>;
  /** Unreplayed allocations by LV uuid, hosts in name order, records in seq order. */
  private readonly allocations = new Map<string, PhysicalRange[]>();
  private readonly built = new Map<string, LinearSegment[]>();

  constructor(vg: VgMetadata, unreplayed: ReadonlyMap<string, UnreplayedOnDisk>) {
    this.lvByUuid = new Map(vg.lvs.map((lv) => [lv.uuid, lv]));
    for (const host of [...unreplayed.values()].sort((a, b) => (a.host < b.host ? -1 : 1))) {
      for (const entry of host.records) {
        if (entry.record.kind !== 'allocate') continue;
        const list = this.allocations.get(entry.record.lvUuid) ?? [];
        list.push(...entry.ranges);
        this.allocations.set(entry.record.lvUuid, list);
      }
    }
  }

  has(lvUuid: string): boolean {
    return this.lvByUuid.has(lvUuid);
  }

  /** Segments in logical order; undefined when the LV is not in metadata. */
  of(lvUuid: string): LinearSegment[] | undefined {
    const lv = this.lvByUuid.get(lvUuid);
    if (lv === undefined) return undefined;
    let segments = this.built.get(lvUuid);
    if (segments !== undefined) return segments;
    segments = [...(linearSegments(lv) ?? [])];
    let next = segments.reduce((s, seg) => s + seg.extentCount, 0);
    for (const r of this.allocations.get(lvUuid) ?? []) {
      segments.push({ ...r, logicalStart: next });
      next += r.extentCount;
    }
    this.built.set(lvUuid, segments);
    return segments;
  }
}

/** "pv:pe" at logical extent `logical` of segments in logical order, or undefined. */
export function physicalAt(segments: readonly LinearSegment[], logical: number): string | undefined {
  const s = segmentAt(segments, logical);
  return s === undefined ? undefined : `${s.pv}:${s.firstExtent + logical - s.logicalStart}`;
}

/** The segment holding logical extent `logical` (binary search over logical order), or undefined. */
function segmentAt(segments: readonly LinearSegment[], logical: number): LinearSegment | undefined {
  let low = 0;
  let high = segments.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const s = segments[middle]!;
    if (logical < s.logicalStart) high = middle - 1;
    else if (logical >= s.logicalStart + s.extentCount) low = middle + 1;
    else return s;
  }
  return undefined;
}

/** Each extent an acknowledged extend gave: its logical position and "pv:pe". */
export function ackExtents(ack: Ack): { logical: number; want: string }[] {
  const out: { logical: number; want: string }[] = [];
  let logical = ack.extentCountAfter - ack.ranges.reduce((s, r) => s + r.extentCount, 0);
  for (const r of ack.ranges) {
    for (let i = 0; i < r.extentCount; i++, logical++) out.push({ logical, want: `${r.pv}:${r.firstExtent + i}` });
  }
  return out;
}

/**
 * I3 for a pending acknowledged extend: every extent it gave sits at the logical position
 * the host used. Walks its ranges against the segments a run at a time (the check runs
 * every step for every unreplayed extend); the first extent out of place is reported as
 * checkAckExtent() reports it.
 */
export function checkAckRanges(ack: Ack, layout: readonly LinearSegment[]): void {
  let logical = ack.extentCountAfter - ack.ranges.reduce((sum, r) => sum + r.extentCount, 0);
  for (const r of ack.ranges) {
    for (let done = 0; done < r.extentCount; ) {
      const s = segmentAt(layout, logical + done);
      const offset = s === undefined ? 0 : logical + done - s.logicalStart;
      if (s === undefined || s.pv !== r.pv || s.firstExtent + offset !== r.firstExtent + done) {
        checkAckExtent(ack, layout, logical + done, `${r.pv}:${r.firstExtent + done}`);
        throw new InvariantViolation(`checkAckRanges: ${ack.host} seq ${ack.seq} logical extent ${logical + done} is out of place, but checkAckExtent passed it`);
      }
      done += Math.min(s.extentCount - offset, r.extentCount - done);
    }
    logical += r.extentCount;
  }
}

/** I3 for one extent of an acknowledged extend: it sits at the logical position the host used. */
export function checkAckExtent(ack: Ack, layout: readonly LinearSegment[], logical: number, want: string): void {
  const found = physicalAt(layout, logical);
  if (found !== want) violated(`I3: acknowledged extend ${ack.host} seq ${ack.seq} of ${ack.lv}: logical extent ${logical} is ${found ?? 'missing'}, the host gave it ${want}`);
}

/**
 * I8 at a commit that shrank thin LV `lvName` (as `before` names it): no host held it
 * across the commit. A holder may have mapped the extents cut (its table, its VM's data)
 * and may extend the LV again at positions the cut moved; only a holder whose release
 * this commit applied (`releasedBy`) gave it up first.
 */
export function checkCutUnheld(before: VgMetadata, lvName: string, releasedBy: ReadonlySet<string>): void {
  const owner = thinlvOf(before).thinLvs.get(lvName)?.owner;
  if (owner !== undefined && !releasedBy.has(owner)) violated(`I8: a commit cut thin LV ${lvName} while host ${owner} held it (it may map the extents cut)`);
}

/** I6 for one live host: each active LV's kernel table is metadata plus unreplayed segments. */
export function checkTables(vg: VgMetadata, layouts: Layouts, host: SimHost, dm: FakeDeviceMapper): void {
  const pvs = new Map(vg.pvs.map((pv) => [pv.device, { devicePath: pv.device, peStartSectors: pv.peStartSectors }]));
  for (const lvName of host.allocator.status().activeLvs) {
    const lv = thinlvOf(vg).thinLvs.get(lvName)?.lv ?? vg.lvs.find((l) => l.name === lvName);
    if (lv === undefined) continue;
    const layout = layouts.of(lv.uuid)!;
    const expected = formatDmTable(linearTable(layout, pvs, vg.extentSizeSectors));
    const live = dm.liveTableText(dmName(vg.name, lvName));
    if (live !== expected) violated(`I6: ${host.deps.host}'s table of ${lvName} is\n${live ?? '(none)'}\nbut metadata plus unreplayed records give\n${expected}`);
  }
}
