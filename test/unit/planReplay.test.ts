import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { InvariantError } from '../../src/errors.js';
import { ExtentSet } from '../../src/extent/extentSet.js';
import type { PhysicalRange } from '../../src/extent/types.js';
import { TAG, hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { applyChanges } from '../../src/metadata/applyChanges.js';
import { checkLayout, computeFreeExtents, pvExtents } from '../../src/metadata/checkLayout.js';
import { lvExtentCount, type VgMetadata } from '../../src/metadata/vgModel.js';
import { decodeJournalRecord, encodeJournalRecord, type JournalRecord, type PvExtentRange } from '../../src/records/records.js';
import { planReplay, type JournalRecordBytes, type ReplayPlan } from '../../src/replay/planReplay.js';
import {
  PV_SDB,
  PV_SDC,
  countingIdentity,
  extentList,
  extentListToRanges,
  extentsOfLv,
  flattenRanges,
  logicalExtents,
  lvNamed,
  range,
  thinlvLayoutArbitrary,
  thinlvVgMetadata,
  twoHostSpec,
  type ThinlvVgSpec,
} from './arbitraries/thinlvVg.js';

const UNKNOWN_PV_UUID = 'pv-uuid-not-in-this-vg';
const uuidByDevice = new Map([
  [PV_SDB.device, PV_SDB.uuid],
  [PV_SDC.device, PV_SDC.uuid],
]);

/** Record ranges name PVs by uuid; tests think in device paths. */
const byUuid = (ranges: readonly PhysicalRange[], pvUuid?: string): PvExtentRange[] =>
  ranges.map((r) => ({ pvUuid: pvUuid ?? uuidByDevice.get(r.pv)!, firstExtent: r.firstExtent, extentCount: r.extentCount }));

/** Stands for "the size replay will compute"; replay() below fills it in, as an honest host would. */
const AUTO_AFTER = 1_000_000;
const allocate = (lv: string, ranges: readonly PhysicalRange[], lvUuid = `uuid-${lv}`): JournalRecord => ({
  kind: 'allocate',
  lv,
  lvUuid,
  ranges: byUuid(ranges),
  extentCountAfter: AUTO_AFTER,
});
const giveBack = (ranges: readonly PhysicalRange[]): JournalRecord => ({ kind: 'return', ranges: byUuid(ranges) });
const journal = (firstSeq: number, records: readonly (JournalRecord | Uint8Array)[]): JournalRecordBytes[] =>
  records.map((record, i) => ({ seq: firstSeq + i, payload: record instanceof Uint8Array ? record : encodeJournalRecord(record) }));
const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

interface Replayed {
  readonly before: VgMetadata;
  readonly plan: ReplayPlan;
  readonly after: VgMetadata;
}

/** Plans the replay of `records` on `spec`'s VG and applies the plan as a commit would. */
function replay(spec: ThinlvVgSpec, records: Readonly<Record<string, readonly JournalRecordBytes[]>>): Replayed {
  const before = thinlvVgMetadata(spec);
  const plan = planReplay(before, readThinlvVg(before), withHonestSizes(before, records));
  const after = applyChanges(before, plan.changes, countingIdentity());
  return { before, plan, after };
}

/**
 * Fills in AUTO_AFTER sizes as the writing host would have: the LV's size so far plus
 * the record's extents, hosts in order, counting only allocations to an LV that exists
 * under the record's uuid.
 */
function withHonestSizes(vg: VgMetadata, records: Readonly<Record<string, readonly JournalRecordBytes[]>>): Map<string, JournalRecordBytes[]> {
  const sizes = new Map(vg.lvs.map((lv) => [lv.name, lvExtentCount(lv)]));
  const uuids = new Map(vg.lvs.map((lv) => [lv.name, lv.uuid]));
  const result = new Map<string, JournalRecordBytes[]>();
  for (const [host, list] of Object.entries(records)) {
    result.set(host, list.map((entry) => {
      const decoded = decodeJournalRecord(entry.payload);
      if (!decoded.ok || decoded.record.kind !== 'allocate' || uuids.get(decoded.record.lv) !== decoded.record.lvUuid) return entry;
      const record = decoded.record;
      const after = (sizes.get(record.lv) ?? 0) + record.ranges.reduce((n, r) => n + r.extentCount, 0);
      if (record.extentCountAfter !== AUTO_AFTER) return entry;
      sizes.set(record.lv, after);
      return { seq: entry.seq, payload: encodeJournalRecord({ ...record, extentCountAfter: after }) };
    }));
  }
  return result;
}

const hostPlan = (plan: ReplayPlan, host: string) => plan.hosts.find((h) => h.host === host)!;
const tagsOf = (vg: VgMetadata, lv: string): readonly string[] => lvNamed(vg, lv)?.tags ?? [];

describe('planReplay: applying records', () => {
  test("an allocate record moves its extents from the host's free LV to the end of the target LV", () => {
    const { plan, after } = replay(twoHostSpec(), { h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 4)])]) });
    expect(plan.changes).toContainEqual({ kind: 'moveRanges', fromLv: 'thinlv_h1_free', toLv: 'disk0', ranges: [range('/dev/sdb', 30, 4)] });
    expect(logicalExtents(after, 'disk0')).toEqual(flattenRanges([range('/dev/sdb', 10, 4), range('/dev/sdb', 30, 4)]));
    expect(extentsOfLv(after, 'thinlv_h1_free').equals(ExtentSet.fromRanges([range('/dev/sdb', 34, 16)]))).toBe(true);
    expect(hostPlan(plan, 'h1')).toMatchObject({ appliedSeqBefore: 0, appliedSeqAfter: 1, appliedRecordCount: 1, movedExtentCount: 4, releasedExtentCount: 0, rejected: [] });
  });

  test('record ranges named by PV uuid land on the matching device, in the order the record lists them', () => {
    const ranges = [range('/dev/sdc', 105, 3), range('/dev/sdb', 51, 2)];
    const { after } = replay(twoHostSpec(), { h2: journal(1, [allocate('disk2', ranges)]) });
    expect(logicalExtents(after, 'disk2')).toEqual(flattenRanges([range('/dev/sdc', 0, 2), ...ranges]));
  });

  test('several records for one LV append in seq order', () => {
    const { after } = replay(twoHostSpec(), {
      h1: journal(1, [allocate('disk1', [range('/dev/sdb', 40, 2)]), allocate('disk1', [range('/dev/sdb', 31, 1)]), allocate('disk0', [range('/dev/sdb', 35, 1)])]),
    });
    expect(logicalExtents(after, 'disk1')).toEqual(['/dev/sdb:20', '/dev/sdb:21', '/dev/sdb:40', '/dev/sdb:41', '/dev/sdb:31']);
    expect(logicalExtents(after, 'disk0')).toEqual([...flattenRanges([range('/dev/sdb', 10, 4)]), '/dev/sdb:35']);
  });

  test('an allocation whose LV size differs from what its host computed is rejected, its extents staying in the pool', () => {
    const before = thinlvVgMetadata(twoHostSpec());
    const disk1Size = lvNamed(before, 'disk1')!.segments.reduce((n, seg) => n + seg.extentCount, 0);
    const honest = { ...allocate('disk1', [range('/dev/sdb', 40, 2)]), extentCountAfter: disk1Size + 2 };
    const stale = { ...allocate('disk1', [range('/dev/sdb', 31, 1)]), extentCountAfter: disk1Size + 1 };
    const { plan, after } = replay(twoHostSpec(), { h1: journal(1, [honest, stale]) });
    expect(hostPlan(plan, 'h1').rejected).toEqual([{ host: 'h1', seq: 2, code: 'size-mismatch', reason: expect.stringMatching(/not the 3 the record says/) as unknown }]);
    expect(logicalExtents(after, 'disk1').slice(-2)).toEqual(['/dev/sdb:40', '/dev/sdb:41']);
    expect(extentsOfLv(after, 'thinlv_h1_free').has('/dev/sdb', 31)).toBe(true);
    expect(tagsOf(after, 'thinlv_h1_journal')).toContain(`${TAG.rejectedLast}2.size-mismatch`);
  });

  test("activity records set the host's active LV count, the last one winning, and move no extents", () => {
    const { plan, after } = replay(twoHostSpec(), {
      h1: journal(1, [{ kind: 'activity', activeLvCount: 3 }, allocate('disk1', [range('/dev/sdb', 40, 1)]), { kind: 'activity', activeLvCount: 2 }]),
    });
    expect(readThinlvVg(after).hosts.get('h1')).toMatchObject({ activeLvCount: 2, appliedSeq: 3 });
    expect(hostPlan(plan, 'h1')).toMatchObject({ appliedRecordCount: 3, movedExtentCount: 1, rejected: [] });
  });

  test('an allocation for an LV that no longer exists releases its extents to VG free space', () => {
    const { before, plan, after } = replay(twoHostSpec(), { h1: journal(1, [allocate('removed-disk', [range('/dev/sdb', 30, 5)])]) });
    expect(plan.changes).toContainEqual({ kind: 'releaseRanges', lv: 'thinlv_h1_free', ranges: [range('/dev/sdb', 30, 5)] });
    expect(computeFreeExtents(after).equals(computeFreeExtents(before).union(ExtentSet.fromRanges([range('/dev/sdb', 30, 5)])))).toBe(true);
    expect(hostPlan(plan, 'h1')).toMatchObject({ appliedRecordCount: 1, movedExtentCount: 0, releasedExtentCount: 5, rejected: [] });
  });

  test('an allocation for a namesake recreated under a new uuid releases its extents and leaves the namesake untouched', () => {
    const { before, plan, after } = replay(twoHostSpec(), { h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 5)], 'uuid-of-the-old-disk0')]) });
    expect(logicalExtents(after, 'disk0')).toEqual(logicalExtents(before, 'disk0'));
    expect(computeFreeExtents(after).has('/dev/sdb', 30)).toBe(true);
    expect(hostPlan(plan, 'h1').releasedExtentCount).toBe(5);
  });

  test('a return record releases its extents to VG free space', () => {
    const returned = [range('/dev/sdb', 45, 5), range('/dev/sdb', 30, 1)];
    const { before, plan, after } = replay(twoHostSpec(), { h1: journal(1, [giveBack(returned)]) });
    expect(computeFreeExtents(after).equals(computeFreeExtents(before).union(ExtentSet.fromRanges(returned)))).toBe(true);
    expect(extentsOfLv(after, 'thinlv_h1_free').equals(ExtentSet.fromRanges([range('/dev/sdb', 31, 14)]))).toBe(true);
    expect(hostPlan(plan, 'h1')).toMatchObject({ appliedRecordCount: 1, releasedExtentCount: 6 });
  });

  test('records of two hosts in one batch each apply from their own pool', () => {
    const { plan, after } = replay(twoHostSpec(), {
      h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 2)])]),
      h2: journal(1, [allocate('disk2', [range('/dev/sdc', 100, 2)])]),
    });
    expect(logicalExtents(after, 'disk0').slice(4)).toEqual(['/dev/sdb:30', '/dev/sdb:31']);
    expect(logicalExtents(after, 'disk2').slice(2)).toEqual(['/dev/sdc:100', '/dev/sdc:101']);
    expect(plan.hosts.map((h) => [h.host, h.movedExtentCount])).toEqual([
      ['h1', 2],
      ['h2', 2],
    ]);
  });

  test('a pool emptied by replay has its free LV removed in the same plan', () => {
    const { plan, after } = replay(twoHostSpec(), {
      h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 15)]), giveBack([range('/dev/sdb', 45, 5)])]),
    });
    expect(plan.changes).toContainEqual({ kind: 'removeLv', name: 'thinlv_h1_free' });
    expect(lvNamed(after, 'thinlv_h1_free')).toBeUndefined();
    expect(readThinlvVg(after).hosts.get('h1')?.freeLv).toBeUndefined();
    expect(hostPlan(plan, 'h1').poolAfter.isEmpty()).toBe(true);
  });

  test('a pool left with extents keeps its free LV', () => {
    const { plan } = replay(twoHostSpec(), { h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 19)])]) });
    expect(plan.changes.some((c) => c.kind === 'removeLv')).toBe(false);
    expect(hostPlan(plan, 'h1').poolAfter.toString()).toBe('/dev/sdb:49');
  });

  test("the applied seq tag becomes the last record's seq, replacing the old one", () => {
    const spec = twoHostSpec({ h1: { appliedSeq: 41 } });
    const { plan, after } = replay(spec, { h1: journal(42, [allocate('disk0', [range('/dev/sdb', 30, 1)]), giveBack([range('/dev/sdb', 31, 1)])]) });
    expect(tagsOf(after, 'thinlv_h1_journal').filter((t) => t.startsWith(TAG.appliedSeq))).toEqual([`${TAG.appliedSeq}43`]);
    expect(hostPlan(plan, 'h1')).toMatchObject({ appliedSeqBefore: 41, appliedSeqAfter: 43 });
    expect(readThinlvVg(after).hosts.get('h1')?.appliedSeq).toBe(43);
  });

  test('no thinlv_rejected tag is written when every record applied', () => {
    const { plan } = replay(twoHostSpec(), { h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 1)])]) });
    expect(plan.changes.filter((c) => c.kind === 'setTag' && c.tag.startsWith(TAG.rejectedCount))).toEqual([]);
  });

  test('hosts with no records produce no changes and no host plan', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const thinlv = readThinlvVg(vg);
    expect(planReplay(vg, thinlv, new Map())).toEqual({ changes: [], hosts: [], deniedClaims: [], deflates: [] });
    expect(planReplay(vg, thinlv, new Map([['h1', []], ['h2', []]]))).toEqual({ changes: [], hosts: [], deniedClaims: [], deflates: [] });
  });

  test('only the hosts that have records get changes', () => {
    const { plan, before, after } = replay(twoHostSpec(), { h1: [], h2: journal(1, [giveBack([range('/dev/sdb', 50, 1)])]) });
    expect(plan.hosts.map((h) => h.host)).toEqual(['h2']);
    expect(lvNamed(after, 'thinlv_h1_journal')).toEqual(lvNamed(before, 'thinlv_h1_journal'));
    expect(lvNamed(after, 'thinlv_h1_free')).toEqual(lvNamed(before, 'thinlv_h1_free'));
  });
});

