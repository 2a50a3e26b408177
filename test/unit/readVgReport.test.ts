import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { LvmError } from '../../src/errors.js';
import { FULLREPORT_ARGS, parseFullReport, parsePeRanges, readVgReport } from '../../src/lvm/readVgReport.js';
import type { LvmRunner } from '../../src/lvm/runLvm.js';

const VG_UUID = 'K11jSU-qKJY-LJ2c-J7pe-H53g-Rp3K-OLoUwA';
const PV_UUID = 'KDYS6r-0ASF-RPOn-2huO-D6SE-8UyA-ll67Zk';
const LV1_UUID = 'H4xxdi-43U0-X0hi-p8xL-eSMq-Gof9-JxrM9L';
const LV2_UUID = 'av4cx9-N14Y-uMBf-a71T-OM4k-06aL-CJH8rX';

type Row = Record<string, unknown>;
interface Report {
  vg: Row[];
  pv: Row[];
  lv: Row[];
  pvseg: Row[];
  seg: Row[];
}

/** `lvm fullreport` output for expvg1 (LVM 2.03.16, --units b --nosuffix), as a fresh object to edit. */
function fixtureReport(): Report {
  return {
    vg: [
      {
        vg_name: 'expvg1',
        vg_uuid: VG_UUID,
        vg_seqno: '4',
        vg_extent_size: '4194304',
        vg_extent_count: '507',
        vg_free_count: '489',
        vg_mda_size: '17821696',
        vg_mda_free: '8908288',
        vg_tags: '',
      },
    ],
    pv: [{ pv_name: '/dev/loop0', pv_uuid: PV_UUID, pe_start: '17825792', pv_pe_count: '507', dev_size: '2147483648' }],
    lv: [
      { lv_name: 'lv1', lv_uuid: LV1_UUID, lv_tags: 'foo', lv_skip_activation: '' },
      { lv_name: 'lv2', lv_uuid: LV2_UUID, lv_tags: '', lv_skip_activation: 'skip activation' },
    ],
    pvseg: [
      { pv_uuid: PV_UUID, pvseg_start: '0', pvseg_size: '10', lv_uuid: LV1_UUID },
      { pv_uuid: PV_UUID, pvseg_start: '10', pvseg_size: '5', lv_uuid: LV2_UUID },
      { pv_uuid: PV_UUID, pvseg_start: '15', pvseg_size: '3', lv_uuid: LV1_UUID },
      { pv_uuid: PV_UUID, pvseg_start: '18', pvseg_size: '489', lv_uuid: '' },
    ],
    seg: [
      { lv_uuid: LV1_UUID, seg_start_pe: '0', seg_size_pe: '10', segtype: 'linear', seg_pe_ranges: '/dev/loop0:0-9' },
      { lv_uuid: LV1_UUID, seg_start_pe: '10', seg_size_pe: '3', segtype: 'linear', seg_pe_ranges: '/dev/loop0:15-17' },
      { lv_uuid: LV2_UUID, seg_start_pe: '0', seg_size_pe: '5', segtype: 'linear', seg_pe_ranges: '/dev/loop0:10-14' },
    ],
  };
}

const toJson = (...reports: Report[]): string => JSON.stringify({ report: reports });

/** The LvmError with code LVM_OUTPUT_INVALID that `fn` throws. */
function outputInvalidOf(fn: () => unknown): LvmError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(LvmError);
    expect((error as LvmError).code).toBe('LVM_OUTPUT_INVALID');
    return error as LvmError;
  }
  throw new Error('expected LVM_OUTPUT_INVALID, nothing was thrown');
}

