import { describe, expect, it } from 'vitest';
import { ExtentSet } from '../../src/extent/extentSet.js';
import { applyChanges, type NewLvIdentity } from '../../src/metadata/applyChanges.js';
import type { LvMetadata, SegmentMetadata, VgMetadata } from '../../src/metadata/vgModel.js';
import { lvmCompatInvocation } from '../../src/lvmcompat/dispatch.js';
import { COMMON_OPTIONS, LvmUsageError, parseLvmArgs } from '../../src/lvmcompat/lvmArgs.js';
import { placeNewLv } from '../../src/lvmcompat/ordinaryLvPlacement.js';
import { parseExtentsOption, parseSizeOption, targetExtents } from '../../src/lvmcompat/sizeArgs.js';
import { readLvcreateRequest } from '../../src/lvmcompat/commands/lvcreate.js';
import { readRenameRequest } from '../../src/lvmcompat/commands/lvrename.js';
import { readLvchangeRequest } from '../../src/lvmcompat/commands/lvchange.js';
import { withCommonOptions } from '../../src/lvmcompat/writeCommon.js';

const MIB = 1024 ** 2;
const identity: NewLvIdentity = { newUuid: () => 'uuid-new', nowSeconds: () => 1, hostname: 'm1' };
const linear = (logicalStart: number, firstExtent: number, extentCount: number): SegmentMetadata => ({ logicalStart, extentCount, type: 'striped', stripes: [{ pv: '/dev/loop0', firstExtent }], extra: [] });
const lv = (name: string, segments: SegmentMetadata[]): LvMetadata => ({ name, uuid: `uuid-${name}`, status: ['READ', 'WRITE', 'VISIBLE'], flags: [], activationSkip: false, tags: [], segments, extra: [] });
const vg: VgMetadata = {
  header: [],
  name: 'vg1',
  uuid: 'uuid-vg1',
  seqno: 3,
  status: ['RESIZEABLE', 'READ', 'WRITE'],
  flags: [],
  tags: [],
  extentSizeSectors: 8192,
  extra: [],
  pvs: [{ key: 'pv0', device: '/dev/loop0', uuid: 'uuid-pv0', status: ['ALLOCATABLE'], flags: [], tags: [], devSizeSectors: 2048 + 64 * 8192, peStartSectors: 2048, peCount: 64, extra: [] }],
  lvs: [lv('a', [linear(0, 0, 4)]), lv('b', [linear(0, 4, 2)]), lv('c', [linear(0, 10, 1)])],
};

// Some option specs for parsing lvcreate / lvchange command lines in these tests.
const parse = (command: string, args: string[], specs: Parameters<typeof parseLvmArgs>[2]) => parseLvmArgs(command, args, withCommonOptions(specs));
const LVCREATE_SPECS = ['name:n', 'size:L', 'extents:l', 'virtualsize:V', 'addtag', 'wipesignatures:W', 'zero:Z', 'activate:a'].map((spec) => {
  const [long, short] = spec.split(':') as [string, string | undefined];
  return { long, takesValue: true, ...(short === undefined ? {} : { short }) };
});
const lvcreate = (...args: string[]) => readLvcreateRequest(parse('lvcreate', args, [...LVCREATE_SPECS, { long: 'inactive', takesValue: false }]));