describe('planReplay: rejecting records', () => {
  const valid = allocate('disk1', [range('/dev/sdb', 46, 2)]);
  const cases: readonly [string, JournalRecord | Uint8Array, RegExp][] = [
    ['extents in VG free space', allocate('disk0', [range('/dev/sdb', 150, 3)]), /outside thinlv_h1_free/],
    ["extents of another host's pool", allocate('disk0', [range('/dev/sdb', 50, 2)]), /outside thinlv_h1_free/],
    ["extents the target LV already holds", allocate('disk0', [range('/dev/sdb', 10, 1)]), /outside thinlv_h1_free/],
    ['extents only partly in the pool', allocate('disk0', [range('/dev/sdb', 48, 4)]), /outside thinlv_h1_free: \/dev\/sdb:50-51/],
    ['a return of extents outside the pool', giveBack([range('/dev/sdc', 150, 1)]), /outside thinlv_h1_free/],
    ['a PV uuid the VG does not hold', { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: byUuid([range('x', 30, 2)], UNKNOWN_PV_UUID), extentCountAfter: 6 }, /PV that is not in the VG/],
    ['a PV device path instead of a uuid', { kind: 'return', ranges: byUuid([range('x', 30, 2)], '/dev/sdb') }, /PV that is not in the VG/],
    ['one extent listed twice', allocate('disk0', [range('/dev/sdb', 30, 3), range('/dev/sdb', 32, 1)]), /lists one extent twice/],
    ['the same range listed twice', giveBack([range('/dev/sdb', 30, 1), range('/dev/sdb', 30, 1)]), /lists one extent twice/],
    ['bytes that are not JSON', new Uint8Array([0xff, 0x00, 0x13, 0x37]), /undecodable: not UTF-8 JSON/],
    ['a torn record', encodeJournalRecord(allocate('disk0', [range('/dev/sdb', 30, 2)])).slice(0, 40), /undecodable/],
    ['a newer record version', json({ v: 2, kind: 'return', ranges: [[PV_SDB.uuid, 30, 1]] }), /undecodable: record format version 2/],
    ['an unknown record kind', json({ v: 1, kind: 'shrink', ranges: [[PV_SDB.uuid, 30, 1]] }), /undecodable: unknown journal record kind/],
    ['an allocate without an lvUuid', json({ v: 1, kind: 'allocate', lv: 'disk0', ranges: [[PV_SDB.uuid, 30, 1]], extentCountAfter: 5 }), /undecodable: "lvUuid" is missing/],
  ];

  test.each(cases)('a record naming %s is rejected with its reason, never applied, and later records still apply', (_, bad, reason) => {
    const { before, plan, after } = replay(twoHostSpec({ h1: { rejectedCount: 4 } }), { h1: journal(1, [bad, valid]) });
    const h1 = hostPlan(plan, 'h1');
    expect(h1.rejected).toEqual([{ host: 'h1', seq: 1, code: expect.any(String) as unknown, reason: expect.stringMatching(reason) as unknown }]);
    expect(h1).toMatchObject({ appliedSeqAfter: 2, appliedRecordCount: 1, movedExtentCount: 2, releasedExtentCount: 0 });
    // Only the valid record's two extents moved; nothing else changed hands.
    expect(extentsOfLv(after, 'thinlv_h1_free').equals(extentsOfLv(before, 'thinlv_h1_free').difference(ExtentSet.fromRanges([range('/dev/sdb', 46, 2)])))).toBe(true);
    expect(logicalExtents(after, 'disk1')).toEqual(['/dev/sdb:20', '/dev/sdb:21', '/dev/sdb:46', '/dev/sdb:47']);
    for (const name of ['disk0', 'disk2', 'thinlv_h2_free']) expect(lvNamed(after, name)).toEqual(lvNamed(before, name));
    expect(computeFreeExtents(after).equals(computeFreeExtents(before))).toBe(true);
    expect(tagsOf(after, 'thinlv_h1_journal')).toEqual([`${TAG.appliedSeq}2`, `${TAG.rejectedCount}5`, `${TAG.rejectedLast}1.${h1.rejected[0]!.code}`]);
  });

  test('a record whose extents an earlier record of the same batch took is rejected (no double use within a batch)', () => {
    const { plan, after } = replay(twoHostSpec(), {
      h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 6)]), allocate('disk1', [range('/dev/sdb', 33, 4)]), giveBack([range('/dev/sdb', 35, 1)])]),
    });
    expect(hostPlan(plan, 'h1').rejected.map((r) => r.seq)).toEqual([2, 3]);
    expect(hostPlan(plan, 'h1').rejected[0]?.reason).toMatch(/outside thinlv_h1_free: \/dev\/sdb:33-35/);
    expect(logicalExtents(after, 'disk1')).toEqual(['/dev/sdb:20', '/dev/sdb:21']);
    expect(extentsOfLv(after, 'disk0').has('/dev/sdb', 35)).toBe(true);
    expect(extentsOfLv(after, 'thinlv_h1_free').has('/dev/sdb', 36)).toBe(true);
  });

  test('a host with an empty pool has every record rejected and no free LV to remove', () => {
    const { plan, after } = replay(twoHostSpec({ h1: { pool: [] } }), { h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 1)]), giveBack([range('/dev/sdb', 31, 1)])]) });
    expect(hostPlan(plan, 'h1').rejected.map((r) => r.seq)).toEqual([1, 2]);
    expect(plan.changes.some((c) => c.kind === 'removeLv')).toBe(false);
    expect(readThinlvVg(after).hosts.get('h1')).toMatchObject({ appliedSeq: 2, rejectedCount: 2 });
  });

  test('rejections add to the count already on the journal LV, once per pass', () => {
    const spec = twoHostSpec({ h1: { appliedSeq: 9, rejectedCount: 7 } });
    const junk = new Uint8Array([1, 2, 3]);
    const { after } = replay(spec, { h1: journal(10, [junk, valid, junk, junk]) });
    expect(readThinlvVg(after).hosts.get('h1')).toMatchObject({ appliedSeq: 13, rejectedCount: 10 });
    expect(tagsOf(after, 'thinlv_h1_journal').filter((t) => t.startsWith(TAG.rejectedCount))).toEqual([`${TAG.rejectedCount}10`]);
  });
});

