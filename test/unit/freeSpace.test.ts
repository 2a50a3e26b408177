import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { bar, freeText } from '../../src/cli/commands/free.js';
import { ExtentSet } from '../../src/extent/extentSet.js';
import type { PhysicalRange } from '../../src/extent/types.js';
import { DEFAULT_ALERT_LEVELS, TAG, hostLvNames, readAlertLevels, readThinlvVg, type AlertLevels } from '../../src/format/thinlvVg.js';
import { computeFreeExtents, ownedRanges } from '../../src/metadata/checkLayout.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { reserveExtentCount } from '../../src/pool/planRefill.js';
import { encodeJournalRecord, type JournalRecord } from '../../src/records/records.js';
import type { JournalRecordBytes } from '../../src/replay/planReplay.js';
import { alertLevel, computeFreeSpace, type FreeSpaceReport, type HostJournal } from '../../src/report/freeSpace.js';
import { PV_SDB, PV_SDC, linearLv, range, thinlvLayoutArbitrary, thinlvVgMetadata, twoHostSpec, type ThinlvVgSpec } from './arbitraries/thinlvVg.js';

const SDB = PV_SDB.device;
const GIB = 1024 ** 3;
const EXTENT_BYTES = 4 * 1024 * 1024;

/** Every host's journal readable and empty, except those given. */
function journalsFor(vg: VgMetadata, given: Readonly<Record<string, HostJournal>> = {}): Map<string, HostJournal> {
  return new Map([...readThinlvVg(vg).hosts.keys()].map((host) => [host, given[host] ?? { readable: true, records: [] }]));
}

const records = (...list: readonly JournalRecord[]): JournalRecordBytes[] => list.map((record, i) => ({ seq: i + 1, payload: encodeJournalRecord(record) }));

const uuidRange = (pv: typeof PV_SDB, firstExtent: number, extentCount: number) => ({ pvUuid: pv.uuid, firstExtent, extentCount });

function report(vg: VgMetadata, given: Readonly<Record<string, HostJournal>> = {}, levels: AlertLevels = DEFAULT_ALERT_LEVELS): FreeSpaceReport {
  return computeFreeSpace(vg, journalsFor(vg, given), levels);
}

/** The VG of `spec` with an ordinary LV of `extentCount` extents taken from its free space, in disk order. */
function withOrdinaryLv(spec: ThinlvVgSpec, extentCount: number, tags: readonly string[] = []): VgMetadata {
  const vg = thinlvVgMetadata(spec);
  const ranges: PhysicalRange[] = [];
  let left = extentCount;
  for (const free of computeFreeExtents(vg).ranges()) {
    if (left === 0) break;
    const take = Math.min(left, free.extentCount);
    ranges.push({ ...free, extentCount: take });
    left -= take;
  }
  if (left > 0) throw new Error(`the VG has fewer than ${extentCount} free extents`);
  const lvs = extentCount > 0 ? [...vg.lvs, linearLv('plain', ranges, { activationSkip: false })] : vg.lvs;
  return { ...vg, lvs, tags: [...vg.tags, ...tags] };
}

