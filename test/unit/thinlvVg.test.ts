import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { ThinlvError, UsageError } from '../../src/errors.js';
import {
  DEFAULT_RESERVE_PERMILLE,
  MIN_QUANTUM_BYTES,
  TAG,
  defaultSettings,
  hostLvNames,
  isFormatted,
  poolExtentCount,
  readThinlvVg,
  validateHostName,
} from '../../src/format/thinlvVg.js';
import { invalidNameReason } from '../../src/metadata/names.js';
import type { LvMetadata, VgMetadata } from '../../src/metadata/vgModel.js';
import { DEFAULT_SETTINGS, linearLv, range, settingsTags, thinlvVgMetadata, twoHostSpec } from './arbitraries/thinlvVg.js';

const MIB = 1024 * 1024;

const baseVg = (): VgMetadata => thinlvVgMetadata(twoHostSpec({ h1: { appliedSeq: 12, rejectedCount: 2, grantGeneration: 5 } }));
const withVgTags = (vg: VgMetadata, tags: readonly string[]): VgMetadata => ({ ...vg, tags });
const withLvs = (vg: VgMetadata, lvs: readonly LvMetadata[]): VgMetadata => ({ ...vg, lvs: [...vg.lvs, ...lvs] });
const replacingLv = (vg: VgMetadata, name: string, edit: (lv: LvMetadata) => LvMetadata): VgMetadata => ({
  ...vg,
  lvs: vg.lvs.map((lv) => (lv.name === name ? edit(lv) : lv)),
});

/** Runs `fn`, expecting a ThinlvError, and returns it for inspection. */
function thrownBy(fn: () => unknown): ThinlvError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ThinlvError);
    return error as ThinlvError;
  }
  throw new Error('expected a ThinlvError, nothing was thrown');
}