describe('planReplay: sequence numbers', () => {
  const vg = thinlvVgMetadata(twoHostSpec({ h1: { appliedSeq: 5 } }));
  const thinlv = readThinlvVg(vg);
  const one = (seq: number): JournalRecordBytes => ({ seq, payload: encodeJournalRecord(giveBack([range('/dev/sdb', 30 + seq, 1)])) });

  test('a gap in the seqs throws an InvariantError', () => {
    expect(() => planReplay(vg, thinlv, new Map([['h1', [one(6), one(8)]]]))).toThrow(InvariantError);
  });

  test('records must start right after the applied seq', () => {
    expect(() => planReplay(vg, thinlv, new Map([['h1', [one(7)]]]))).toThrow(/skipped from seq 5 to 7/);
  });

  test('a record at or below the applied seq is refused, never applied a second time (I5)', () => {
    expect(() => planReplay(vg, thinlv, new Map([['h1', [one(5), one(6)]]]))).toThrow(InvariantError);
    expect(() => planReplay(vg, thinlv, new Map([['h1', [one(4)]]]))).toThrow(InvariantError);
  });

  test('records for a host that is not a member of the VG are an InvariantError', () => {
    expect(() => planReplay(vg, thinlv, new Map([['h9', [one(1)]]]))).toThrow(/unknown host h9/);
  });
});

