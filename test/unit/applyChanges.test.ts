import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { CommitError } from '../../src/errors.js';
import type { PhysicalRange } from '../../src/extent/types.js';
import { applyChanges, MAX_CHANGES_PER_BATCH, type MetadataChange, type NewLvIdentity } from '../../src/metadata/applyChanges.js';
import type { LvMetadata, SegmentMetadata, VgMetadata } from '../../src/metadata/vgModel.js';

const PV_EXTENTS = 64;
const NOW_SECONDS = 1795345202;

/** Identities that count up, so a test can say which uuid a new LV gets. */
function countingIdentity(): NewLvIdentity {
  let next = 0;
  return { newUuid: () => `uuid-new-${next++}`, nowSeconds: () => NOW_SECONDS, hostname: 'master1' };
}

const linear = (logicalStart: number, pv: string, firstExtent: number, extentCount: number): SegmentMetadata => ({
  logicalStart,
  extentCount,
  type: 'striped',
  stripes: [{ pv, firstExtent }],
  extra: [],
});

function lv(name: string, segments: SegmentMetadata[], more: Partial<LvMetadata> = {}): LvMetadata {
  return { name, uuid: `uuid-${name}`, status: ['READ', 'WRITE', 'VISIBLE'], flags: [], activationSkip: false, tags: [], segments, extra: [], ...more };
}

/**
 * A small VG: one or two PVs of 64 extents.
 *   alpha: loop0:0-9 then loop0:20-24 (two segments), with creation entries in extra
 *   beta:  loop0:10-14
 */