describe('parseFullReport', () => {
  test('reads a VG, its PVs, LVs, segments and free space from real fullreport output', () => {
    expect(parseFullReport(toJson(fixtureReport()), 'expvg1')).toEqual({
      name: 'expvg1',
      uuid: VG_UUID,
      seqno: 4,
      extentSizeSectors: 8192,
      tags: [],
      extentCount: 507,
      freeExtentCount: 489,
      metadataAreaSizeBytes: 17821696,
      metadataAreaFreeBytes: 8908288,
      pvs: [{ device: '/dev/loop0', uuid: PV_UUID, peStartSectors: 34816, peCount: 507, deviceSizeBytes: 2147483648 }],
      lvs: [
        {
          name: 'lv1',
          uuid: LV1_UUID,
          tags: ['foo'],
          activationSkip: false,
          segments: [
            { logicalStart: 0, extentCount: 10, type: 'striped', stripes: [{ pv: '/dev/loop0', firstExtent: 0 }] },
            { logicalStart: 10, extentCount: 3, type: 'striped', stripes: [{ pv: '/dev/loop0', firstExtent: 15 }] },
          ],
        },
        {
          name: 'lv2',
          uuid: LV2_UUID,
          tags: [],
          activationSkip: true,
          segments: [{ logicalStart: 0, extentCount: 5, type: 'striped', stripes: [{ pv: '/dev/loop0', firstExtent: 10 }] }],
        },
      ],
      freeRanges: [{ pv: '/dev/loop0', firstExtent: 18, extentCount: 489 }],
    });
  });

  test('comma-separated tags become a list', () => {
    const report = fixtureReport();
    report.vg[0]!['vg_tags'] = 'thinlv_version_1,seq_h1_4';
    report.lv[1]!['lv_tags'] = 'a,b,c';
    const vg = parseFullReport(toJson(report), 'expvg1');
    expect(vg.tags).toEqual(['thinlv_version_1', 'seq_h1_4']);
    expect(vg.lvs[1]?.tags).toEqual(['a', 'b', 'c']);
  });

  test('a multi-stripe segment reported as "striped" has one stripe area per PE range', () => {
    const report = fixtureReport();
    report.seg[2] = { lv_uuid: LV2_UUID, seg_start_pe: '0', seg_size_pe: '10', segtype: 'striped', seg_pe_ranges: '/dev/loop0:100-104 /dev/loop1:0-4' };
    expect(parseFullReport(toJson(report), 'expvg1').lvs[1]?.segments).toEqual([
      {
        logicalStart: 0,
        extentCount: 10,
        type: 'striped',
        stripes: [
          { pv: '/dev/loop0', firstExtent: 100 },
          { pv: '/dev/loop1', firstExtent: 0 },
        ],
      },
    ]);
  });

  test('hidden LVs, printed in brackets, lose the brackets; a thin segment keeps its type with no stripes', () => {
    const report = fixtureReport();
    const poolUuid = 'pOoLuu-0000-1111-2222-3333-4444-555555';
    const tdataUuid = 'tDaTau-0000-1111-2222-3333-4444-555555';
    const thinUuid = 'tHiNuu-0000-1111-2222-3333-4444-555555';
    report.lv.push(
      { lv_name: 'pool', lv_uuid: poolUuid, lv_tags: '', lv_skip_activation: '' },
      { lv_name: '[pool_tdata]', lv_uuid: tdataUuid, lv_tags: '', lv_skip_activation: '' },
      { lv_name: 'thin1', lv_uuid: thinUuid, lv_tags: '', lv_skip_activation: '' },
    );
    report.seg.push(
      { lv_uuid: poolUuid, seg_start_pe: '0', seg_size_pe: '20', segtype: 'thin-pool', seg_pe_ranges: '[pool_tdata]:0-19' },
      { lv_uuid: tdataUuid, seg_start_pe: '0', seg_size_pe: '20', segtype: 'linear', seg_pe_ranges: '/dev/loop0:18-37' },
      { lv_uuid: thinUuid, seg_start_pe: '0', seg_size_pe: '250', segtype: 'thin', seg_pe_ranges: '' },
    );
    const lvs = parseFullReport(toJson(report), 'expvg1').lvs;
    expect(lvs.map((l) => l.name)).toEqual(['lv1', 'lv2', 'pool', 'pool_tdata', 'thin1']);
    expect(lvs[2]?.segments).toEqual([{ logicalStart: 0, extentCount: 20, type: 'thin-pool', stripes: [] }]);
    expect(lvs[3]?.segments).toEqual([{ logicalStart: 0, extentCount: 20, type: 'striped', stripes: [{ pv: '/dev/loop0', firstExtent: 18 }] }]);
    expect(lvs[4]?.segments).toEqual([{ logicalStart: 0, extentCount: 250, type: 'thin', stripes: [] }]);
  });

  test('segment rows out of order come back in logical order', () => {
    const report = fixtureReport();
    report.seg.reverse();
    expect(parseFullReport(toJson(report), 'expvg1').lvs[0]?.segments.map((s) => s.logicalStart)).toEqual([0, 10]);
  });

  test('free ranges come from every pvseg row with an empty lv_uuid, on every PV', () => {
    const report = fixtureReport();
    const pv2 = 'PV2uui-0000-1111-2222-3333-4444-555555';
    report.pv.push({ pv_name: '/dev/loop1', pv_uuid: pv2, pe_start: '1048576', pv_pe_count: '100', dev_size: '420478976' });
    report.pvseg.push(
      { pv_uuid: pv2, pvseg_start: '0', pvseg_size: '40', lv_uuid: '' },
      { pv_uuid: pv2, pvseg_start: '40', pvseg_size: '10', lv_uuid: LV1_UUID },
      { pv_uuid: pv2, pvseg_start: '50', pvseg_size: '50', lv_uuid: '' },
    );
    expect(parseFullReport(toJson(report), 'expvg1').freeRanges).toEqual([
      { pv: '/dev/loop0', firstExtent: 18, extentCount: 489 },
      { pv: '/dev/loop1', firstExtent: 0, extentCount: 40 },
      { pv: '/dev/loop1', firstExtent: 50, extentCount: 50 },
    ]);
  });

  test('the VG is found among several reports by name', () => {
    const other = fixtureReport();
    other.vg[0]!['vg_name'] = 'othervg';
    other.vg[0]!['vg_seqno'] = '99';
    expect(parseFullReport(toJson(other, fixtureReport()), 'expvg1').seqno).toBe(4);
    expect(parseFullReport(toJson(other, fixtureReport()), 'othervg').seqno).toBe(99);
  });

  test('a VG that is not in the report is VG_NOT_FOUND, naming it', () => {
    for (const json of [toJson(fixtureReport()), toJson(), '{"report":[{"vg":[],"pv":[],"lv":[],"pvseg":[],"seg":[]}]}']) {
      let caught: unknown;
      try {
        parseFullReport(json, 'nosuchvg');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(LvmError);
      expect((caught as LvmError).code).toBe('VG_NOT_FOUND');
      expect((caught as LvmError).data).toEqual({ vg: 'nosuchvg' });
      expect((caught as LvmError).message).toMatch(/"nosuchvg" not found/);
    }
  });

  test.each([
    ['text that is not JSON', 'Volume group "x" not found', /not JSON/],
    ['JSON that is not an object', '42', /not an object/],
    ['JSON null', 'null', /not an object/],
    ['no "report" list', '{"reports":[]}', /"report" is not a list/],
    ['a report that is not an object', '{"report":[7]}', /report\[0\] is not an object/],
    ['a report without a vg list', '{"report":[{"pv":[]}]}', /"vg" is not a list/],
  ])('%s is LVM_OUTPUT_INVALID', (_what, json, message) => {
    expect(outputInvalidOf(() => parseFullReport(json, 'expvg1')).message).toMatch(message);
  });

  // Every field the reader takes from a row, and how it names it when the field is missing.
  const requiredFields: [keyof Report, number, string, string][] = [
    ['vg', 0, 'vg_uuid', 'vg.vg_uuid'],
    ['vg', 0, 'vg_seqno', 'vg.vg_seqno'],
    ['vg', 0, 'vg_extent_size', 'vg.vg_extent_size'],
    ['vg', 0, 'vg_extent_count', 'vg.vg_extent_count'],
    ['vg', 0, 'vg_free_count', 'vg.vg_free_count'],
    ['vg', 0, 'vg_mda_size', 'vg.vg_mda_size'],
    ['vg', 0, 'vg_mda_free', 'vg.vg_mda_free'],
    ['vg', 0, 'vg_tags', 'vg.vg_tags'],
    ['pv', 0, 'pv_name', 'pv[0].pv_name'],
    ['pv', 0, 'pv_uuid', 'pv[0].pv_uuid'],
    ['pv', 0, 'pe_start', 'pv[0].pe_start'],
    ['pv', 0, 'pv_pe_count', 'pv[0].pv_pe_count'],
    ['pv', 0, 'dev_size', 'pv[0].dev_size'],
    ['lv', 1, 'lv_name', 'lv[1].lv_name'],
    ['lv', 1, 'lv_uuid', 'lv[1].lv_uuid'],
    ['lv', 1, 'lv_tags', 'lv[1].lv_tags'],
    ['lv', 1, 'lv_skip_activation', 'lv[1].lv_skip_activation'],
    ['seg', 2, 'lv_uuid', 'seg[2].lv_uuid'],
    ['seg', 2, 'seg_start_pe', 'seg[2].seg_start_pe'],
    ['seg', 2, 'seg_size_pe', 'seg[2].seg_size_pe'],
    ['seg', 2, 'segtype', 'seg[2].segtype'],
    ['seg', 2, 'seg_pe_ranges', 'seg[2].seg_pe_ranges'],
    ['pvseg', 1, 'lv_uuid', 'pvseg[1].lv_uuid'],
    ['pvseg', 3, 'pv_uuid', 'pvseg[3].pv_uuid'],
    ['pvseg', 3, 'pvseg_start', 'pvseg[3].pvseg_start'],
    ['pvseg', 3, 'pvseg_size', 'pvseg[3].pvseg_size'],
  ];

  test.each(requiredFields)('a %s row (index %i) without %s is LVM_OUTPUT_INVALID naming the field', (section, index, key, named) => {
    const report = fixtureReport();
    delete report[section][index]![key];
    expect(outputInvalidOf(() => parseFullReport(toJson(report), 'expvg1')).message).toContain(`${named} is missing or not a string`);
  });

  test.each(requiredFields)('a %s row (index %i) whose %s is a JSON number, not a string, is LVM_OUTPUT_INVALID', (section, index, key, named) => {
    const report = fixtureReport();
    report[section][index]![key] = 12;
    expect(outputInvalidOf(() => parseFullReport(toJson(report), 'expvg1')).message).toContain(named);
  });

  const countFields = requiredFields.filter(([, , key]) => /seqno|size|count|free|start/.test(key) && key !== 'vg_tags');

  test.prop([fc.constantFrom(...countFields), fc.string({ maxLength: 8 }).filter((s) => !/^[0-9]+$/.test(s))], { numRuns: 100 })(
    'a count that is not a non-negative decimal integer is LVM_OUTPUT_INVALID naming the field and value',
    ([section, index, key, named], value) => {
      const report = fixtureReport();
      report[section][index]![key] = value;
      const message = outputInvalidOf(() => parseFullReport(toJson(report), 'expvg1')).message;
      expect(message).toContain(named);
      expect(message).toContain(JSON.stringify(value));
    },
  );

  test.each([
    ['a negative count', (r: Report) => (r.vg[0]!['vg_free_count'] = '-1'), /vg\.vg_free_count = "-1" is not a non-negative integer/],
    ['a count with a unit suffix', (r: Report) => (r.pv[0]!['dev_size'] = '2147483648B'), /pv\[0\]\.dev_size/],
    ['a count beyond 2^53', (r: Report) => (r.vg[0]!['vg_seqno'] = '9007199254740993'), /vg\.vg_seqno = 9007199254740993 is out of range/],
    ['an extent size of zero', (r: Report) => (r.vg[0]!['vg_extent_size'] = '0'), /extent size 0 is not whole sectors/],
    ['an extent size that is not whole sectors', (r: Report) => (r.vg[0]!['vg_extent_size'] = '4194305'), /not whole sectors/],
    ['a pe_start that is not whole sectors', (r: Report) => (r.pv[0]!['pe_start'] = '17825793'), /pv\[0\]\.pe_start 17825793 is not whole sectors/],
    ['a "pv" that is not a list', (r: Report) => ((r as unknown as Row)['pv'] = { pv_name: 'x' }), /"pv" is not a list/],
    ['a missing "seg" list', (r: Report) => delete (r as unknown as Row)['seg'], /"seg" is not a list/],
    ['a row that is a list', (r: Report) => ((r.lv as unknown[])[0] = ['lv1']), /lv\[0\] is not an object/],
    ['a row that is null', (r: Report) => ((r.pvseg as unknown[])[0] = null), /pvseg\[0\] is not an object/],
    ['PE ranges that do not add up to the segment size', (r: Report) => (r.seg[0]!['seg_size_pe'] = '11'), /seg\[0\]: PE ranges do not add up to 11 extents/],
    ['unequal stripes', (r: Report) => Object.assign(r.seg[2]!, { segtype: 'striped', seg_size_pe: '10', seg_pe_ranges: '/dev/loop0:0-5 /dev/loop1:0-3' }), /seg\[2\]: PE ranges do not add up/],
    ['an unreadable PE range', (r: Report) => (r.seg[1]!['seg_pe_ranges'] = '/dev/loop0 15-17'), /seg\[1\]: cannot read PE range/],
    ['a free pvseg on a PV the report does not list', (r: Report) => (r.pvseg[3]!['pv_uuid'] = 'nosuch'), /pvseg\[3\] refers to an unknown PV/],
  ])('%s is LVM_OUTPUT_INVALID', (_what, breakIt, message) => {
    const report = fixtureReport();
    breakIt(report);
    expect(outputInvalidOf(() => parseFullReport(toJson(report), 'expvg1')).message).toMatch(message);
  });
});

describe('parsePeRanges', () => {
  test('reads space-separated device:first-last ranges', () => {
    expect(parsePeRanges('/dev/sdb:10-19 /dev/sdc:0-9', 'seg[0]')).toEqual([
      { pv: '/dev/sdb', firstExtent: 10, extentCount: 10 },
      { pv: '/dev/sdc', firstExtent: 0, extentCount: 10 },
    ]);
  });

  test('the last colon separates device from range, so device paths may hold colons', () => {
    expect(parsePeRanges('/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-lun-0:5-5', 'x')).toEqual([
      { pv: '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-lun-0', firstExtent: 5, extentCount: 1 },
    ]);
  });

  test('empty and blank text is no ranges', () => {
    expect(parsePeRanges('', 'x')).toEqual([]);
    expect(parsePeRanges('   ', 'x')).toEqual([]);
  });

  test.each(['/dev/sdb', '/dev/sdb:10', '/dev/sdb:a-b', ':1-2', '/dev/sdb:-1-2'])('"%s" is LVM_OUTPUT_INVALID', (raw) => {
    expect(outputInvalidOf(() => parsePeRanges(raw, 'seg[4]')).message).toMatch(/seg\[4\]: cannot read PE range/);
  });

  test('a range that ends before it starts is LVM_OUTPUT_INVALID', () => {
    expect(outputInvalidOf(() => parsePeRanges('/dev/sdb:9-3', 'seg[0]')).message).toMatch(/ends before it starts/);
  });

  test.prop(
    [
      fc.array(
        fc.record({ pv: fc.stringMatching(/^\/dev\/[a-z0-9:/_.-]{1,20}$/), firstExtent: fc.nat(1_000_000), extentCount: fc.integer({ min: 1, max: 1_000_000 }) }),
        { maxLength: 6 },
      ),
      fc.constantFrom(' ', '  ', '\t'),
    ],
    { numRuns: 200 },
  )('reads back any list of ranges printed the way lvm prints them', (ranges, separator) => {
    const raw = ranges.map((r) => `${r.pv}:${r.firstExtent}-${r.firstExtent + r.extentCount - 1}`).join(separator);
    expect(parsePeRanges(raw, 'x')).toEqual(ranges);
  });
});

describe('readVgReport', () => {
  test('runs one read-only fullreport with the report options and the VG name, and parses its output', async () => {
    const calls: { command: string; args: readonly string[] }[] = [];
    const lvm: LvmRunner = {
      run: async (command, args) => {
        calls.push({ command, args });
        return { stdout: toJson(fixtureReport()), stderr: '' };
      },
    };
    const vg = await readVgReport(lvm, 'expvg1');
    expect(vg.seqno).toBe(4);
    // --readonly: a report must never let lvm write (repair) the VG.
    expect(calls).toEqual([{ command: 'fullreport', args: [...FULLREPORT_ARGS, '--readonly', 'expvg1'] }]);
    expect(FULLREPORT_ARGS).toEqual(expect.arrayContaining(['--reportformat', 'json', '--units', 'b', '--nosuffix']));
  });
});