describe('planReplay: records that target something other than a thin LV', () => {
  // BUG (src/replay/planReplay.ts): the target of an allocate record is looked up among
  // all LVs of the VG (lvsByName), not among thin LVs (thinlv.thinLvs). A record naming
  // the host's own free LV, with its uuid, becomes moveRanges from thinlv_h1_free to
  // thinlv_h1_free, which applyChanges refuses with INVALID_BATCH ("cannot move extents
  // from thinlv_h1_free to itself"). runPass applies the whole plan, so every pass throws
  // on this record and the journal never advances: one bad (checksummed) record stalls
  // replay for the host forever, instead of being rejected and counted like any other.
  test("an allocation naming the host's own free LV is rejected, not planned as a move onto itself", () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const record = allocate('thinlv_h1_free', [range('/dev/sdb', 30, 2)], 'uuid-thinlv_h1_free');
    const plan = planReplay(vg, readThinlvVg(vg), new Map([['h1', journal(1, [record])]]));
    expect(() => applyChanges(vg, plan.changes, countingIdentity())).not.toThrow();
    expect(hostPlan(plan, 'h1').rejected.map((r) => r.seq)).toEqual([1]);
  });

  // BUG (src/replay/planReplay.ts), same cause: a record naming a ring LV (here h2's
  // journal, with its uuid) is planned as a move into it. The ring LV then has two
  // segments, and ringLocation() refuses ring LVs that are not one linear segment, so
  // every later pass fails for h2; a record naming another host's free LV silently
  // moves extents into that host's pool. Such records should be rejected.
  test('an allocation naming a ring LV or another host\'s free LV is rejected, not moved into it', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const records = journal(1, [
      allocate('thinlv_h2_journal', [range('/dev/sdb', 30, 2)], 'uuid-thinlv_h2_journal'),
      allocate('thinlv_h2_free', [range('/dev/sdb', 32, 2)], 'uuid-thinlv_h2_free'),
    ]);
    const plan = planReplay(vg, readThinlvVg(vg), new Map([['h1', records]]));
    expect(plan.changes.filter((c) => c.kind === 'moveRanges')).toEqual([]);
    expect(hostPlan(plan, 'h1').rejected.map((r) => r.seq)).toEqual([1, 2]);
  });
});