function smallVg(pvCount: 1 | 2 = 2): VgMetadata {
  const devices = ['/dev/loop0', '/dev/loop1'].slice(0, pvCount);
  return {
    header: [{ kind: 'assign', key: 'contents', value: { kind: 'string', value: 'Text Format Volume Group' } }],
    name: 'vg1',
    uuid: 'uuid-vg1',
    seqno: 7,
    status: ['RESIZEABLE', 'READ', 'WRITE'],
    flags: [],
    tags: ['thinlv_version_1'],
    extentSizeSectors: 8192,
    extra: [{ kind: 'assign', key: 'lock_type', value: { kind: 'string', value: 'none' } }],
    pvs: devices.map((device, index) => ({
      key: `pv${index}`,
      device,
      uuid: `uuid-pv${index}`,
      status: ['ALLOCATABLE'],
      flags: [],
      tags: [],
      devSizeSectors: 2048 + PV_EXTENTS * 8192,
      peStartSectors: 2048,
      peCount: PV_EXTENTS,
      extra: [],
    })),
    lvs: [
      lv('alpha', [linear(0, '/dev/loop0', 0, 10), linear(10, '/dev/loop0', 20, 5)], {
        tags: ['vsize_100'],
        extra: [
          { kind: 'assign', key: 'creation_time', value: { kind: 'int', text: '1795345196' } },
          { kind: 'assign', key: 'creation_host', value: { kind: 'string', value: 'vm' } },
        ],
      }),
      lv('beta', [linear(0, '/dev/loop0', 10, 5)]),
    ],
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** The CommitError INVALID_BATCH that `fn` throws; fails the test if it returns instead. */
function invalidBatchOf(fn: () => unknown): CommitError {
  let returned: unknown;
  try {
    returned = fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CommitError);
    expect((error as CommitError).code).toBe('INVALID_BATCH');
    return error as CommitError;
  }
  throw new Error(`expected INVALID_BATCH, got a VG back: ${JSON.stringify(returned)}`);
}

/** The physical extents behind an LV's logical extents, in logical order ("pv:extent"). */
function extentsInOrder(segments: readonly SegmentMetadata[]): string[] {
  const extents: string[] = [];
  for (const segment of segments) {
    expect(segment.type).toBe('striped');
    expect(segment.stripes).toHaveLength(1);
    expect(segment.logicalStart).toBe(extents.length);
    const stripe = segment.stripes[0]!;
    for (let offset = 0; offset < segment.extentCount; offset += 1) extents.push(`${stripe.pv}:${stripe.firstExtent + offset}`);
  }
  return extents;
}

const expand = (ranges: readonly PhysicalRange[]): string[] =>
  ranges.flatMap((r) => Array.from({ length: r.extentCount }, (_, offset) => `${r.pv}:${r.firstExtent + offset}`));

const lvNamed = (vg: VgMetadata, name: string): LvMetadata => {
  const found = vg.lvs.find((l) => l.name === name);
  if (found === undefined) throw new Error(`no LV ${name}`);
  return found;
};

const apply = (changes: readonly MetadataChange[], vg: VgMetadata = smallVg()): VgMetadata => applyChanges(vg, changes, countingIdentity());

describe('applyChanges: each change kind', () => {
  test('createLv makes a linear LV of the ranges in the order given, with a new uuid and creation entries', () => {
    const next = apply([
      {
        kind: 'createLv',
        name: 'gamma',
        ranges: [
          { pv: '/dev/loop1', firstExtent: 5, extentCount: 3 },
          { pv: '/dev/loop0', firstExtent: 30, extentCount: 2 },
        ],
        tags: ['vsize_10', 'vsize_10', 'owner_h1'],
        activationSkip: true,
      },
    ]);
    expect(next.lvs.map((l) => l.name)).toEqual(['alpha', 'beta', 'gamma']);
    expect(lvNamed(next, 'gamma')).toEqual({
      name: 'gamma',
      uuid: 'uuid-new-0',
      status: ['READ', 'WRITE', 'VISIBLE'],
      flags: [],
      activationSkip: true,
      tags: ['vsize_10', 'owner_h1'],
      segments: [linear(0, '/dev/loop1', 5, 3), linear(3, '/dev/loop0', 30, 2)],
      extra: [
        { kind: 'assign', key: 'creation_time', value: { kind: 'int', text: String(NOW_SECONDS) } },
        { kind: 'assign', key: 'creation_host', value: { kind: 'string', value: 'master1' } },
      ],
    });
  });

  test('createLv without tags or activationSkip makes an untagged LV that activates normally', () => {
    const gamma = lvNamed(apply([{ kind: 'createLv', name: 'gamma', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }]), 'gamma');
    expect(gamma.tags).toEqual([]);
    expect(gamma.activationSkip).toBe(false);
  });

  test('createLv with physically contiguous ranges makes one segment', () => {
    const next = apply([
      {
        kind: 'createLv',
        name: 'gamma',
        ranges: [
          { pv: '/dev/loop1', firstExtent: 0, extentCount: 2 },
          { pv: '/dev/loop1', firstExtent: 2, extentCount: 3 },
        ],
      },
    ]);
    expect(lvNamed(next, 'gamma').segments).toEqual([linear(0, '/dev/loop1', 0, 5)]);
  });

  test('removeLv drops the LV and frees its extents for a later change in the same batch', () => {
    const next = apply([
      { kind: 'removeLv', name: 'beta' },
      { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 10, extentCount: 5 }] },
    ]);
    expect(next.lvs.map((l) => l.name)).toEqual(['alpha']);
    expect(extentsInOrder(lvNamed(next, 'alpha').segments)).toEqual([
      ...expand([{ pv: '/dev/loop0', firstExtent: 0, extentCount: 10 }]),
      ...expand([{ pv: '/dev/loop0', firstExtent: 20, extentCount: 5 }]),
      ...expand([{ pv: '/dev/loop0', firstExtent: 10, extentCount: 5 }]),
    ]);
  });

  test('appendRanges adds free extents at the logical end and coalesces with the last segment', () => {
    const next = apply([{ kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 25, extentCount: 4 }] }]);
    expect(lvNamed(next, 'alpha').segments).toEqual([linear(0, '/dev/loop0', 0, 10), linear(10, '/dev/loop0', 20, 9)]);
  });

  test('moveRanges takes extents out of one LV and appends them to another', () => {
    const next = apply([{ kind: 'moveRanges', fromLv: 'alpha', toLv: 'beta', ranges: [{ pv: '/dev/loop0', firstExtent: 2, extentCount: 3 }] }]);
    expect(lvNamed(next, 'alpha').segments).toEqual([linear(0, '/dev/loop0', 0, 2), linear(2, '/dev/loop0', 5, 5), linear(7, '/dev/loop0', 20, 5)]);
    expect(lvNamed(next, 'beta').segments).toEqual([linear(0, '/dev/loop0', 10, 5), linear(5, '/dev/loop0', 2, 3)]);
  });

  test('releaseRanges returns extents to free space and renumbers the rest from logical extent 0', () => {
    const next = apply([{ kind: 'releaseRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 0, extentCount: 10 }] }]);
    expect(lvNamed(next, 'alpha').segments).toEqual([linear(0, '/dev/loop0', 20, 5)]);
  });

  test('releasing the extents between two pieces joins them into one segment', () => {
    const vg = smallVg();
    const next = apply([{ kind: 'createLv', name: 'gamma', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 10 }] }], vg);
    const after = apply([{ kind: 'releaseRanges', lv: 'gamma', ranges: [{ pv: '/dev/loop1', firstExtent: 3, extentCount: 2 }] }], next);
    expect(lvNamed(after, 'gamma').segments).toEqual([linear(0, '/dev/loop1', 0, 3), linear(3, '/dev/loop1', 5, 5)]);
  });

  test('setTag adds a tag to an LV once, at the end', () => {
    const next = apply([
      { kind: 'setTag', lv: 'beta', tag: 'a' },
      { kind: 'setTag', lv: 'beta', tag: 'b' },
      { kind: 'setTag', lv: 'beta', tag: 'a' },
    ]);
    expect(lvNamed(next, 'beta').tags).toEqual(['b', 'a']);
  });

  test('setTag without an LV tags the VG', () => {
    expect(apply([{ kind: 'setTag', tag: 'thinlv_master_h1' }]).tags).toEqual(['thinlv_version_1', 'thinlv_master_h1']);
  });

  test('setTag with replacingPrefix replaces every older tag with that prefix', () => {
    const next = apply([
      { kind: 'setTag', tag: 'thinlv_seq_h1_1' },
      { kind: 'setTag', tag: 'thinlv_seq_h2_9' },
      { kind: 'setTag', tag: 'thinlv_seq_h1_2', replacingPrefix: 'thinlv_seq_h1_' },
      { kind: 'setTag', lv: 'alpha', tag: 'vsize_200', replacingPrefix: 'vsize_' },
    ]);
    expect(next.tags).toEqual(['thinlv_version_1', 'thinlv_seq_h2_9', 'thinlv_seq_h1_2']);
    expect(lvNamed(next, 'alpha').tags).toEqual(['vsize_200']);
  });

  test('removeTag removes the tag from an LV or the VG, and is a no-op when absent', () => {
    const next = apply([
      { kind: 'removeTag', lv: 'alpha', tag: 'vsize_100' },
      { kind: 'removeTag', tag: 'thinlv_version_1' },
      { kind: 'removeTag', tag: 'never_set' },
    ]);
    expect(lvNamed(next, 'alpha').tags).toEqual([]);
    expect(next.tags).toEqual([]);
  });

  test('untouched LVs keep their extra entries, segments and position; the VG keeps header and extra', () => {
    const vg = smallVg();
    const next = apply([
      { kind: 'createLv', name: 'aardvark', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] },
      { kind: 'setTag', lv: 'beta', tag: 'x' },
    ]);
    expect(next.lvs.map((l) => l.name)).toEqual(['alpha', 'beta', 'aardvark']);
    expect(lvNamed(next, 'alpha')).toEqual(vg.lvs[0]);
    expect(lvNamed(next, 'beta')).toEqual({ ...vg.lvs[1], tags: ['x'] });
    expect(next.header).toEqual(vg.header);
    expect(next.extra).toEqual(vg.extra);
    expect(next.pvs).toEqual(vg.pvs);
    expect(next.seqno).toBe(vg.seqno);
  });

  test('an empty batch gives back an equal VG', () => {
    expect(apply([])).toEqual(smallVg());
  });

  test('an LV removed and created again in one batch moves to the end', () => {
    const next = apply([
      { kind: 'removeLv', name: 'alpha' },
      { kind: 'createLv', name: 'alpha', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 2 }] },
    ]);
    expect(next.lvs.map((l) => [l.name, l.uuid])).toEqual([
      ['beta', 'uuid-beta'],
      ['alpha', 'uuid-new-0'],
    ]);
  });
});

