import { expect, test } from 'vitest';
import { reportFromPvs } from '../../src/lvm/diskMetadata.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { pvHolding, testVg } from '../fixtures/pvText.js';

// thinlv tags an LV with its virtual size before its owner, and the text keeps that order,
// while a report lists tags sorted: every thin LV of a pool has its tags out of order.
const metadata: VgMetadata = testVg({
  name: 'vg_report_tags_0123456789',
  lvs: [0, 1, 2].map((i) => ({
    name: `vdi0000${i}`,
    uuid: `lv-uuid-0123456789-abcdef-${i}`,
    status: ['READ', 'WRITE', 'VISIBLE'],
    flags: [],
    activationSkip: true,
    tags: ['thinlv_virtual_bytes=107374182400', `thinlv_owner=h0${i === 2 ? 2 : 1}`],
    segments: [0, 1].map((k) => ({ logicalStart: k, extentCount: 1, type: 'striped', stripes: [{ pv: '/dev/loop9', firstExtent: k * 3 + i }], extra: [] })),
    extra: [],
  })),
});
const pv = pvHolding(metadata);

test('a report read from the PVs sorts LVs\' tags into one list per distinct list, the rest of each LV as read', () => {
  const [a, b, c] = reportFromPvs([pv], metadata.name).lvs;
  expect(a!.tags).toEqual(['thinlv_owner=h01', 'thinlv_virtual_bytes=107374182400']);
  expect(b!.tags).toBe(a!.tags);
  expect(c!.tags).toEqual(['thinlv_owner=h02', 'thinlv_virtual_bytes=107374182400']);
  expect(c!.tags).not.toBe(a!.tags);
  expect(a!.segments.map((s) => s.stripes[0]!.firstExtent)).toEqual([0, 3]);
  expect(c).toStrictEqual({ name: 'vdi00002', uuid: 'lv-uuid-0123456789-abcdef-2', tags: c!.tags, activationSkip: true, segments: [0, 1].map((k) => ({ logicalStart: k, extentCount: 1, type: 'striped', stripes: [{ pv: '/dev/loop9', firstExtent: k * 3 + 2 }] })) });
});