// ---------------------------------------------------------------------------
// Property: random batches of valid and invalid records across 2-3 hosts.
// A small model resolves each abstract operation against the host's pool as it
// stands at that record, says what replay must do with it, and the test checks
// the plan, once applied, against the model and against I1/I2/I5.

type Operation =
  | { readonly kind: 'allocate' | 'allocateNamesake'; readonly target: number; readonly pick: number; readonly count: number; readonly reversed: boolean }
  | { readonly kind: 'return' | 'allocateGone' | 'outsidePool' | 'partlyOutside' | 'unknownPv' | 'duplicateExtent' | 'reuseEarlier' | 'newerVersion'; readonly pick: number; readonly count: number }
  | { readonly kind: 'junk'; readonly bytes: Uint8Array }
  | { readonly kind: 'torn'; readonly pick: number; readonly count: number; readonly cut: number };

const pick = fc.nat({ max: 10_000 });
const count = fc.integer({ min: 1, max: 8 });
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('allocate' as const), target: fc.nat({ max: 9 }), pick, count, reversed: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('allocateNamesake' as const), target: fc.nat({ max: 9 }), pick, count, reversed: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('return' as const, 'allocateGone' as const),
      pick,
      count,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constantFrom(
        'outsidePool' as const,
        'partlyOutside' as const,
        'unknownPv' as const,
        'duplicateExtent' as const,
        'reuseEarlier' as const,
        'newerVersion' as const,
      ),
      pick,
      count,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('junk' as const), bytes: fc.uint8Array({ maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('torn' as const), pick, count, cut: fc.nat() }) },
);

type Outcome = { readonly kind: 'moved'; readonly lv: string; readonly ranges: readonly PhysicalRange[] } | { readonly kind: 'released'; readonly ranges: readonly PhysicalRange[] } | { readonly kind: 'rejected' };

/** Up to `n` consecutive extents of `set` (in PV, extent order) starting at the `at`-th, as ranges. */
function take(set: ExtentSet, at: number, n: number): PhysicalRange[] {
  const list = extentList(set);
  if (list.length === 0) return [];
  const start = at % list.length;
  return extentListToRanges(list.slice(start, start + n));
}

interface HostModel {
  readonly host: string;
  pool: ExtentSet;
  takenThisBatch: ExtentSet;
  /** Each LV's size as replay will see it, shared by every host (replay goes host by host, as the model does). */
  readonly sizes: Map<string, number>;
  /** Who holds each thin LV. */
  readonly owners: ReadonlyMap<string, string | undefined>;
}

/** Turns one operation into record bytes and the outcome replay must give it. */
function resolve(operation: Operation, model: HostModel, vg: VgMetadata, thinLvNames: readonly string[]): { payload: Uint8Array; outcome: Outcome } {
  const all = pvExtents(vg);
  const outside = (at: number, n: number): PhysicalRange[] => take(all.difference(model.pool), at, n);
  const rejected = (record: JournalRecord): { payload: Uint8Array; outcome: Outcome } => ({ payload: encodeJournalRecord(record), outcome: { kind: 'rejected' } });
  const accept = (ranges: PhysicalRange[], outcome: Outcome, record: JournalRecord): { payload: Uint8Array; outcome: Outcome } => {
    const extents = ExtentSet.fromRanges(ranges);
    model.pool = model.pool.difference(extents);
    model.takenThisBatch = model.takenThisBatch.union(extents);
    return { payload: encodeJournalRecord(record), outcome };
  };

  switch (operation.kind) {
    case 'allocate':
    case 'allocateNamesake': {
      const lv = thinLvNames[operation.target % thinLvNames.length]!;
      const chosen = take(model.pool, operation.pick, operation.count);
      if (chosen.length === 0) return rejected(allocate(lv, outside(operation.pick, operation.count)));
      const ranges = operation.reversed ? [...chosen].reverse() : chosen;
      if (operation.kind === 'allocateNamesake') return accept(ranges, { kind: 'released', ranges }, allocate(lv, ranges, `uuid-old-${lv}`));
      const sizeAfter = model.sizes.get(lv)! + ExtentSet.fromRanges(ranges).extentCount;
      const record = { ...allocate(lv, ranges), extentCountAfter: sizeAfter };
      // Only the LV's owner may grow it (I8): anyone else's record is refused and moves nothing.
      if (model.owners.get(lv) !== model.host) return rejected(record);
      model.sizes.set(lv, sizeAfter);
      return accept(ranges, { kind: 'moved', lv, ranges }, record);
    }
    case 'return':
    case 'allocateGone': {
      const ranges = take(model.pool, operation.pick, operation.count);
      if (ranges.length === 0) return rejected(giveBack(outside(operation.pick, operation.count)));
      const record = operation.kind === 'return' ? giveBack(ranges) : allocate('gone-disk', ranges);
      return accept(ranges, { kind: 'released', ranges }, record);
    }
    case 'outsidePool':
      return rejected(allocate(thinLvNames[0]!, outside(operation.pick, operation.count)));
    case 'partlyOutside':
      return rejected(giveBack([...take(model.pool, operation.pick, operation.count), ...outside(operation.pick, 1)]));
    case 'unknownPv': {
      const ranges = take(model.pool, operation.pick, operation.count);
      return rejected({ kind: 'return', ranges: byUuid(ranges.length > 0 ? ranges : outside(operation.pick, 1), UNKNOWN_PV_UUID) });
    }
    case 'duplicateExtent': {
      const ranges = take(model.pool, operation.pick, operation.count);
      const base = ranges.length > 0 ? ranges : outside(operation.pick, operation.count);
      const first = base[0]!;
      return rejected(giveBack([...base, range(first.pv, first.firstExtent, 1)]));
    }
    case 'reuseEarlier': {
      const ranges = take(model.takenThisBatch, operation.pick, operation.count);
      return rejected(allocate(thinLvNames[0]!, ranges.length > 0 ? ranges : outside(operation.pick, operation.count)));
    }
    case 'newerVersion': {
      const ranges = take(model.pool, operation.pick, operation.count);
      const rangesJson = byUuid(ranges.length > 0 ? ranges : outside(operation.pick, 1)).map((r) => [r.pvUuid, r.firstExtent, r.extentCount]);
      return { payload: json({ v: 2, kind: 'return', ranges: rangesJson }), outcome: { kind: 'rejected' } };
    }
    case 'junk':
      return { payload: operation.bytes, outcome: { kind: 'rejected' } };
    case 'torn': {
      const ranges = take(model.pool, operation.pick, operation.count);
      const whole = encodeJournalRecord(giveBack(ranges.length > 0 ? ranges : outside(operation.pick, 1)));
      // Any strict prefix of a JSON object is not JSON.
      return { payload: whole.slice(0, operation.cut % whole.length), outcome: { kind: 'rejected' } };
    }
  }
}