describe('readThinlvVg', () => {
  test('reads the settings, every complete host with its cursors and pool, and every thin LV', () => {
    const thinlv = readThinlvVg(baseVg());
    expect(thinlv.formatVersion).toBe(1);
    expect(thinlv.settings).toEqual(DEFAULT_SETTINGS);
    expect(thinlv.masterHost).toBeUndefined();
    expect(thinlv.incompleteHosts).toEqual([]);
    expect([...thinlv.hosts.keys()]).toEqual(['h1', 'h2']);
    const h1 = thinlv.hosts.get('h1')!;
    expect(h1).toMatchObject({ host: 'h1', appliedSeq: 12, rejectedCount: 2, grantGeneration: 5 });
    expect(h1.journalLv.name).toBe('thinlv_h1_journal');
    expect(h1.grantsLv.name).toBe('thinlv_h1_grants');
    expect(h1.freeLv?.name).toBe('thinlv_h1_free');
    expect(poolExtentCount(h1)).toBe(20);
    expect(poolExtentCount(thinlv.hosts.get('h2')!)).toBe(20);
    expect([...thinlv.thinLvs.keys()]).toEqual(['disk0', 'disk1', 'disk2']);
    expect(thinlv.thinLvs.get('disk0')?.virtualBytes).toBe(10 * 1024 ** 3);
  });

  test('a VG with no thinlv_format tag is NOT_FORMATTED, whatever else it carries', () => {
    const vg = withVgTags(baseVg(), ['some_tag', `${TAG.quantumExtents}16`]);
    expect(isFormatted(vg)).toBe(false);
    const error = thrownBy(() => readThinlvVg(vg));
    expect(error.code).toBe('NOT_FORMATTED');
    expect(error.message).toContain('thinlv format vgthin');
  });

  test('a VG of another format version is refused with FORMAT_VERSION naming that version', () => {
    const vg = withVgTags(baseVg(), settingsTags(DEFAULT_SETTINGS).map((t) => (t.startsWith(TAG.format) ? `${TAG.format}2` : t)));
    expect(isFormatted(vg)).toBe(true);
    const error = thrownBy(() => readThinlvVg(vg));
    expect(error.code).toBe('FORMAT_VERSION');
    expect(error.data).toMatchObject({ formatVersion: 2 });
  });

  test.each([TAG.quantumExtents, TAG.lowWaterExtents, TAG.reservePermille])('a VG lacking its %sN tag is refused as unsupported metadata', (prefix) => {
    const vg = withVgTags(baseVg(), settingsTags(DEFAULT_SETTINGS).filter((t) => !t.startsWith(prefix)));
    const error = thrownBy(() => readThinlvVg(vg));
    expect(error.code).toBe('UNSUPPORTED_METADATA');
    expect(error.message).toContain(prefix);
  });

  test.each([TAG.format, TAG.quantumExtents, TAG.lowWaterExtents, TAG.reservePermille])('two %s tags on the VG are refused, not one picked', (prefix) => {
    const tags = settingsTags(DEFAULT_SETTINGS);
    const vg = withVgTags(baseVg(), [...tags, `${prefix}7`]);
    const error = thrownBy(() => readThinlvVg(vg));
    expect(error.code).toBe('UNSUPPORTED_METADATA');
    expect(error.data).toMatchObject({ tags: expect.arrayContaining([`${prefix}7`]) as unknown });
  });

  test.each([
    [TAG.appliedSeq, 'thinlv_h1_journal'],
    [TAG.rejectedCount, 'thinlv_h1_journal'],
    [TAG.grantGeneration, 'thinlv_h1_grants'],
    [TAG.virtualBytes, 'disk0'],
  ])('two %s tags on LV %s are refused, not one picked', (prefix, lvName) => {
    const vg = replacingLv(baseVg(), lvName, (lv) => ({ ...lv, tags: [...lv.tags, `${prefix}1`, `${prefix}99`] }));
    const error = thrownBy(() => readThinlvVg(vg));
    expect(error.code).toBe('UNSUPPORTED_METADATA');
    expect(error.message).toContain(`LV ${lvName}`);
  });

  test.each(['', 'abc', '-1', '1.5', '1e3', ' 7', '0x10', '+3', '99999999999999999999'])('a setting tag holding "%s" is refused as not a whole number', (raw) => {
    const tags = settingsTags(DEFAULT_SETTINGS).map((t) => (t.startsWith(TAG.quantumExtents) ? `${TAG.quantumExtents}${raw}` : t));
    const error = thrownBy(() => readThinlvVg(withVgTags(baseVg(), tags)));
    expect(error.code).toBe('UNSUPPORTED_METADATA');
    expect(error.message).toMatch(/whole number/);
  });

  test('a non-numeric cursor on a journal LV is refused, not read as 0', () => {
    const vg = replacingLv(baseVg(), 'thinlv_h1_journal', (lv) => ({ ...lv, tags: [`${TAG.appliedSeq}twelve`] }));
    expect(thrownBy(() => readThinlvVg(vg)).code).toBe('UNSUPPORTED_METADATA');
  });

  test('a non-numeric format tag is refused as unsupported, not taken for an unformatted VG', () => {
    const tags = settingsTags(DEFAULT_SETTINGS).map((t) => (t.startsWith(TAG.format) ? `${TAG.format}one` : t));
    expect(thrownBy(() => readThinlvVg(withVgTags(baseVg(), tags))).code).toBe('UNSUPPORTED_METADATA');
  });

  test('hosts missing their journal or grants LV are listed as incomplete and left out of hosts', () => {
    const vg = withLvs(baseVg(), [
      linearLv('thinlv_h3_journal', [range('/dev/sdb', 150, 1)]),
      linearLv('thinlv_h4_grants', [range('/dev/sdb', 151, 1)]),
      linearLv('thinlv_h5_free', [range('/dev/sdb', 152, 3)]),
      linearLv('thinlv_h6_journal', [range('/dev/sdb', 155, 1)]),
      linearLv('thinlv_h6_free', [range('/dev/sdb', 156, 1)]),
    ]);
    const thinlv = readThinlvVg(vg);
    expect([...thinlv.incompleteHosts].sort()).toEqual(['h3', 'h4', 'h5', 'h6']);
    expect([...thinlv.hosts.keys()]).toEqual(['h1', 'h2']);
  });

  test('a host with untagged journal and grants LVs and no free LV reads as seq 0, no rejections, generation 0, empty pool', () => {
    const vg = withLvs(baseVg(), [linearLv('thinlv_h3_journal', [range('/dev/sdb', 150, 1)]), linearLv('thinlv_h3_grants', [range('/dev/sdb', 151, 1)])]);
    const h3 = readThinlvVg(vg).hosts.get('h3');
    expect(h3).toMatchObject({ host: 'h3', appliedSeq: 0, rejectedCount: 0, grantGeneration: 0, freeLv: undefined });
    expect(poolExtentCount(h3!)).toBe(0);
  });

  test('the master host comes from the thinlv_master tag', () => {
    const vg = withVgTags(baseVg(), [...settingsTags(DEFAULT_SETTINGS), `${TAG.master}xcp-host-01.example`]);
    expect(readThinlvVg(vg).masterHost).toBe('xcp-host-01.example');
  });

  test('ordinary LVs and LVs that only look like host LVs are neither hosts nor thin LVs', () => {
    const vg = withLvs(baseVg(), [
      linearLv('root', [range('/dev/sdb', 150, 1)]),
      linearLv('thinlv_a_b_free', [range('/dev/sdb', 151, 1)]), // "a_b" is not a host name
      linearLv('thinlv_h1_spare', [range('/dev/sdb', 152, 1)]),
    ]);
    const thinlv = readThinlvVg(vg);
    expect([...thinlv.hosts.keys()]).toEqual(['h1', 'h2']);
    expect(thinlv.incompleteHosts).toEqual([]);
    expect([...thinlv.thinLvs.keys()]).toEqual(['disk0', 'disk1', 'disk2']);
  });

  test('host LVs are never taken for thin LVs, even when tagged with a virtual size', () => {
    const vg = replacingLv(baseVg(), 'thinlv_h1_free', (lv) => ({ ...lv, tags: [`${TAG.virtualBytes}4096`] }));
    expect(readThinlvVg(vg).thinLvs.has('thinlv_h1_free')).toBe(false);
  });

  test.prop([fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/)], { numRuns: 200 })('every valid host name reads back as the same host from its LV names', (host) => {
    // "h1" and "h2" are the base VG's own hosts.
    fc.pre(host !== 'h1' && host !== 'h2');
    validateHostName(host);
    const names = hostLvNames(host);
    const vg = withLvs(baseVg(), [
      linearLv(names.journal, [range('/dev/sdb', 150, 1)], { tags: [`${TAG.appliedSeq}3`] }),
      linearLv(names.grants, [range('/dev/sdb', 151, 1)]),
      linearLv(names.free, [range('/dev/sdb', 152, 2)]),
    ]);
    const thinlv = readThinlvVg(vg);
    expect(thinlv.hosts.get(host)).toMatchObject({ host, appliedSeq: 3 });
    expect(thinlv.hosts.get(host)?.freeLv?.name).toBe(names.free);
    expect(thinlv.incompleteHosts).toEqual([]);
  });
});