describe('applyChanges: refused batches', () => {
  const good: MetadataChange = { kind: 'setTag', tag: 'ok' };

  test.each<[string, MetadataChange, RegExp]>([
    ['an unknown LV', { kind: 'appendRanges', lv: 'nosuch', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /vg1\/nosuch does not exist/],
    ['removing an unknown LV', { kind: 'removeLv', name: 'nosuch' }, /does not exist/],
    ['tagging an unknown LV', { kind: 'setTag', lv: 'nosuch', tag: 't' }, /does not exist/],
    ['moving into an unknown LV', { kind: 'moveRanges', fromLv: 'alpha', toLv: 'nosuch', ranges: [{ pv: '/dev/loop0', firstExtent: 0, extentCount: 1 }] }, /does not exist/],
    ['creating a duplicate name', { kind: 'createLv', name: 'beta', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /vg1\/beta already exists/],
    ['an LV name with a slash', { kind: 'createLv', name: 'a/b', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /may only contain/],
    ['an LV name with the snapshot prefix', { kind: 'createLv', name: 'snapshot1', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /reserved prefix/],
    ['an LV name with a reserved suffix', { kind: 'createLv', name: 'x_tdata', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /reserved "_tdata"/],
    ['an empty LV name', { kind: 'createLv', name: '', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /name is empty/],
    ['an LV with no extents', { kind: 'createLv', name: 'gamma', ranges: [] }, /needs at least one extent/],
    ['an invalid tag on a new LV', { kind: 'createLv', name: 'gamma', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }], tags: ['has space'] }, /tag "has space" may only contain/],
    ['an invalid LV tag', { kind: 'setTag', lv: 'alpha', tag: 'a b' }, /may only contain/],
    ['an invalid VG tag', { kind: 'setTag', tag: '-dash' }, /may not start with "-"/],
    ['an empty tag', { kind: 'setTag', tag: '' }, /tag is empty/],
    ['removing an invalid tag', { kind: 'removeTag', tag: 'é' }, /may only contain/],
    ['moving extents the source does not hold', { kind: 'moveRanges', fromLv: 'alpha', toLv: 'beta', ranges: [{ pv: '/dev/loop0', firstExtent: 9, extentCount: 2 }] }, /does not map/],
    ['releasing extents the LV does not hold', { kind: 'releaseRanges', lv: 'beta', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }, /does not map/],
    ['moving extents from an LV to itself', { kind: 'moveRanges', fromLv: 'alpha', toLv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 0, extentCount: 1 }] }, /to itself/],
    ['appending extents the LV already holds', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 5, extentCount: 1 }] }, /twice/],
    ['appending the same free extent twice', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop1', firstExtent: 5, extentCount: 2 }, { pv: '/dev/loop1', firstExtent: 6, extentCount: 1 }] }, /twice/],
    ['a malformed range', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop1', firstExtent: -1, extentCount: 1 }] }, /./],
    ['a zero-length range', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop1', firstExtent: 1, extentCount: 0 }] }, /./],
  ])('%s is refused, naming the change', (_what, bad, message) => {
    const vg = deepFreeze(smallVg());
    const error = invalidBatchOf(() => applyChanges(vg, [good, bad, good], countingIdentity()));
    expect(error.data['changeIndex']).toBe(1);
    expect(error.message).toMatch(/^change #1: /);
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/nothing was written/);
  });

  test.each<[string, MetadataChange, string]>([
    ['extents another LV holds', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 12, extentCount: 1 }] }, 'EXTENT_DOUBLE_USE'],
    ['a new LV on another LV’s extents', { kind: 'createLv', name: 'gamma', ranges: [{ pv: '/dev/loop0', firstExtent: 0, extentCount: 1 }] }, 'EXTENT_DOUBLE_USE'],
    ['extents beyond the end of the PV', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop1', firstExtent: PV_EXTENTS - 1, extentCount: 2 }] }, 'OUTSIDE_PV'],
    ['extents on a device that is not a PV', { kind: 'appendRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop9', firstExtent: 0, extentCount: 1 }] }, 'UNKNOWN_PV'],
    ['releasing every extent of an LV', { kind: 'releaseRanges', lv: 'beta', ranges: [{ pv: '/dev/loop0', firstExtent: 10, extentCount: 5 }] }, 'EMPTY_LV'],
    ['moving every extent out of an LV', { kind: 'moveRanges', fromLv: 'beta', toLv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: 10, extentCount: 5 }] }, 'EMPTY_LV'],
  ])('a batch whose result has %s is refused with that finding', (_what, bad, findingCode) => {
    const vg = deepFreeze(smallVg());
    const error = invalidBatchOf(() => applyChanges(vg, [good, bad], countingIdentity()));
    const findings = error.data['findings'] as { code: string }[];
    expect(findings.map((f) => f.code)).toContain(findingCode);
    expect(error.message).toMatch(/would leave vg1 invalid/);
  });

  test('an LV emptied and refilled within one batch is accepted: only the final result must be valid', () => {
    const next = apply([
      { kind: 'releaseRanges', lv: 'beta', ranges: [{ pv: '/dev/loop0', firstExtent: 10, extentCount: 5 }] },
      { kind: 'appendRanges', lv: 'beta', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] },
    ]);
    expect(lvNamed(next, 'beta').segments).toEqual([linear(0, '/dev/loop1', 0, 1)]);
  });

  test('an LV with a segment thinlv does not manage is not edited', () => {
    const vg = smallVg();
    const thin: LvMetadata = lv('thin1', [{ logicalStart: 0, extentCount: 100, type: 'thin', stripes: [], extra: [] }]);
    const error = invalidBatchOf(() =>
      apply([{ kind: 'appendRanges', lv: 'thin1', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }], { ...vg, lvs: [...vg.lvs, thin] }),
    );
    expect(error.message).toMatch(/not plain linear/);
    expect(error.data['changeIndex']).toBe(0);
  });

  test('a linear LV whose segments carry unknown entries is not edited', () => {
    const vg = smallVg();
    const odd = lv('odd', [{ ...linear(0, '/dev/loop1', 0, 2), extra: [{ kind: 'assign', key: 'reshape_count', value: { kind: 'int', text: '0' } }] }]);
    invalidBatchOf(() => apply([{ kind: 'releaseRanges', lv: 'odd', ranges: [{ pv: '/dev/loop1', firstExtent: 0, extentCount: 1 }] }], { ...vg, lvs: [...vg.lvs, odd] }));
  });

  test('but an LV with an unmanaged segment can be removed and tagged', () => {
    const vg = smallVg();
    const thin = lv('thin1', [{ logicalStart: 0, extentCount: 100, type: 'thin', stripes: [], extra: [] }]);
    const withThin = { ...vg, lvs: [...vg.lvs, thin, lv('thin2', [...thin.segments])] };
    const next = apply([{ kind: 'removeLv', name: 'thin1' }, { kind: 'setTag', lv: 'thin2', tag: 'x' }], withThin);
    expect(next.lvs.map((l) => l.name)).toEqual(['alpha', 'beta', 'thin2']);
  });

  // Regression test for a bug once in src/metadata/checkLayout.ts, reached through applyChanges.
  test('a batch on a VG holding a zero-extent segment is refused with INVALID_BATCH, not a raw extent error', () => {
    const vg = smallVg();
    const broken = { ...vg, lvs: [...vg.lvs, lv('zero', [linear(0, '/dev/loop1', 0, 0)])] };
    const error = invalidBatchOf(() => apply([{ kind: 'setTag', tag: 'x' }], broken));
    expect((error.data['findings'] as { code: string }[]).map((f) => f.code)).toContain('SEGMENT_GAP');
  });

  test(`a batch of MAX_CHANGES_PER_BATCH changes is accepted and one more is refused`, () => {
    const vg = deepFreeze(smallVg());
    const changes: MetadataChange[] = Array.from({ length: MAX_CHANGES_PER_BATCH }, () => ({ kind: 'removeTag', tag: 'never_set' }));
    expect(applyChanges(vg, changes, countingIdentity()).tags).toEqual(vg.tags);
    const error = invalidBatchOf(() => applyChanges(vg, [...changes, { kind: 'removeTag', tag: 'never_set' }], countingIdentity()));
    expect(error.data['changeCount']).toBe(MAX_CHANGES_PER_BATCH + 1);
    expect(error.message).toMatch(/split it/);
  });
});

