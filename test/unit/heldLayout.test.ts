import { describe, expect, test } from 'vitest';

import { heldLayout } from '../../src/host/heldLayout.js';
import { isOwnReport, reportFromPvs } from '../../src/lvm/diskMetadata.js';
import { MAX_SHARED_LINES, parseConfigLines } from '../../src/lvm/configLines.js';
import { parseConfigTokens } from '../../src/lvm/configTree.js';
import type { VgMetadata, VgReport } from '../../src/metadata/vgModel.js';
import { pvHolding, testVg } from '../fixtures/pvText.js';

const report: VgReport = {
  name: 'vg0',
  uuid: 'vg-uuid-0123456789-abcdef',
  seqno: 7,
  extentSizeSectors: 8192,
  tags: ['thinlv_format_1'],
  pvs: [{ device: '/dev/mapper/mpatha', uuid: 'pv-uuid-0123456789-abcdef', peStartSectors: 2048, peCount: 1000, deviceSizeBytes: 4 * 1024 ** 3 }],
  lvs: ['vdi00000', 'vdi00001'].map((name, i) => ({
    name,
    uuid: `lv-uuid-0123456789-${i}`,
    tags: ['thinlv_virtual_bytes_107374182400', 'thinlv_owner_h01'],
    activationSkip: true,
    segments: [{ logicalStart: 0, extentCount: 1, type: 'striped', stripes: [{ pv: '/dev/mapper/mpatha', firstExtent: i }] }],
  })),
  extentCount: 1000,
  freeExtentCount: 998,
  metadataAreaSizeBytes: 1024 ** 2,
  metadataAreaFreeBytes: 512 * 1024,
  freeRanges: [{ pv: '/dev/mapper/mpatha', firstExtent: 2, extentCount: 998 }],
};

describe('the layout the host daemon keeps', () => {
  test('is the report less its space figures and free ranges, field for field', () => {
    const pv = report.pvs[0]!;
    expect(heldLayout(report)).toStrictEqual({
      name: report.name,
      uuid: report.uuid,
      seqno: report.seqno,
      extentSizeSectors: report.extentSizeSectors,
      tags: report.tags,
      pvs: [{ device: pv.device, uuid: pv.uuid, peStartSectors: pv.peStartSectors, peCount: pv.peCount }],
      lvs: report.lvs,
    });
  });

  test('shares no object with the report it was copied from', () => {
    const held = heldLayout(report);
    expect(held.lvs[0]).not.toBe(report.lvs[0]);
    expect(held.lvs[0]!.segments[0]!.stripes).not.toBe(report.lvs[0]!.segments[0]!.stripes);
    expect(held.pvs[0]).not.toBe(report.pvs[0]);
  });
});

describe('a report read from the PVs (diskMetadata.ts)', () => {
  const metadata: VgMetadata = testVg({
    name: 'vg_held_test_0123456789',
    seqno: 9,
    tags: ['thinlv_format=1', 'thinlv_quantum_extents=400'],
    lvs: ['vdi00001', 'vdi00000', 'vdi00002'].map((name, i) => ({
      name,
      uuid: `lv-uuid-0123456789-abcdef-${i}`,
      status: ['READ', 'WRITE', 'VISIBLE'],
      flags: [],
      activationSkip: true,
      // Out of order on one LV: its report entry is a sorted copy.
      tags: i === 2 ? ['thinlv_virtual_bytes=107374182400', 'thinlv_owner=h01'] : ['thinlv_owner=h01', 'thinlv_virtual_bytes=107374182400'],
      segments: [0, 1].map((k) => ({ logicalStart: k, extentCount: 1, type: 'striped', stripes: [{ pv: '/dev/loop9', firstExtent: k * 3 + i }], extra: [] })),
      extra: [],
    })),
  });
  const pv = pvHolding(metadata);

  test('is kept as it is, LVs and all, and equals the copy any other report gets', () => {
    const read = reportFromPvs([pv], metadata.name);
    expect(isOwnReport(read)).toBe(true);
    const held = heldLayout(read);
    expect(held.lvs).toBe(read.lvs);
    const copied = JSON.parse(JSON.stringify(read)) as VgReport;
    expect(isOwnReport(copied)).toBe(false);
    expect(held).toStrictEqual(heldLayout(copied));
    expect(held.lvs.map((lv) => lv.name)).toEqual(['vdi00000', 'vdi00001', 'vdi00002']);
    expect(held.lvs.every((lv) => lv.tags[0] === 'thinlv_owner=h01')).toBe(true);
  });
});

describe('the line parser shares the entries of repeated lines', () => {
  const text = 'a {\n\tx = 1\n\ttags = ["t"]\n}\nb {\n\tx = 1\n\ttags = ["t"]\n}\n';

  test('two equal lines give one entry, and the tree the general parser builds', () => {
    const tree = parseConfigLines(text)!;
    expect(tree).toEqual(parseConfigTokens(text));
    const [a, b] = tree as { kind: 'section'; entries: readonly unknown[] }[];
    expect(a!.entries[0]).toBe(b!.entries[0]);
    expect(a!.entries[1]).toBe(b!.entries[1]);
  });

  test(`past ${MAX_SHARED_LINES} different lines, later repeats get entries of their own, equal to the rest`, () => {
    const distinct = Array.from({ length: MAX_SHARED_LINES }, (_, i) => `k${i} = ${i}`).join('\n');
    const tree = parseConfigLines(`${distinct}\nlate = 1\nlate = 1\n`)!;
    expect(tree).toHaveLength(MAX_SHARED_LINES + 2);
    expect(tree[MAX_SHARED_LINES]).not.toBe(tree[MAX_SHARED_LINES + 1]);
    expect(tree[MAX_SHARED_LINES]).toEqual(tree[MAX_SHARED_LINES + 1]);
  });
});
