// Thin LVs as lvm-compatible reports show them: metadata plus every host's unreplayed
// records, placed as replay will place them (src/lvmcompat/thinSizes.ts).

import { describe, expect, test } from 'vitest';
import { thinViewOf } from '../../src/lvmcompat/thinSizes.js';
import type { VgReport } from '../../src/metadata/vgModel.js';
import { encodeJournalRecord, type JournalRecord } from '../../src/records/records.js';
import type { HostJournal } from '../../src/report/freeSpace.js';
import { PV_SDB, range, thinlvVgMetadata, twoHostSpec } from './arbitraries/thinlvVg.js';

const report = (): VgReport => {
  const vg = thinlvVgMetadata(twoHostSpec());
  return { ...vg, extentCount: 0, freeExtentCount: 0, metadataAreaSizeBytes: 0, metadataAreaFreeBytes: 0, freeRanges: [], pvs: vg.pvs.map((pv) => ({ ...pv, deviceSizeBytes: 0 })) };
};
const journal = (records: readonly JournalRecord[]): HostJournal => ({ readable: true, records: records.map((record, i) => ({ seq: i + 1, payload: encodeJournalRecord(record) })) });
const onSdb = (firstExtent: number, extentCount: number) => [{ pvUuid: PV_SDB.uuid, firstExtent, extentCount }];

describe('thin view of a VG with unreplayed records', () => {
  test('an unreplayed allocation grows its LV where replay will put it; other LVs are absent from the view', () => {
    const view = thinViewOf(report(), new Map([['h1', journal([{ kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: onSdb(30, 3), extentCountAfter: 7 }])], ['h2', journal([])]]));
    expect([...view.grown.values()].map((g) => [g.name, g.metadataExtentCount, g.extentCount])).toEqual([['disk0', 4, 7]]);
    expect(view.grown.get('uuid-disk0')?.segments.at(-1)).toMatchObject({ ...range('/dev/sdb', 30, 3), logicalStart: 4 });
    expect(view.warnings).toEqual([]);
  });

  test('an unreplayed deflate after a release shrinks the LV as replay will, its own allocations first', () => {
    const view = thinViewOf(report(), new Map([
      ['h1', journal([
        { kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: onSdb(30, 3), extentCountAfter: 7 },
        { kind: 'release', lv: 'disk0', lvUuid: 'uuid-disk0' },
        { kind: 'deflate', lv: 'disk0', lvUuid: 'uuid-disk0', extentCount: 5 },
      ])],
    ]));
    const disk0 = view.grown.get('uuid-disk0')!;
    expect(disk0.extentCount).toBe(5);
    expect(disk0.segments).toEqual([{ ...range('/dev/sdb', 10, 4), logicalStart: 0 }, { ...range('/dev/sdb', 30, 1), logicalStart: 4 }]);
  });

  test('a journal that could not be read is a warning, and its host adds nothing', () => {
    const view = thinViewOf(report(), new Map([['h1', { readable: false, reason: 'IO_ERROR: gone' } as const]]));
    expect(view.grown.size).toBe(0);
    expect(view.warnings).toEqual([expect.stringContaining("host h1's journal could not be read (IO_ERROR: gone)"), expect.stringContaining('host h2')]);
  });
});