const batchArbitrary = thinlvLayoutArbitrary({ minHosts: 2, maxHosts: 3 }).chain((spec) =>
  fc.record({
    spec: fc.constant(spec),
    operations: fc.tuple(...spec.hosts.map(() => fc.array(operationArbitrary, { maxLength: 10 }))),
  }),
);

describe('planReplay: property over random batches', () => {
  test.prop([batchArbitrary], { numRuns: 250 })(
    'applying the plan never throws, keeps I1 and I2, moves exactly the accepted extents, and leaves nothing more to replay',
    ({ spec, operations }) => {
      const before = thinlvVgMetadata(spec);
      const thinlvBefore = readThinlvVg(before);
      const thinLvNames = spec.thinLvs.map((t) => t.name);

      // Build each host's records and the outcome the model expects for each.
      const recordsByHost = new Map<string, JournalRecordBytes[]>();
      const outcomes = new Map<string, Outcome[]>();
      const models = new Map<string, HostModel>();
      const sizes = new Map(before.lvs.map((lv) => [lv.name, lvExtentCount(lv)]));
      const owners = new Map([...thinlvBefore.thinLvs].map(([name, thin]) => [name, thin.owner]));
      spec.hosts.forEach((host, i) => {
        const model: HostModel = { host: host.host, pool: extentsOfLv(before, hostLvNames(host.host).free), takenThisBatch: ExtentSet.empty(), sizes, owners };
        const resolved = operations[i]!.map((operation) => resolve(operation, model, before, thinLvNames));
        recordsByHost.set(host.host, resolved.map((r, k) => ({ seq: (host.appliedSeq ?? 0) + 1 + k, payload: r.payload })));
        outcomes.set(host.host, resolved.map((r) => r.outcome));
        models.set(host.host, model);
      });

      const plan = planReplay(before, thinlvBefore, recordsByHost);
      // (a) The plan is a valid commit.
      const after = applyChanges(before, plan.changes, countingIdentity());

      // (b) I1: no extent in two LVs; no other layout error either.
      expect(checkLayout(after).filter((f) => f.severity === 'error')).toEqual([]);

      // (c) I2: every extent is in exactly one LV or in VG free space.
      const totalExtentCount = spec.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
      const lvTotal = after.lvs.reduce((sum, lv) => sum + lvExtentCount(lv), 0);
      expect(lvTotal + computeFreeExtents(after).extentCount).toBe(totalExtentCount);

      // (d) Each thin LV is its old extents followed by the accepted allocations for it, in host then seq order.
      const expectedLogical = new Map(thinLvNames.map((name) => [name, logicalExtents(before, name)]));
      let released = ExtentSet.empty();
      for (const host of spec.hosts) {
        for (const outcome of outcomes.get(host.host)!) {
          if (outcome.kind === 'moved') expectedLogical.get(outcome.lv)!.push(...flattenRanges(outcome.ranges));
          if (outcome.kind === 'released') released = released.union(ExtentSet.fromRanges(outcome.ranges));
        }
      }
      for (const name of thinLvNames) {
        expect(logicalExtents(after, name)).toEqual(expectedLogical.get(name));
        expect(lvNamed(after, name)?.uuid).toBe(lvNamed(before, name)?.uuid);
      }
      expect(computeFreeExtents(after).equals(computeFreeExtents(before).union(released))).toBe(true);

      for (const host of spec.hosts) {
        const names = hostLvNames(host.host);
        const hostOutcomes = outcomes.get(host.host)!;
        const model = models.get(host.host)!;
        // The pool is what the model left, and its free LV exists exactly when that is not empty.
        expect(extentsOfLv(after, names.free).equals(model.pool)).toBe(true);
        expect(lvNamed(after, names.free) !== undefined).toBe(!model.pool.isEmpty());
        // Ring LVs keep their one extent.
        expect(lvNamed(after, names.journal)?.segments).toEqual(lvNamed(before, names.journal)?.segments);
        expect(lvNamed(after, names.grants)).toEqual(lvNamed(before, names.grants));

        const hostReplay = plan.hosts.find((h) => h.host === host.host);
        if (hostOutcomes.length === 0) {
          expect(hostReplay).toBeUndefined();
          expect(lvNamed(after, names.journal)).toEqual(lvNamed(before, names.journal));
          continue;
        }
        const rejectedSeqs = hostOutcomes.flatMap((o, k) => (o.kind === 'rejected' ? [(host.appliedSeq ?? 0) + 1 + k] : []));
        const extentsOf = (kind: Outcome['kind']): number =>
          hostOutcomes.reduce((sum, o) => sum + (o.kind === kind && o.kind !== 'rejected' ? ExtentSet.fromRanges(o.ranges).extentCount : 0), 0);
        expect(hostReplay?.rejected.map((r) => r.seq)).toEqual(rejectedSeqs);
        expect(hostReplay).toMatchObject({
          appliedSeqBefore: host.appliedSeq ?? 0,
          appliedSeqAfter: (host.appliedSeq ?? 0) + hostOutcomes.length,
          appliedRecordCount: hostOutcomes.length - rejectedSeqs.length,
          movedExtentCount: extentsOf('moved'),
          releasedExtentCount: extentsOf('released'),
        });
        expect(hostReplay?.poolAfter.equals(model.pool)).toBe(true);
      }

      // (e) The cursors travel with the changes: reading the result back gives the last seq
      // and the accumulated rejections, and a replay with no new records changes nothing.
      const thinlvAfter = readThinlvVg(after);
      for (const host of spec.hosts) {
        const hostOutcomes = outcomes.get(host.host)!;
        const rejectedNow = hostOutcomes.filter((o) => o.kind === 'rejected').length;
        expect(thinlvAfter.hosts.get(host.host)).toMatchObject({
          appliedSeq: (host.appliedSeq ?? 0) + hostOutcomes.length,
          rejectedCount: (host.rejectedCount ?? 0) + rejectedNow,
          grantGeneration: host.grantGeneration ?? 0,
        });
      }
      const nothingNew = new Map(spec.hosts.map((h) => [h.host, [] as JournalRecordBytes[]]));
      expect(planReplay(after, thinlvAfter, nothingNew)).toEqual({ changes: [], hosts: [], deniedClaims: [], deflates: [] });
      // Feeding the same records again cannot apply them twice: their seqs no longer follow the cursor.
      if ([...recordsByHost.values()].some((records) => records.length > 0)) {
        expect(() => planReplay(after, thinlvAfter, recordsByHost)).toThrow(InvariantError);
      }
    },
  );
});

