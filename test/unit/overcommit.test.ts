// The overcommit guard rail of lvcreate and lvresize -V (src/master/overcommit.ts).

import { describe, expect, test } from 'vitest';
import { checkOvercommit } from '../../src/master/overcommit.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { PV_SDB, thinlvVgMetadata } from './arbitraries/thinlvVg.js';

/** A VG of `peCount` extents, optionally with an overcommit limit tag. */
function vgOf(peCount: number, limitPercent?: number): VgMetadata {
  const vg = thinlvVgMetadata({ pvs: [{ ...PV_SDB, peCount }], settings: { quantumExtents: 16, lowWaterExtents: 8, reservePermille: 50 }, hosts: [], thinLvs: [] });
  return limitPercent === undefined ? vg : { ...vg, tags: [...vg.tags, `thinlv_overcommit_limit_percent=${limitPercent}`] };
}

describe('overcommit guard rail', () => {
  const vg = vgOf(1000);
  const vgBytes = 1000 * (vg.extentSizeSectors * 512);

  test('within the VG size: no warning', () => {
    expect(checkOvercommit(vg, new Map([['a', vgBytes / 2]]), 'b', vgBytes / 2, false)).toMatchObject({ ratio: 1, warning: undefined });
  });

  test('past the VG size: a warning in LVM\'s words, and the change goes ahead (no limit set)', () => {
    const outcome = checkOvercommit(vg, new Map([['a', 30 * vgBytes]]), 'b', vgBytes, false);
    expect(outcome.ratio).toBe(31);
    expect(outcome.warning).toMatch(/^WARNING: Sum of all thin volume sizes \(.* GiB\) against the size of VG .*: 31\.00x overcommitted\.$/);
  });

  test('past the limit tag: refused unless forced; at the limit exactly: allowed', () => {
    const limited = vgOf(1000, 300);
    const sizes = new Map([['a', 2 * vgBytes]]);
    expect(() => checkOvercommit(limited, sizes, 'b', vgBytes + 1, false)).toThrow(expect.objectContaining({ code: 'OVERCOMMIT_LIMIT' }));
    expect(checkOvercommit(limited, sizes, 'b', vgBytes, false).ratio).toBe(3);
    expect(checkOvercommit(limited, sizes, 'b', vgBytes + 1, true).warning).toBeDefined();
  });

  test('a change that lowers the total is never refused nor warned about, however far past the limit', () => {
    const limited = vgOf(1000, 100);
    expect(checkOvercommit(limited, new Map([['a', 10 * vgBytes]]), 'a', 5 * vgBytes, false)).toMatchObject({ ratio: 5, warning: undefined });
  });
});