// Model-based test: random valid batches, checked against a model that keeps each LV as
// the ordered list of physical extents behind its logical extents.

interface Model {
  readonly lvs: Map<string, { extents: string[]; tags: string[] }>;
  vgTags: string[];
  readonly pvs: readonly string[];
}

const TAG_POOL = ['vsize_10', 'vsize_20', 'seq_h1_1', 'seq_h1_2', 'seq_h2_1', 'owner'];
const PREFIX_POOL = ['vsize_', 'seq_h1_', 'seq_'];

function modelOf(vg: VgMetadata): Model {
  return {
    lvs: new Map(vg.lvs.map((l) => [l.name, { extents: extentsInOrder(l.segments), tags: [...l.tags] }])),
    vgTags: [...vg.tags],
    pvs: vg.pvs.map((pv) => pv.device),
  };
}

const parseExtent = (extent: string): { pv: string; index: number } => {
  const at = extent.lastIndexOf(':');
  return { pv: extent.slice(0, at), index: Number(extent.slice(at + 1)) };
};

/**
 * Up to `maxRanges` physically contiguous runs drawn from `available`, each starting at a
 * random member and running forward while the next extent is available.
 */
function pickRanges(available: ReadonlySet<string>, picks: readonly number[], maxRanges: number): PhysicalRange[] {
  const left = new Set(available);
  const ranges: PhysicalRange[] = [];
  for (const pick of picks.slice(0, maxRanges)) {
    const pool = [...left].sort();
    if (pool.length === 0) break;
    const start = parseExtent(pool[pick % pool.length]!);
    let count = 0;
    const maxLength = 1 + (pick % 6);
    while (count < maxLength && left.has(`${start.pv}:${start.index + count}`)) {
      left.delete(`${start.pv}:${start.index + count}`);
      count += 1;
    }
    ranges.push({ pv: start.pv, firstExtent: start.index, extentCount: count });
  }
  return ranges;
}

