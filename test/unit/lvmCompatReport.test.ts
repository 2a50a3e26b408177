// Reading stock lvm's report cells and printing them back, with thin LVs' cells rewritten:
// the layouts below are lvm 2.03's own output for the same reports.

import { describe, expect, test } from 'vitest';
import { CELL_SEPARATOR as US, parseStockReport, patchReport, printReport, type PatchInput, type ReportLayout } from '../../src/lvmcompat/reportColumns.js';
import type { GrownThinLv } from '../../src/lvmcompat/thinSizes.js';

const MiB = 1024 * 1024;
const EXTENT = 4 * MiB;
const hidden = (uuid: string) => [uuid, 'vg0', '7', 'thinlv_format=1'];
/** A line as lvm printed it with thinlv's separator and hidden columns. */
const line = (cells: string[], uuid = 'UUID-HEADING') => `  ${[...cells, ...(uuid === 'UUID-HEADING' ? ['LV UUID', 'VG', 'Seq', 'VG Tags'] : hidden(uuid))].join(US)}\n`;

const buffered: ReportLayout = { headings: true, aligned: true, buffered: true, separator: ' ' };
const grownLv = (uuid: string, name: string, metadata: [number, number][], after: [number, number][]): GrownThinLv => {
  let start = 0;
  const seg = (list: [number, number][]) => {
    start = 0;
    return list.map(([first, count]) => ({ pv: '/dev/loop0', firstExtent: first, extentCount: count, logicalStart: (start += count) - count }));
  };
  const metadataSegments = seg(metadata);
  const segments = seg(after);
  return { name, uuid, metadataSegments, segments, metadataExtentCount: metadataSegments.reduce((n, s) => n + s.extentCount, 0), extentCount: segments.reduce((n, s) => n + s.extentCount, 0) };
};

describe('parseStockReport and printReport', () => {
  test('print lvm\'s cells back byte for byte, without the hidden columns, headings or not', () => {
    const stdout = line(['LV  ', 'LSize ']) + line(['a_lv', '12.00m'], 'u1') + line(['x   ', ' 4.00m'], 'u2');
    const report = parseStockReport(stdout);
    expect(report.rows.map((r) => [r.lvUuid, r.vgName, r.seqno, r.vgTags])).toEqual([['u1', 'vg0', 7, ['thinlv_format=1']], ['u2', 'vg0', 7, ['thinlv_format=1']]]);
    expect(printReport(report.heading, report.rows.map((r) => r.cells), buffered)).toBe('  LV   LSize \n  a_lv 12.00m\n  x     4.00m\n');
    expect(printReport(report.heading, report.rows.map((r) => r.cells), { ...buffered, headings: false })).toBe('  a_lv 12.00m\n  x     4.00m\n');
  });

  test('an empty report prints nothing', () => {
    expect(parseStockReport('')).toEqual({ heading: undefined, rows: [] });
    expect(printReport(undefined, [], buffered)).toBe('');
  });
});

describe('patchReport', () => {
  const input = (stdout: string, layout: ReportLayout, grown: GrownThinLv[], unit = 'h'): PatchInput => ({
    report: parseStockReport(stdout),
    layout,
    sizeFormat: { unit, suffix: !layout.aligned || unit !== 'b', style: 'report' },
    grown: new Map(grown.map((lv) => [lv.uuid, { lv, extentSizeBytes: EXTENT }])),
    metadataSegments: new Map(grown.map((lv) => [lv.uuid, { segments: lv.metadataSegments, extentSizeBytes: EXTENT }])),
    extentsHint: { start: false, size: false },
  });
  const print = (patched: { heading: string[] | undefined; rows: string[][] }, layout: ReportLayout) => printReport(patched.heading, patched.rows, layout);

  test('a wider size widens its column, right-aligned, and the other cells stay lvm\'s', () => {
    const stdout = line(['LV  ', 'LSize', 'Attr      ']) + line(['a_lv', '4.00m', '-wi-XX----'], 'u1') + line(['x   ', '4.00m', '-wi-XX----'], 'u2');
    const thin = grownLv('u2', 'x', [[0, 1]], [[0, 1], [9, 2559]]);
    expect(print(patchReport(input(stdout, buffered, [thin])), buffered)).toBe('  LV   LSize  Attr      \n  a_lv  4.00m -wi-XX----\n  x    10.00g -wi-XX----\n');
  });

  test('segment reports: the last segment grows where replay continues it, new segments become rows', () => {
    const layout: ReportLayout = { headings: false, aligned: true, buffered: false, separator: ' ' };
    // `lvs --unbuffered -o lv_name,lv_size,segtype,seg_count,seg_start,seg_size,devices --units b --nosuffix`
    const stdout =
      line(['LV  ', 'LSize  ', 'Type  ', '#Seg', 'Start', 'SSize  ', 'Devices       ']) +
      line(['disk0', '4194304', 'linear', '   1', '    0', '4194304', '/dev/loop0(40)'], 'u1') +
      line(['b_lv', '12582912', 'linear', '   1', '    0', '12582912', '/dev/loop0(0)'], 'u2');
    const thin = grownLv('u1', 'disk0', [[40, 1]], [[40, 3], [7, 2]]);
    const patched = print(patchReport({ ...input(stdout, layout, [thin], 'b'), sizeFormat: { unit: 'b', suffix: false, style: 'report' } }), layout);
    expect(patched).toBe(
      '  disk0 20971520 linear    2     0 12582912 /dev/loop0(40)\n' +
        '  disk0 20971520 linear    2 12582912 8388608 /dev/loop0(7)\n' +
        '  b_lv 12582912 linear    1     0 12582912 /dev/loop0(0)\n',
    );
  });

  test('with a separator and no --aligned nothing is padded', () => {
    const layout: ReportLayout = { headings: false, aligned: false, buffered: true, separator: ' ' };
    const stdout = line(['LV', 'LSize']) + line(['disk0', '4.00m'], 'u1');
    const thin = grownLv('u1', 'disk0', [[0, 1]], [[0, 4]]);
    expect(print(patchReport(input(stdout, layout, [thin])), layout)).toBe('  disk0 16.00m\n');
  });

  test('a report that shows only some of a grown LV\'s segments is refused, not guessed', () => {
    const stdout = line(['LV   ', 'Start', 'SSize ']) + line(['disk0', '    0', ' 4.00m'], 'u1');
    const thin = grownLv('u1', 'disk0', [[0, 1], [5, 1]], [[0, 1], [5, 2]]);
    expect(() => patchReport(input(stdout, buffered, [thin]))).toThrow(/1 of LV disk0's 2 segments/);
  });
});