describe('lvm-compatible metadata commands: pure parts', () => {
  it('renaming an LV keeps its place, segments and tags; a taken or invalid name is refused', () => {
    const next = applyChanges(vg, [{ kind: 'renameLv', name: 'b', newName: 'b2' }], identity);
    expect(next.lvs.map((l) => l.name)).toEqual(['a', 'b2', 'c']);
    expect(next.lvs[1]!.segments).toEqual(vg.lvs[1]!.segments);
    expect(() => applyChanges(vg, [{ kind: 'renameLv', name: 'b', newName: 'c' }], identity)).toThrow(/already exists/);
    expect(() => applyChanges(vg, [{ kind: 'renameLv', name: 'b', newName: 'bad!' }], identity)).toThrow(/may only contain/);
    expect(() => applyChanges(vg, [{ kind: 'renameLv', name: 'zz', newName: 'y' }], identity)).toThrow(/does not exist/);
  });

  it('permission changes toggle the WRITE flag where lvm writes it', () => {
    const readOnly = applyChanges(vg, [{ kind: 'setLvWritable', lv: 'a', writable: false }], identity);
    expect(readOnly.lvs[0]!.status).toEqual(['READ', 'VISIBLE']);
    const writable = applyChanges(readOnly, [{ kind: 'setLvWritable', lv: 'a', writable: true }], identity);
    expect(writable.lvs[0]!.status).toEqual(['READ', 'WRITE', 'VISIBLE']);
  });

  it('a new ordinary LV takes the first free run that holds it whole, as lvm 2.03 places it', () => {
    const free = ExtentSet.fromRanges([{ pv: '/dev/loop0', firstExtent: 6, extentCount: 4 }, { pv: '/dev/loop0', firstExtent: 11, extentCount: 53 }]);
    expect(placeNewLv(free, 1)).toEqual({ ok: true, ranges: [{ pv: '/dev/loop0', firstExtent: 6, extentCount: 1 }] });
    expect(placeNewLv(free, 5)).toEqual({ ok: true, ranges: [{ pv: '/dev/loop0', firstExtent: 11, extentCount: 5 }] });
    const split = placeNewLv(free, 55);
    expect(split.ok && split.ranges.reduce((sum, r) => sum + r.extentCount, 0)).toBe(55);
    expect(placeNewLv(free, 58)).toEqual({ ok: false, availableExtentCount: 57 });
  });

  it('sizes round up to whole extents and relative sizes apply to the current size', () => {
    const extent = 4 * MIB;
    expect(targetExtents(parseSizeOption('5M'), 0, extent)).toEqual({ extentCount: 2, rounding: 8 * MIB });
    expect(targetExtents(parseSizeOption('16m'), 3, extent)).toEqual({ extentCount: 4, rounding: undefined });
    expect(targetExtents(parseSizeOption('+4M'), 3, extent).extentCount).toBe(4);
    expect(targetExtents(parseSizeOption('-1G'), 3, extent).extentCount).toBeLessThan(1);
    expect(targetExtents(parseExtentsOption('lvextend', '+1'), 3, extent).extentCount).toBe(4);
    expect(() => parseExtentsOption('lvextend', '10%VG')).toThrow(LvmUsageError);
    expect(() => parseSizeOption('ten')).toThrow(/Invalid argument for --size: ten/);
  });

  it('lvcreate reads SM command lines, options after positionals included, and refuses what lvm refuses', () => {
    const request = lvcreate('-n', 'vdi1', '-L', '100', 'vg1', '--addtag', 'x1', '-W', 'n', '--inactive');
    expect(request).toMatchObject({ vg: 'vg1', name: 'vdi1', tags: ['x1'], thinTag: undefined, activate: false, size: { amount: 100 * MIB } });
    expect(lvcreate('-n', 'v', '-L', '1g', 'vg1', '--addtag', 'thinlv_thin').thinTag).toEqual({ virtualBytes: undefined });
    expect(lvcreate('-n', 'v', '-L', '8m', 'vg1', '--addtag', 'thinlv_virtual_bytes=1073741824').thinTag).toEqual({ virtualBytes: 1073741824 });
    expect(lvcreate('-n', 'v', '-L', '8m', '-an', 'vg1').activate).toBe(false);
    expect(() => lvcreate('-n', 'v', '-L', '0', 'vg1')).toThrow(/--size may not be zero/);
    expect(() => lvcreate('-n', 'v', '-L', '-1G', 'vg1')).toThrow(/Size may not be negative/);
    expect(() => lvcreate('-n', 'bad!', '-L', '8m', 'vg1')).toThrow(/Logical volume name "bad!" is invalid/);
    expect(() => lvcreate('-n', 'v', '-L', '8m', 'vg1', '--addtag', 'bad tag')).toThrow(/Invalid argument for --addtag/);
    expect(() => lvcreate('-n', 'v', '-L', '8m', 'vg1', '--addtag', 'thinlv_owner=h1')).toThrow(/reserved for thinlv/);
  });

  it('lvrename takes VG/OLD NEW and VG OLD NEW', () => {
    expect(readRenameRequest(['/dev/vg1/a', 'b'])).toEqual({ vg: 'vg1', from: 'a', to: 'b' });
    expect(readRenameRequest(['vg1', 'a', 'vg1/b'])).toEqual({ vg: 'vg1', from: 'a', to: 'b' });
    expect(() => readRenameRequest(['vg1/a'])).toThrow(LvmUsageError);
    expect(() => readRenameRequest(['vg1/a', 'bad!'])).toThrow(/New logical volume name "bad!" is invalid/);
  });

  it('lvchange reads permission, tags and activation', () => {
    const specs = [{ long: 'permission', short: 'p', takesValue: true }, { long: 'addtag', takesValue: true }, { long: 'deltag', takesValue: true }, { long: 'activate', short: 'a', takesValue: true }, { long: 'refresh', takesValue: false }];
    const read = (...args: string[]) => readLvchangeRequest(parse('lvchange', args, specs));
    expect(read('vg1/a', '-p', 'r')).toMatchObject({ writable: false, activation: undefined });
    expect(read('-ay', '/dev/vg1/a')).toMatchObject({ activation: 'activate', paths: [{ vg: 'vg1', lv: 'a' }] });
    expect(read('--refresh', 'vg1/a').activation).toBe('refresh');
    expect(() => read('-p', 'x', 'vg1/a')).toThrow(/Invalid argument for --permission: x/);
    expect(() => read('vg1/a')).toThrow(/No command with matching syntax/);
    expect(COMMON_OPTIONS.some((o) => o.long === 'test')).toBe(true);
    expect(() => parse('lvchange', ['--test', '-ay', 'vg1/a'], specs)).toThrow(/not supported/);
  });

  it('lvchange --deflate SIZE: lvm -L syntax, with -an only, above 0 and unsigned', () => {
    const specs = [{ long: 'activate', short: 'a', takesValue: true }, { long: 'refresh', takesValue: false }, { long: 'deflate', takesValue: true }];
    const read = (...args: string[]) => readLvchangeRequest(parse('lvchange', args, specs));
    expect(read('-an', '--deflate', '8', 'vg1/a')).toMatchObject({ activation: 'deactivate', deflateToBytes: 8 * MIB });
    expect(read('-an', 'vg1/a', '--deflate=1g')).toMatchObject({ deflateToBytes: 1024 * MIB });
    expect(read('-an', 'vg1/a').deflateToBytes).toBeUndefined();
    expect(() => read('-ay', '--deflate', '8M', 'vg1/a')).toThrow(/--deflate is given with -an/);
    expect(() => read('--deflate', '8M', 'vg1/a')).toThrow(/No command with matching syntax/);
    for (const bad of ['0', '+8M', '-8M', 'lots']) expect(() => read('-an', '--deflate', bad, 'vg1/a'), bad).toThrow(LvmUsageError);
  });

  it("thinlv's own lvcreate, lvremove, lvresize and lvextend keep their names; symlinks of those names are lvm's", () => {
    for (const name of ['lvcreate', 'lvremove', 'lvresize', 'lvextend']) {
      expect(lvmCompatInvocation(['node', '/usr/local/bin/thinlv', name, 'x'])).toBeUndefined();
      expect(lvmCompatInvocation(['node', `/opt/lvm-bin/${name}`, '-n', 'x'])).toEqual({ command: name, args: ['-n', 'x'] });
    }
    for (const name of ['lvrename', 'lvchange', 'vgchange']) {
      expect(lvmCompatInvocation(['node', '/usr/local/bin/thinlv', name, 'x'])).toEqual({ command: name, args: ['x'] });
    }
  });
});