function freeExtents(model: Model): Set<string> {
  const used = new Set([...model.lvs.values()].flatMap((l) => l.extents));
  const free = new Set<string>();
  for (const pv of model.pvs) for (let e = 0; e < PV_EXTENTS; e += 1) if (!used.has(`${pv}:${e}`)) free.add(`${pv}:${e}`);
  return free;
}

interface Step {
  readonly kind: MetadataChange['kind'];
  readonly picks: readonly number[];
  readonly target: number;
  readonly other: number;
  readonly onVg: boolean;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<MetadataChange['kind']>('createLv', 'removeLv', 'appendRanges', 'moveRanges', 'releaseRanges', 'setTag', 'removeTag'),
  picks: fc.array(fc.nat(10_000), { minLength: 1, maxLength: 3 }),
  target: fc.nat(1000),
  other: fc.nat(1000),
  onVg: fc.boolean(),
});

/** Turns a random step into a change valid in `model` (or none), and applies it to the model. */
function nextChange(model: Model, step: Step, createdCount: number): MetadataChange | undefined {
  const names = [...model.lvs.keys()];
  const name = names[step.target % Math.max(1, names.length)];
  const entry = name === undefined ? undefined : model.lvs.get(name);
  switch (step.kind) {
    case 'createLv': {
      const ranges = pickRanges(freeExtents(model), step.picks, 3);
      if (ranges.length === 0) return undefined;
      const newName = `lv${createdCount}`;
      const tags = step.onVg ? [TAG_POOL[step.target % TAG_POOL.length]!] : [];
      model.lvs.set(newName, { extents: expand(ranges), tags });
      return { kind: 'createLv', name: newName, ranges, tags, activationSkip: step.onVg };
    }
    case 'removeLv':
      if (name === undefined || names.length <= 1) return undefined;
      model.lvs.delete(name);
      return { kind: 'removeLv', name };
    case 'appendRanges': {
      if (name === undefined || entry === undefined) return undefined;
      const ranges = pickRanges(freeExtents(model), step.picks, 3);
      if (ranges.length === 0) return undefined;
      entry.extents.push(...expand(ranges));
      return { kind: 'appendRanges', lv: name, ranges };
    }
    case 'moveRanges':
    case 'releaseRanges': {
      if (name === undefined || entry === undefined || entry.extents.length < 2) return undefined;
      const toName = names.filter((n) => n !== name)[step.other % Math.max(1, names.length - 1)];
      const to = toName === undefined ? undefined : model.lvs.get(toName);
      if (step.kind === 'moveRanges' && to === undefined) return undefined;
      // Never take every extent: an empty LV is refused.
      const ranges = pickRanges(new Set(entry.extents.slice(1)), step.picks, 3);
      const taken = new Set(expand(ranges));
      entry.extents = entry.extents.filter((e) => !taken.has(e));
      if (step.kind === 'releaseRanges' || toName === undefined || to === undefined) return { kind: 'releaseRanges', lv: name, ranges };
      to.extents.push(...expand(ranges));
      return { kind: 'moveRanges', fromLv: name, toLv: toName, ranges };
    }
    case 'setTag':
    case 'removeTag': {
      const tag = TAG_POOL[step.other % TAG_POOL.length]!;
      const replacingPrefix = step.kind === 'setTag' && step.picks[0]! % 2 === 0 ? PREFIX_POOL[step.picks[0]! % PREFIX_POOL.length]! : undefined;
      const lvTarget = step.onVg || name === undefined ? undefined : name;
      const tags = lvTarget === undefined ? model.vgTags : model.lvs.get(lvTarget)!.tags;
      const kept = tags.filter((t) => t !== tag && (replacingPrefix === undefined || !t.startsWith(replacingPrefix)));
      const edited = step.kind === 'setTag' ? [...kept, tag] : kept;
      if (lvTarget === undefined) model.vgTags = edited;
      else model.lvs.get(lvTarget)!.tags = edited;
      const target = lvTarget === undefined ? {} : { lv: lvTarget };
      if (step.kind === 'removeTag') return { kind: 'removeTag', ...target, tag };
      return { kind: 'setTag', ...target, tag, ...(replacingPrefix === undefined ? {} : { replacingPrefix }) };
    }
  }
}

