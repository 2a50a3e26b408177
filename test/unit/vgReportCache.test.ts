import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';

import { cacheFilePieces, readCachedReport, VG_CACHE_DIR, writeCachedReport } from '../../src/lvm/vgReportCache.js';
import type { VgReport } from '../../src/metadata/vgModel.js';

const vgName = `thinlvtest_cache_${process.pid}_${randomBytes(4).toString('hex')}`;
const report = { name: vgName, uuid: 'u', seqno: 3, extentSizeSectors: 8192, tags: [], pvs: [], lvs: [], extentCount: 0, freeExtentCount: 0, metadataAreaSizeBytes: 0, metadataAreaFreeBytes: 0, freeRanges: [] } satisfies VgReport;
const key = JSON.stringify([{ device: '/dev/loop9', areas: [[4096, 1048576, 8192, 2000, 12345]] }]);

afterEach(() => rmSync(join(VG_CACHE_DIR, `${vgName}.json`), { force: true }));

describe('the VG report cache', () => {
  test('gives back the report written for the same key, and nothing for another key', async () => {
    await writeCachedReport(vgName, key, report);
    expect(await readCachedReport(vgName, key)).toEqual(report);
    expect(await readCachedReport(vgName, key.replace('12345', '12346'))).toBeUndefined();
    expect(await readCachedReport(vgName, key.slice(0, -2))).toBeUndefined();
  });

  test('a file that is not what it writes, or holds another VG, is a miss', async () => {
    await writeCachedReport(vgName, key, { ...report, name: 'othervg' });
    expect(await readCachedReport(vgName, key)).toBeUndefined();
    writeFileSync(join(VG_CACHE_DIR, `${vgName}.json`), `{"key":${JSON.stringify(key)},"report":`);
    expect(await readCachedReport(vgName, key)).toBeUndefined();
    rmSync(join(VG_CACHE_DIR, `${vgName}.json`));
    expect(await readCachedReport(vgName, key)).toBeUndefined();
  });

  test('a report of many LVs is written in pieces that read back as the whole text would, the key first', async () => {
    const lvs = Array.from({ length: 1234 }, (_, i) => ({
      name: `vdi${i}`,
      uuid: `uuid-"quoted"-\\-${i}`,
      tags: i % 3 === 0 ? [] : ['thinlv_owner=h01', `t\u00e9${i}`],
      activationSkip: i % 2 === 0,
      segments: [{ logicalStart: 0, extentCount: 1, type: 'striped', stripes: [{ pv: '/dev/loop9', firstExtent: i }] }],
    }));
    for (const count of [0, 1, 500, 501, 1234]) {
      const many = { ...report, lvs: lvs.slice(0, count) };
      const pieces = [...cacheFilePieces(key, many)];
      expect(pieces.join('').startsWith(`{"key":${JSON.stringify(key)},`)).toBe(true);
      expect(JSON.parse(pieces.join(''))).toEqual(JSON.parse(JSON.stringify({ key, report: many })));
      expect(pieces.length).toBe(2 + Math.ceil(count / 500));
    }
    await writeCachedReport(vgName, key, { ...report, lvs });
    expect(await readCachedReport(vgName, key)).toEqual({ ...report, lvs });
  });
});