describe('computeFreeSpace: where the extents are', () => {
  test('the two-host VG: thin LVs, rings, pools and free space add up to the VG', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const r = report(vg);
    expect(r).toMatchObject({
      vg: 'vgthin',
      seqno: 42,
      extentSizeBytes: EXTENT_BYTES,
      extentCount: 400,
      thinLvCount: 3,
      thinAllocatedExtents: 8,
      otherAllocatedExtents: 0,
      thinlvMetadataExtents: 4,
      poolExtents: 40,
      unreplayedExtents: 0,
      freeExtents: 348,
      committedExtents: 52,
      reserveExtents: 20,
      level: 'ok',
      warnRatio: 0.75,
      criticalRatio: 0.85,
      timeToFullSeconds: null,
    });
    expect(r.committedRatio).toBeCloseTo(52 / 400, 10);
    expect(r.hosts).toEqual([
      { host: 'h1', appliedSeq: 0, poolExtents: 20, unreplayedExtents: 0, unreplayedReturnExtents: 0, unreplayedRecords: 0, ignoredRecords: 0, journalReadable: true, journalError: null },
      { host: 'h2', appliedSeq: 0, poolExtents: 20, unreplayedExtents: 0, unreplayedReturnExtents: 0, unreplayedRecords: 0, ignoredRecords: 0, journalReadable: true, journalError: null },
    ]);
  });

  test('the reserve is the one pool refills keep clear of', () => {
    for (const reservePermille of [0, 1, 50, 333, 500]) {
      const vg = thinlvVgMetadata(twoHostSpec({ settings: { quantumExtents: 16, lowWaterExtents: 8, reservePermille } }));
      expect(report(vg).reserveExtents).toBe(reserveExtentCount(vg, reservePermille));
    }
  });

  test('an LV thinlv does not manage counts as ordinary, and free space shrinks by it', () => {
    const r = report(withOrdinaryLv(twoHostSpec(), 30));
    expect(r.otherAllocatedExtents).toBe(30);
    expect(r.freeExtents).toBe(318);
    expect(r.committedExtents).toBe(82);
  });

  test('virtual size and overcommit: the thin LVs\' virtual bytes over the VG\'s bytes', () => {
    const spec = twoHostSpec();
    const vg = thinlvVgMetadata({ ...spec, thinLvs: spec.thinLvs.map((t, i) => ({ ...t, virtualBytes: (i + 1) * GIB })) });
    const r = report(vg);
    expect(r.virtualBytes).toBe(6 * GIB);
    expect(r.overcommitRatio).toBeCloseTo((6 * GIB) / (400 * EXTENT_BYTES), 10);
    const overcommitted = report(thinlvVgMetadata(twoHostSpec()));
    expect(overcommitted.virtualBytes).toBe(30 * GIB);
    expect(overcommitted.overcommitRatio).toBeCloseTo(19.2, 10);
  });

  test('metadata with an extent in two LVs is refused, naming thinlv check', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const broken = { ...vg, lvs: [...vg.lvs, linearLv('intruder', [range(SDB, 30, 5)])] };
    expect(() => report(broken)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_METADATA', message: expect.stringMatching(/thinlv check/) }));
  });

  test('a report without some host\'s journal is a bug, not a guess', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    expect(() => computeFreeSpace(vg, new Map([['h1', { readable: true, records: [] }]]), DEFAULT_ALERT_LEVELS)).toThrow(expect.objectContaining({ code: 'INVARIANT_BROKEN' }));
  });
});