describe('planReplay: LV ownership (one extender per LV)', () => {
  const claim = (lv: string, lvUuid = `uuid-${lv}`): JournalRecord => ({ kind: 'claim', lv, lvUuid });
  const release = (lv: string, lvUuid = `uuid-${lv}`): JournalRecord => ({ kind: 'release', lv, lvUuid });
  const ownerOf = (vg: VgMetadata, lv: string) => readThinlvVg(vg).thinLvs.get(lv)?.owner;
  const unowned = (): ThinlvVgSpec => ({ ...twoHostSpec(), thinLvs: twoHostSpec().thinLvs.map(({ owner: _owner, ...rest }) => rest) });

  test('a claim of an LV nobody holds makes the claimant its owner, as a tag in the same commit', () => {
    const { plan, after } = replay(unowned(), { h2: journal(1, [claim('disk0')]) });
    expect(ownerOf(after, 'disk0')).toBe('h2');
    expect(plan.deniedClaims).toEqual([]);
    expect(tagsOf(after, 'disk0')).toContain(`${TAG.owner}h2`);
  });

  test('a claim of an LV another host holds is denied and changes nothing', () => {
    const { plan, after } = replay(twoHostSpec(), { h2: journal(1, [claim('disk0')]) });
    expect(ownerOf(after, 'disk0')).toBe('h1');
    expect(plan.deniedClaims).toEqual([{ host: 'h2', seq: 1, lv: 'disk0', owner: 'h1' }]);
  });

  test("a release and another host's claim in one pass hand the LV over, the source's allocations applied first", () => {
    const { plan, after } = replay(twoHostSpec(), {
      h2: journal(1, [claim('disk0')]),
      h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 2)]), release('disk0')]),
    });
    expect(ownerOf(after, 'disk0')).toBe('h2');
    expect(plan.deniedClaims).toEqual([]);
    expect(logicalExtents(after, 'disk0').slice(-2)).toEqual(['/dev/sdb:30', '/dev/sdb:31']);
  });

  test('an allocation by a host that does not own the LV is rejected as lv-not-owned, its extents staying in its pool', () => {
    const { plan, after } = replay(twoHostSpec(), { h2: journal(1, [allocate('disk0', [range('/dev/sdb', 50, 1)])]) });
    expect(hostPlan(plan, 'h2').rejected).toMatchObject([{ seq: 1, code: 'lv-not-owned' }]);
    expect(extentsOfLv(after, 'thinlv_h2_free').has('/dev/sdb', 50)).toBe(true);
  });

  test('an allocation after the host released the LV is rejected', () => {
    const { plan } = replay(twoHostSpec(), { h1: journal(1, [release('disk0'), allocate('disk0', [range('/dev/sdb', 30, 1)])]) });
    expect(hostPlan(plan, 'h1').rejected).toMatchObject([{ seq: 2, code: 'lv-not-owned' }]);
  });

  test('an allocation past the virtual size is rejected as virtual-size-exceeded', () => {
    const spec = twoHostSpec();
    const small = { ...spec, thinLvs: spec.thinLvs.map((t) => (t.name === 'disk0' ? { ...t, virtualBytes: 5 * 4 * 1024 ** 2 } : t)) };
    const { plan, after } = replay(small, { h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 1)]), allocate('disk0', [range('/dev/sdb', 31, 1)])]) });
    expect(hostPlan(plan, 'h1').rejected).toMatchObject([{ seq: 2, code: 'virtual-size-exceeded' }]);
    expect(lvExtentCount(lvNamed(after, 'disk0')!)).toBe(5);
  });

  test("a demand record moves nothing and reports the host's last demand of the pass", () => {
    const { plan, before, after } = replay(twoHostSpec(), { h1: journal(1, [{ kind: 'demand', extentCount: 40 }, allocate('disk0', [range('/dev/sdb', 30, 1)]), { kind: 'demand', extentCount: 70 }]) });
    expect(hostPlan(plan, 'h1')).toMatchObject({ demandExtentCount: 70, appliedSeqAfter: 3, rejected: [] });
    expect(extentsOfLv(after, 'thinlv_h1_free').extentCount).toBe(extentsOfLv(before, 'thinlv_h1_free').extentCount - 1);
  });

  test('a claim naming an old uuid of the LV, or a stock LV, is denied', () => {
    const { plan } = replay(unowned(), { h1: journal(1, [claim('disk0', 'uuid-old'), claim('thinlv_h2_free', 'uuid-thinlv_h2_free')]) });
    expect(plan.deniedClaims.map((d) => d.lv)).toEqual(['disk0', 'thinlv_h2_free']);
  });
});