const scenarioArbitrary = fc.record({ pvCount: fc.constantFrom<1 | 2>(1, 2), steps: fc.array(stepArbitrary, { minLength: 5, maxLength: 30 }) }).map(({ pvCount, steps }) => {
  const vg = smallVg(pvCount);
  const model = modelOf(vg);
  const changes: MetadataChange[] = [];
  for (const step of steps) {
    const change = nextChange(model, step, changes.length);
    if (change !== undefined) changes.push(change);
  }
  return { vg, changes, model };
});

describe('applyChanges: model-based', () => {
  test.prop([scenarioArbitrary], { numRuns: 150 })('a random valid batch gives exactly the model’s LVs, extents and tags', ({ vg, changes, model }) => {
    const input = deepFreeze(vg);
    const before = structuredClone(vg);
    const next = applyChanges(input, changes, countingIdentity());
    expect(vg).toEqual(before);

    expect(next.lvs.map((l) => l.name)).toEqual([...model.lvs.keys()]);
    for (const [name, expected] of model.lvs) {
      const actual = lvNamed(next, name);
      expect(extentsInOrder(actual.segments), `extents of ${name}`).toEqual(expected.extents);
      expect(actual.tags, `tags of ${name}`).toEqual(expected.tags);
    }
    expect(next.tags).toEqual(model.vgTags);
  });

  test.prop([scenarioArbitrary], { numRuns: 150 })('segments come out coalesced and no extent is in two LVs', ({ vg, changes }) => {
    const next = applyChanges(vg, changes, countingIdentity());
    const owner = new Map<string, string>();
    for (const l of next.lvs) {
      l.segments.forEach((segment, index) => {
        const previous = l.segments[index - 1];
        if (previous === undefined) return;
        const [a, b] = [previous.stripes[0]!, segment.stripes[0]!];
        expect(a.pv === b.pv && a.firstExtent + previous.extentCount === b.firstExtent, `${l.name} segments ${index - 1} and ${index} continue each other`).toBe(false);
      });
      for (const extent of extentsInOrder(l.segments)) {
        expect(owner.get(extent), `extent ${extent}`).toBeUndefined();
        owner.set(extent, l.name);
      }
    }
  });

  test.prop([scenarioArbitrary], { numRuns: 100 })('applying a batch at once equals applying its changes one by one', ({ vg, changes }) => {
    const identity = countingIdentity();
    const oneByOne = changes.reduce((current, change) => applyChanges(current, [change], identity), vg);
    expect(applyChanges(vg, changes, countingIdentity())).toEqual(oneByOne);
  });

  test.prop([scenarioArbitrary, fc.nat(), fc.constantFrom('unknownLv', 'notHeld', 'toItself', 'badName', 'badTag', 'duplicate')], { numRuns: 100 })(
    'one invalid change anywhere in a valid batch refuses the whole batch and names that change',
    ({ vg, changes }, position, badKind) => {
      const at = position % (changes.length + 1);
      // A change invalid whatever came before it: names and extents no valid step produces.
      const bad: MetadataChange = {
        unknownLv: { kind: 'releaseRanges', lv: 'nosuch', ranges: [{ pv: '/dev/loop0', firstExtent: 0, extentCount: 1 }] },
        notHeld: { kind: 'releaseRanges', lv: 'alpha', ranges: [{ pv: '/dev/loop0', firstExtent: PV_EXTENTS + 5, extentCount: 1 }] },
        toItself: { kind: 'moveRanges', fromLv: 'beta', toLv: 'beta', ranges: [{ pv: '/dev/loop0', firstExtent: 10, extentCount: 1 }] },
        badName: { kind: 'createLv', name: 'pvmove0', ranges: [{ pv: '/dev/loop0', firstExtent: PV_EXTENTS - 1, extentCount: 1 }] },
        badTag: { kind: 'setTag', tag: 'no spaces allowed' },
        duplicate: { kind: 'createLv', name: 'lv_dup', ranges: [{ pv: '/dev/loop0', firstExtent: 0, extentCount: 1 }] },
      }[badKind] as MetadataChange;
      const batch = badKind === 'duplicate' ? [...changes.slice(0, at), bad, bad, ...changes.slice(at)] : [...changes.slice(0, at), bad, ...changes.slice(at)];
      const input = deepFreeze(structuredClone(vg));
      const error = invalidBatchOf(() => applyChanges(input, batch, countingIdentity()));
      // "notHeld" may be refused for alpha having been removed; either way, at that change.
      expect(error.data['changeIndex']).toBe(badKind === 'duplicate' ? at + 1 : at);
      expect(input).toEqual(vg);
    },
  );
});