describe('computeFreeSpace: journaled extents the master has not replayed', () => {
  test('allocations and returns leave the pool and show as unreplayed; the VG still adds up', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const h1 = records(
      { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [uuidRange(PV_SDB, 30, 3)], extentCountAfter: 7 },
      { kind: 'activity', activeLvCount: 1 },
      { kind: 'return', ranges: [uuidRange(PV_SDB, 40, 2)] },
      { kind: 'demand', extentCount: 50 },
    );
    const r = report(vg, { h1: { readable: true, records: h1 } });
    expect(r.hosts[0]).toMatchObject({ host: 'h1', poolExtents: 15, unreplayedExtents: 5, unreplayedReturnExtents: 2, unreplayedRecords: 4, ignoredRecords: 0 });
    expect(r.hosts[1]).toMatchObject({ host: 'h2', poolExtents: 20, unreplayedExtents: 0 });
    expect(r.poolExtents).toBe(35);
    expect(r.unreplayedExtents).toBe(5);
    // Metadata has not changed: free space and the level do not depend on the journals.
    expect(r.freeExtents).toBe(348);
    expect(r.thinAllocatedExtents).toBe(8);
  });

  test('records at or below the applied seq are in metadata already and count for nothing', () => {
    const vg = thinlvVgMetadata(twoHostSpec({ h1: { appliedSeq: 1 } }));
    const h1 = records(
      { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [uuidRange(PV_SDB, 30, 3)], extentCountAfter: 7 },
      { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [uuidRange(PV_SDB, 33, 1)], extentCountAfter: 8 },
    );
    const r = report(vg, { h1: { readable: true, records: h1 } });
    expect(r.hosts[0]).toMatchObject({ appliedSeq: 1, poolExtents: 19, unreplayedExtents: 1, unreplayedRecords: 1 });
  });

  test('records replay would refuse move nothing: undecodable, unknown PV, an extent twice, outside the pool', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const refused: JournalRecordBytes[] = [
      { seq: 1, payload: new TextEncoder().encode('{"v":1,"kind":"allocate"') },
      ...records(
        { kind: 'return', ranges: [{ pvUuid: 'no-such-pv', firstExtent: 30, extentCount: 1 }] },
        { kind: 'return', ranges: [uuidRange(PV_SDB, 30, 2), uuidRange(PV_SDB, 31, 1)] },
        { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [uuidRange(PV_SDB, 48, 4)], extentCountAfter: 8 },
        // h2's pool, not h1's.
        { kind: 'return', ranges: [uuidRange(PV_SDB, 50, 1)] },
      ).map((r) => ({ ...r, seq: r.seq + 1 })),
    ];
    const r = report(vg, { h1: { readable: true, records: refused } });
    expect(r.hosts[0]).toMatchObject({ poolExtents: 20, unreplayedExtents: 0, unreplayedRecords: 5, ignoredRecords: 5 });
  });

  test('a second record naming extents an earlier one took is refused, as replay refuses it', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const h1 = records(
      { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [uuidRange(PV_SDB, 30, 3)], extentCountAfter: 7 },
      { kind: 'allocate', lv: 'disk1', lvUuid: 'uuid-disk1', ranges: [uuidRange(PV_SDB, 32, 2)], extentCountAfter: 4 },
    );
    expect(report(vg, { h1: { readable: true, records: h1 } }).hosts[0]).toMatchObject({ poolExtents: 17, unreplayedExtents: 3, ignoredRecords: 1 });
  });

  test('an allocation to an LV removed since goes back to VG free space when replayed', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const h1 = records({ kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-of-an-older-disk0', ranges: [uuidRange(PV_SDB, 30, 3)], extentCountAfter: 7 });
    expect(report(vg, { h1: { readable: true, records: h1 } }).hosts[0]).toMatchObject({ poolExtents: 17, unreplayedExtents: 3, unreplayedReturnExtents: 3 });
  });

  test('a pool on two PVs: record ranges name PVs by uuid, metadata by device', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const h2 = records({ kind: 'allocate', lv: 'disk2', lvUuid: 'uuid-disk2', ranges: [uuidRange(PV_SDB, 58, 2), uuidRange(PV_SDC, 100, 3)], extentCountAfter: 7 });
    expect(report(vg, { h2: { readable: true, records: h2 } }).hosts[1]).toMatchObject({ poolExtents: 15, unreplayedExtents: 5 });
  });

  test('a journal that could not be read is reported, and its pool shown as metadata has it', () => {
    const vg = thinlvVgMetadata(twoHostSpec());
    const r = report(vg, { h2: { readable: false, reason: 'NOT_A_RING: no ring here' } });
    expect(r.hosts[1]).toEqual({
      host: 'h2',
      appliedSeq: 0,
      poolExtents: 20,
      unreplayedExtents: 0,
      unreplayedReturnExtents: 0,
      unreplayedRecords: 0,
      ignoredRecords: 0,
      journalReadable: false,
      journalError: 'NOT_A_RING: no ring here',
    });
    expect(r.poolExtents).toBe(40);
  });

  test.prop([thinlvLayoutArbitrary(), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 6 }), fc.boolean()), { maxLength: 20 }), fc.nat({ max: 3 })])(
    'for any layout and any journals, the categories add up to the VG and each pool splits into pool and unreplayed',
    (spec, picks, appliedSeq) => {
      const vg = thinlvVgMetadata({ ...spec, hosts: spec.hosts.map((h) => ({ ...h, appliedSeq })) });
      const uuidOf = new Map(vg.pvs.map((pv) => [pv.device, pv.uuid]));
      const given: Record<string, HostJournal> = {};
      for (const host of spec.hosts) {
        const pool = ExtentSet.fromRanges(host.pool).ranges();
        const list = picks.map(([which, offset, count, isReturn]): JournalRecord => {
          const from: PhysicalRange = pool[which % Math.max(1, pool.length)] ?? range(SDB, 0, 1);
          const first = from.firstExtent + (offset % from.extentCount);
          const ranges = [{ pvUuid: uuidOf.get(from.pv)!, firstExtent: first, extentCount: count }];
          return isReturn ? { kind: 'return', ranges } : { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges, extentCountAfter: 99 };
        });
        given[host.host] = { readable: true, records: records(...list) };
      }
      const r = report(vg, given);
      const total = r.thinAllocatedExtents + r.otherAllocatedExtents + r.thinlvMetadataExtents + r.poolExtents + r.unreplayedExtents + r.freeExtents;
      expect(total).toBe(r.extentCount);
      expect(r.committedExtents + r.freeExtents).toBe(r.extentCount);
      for (const host of r.hosts) {
        const metadataPool = ownedRanges(vg).filter((o) => o.owner === hostLvNames(host.host).free).reduce((n, o) => n + o.range.extentCount, 0);
        expect(host.poolExtents + host.unreplayedExtents).toBe(metadataPool);
        expect(host.poolExtents).toBeGreaterThanOrEqual(0);
        expect(host.unreplayedRecords).toBe(Math.max(0, picks.length - appliedSeq));
      }
    },
  );
});