describe('defaultSettings', () => {
  test('a small VG of 4 MiB extents gets the 256 MiB floor: a quantum of 64 extents, low-water 32, reserve 50 permille', () => {
    expect(defaultSettings(1000, 4 * MIB)).toEqual({ quantumExtents: 64, lowWaterExtents: 32, reservePermille: 50 });
  });

  test('a large VG gets a quantum of 0.5% of its extents, rounded up', () => {
    expect(defaultSettings(100_000, 4 * MIB)).toEqual({ quantumExtents: 500, lowWaterExtents: 250, reservePermille: DEFAULT_RESERVE_PERMILLE });
    expect(defaultSettings(100_001, 4 * MIB).quantumExtents).toBe(501);
  });

  test('with extents larger than the floor the quantum is at least one extent and low-water at least one', () => {
    expect(defaultSettings(10, 1024 * MIB)).toEqual({ quantumExtents: 1, lowWaterExtents: 1, reservePermille: 50 });
    expect(defaultSettings(1001, 1024 * MIB)).toEqual({ quantumExtents: 6, lowWaterExtents: 3, reservePermille: 50 });
  });

  test.prop([fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 0, max: 14 }).map((shift) => 2 ** shift * MIB)], { numRuns: 300 })(
    'the quantum is the smallest extent count that is both 256 MiB and 0.5% of the VG; low-water is half of it, at least one',
    (vgExtentCount, extentSizeBytes) => {
      const { quantumExtents, lowWaterExtents, reservePermille } = defaultSettings(vgExtentCount, extentSizeBytes);
      const bigEnough = (q: number): boolean => q * extentSizeBytes >= MIN_QUANTUM_BYTES && q * 1000 >= vgExtentCount * 5;
      expect(bigEnough(quantumExtents)).toBe(true);
      expect(quantumExtents === 1 || !bigEnough(quantumExtents - 1)).toBe(true);
      expect(lowWaterExtents).toBe(Math.max(1, Math.floor(quantumExtents / 2)));
      expect(lowWaterExtents).toBeGreaterThanOrEqual(1);
      expect(lowWaterExtents).toBeLessThanOrEqual(quantumExtents);
      expect(reservePermille).toBe(50);
    },
  );
});

describe('validateHostName', () => {
  test.each(['h1', 'A', 'xcp-ng-host01', 'node.example.com', '0node', 'a'.repeat(63)])('accepts "%s"', (host) => {
    expect(() => validateHostName(host)).not.toThrow();
  });

  test.each(['', '-host', '.host', 'a_b', 'a b', 'a/b', 'a'.repeat(64), 'hôte', 'h1\n', 'thinlv_x'])('refuses "%s" with a usage error', (host) => {
    const error = thrownBy(() => validateHostName(host));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.data).toEqual({ host });
  });

  test('host names such as "tmeta" make LV names that LVM reserves (the fact the next test relies on)', () => {
    expect(invalidNameReason(hostLvNames('tmeta').free, 'LV')).toMatch(/reserved "_tmeta"/);
    expect(invalidNameReason(hostLvNames('rimage2').journal, 'LV')).toMatch(/reserved "_rimage"/);
  });

  // BUG (src/format/thinlvVg.ts, validateHostName / HOST_NAME_PATTERN): the pattern
  // accepts host names that start with a string LVM reserves after an underscore
  // ("tmeta", "tdata", "rimage2", "cdata", "mlog", "pmspare", ...), but hostLvNames()
  // then yields "thinlv_tmeta_free", which contains "_tmeta": invalidNameReason()
  // (and lvm2's own apply_lv_name_restrictions) refuses it. So `thinlv host add tmeta`
  // passes validation and only fails later, at commit, with a confusing INVALID_BATCH.
  // validateHostName should refuse every host whose three LV names are not valid LV names.
  test('validateHostName refuses a host whose LV names LVM would refuse', () => {
    for (const host of ['tmeta', 'tdata', 'rimage2', 'cdata', 'mlog', 'pmspare']) {
      expect(() => validateHostName(host), host).toThrow(UsageError);
    }
  });
});