// A replay appends many records to a few LVs in one batch; applyChanges appends each LV's
// records at once (linear in the batch), checking each range as it comes. These batches
// are long runs of appends to the same LVs, to catch a wrong merge or a check skipped.

/** Single-extent appends to alpha and beta in a random order: moves out of a pool LV (loop1 0-31) and appends of free extents (loop1 32-63). */
const appendRunArbitrary = fc.record({
  order: fc.array(fc.nat(63), { minLength: 20, maxLength: 60 }).map((picks) => [...new Set(picks)]),
  targets: fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
  moved: fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
});

function appendRun({ order, targets, moved }: { order: number[]; targets: boolean[]; moved: boolean[] }): { vg: VgMetadata; changes: MetadataChange[] } {
  const vg: VgMetadata = { ...smallVg(), lvs: [...smallVg().lvs, lv('pool', [linear(0, '/dev/loop1', 0, 32)])] };
  const changes = order.map((extent, i): MetadataChange => {
    const lvName = targets[i] ? 'alpha' : 'beta';
    const fromPool = moved[i] ?? false;
    const firstExtent = fromPool ? extent % 32 : 32 + (extent % 32);
    return fromPool
      ? { kind: 'moveRanges', fromLv: 'pool', toLv: lvName, ranges: [{ pv: '/dev/loop1', firstExtent, extentCount: 1 }] }
      : { kind: 'appendRanges', lv: lvName, ranges: [{ pv: '/dev/loop1', firstExtent, extentCount: 1 }] };
  });
  // The same extent drawn twice (modulo 32) would be a double use: keep the first.
  const seen = new Set<number>();
  return {
    vg,
    changes: changes.filter((change) => {
      const extent = (change.kind === 'moveRanges' || change.kind === 'appendRanges' ? change.ranges[0]! : { firstExtent: -1 }).firstExtent;
      if (seen.has(extent)) return false;
      seen.add(extent);
      return true;
    }),
  };
}

