import { describe, expect, test } from 'vitest';

import { reportFromPvs } from '../../src/lvm/diskMetadata.js';
import { sameLv } from '../../src/lvm/sharedLvs.js';
import type { LvMetadata, VgMetadata } from '../../src/metadata/vgModel.js';
import { pvHolding, TEST_PV_DEVICE, testVg } from '../fixtures/pvText.js';

const DEVICE = TEST_PV_DEVICE;

function lv(i: number, extentCount = 2): LvMetadata {
  return {
    name: `vdi${String(i).padStart(5, '0')}`,
    uuid: `lv-uuid-0123456789-abcdef-${i}`,
    status: ['READ', 'WRITE', 'VISIBLE'],
    flags: [],
    activationSkip: true,
    // In the order thinlv writes them (virtual size first): the report sorts them.
    tags: ['thinlv_virtual_bytes=107374182400', `thinlv_owner=h0${i % 3}`],
    segments: Array.from({ length: extentCount }, (_, k) => ({ logicalStart: k, extentCount: 1, type: 'striped', stripes: [{ pv: DEVICE, firstExtent: k * 100 + i }], extra: [] })),
    extra: [],
  };
}

function metadata(seqno: number, lvs: readonly LvMetadata[]): VgMetadata {
  return testVg({ name: 'vg_shared_test_0123456789', seqno, lvs });
}

const lvsOf = (count: number): LvMetadata[] => Array.from({ length: count }, (_, i) => lv(i));

describe('a re-read shares the LVs that did not change with the layout its caller holds', () => {
  const before = metadata(5, lvsOf(6));
  const held = reportFromPvs([pvHolding(before)], before.name);

  test('an unchanged text gives every LV as the held object, and the report a read without sharing gives', () => {
    const again = reportFromPvs([pvHolding(before)], before.name, held.lvs);
    again.lvs.forEach((read, i) => expect(read).toBe(held.lvs[i]));
    expect(again).toStrictEqual(reportFromPvs([pvHolding(before)], before.name));
  });

  test('an LV grown, one retagged and one created since are read afresh; the rest are shared', () => {
    const lvs = lvsOf(7);
    lvs[2] = lv(2, 3);
    lvs[4] = { ...lvs[4]!, tags: ['thinlv_virtual_bytes=107374182400', 'thinlv_owner=h09'] };
    const after = metadata(6, lvs);
    const read = reportFromPvs([pvHolding(after)], after.name, held.lvs);
    expect(read).toStrictEqual(reportFromPvs([pvHolding(after)], after.name));
    const shared = read.lvs.filter((lv) => held.lvs.includes(lv)).map((lv) => lv.name);
    expect(shared).toEqual(['vdi00000', 'vdi00001', 'vdi00003', 'vdi00005']);
    expect(read.lvs[2]!.segments).toHaveLength(3);
    expect(read.lvs[4]!.tags).toEqual(['thinlv_owner=h09', 'thinlv_virtual_bytes=107374182400']);
  });

  test('PVs read on another device than the text names share nothing: every stripe names the new device', () => {
    const read = reportFromPvs([pvHolding(before, '/dev/mapper/mpathb')], before.name, held.lvs);
    expect(read).toStrictEqual(reportFromPvs([pvHolding(before, '/dev/mapper/mpathb')], before.name));
    expect(read.lvs.some((lv) => held.lvs.includes(lv))).toBe(false);
    expect(read.lvs.every((lv) => lv.segments.every((s) => s.stripes.every((st) => st.pv === '/dev/mapper/mpathb')))).toBe(true);
  });

  test('a held list out of name order shares fewer LVs, never a wrong one', () => {
    const shuffled = [held.lvs[3]!, held.lvs[0]!, held.lvs[5]!, held.lvs[1]!, held.lvs[4]!, held.lvs[2]!];
    const read = reportFromPvs([pvHolding(before)], before.name, shuffled);
    expect(read).toStrictEqual(reportFromPvs([pvHolding(before)], before.name));
    for (const lv of read.lvs) if (held.lvs.includes(lv)) expect(sameLv(lv, held.lvs.find((h) => h.name === lv.name)!)).toBe(true);
  });
});

describe('sameLv', () => {
  const base = reportFromPvs([pvHolding(metadata(5, lvsOf(1)))], 'vg_shared_test_0123456789').lvs[0]!;

  test.each([
    ['uuid', { ...base, uuid: 'other-uuid-0123456789' }],
    ['activation skip', { ...base, activationSkip: false }],
    ['tags', { ...base, tags: [...base.tags, 'x'] }],
    ['segment count', { ...base, segments: base.segments.slice(1) }],
    ['segment type', { ...base, segments: [{ ...base.segments[0]!, type: 'error' }, base.segments[1]!] }],
    ['stripe start', { ...base, segments: [base.segments[0]!, { ...base.segments[1]!, stripes: [{ pv: DEVICE, firstExtent: 999 }] }] }],
    ['stripe device', { ...base, segments: [base.segments[0]!, { ...base.segments[1]!, stripes: [{ pv: '/dev/sdz', firstExtent: base.segments[1]!.stripes[0]!.firstExtent }] }] }],
  ])('tells LVs apart by %s', (_, other) => {
    expect(sameLv(base, other)).toBe(false);
    expect(sameLv(base, JSON.parse(JSON.stringify(base)) as typeof base)).toBe(true);
  });
});