describe('alert levels', () => {
  test('warning from 75% and critical from 85% by default, the thresholds themselves included', () => {
    expect(alertLevel(749, 1000, DEFAULT_ALERT_LEVELS)).toBe('ok');
    expect(alertLevel(750, 1000, DEFAULT_ALERT_LEVELS)).toBe('warning');
    expect(alertLevel(849, 1000, DEFAULT_ALERT_LEVELS)).toBe('warning');
    expect(alertLevel(850, 1000, DEFAULT_ALERT_LEVELS)).toBe('critical');
    expect(alertLevel(1000, 1000, DEFAULT_ALERT_LEVELS)).toBe('critical');
    // 3 of 4 is exactly 75%, with no rounding in between.
    expect(alertLevel(3, 4, DEFAULT_ALERT_LEVELS)).toBe('warning');
  });

  test('a VG committed to exactly the thresholds: ordinary LVs fill it to 75% and to 85%', () => {
    // 52 extents committed before the ordinary LV; 400 in all.
    expect(report(withOrdinaryLv(twoHostSpec(), 247)).level).toBe('ok');
    expect(report(withOrdinaryLv(twoHostSpec(), 248))).toMatchObject({ committedExtents: 300, level: 'warning' });
    expect(report(withOrdinaryLv(twoHostSpec(), 287))).toMatchObject({ committedExtents: 339, level: 'warning' });
    expect(report(withOrdinaryLv(twoHostSpec(), 288))).toMatchObject({ committedExtents: 340, level: 'critical' });
  });

  test('pools count as committed, whatever the journals say', () => {
    const vg = withOrdinaryLv(twoHostSpec(), 248);
    const h1 = records({ kind: 'return', ranges: [uuidRange(PV_SDB, 30, 20)] });
    expect(report(vg, { h1: { readable: true, records: h1 } })).toMatchObject({ level: 'warning', committedExtents: 300, unreplayedExtents: 20 });
  });

  test('the VG tags thinlv_warn_permille and thinlv_critical_permille set the levels', () => {
    const vg = withOrdinaryLv(twoHostSpec(), 48, [`${TAG.warnPermille}200`, `${TAG.criticalPermille}250`]);
    expect(readAlertLevels(vg)).toEqual({ warnPermille: 200, criticalPermille: 250 });
    expect(report(vg, {}, readAlertLevels(vg))).toMatchObject({ committedExtents: 100, level: 'critical', warnRatio: 0.2, criticalRatio: 0.25 });
    const warnOnly = withOrdinaryLv(twoHostSpec(), 48, [`${TAG.warnPermille}100`]);
    expect(readAlertLevels(warnOnly)).toEqual({ warnPermille: 100, criticalPermille: 850 });
    expect(report(warnOnly, {}, readAlertLevels(warnOnly)).level).toBe('warning');
  });

  test('without the tags the defaults apply', () => {
    expect(readAlertLevels(thinlvVgMetadata(twoHostSpec()))).toEqual({ warnPermille: 750, criticalPermille: 850 });
  });

  test('tags that make no sense are refused, saying how to fix them', () => {
    const tagged = (...tags: string[]) => withOrdinaryLv(twoHostSpec(), 0, tags);
    for (const tags of [[`${TAG.warnPermille}900`], [`${TAG.criticalPermille}0`], [`${TAG.warnPermille}1001`], [`${TAG.warnPermille}x`], [`${TAG.warnPermille}100`, `${TAG.warnPermille}200`]]) {
      expect(() => readAlertLevels(tagged(...tags)), tags.join(',')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_METADATA' }));
    }
    expect(() => readAlertLevels(tagged(`${TAG.warnPermille}900`))).toThrow(/vgchange --deltag/);
  });
});

describe('free: human output', () => {
  test('bars: used of total, never all of one kind unless exactly so', () => {
    expect(bar(0, 10, 10)).toBe('[..........]');
    expect(bar(10, 10, 10)).toBe('[##########]');
    expect(bar(5, 10, 10)).toBe('[#####.....]');
    expect(bar(1, 1000, 10)).toBe('[#.........]');
    expect(bar(999, 1000, 10)).toBe('[#########.]');
    expect(bar(0, 0, 4)).toBe('[....]');
  });

  test('the report in words: sizes, the level, no invented time to full, and colour only when asked', () => {
    const vg = withOrdinaryLv(twoHostSpec(), 248);
    const h1 = records({ kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [uuidRange(PV_SDB, 30, 5)], extentCountAfter: 9 });
    const r = report(vg, { h1: { readable: true, records: h1 }, h2: { readable: false, reason: 'IO_ERROR: gone' } });
    const plain = freeText(r, false);
    expect(plain).toContain('VG vgthin: 1.56 GiB in 400 extents of 4.00 MiB');
    expect(plain).toMatch(/committed \[#+\.+\] 75\.0%: warning \(warning at 75\.0%, critical at 85\.0%\)/);
    expect(plain).toMatch(/journaled, not replayed +20\.00 MiB +5/);
    expect(plain).toContain('time to full: not enough history (the master status was not read)');
    expect(plain).toMatch(/h1 +60\.00 MiB +15 +5 +1 +\[#+\.+\]/);
    expect(plain).toMatch(/h2 +80\.00 MiB +20 +\? +\? +\[\.+\]/);
    expect(plain).toContain("warning: host h2's journal could not be read (IO_ERROR: gone)");
    expect(plain).not.toContain('\u001b[');
    expect(freeText(r, true)).toContain('\u001b[33mwarning\u001b[0m');
  });
});