describe('applyChanges: many appends to the same LVs', () => {
  test.prop([appendRunArbitrary], { numRuns: 100 })('appending at once equals appending one change at a time', (run) => {
    const { vg, changes } = appendRun(run);
    const identity = countingIdentity();
    const oneByOne = changes.reduce((current, change) => applyChanges(current, [change], identity), vg);
    const atOnce = applyChanges(deepFreeze(vg), changes, countingIdentity());
    expect(atOnce).toEqual(oneByOne);
    const appended = expand(changes.flatMap((c) => (c.kind === 'appendRanges' && c.lv === 'alpha') || (c.kind === 'moveRanges' && c.toLv === 'alpha') ? c.ranges : []));
    expect(extentsInOrder(lvNamed(atOnce, 'alpha').segments)).toEqual([...extentsInOrder(lvNamed(vg, 'alpha').segments), ...appended]);
  });

  test.prop([appendRunArbitrary, fc.nat(), fc.boolean(), fc.constantFrom('earlierAppend', 'ownExtent', 'withinChange')], { numRuns: 100 })(
    'an append of an extent the LV already maps, or an earlier change of the batch appended to it, is refused at that change',
    (run, position, toAlpha, how) => {
      const { vg, changes } = appendRun(run);
      const lvName = toAlpha ? 'alpha' : 'beta';
      const earlier = changes
        .slice(0, position % (changes.length + 1))
        .flatMap((c) => ((c.kind === 'appendRanges' && c.lv === lvName) || (c.kind === 'moveRanges' && c.toLv === lvName) ? c.ranges : []));
      const at = position % (changes.length + 1);
      const ranges: PhysicalRange[] = {
        // An extent appended to the same LV earlier in this batch (or, with none, one it held before).
        earlierAppend: [earlier[earlier.length - 1] ?? { pv: '/dev/loop0', firstExtent: toAlpha ? 3 : 12, extentCount: 1 }],
        ownExtent: [{ pv: '/dev/loop0', firstExtent: toAlpha ? 22 : 11, extentCount: 1 }],
        // Two free extents of loop0 nothing else uses, named twice in one change.
        withinChange: [{ pv: '/dev/loop0', firstExtent: 40, extentCount: 2 }, { pv: '/dev/loop0', firstExtent: 41, extentCount: 1 }],
      }[how];
      const bad: MetadataChange = { kind: 'appendRanges', lv: lvName, ranges };
      // A later bad change too: a check put off to the end of the batch would name that one.
      const later: MetadataChange = { kind: 'removeLv', name: 'nosuch' };
      const batch = [...changes.slice(0, at), bad, ...changes.slice(at), later];
      const error = invalidBatchOf(() => applyChanges(deepFreeze(structuredClone(vg)), batch, countingIdentity()));
      expect(error.data['changeIndex']).toBe(at);
      expect(error.message).toMatch(/twice/);
    },
  );
});