describe('planReplay: deflate after deactivation (lvchange -an --deflate)', () => {
  const release = (lv: string, lvUuid = `uuid-${lv}`): JournalRecord => ({ kind: 'release', lv, lvUuid });
  const claim = (lv: string, lvUuid = `uuid-${lv}`): JournalRecord => ({ kind: 'claim', lv, lvUuid });
  const deflate = (lv: string, extentCount: number, lvUuid = `uuid-${lv}`): JournalRecord => ({ kind: 'deflate', lv, lvUuid, extentCount });
  const vgFree = (vg: VgMetadata) => computeFreeExtents(vg);

  test("a deflate after the owner's release cuts the LV (this pass's allocations included) and frees its tail, the pool untouched", () => {
    const { plan, before, after } = replay(twoHostSpec(), {
      h1: journal(1, [allocate('disk0', [range('/dev/sdb', 30, 3)]), release('disk0'), deflate('disk0', 5)]),
    });
    expect(logicalExtents(after, 'disk0')).toEqual(flattenRanges([range('/dev/sdb', 10, 4), range('/dev/sdb', 30, 1)]));
    expect(vgFree(after).difference(vgFree(before)).equals(ExtentSet.fromRanges([range('/dev/sdb', 31, 2)]))).toBe(true);
    expect(extentsOfLv(after, 'thinlv_h1_free').equals(ExtentSet.fromRanges([range('/dev/sdb', 33, 17)]))).toBe(true);
    expect(plan.deflates).toEqual([{ host: 'h1', seq: 3, lv: 'disk0', applied: true, extentCountBefore: 7, extentCountAfter: 5 }]);
    expect(checkLayout(after).filter((f) => f.severity === 'error')).toEqual([]);
  });

  test('a deflate of an LV a host holds changes nothing, whoever wrote it', () => {
    const { plan, before, after } = replay(twoHostSpec(), { h2: journal(1, [deflate('disk0', 1)]) });
    expect(logicalExtents(after, 'disk0')).toEqual(logicalExtents(before, 'disk0'));
    expect(plan.deflates).toMatchObject([{ applied: false, reason: 'held by host h1', extentCountAfter: 4 }]);
  });

  test("a deflate comes before the pass's claims: another host's claim in the same pass gets the deflated LV", () => {
    const { plan, after } = replay(twoHostSpec(), { h2: journal(1, [claim('disk0')]), h1: journal(1, [release('disk0'), deflate('disk0', 2)]) });
    expect(lvExtentCount(lvNamed(after, 'disk0')!)).toBe(2);
    expect(readThinlvVg(after).thinLvs.get('disk0')?.owner).toBe('h2');
    expect(plan.deniedClaims).toEqual([]);
  });

  test('two deflates of one LV in a pass cut it twice, each from what the other left; a larger count changes nothing', () => {
    const { plan, after } = replay(twoHostSpec(), { h1: journal(1, [release('disk0'), deflate('disk0', 3), deflate('disk0', 9), deflate('disk0', 1)]) });
    expect(logicalExtents(after, 'disk0')).toEqual(['/dev/sdb:10']);
    expect(plan.deflates.map((d) => [d.applied, d.extentCountAfter])).toEqual([[true, 3], [true, 3], [true, 1]]);
  });

  test('a deflate naming an old uuid, or a stock LV, is skipped', () => {
    const { plan, before, after } = replay(twoHostSpec(), { h1: journal(1, [release('disk0'), deflate('disk0', 1, 'uuid-old'), deflate('thinlv_h2_free', 1)]) });
    expect(plan.deflates.every((d) => !d.applied)).toBe(true);
    expect(logicalExtents(after, 'disk0')).toEqual(logicalExtents(before, 'disk0'));
  });

  test('a deflate record keeps at least one extent: count 0 does not decode, and is rejected as undecodable', () => {
    const { plan, after } = replay(twoHostSpec(), { h1: journal(1, [release('disk0'), json({ v: 1, kind: 'deflate', lv: 'disk0', lvUuid: 'uuid-disk0', extentCount: 0 })]) });
    expect(hostPlan(plan, 'h1').rejected).toMatchObject([{ seq: 2, code: 'undecodable' }]);
    expect(lvExtentCount(lvNamed(after, 'disk0')!)).toBe(4);
  });
});
