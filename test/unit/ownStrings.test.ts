import { describe, expect, test } from 'vitest';
import { MAX_SHARED_LISTS, ownLvLayout, StringTable } from '../../src/lvm/ownStrings.js';
import type { LvLayout } from '../../src/metadata/vgModel.js';

const lv = (name: string, tags: string[]): LvLayout => ({ name, uuid: `${name}-uuid-0123456789`, tags, activationSkip: true, segments: [] });

describe('a string table', () => {
  test('gives LVs with equal tags one frozen list, equal to each', () => {
    const table = new StringTable();
    const tags = () => ['thinlv_owner=h01', 'thinlv_virtual_bytes=107374182400'];
    const [a, b, c] = [lv('vdi0', tags()), lv('vdi1', tags()), lv('vdi2', ['thinlv_owner=h02'])].map((x) => ownLvLayout(x, table));
    expect(a!.tags).toBe(b!.tags);
    expect(a!.tags).toEqual(tags());
    expect(Object.isFrozen(a!.tags)).toBe(true);
    expect(c!.tags).not.toBe(a!.tags);
    expect(c!.tags).toEqual(['thinlv_owner=h02']);
  });

  test('lists that differ only in order or splitting stay apart', () => {
    const table = new StringTable();
    expect(table.sharedList(['a', 'b'])).not.toBe(table.sharedList(['b', 'a']));
    expect(table.sharedList(['a,b'])).not.toBe(table.sharedList(['a', 'b']));
    expect(table.sharedList(['a,b'])).toEqual(['a,b']);
  });

  test(`past ${MAX_SHARED_LISTS} different lists, later ones are copies of their own, equal to what was asked`, () => {
    const table = new StringTable();
    for (let i = 0; i < MAX_SHARED_LISTS; i++) table.sharedList([`t${i}`]);
    const late = table.sharedList(['late']);
    expect(table.sharedList(['late'])).not.toBe(late);
    expect(table.sharedList(['late'])).toEqual(['late']);
    expect(table.sharedList(['t0'])).toBe(table.sharedList(['t0']));
  });
});
