// Hand-built thinlv volume groups (VgMetadata values, no lvm) and fast-check
// arbitraries for them, shared by the readThinlvVg, planReplay and planRefill tests.
//
//   PV /dev/sdb (uuid pv-uuid-sdb-0001)   PV /dev/sdc (uuid pv-uuid-sdc-0002)
//   per host H: thinlv_H_journal, thinlv_H_grants (one extent each), thinlv_H_free (its pool)
//   thin LVs:   ordinary linear LVs tagged thinlv_virtual_bytes=N
//
// PV uuids differ from device paths on purpose: journal records name PVs by uuid,
// metadata segments by device, and a mix-up between the two must show.

import { fc } from '@fast-check/vitest';

import { ExtentSet } from '../../../src/extent/extentSet.js';
import type { PhysicalRange } from '../../../src/extent/types.js';
import { TAG, THINLV_FORMAT_VERSION, hostLvNames, type ThinlvSettings } from '../../../src/format/thinlvVg.js';
import type { NewLvIdentity } from '../../../src/metadata/applyChanges.js';
import { linearSegments, type LvMetadata, type SegmentMetadata, type VgMetadata } from '../../../src/metadata/vgModel.js';

export const EXTENT_SIZE_SECTORS = 8192; // 4 MiB extents
export const NOW_SECONDS = 1_795_345_202;

export interface PvSpec {
  readonly device: string;
  readonly uuid: string;
  readonly peCount: number;
}

export const PV_SDB: PvSpec = { device: '/dev/sdb', uuid: 'pv-uuid-sdb-0001', peCount: 200 };
export const PV_SDC: PvSpec = { device: '/dev/sdc', uuid: 'pv-uuid-sdc-0002', peCount: 200 };

export const DEFAULT_SETTINGS: ThinlvSettings = { quantumExtents: 16, lowWaterExtents: 8, reservePermille: 50 };

export interface HostSpec {
  readonly host: string;
  readonly journal: PhysicalRange;
  readonly grants: PhysicalRange;
  /** The host's pool; no free LV is built when empty. */
  readonly pool: readonly PhysicalRange[];
  readonly appliedSeq?: number;
  readonly rejectedCount?: number;
  readonly grantGeneration?: number;
}

export interface ThinLvSpec {
  readonly name: string;
  readonly uuid: string;
  readonly ranges: readonly PhysicalRange[];
  readonly virtualBytes?: number;
  /** The host that holds it (thinlv_owner=), if any. */
  readonly owner?: string;
}

export interface ThinlvVgSpec {
  readonly pvs: readonly PvSpec[];
  readonly settings: ThinlvSettings;
  readonly hosts: readonly HostSpec[];
  readonly thinLvs: readonly ThinLvSpec[];
}

export const range = (pv: string, firstExtent: number, extentCount: number): PhysicalRange => ({ pv, firstExtent, extentCount });

/** A linear LV whose logical extents follow `ranges` in order. */
export function linearLv(name: string, ranges: readonly PhysicalRange[], more: Partial<LvMetadata> = {}): LvMetadata {
  let logicalStart = 0;
  const segments: SegmentMetadata[] = ranges.map((r) => {
    const segment: SegmentMetadata = { logicalStart, extentCount: r.extentCount, type: 'striped', stripes: [{ pv: r.pv, firstExtent: r.firstExtent }], extra: [] };
    logicalStart += r.extentCount;
    return segment;
  });
  return { name, uuid: `uuid-${name}`, status: ['READ', 'WRITE', 'VISIBLE'], flags: [], activationSkip: true, tags: [], segments, extra: [], ...more };
}

export function settingsTags(settings: ThinlvSettings): string[] {
  return [
    `${TAG.format}${THINLV_FORMAT_VERSION}`,
    `${TAG.quantumExtents}${settings.quantumExtents}`,
    `${TAG.lowWaterExtents}${settings.lowWaterExtents}`,
    `${TAG.reservePermille}${settings.reservePermille}`,
  ];
}

/** The VgMetadata `spec` describes: formatted, with every host's LVs and every thin LV. */
export function thinlvVgMetadata(spec: ThinlvVgSpec): VgMetadata {
  const lvs: LvMetadata[] = [];
  for (const host of spec.hosts) {
    const names = hostLvNames(host.host);
    const journalTags = [`${TAG.appliedSeq}${host.appliedSeq ?? 0}`];
    if (host.rejectedCount !== undefined) journalTags.push(`${TAG.rejectedCount}${host.rejectedCount}`);
    lvs.push(linearLv(names.journal, [host.journal], { tags: journalTags }));
    lvs.push(linearLv(names.grants, [host.grants], { tags: [`${TAG.grantGeneration}${host.grantGeneration ?? 0}`] }));
    if (host.pool.length > 0) lvs.push(linearLv(names.free, host.pool));
  }
  for (const thin of spec.thinLvs) {
    const tags = [`${TAG.virtualBytes}${thin.virtualBytes ?? 10 * 1024 ** 3}`, ...(thin.owner === undefined ? [] : [`${TAG.owner}${thin.owner}`])];
    lvs.push(linearLv(thin.name, thin.ranges, { uuid: thin.uuid, tags }));
  }
  return {
    header: [{ kind: 'assign', key: 'contents', value: { kind: 'string', value: 'Text Format Volume Group' } }],
    name: 'vgthin',
    uuid: 'uuid-vgthin',
    seqno: 42,
    status: ['RESIZEABLE', 'READ', 'WRITE'],
    flags: [],
    tags: settingsTags(spec.settings),
    extentSizeSectors: EXTENT_SIZE_SECTORS,
    extra: [],
    pvs: spec.pvs.map((pv, index) => ({
      key: `pv${index}`,
      device: pv.device,
      uuid: pv.uuid,
      status: ['ALLOCATABLE'],
      flags: [],
      tags: [],
      devSizeSectors: 2048 + pv.peCount * EXTENT_SIZE_SECTORS,
      peStartSectors: 2048,
      peCount: pv.peCount,
      extra: [],
    })),
    lvs,
  };
}

/**
 * The two-host VG most example tests start from:
 *   sdb:0-3     rings of h1 and h2
 *   sdb:10-13   disk0          sdb:20-21  disk1         sdc:0-1  disk2
 *   (disk0 and disk1 held by h1, disk2 by h2)
 *   sdb:30-49   h1's pool (20 extents)
 *   sdb:50-59 + sdc:100-109   h2's pool (20 extents, two PVs)
 *   everything else VG free
 */
export function twoHostSpec(overrides: { h1?: Partial<HostSpec>; h2?: Partial<HostSpec>; settings?: ThinlvSettings } = {}): ThinlvVgSpec {
  return {
    pvs: [PV_SDB, PV_SDC],
    settings: overrides.settings ?? DEFAULT_SETTINGS,
    hosts: [
      { host: 'h1', journal: range('/dev/sdb', 0, 1), grants: range('/dev/sdb', 1, 1), pool: [range('/dev/sdb', 30, 20)], appliedSeq: 0, ...overrides.h1 },
      {
        host: 'h2',
        journal: range('/dev/sdb', 2, 1),
        grants: range('/dev/sdb', 3, 1),
        pool: [range('/dev/sdb', 50, 10), range('/dev/sdc', 100, 10)],
        appliedSeq: 0,
        ...overrides.h2,
      },
    ],
    thinLvs: [
      { name: 'disk0', uuid: 'uuid-disk0', ranges: [range('/dev/sdb', 10, 4)], owner: 'h1' },
      { name: 'disk1', uuid: 'uuid-disk1', ranges: [range('/dev/sdb', 20, 2)], owner: 'h1' },
      { name: 'disk2', uuid: 'uuid-disk2', ranges: [range('/dev/sdc', 0, 2)], owner: 'h2' },
    ],
  };
}

/** New-LV identities that count up, so a test can say which uuid a created LV gets. */
export function countingIdentity(): NewLvIdentity {
  let next = 0;
  return { newUuid: () => `uuid-new-${next++}`, nowSeconds: () => NOW_SECONDS, hostname: 'master1' };
}

export const lvNamed = (vg: VgMetadata, name: string): LvMetadata | undefined => vg.lvs.find((lv) => lv.name === name);

export function extentsOfLv(vg: VgMetadata, name: string): ExtentSet {
  const lv = lvNamed(vg, name);
  return lv === undefined ? ExtentSet.empty() : ExtentSet.fromRanges(linearSegments(lv) ?? []);
}

/** Every extent of the ranges, one "pv:extent" string each, in order. */
export function flattenRanges(ranges: readonly PhysicalRange[]): string[] {
  return ranges.flatMap((r) => Array.from({ length: r.extentCount }, (_, i) => `${r.pv}:${r.firstExtent + i}`));
}

/** The LV's physical extents in logical order, one "pv:extent" string each. */
export function logicalExtents(vg: VgMetadata, name: string): string[] {
  const lv = lvNamed(vg, name);
  return lv === undefined ? [] : flattenRanges(linearSegments(lv) ?? []);
}

/** Maximal runs of consecutive extents, as ranges, from a list of single extents on known PVs. */
export function extentListToRanges(extents: readonly { pv: string; extent: number }[]): PhysicalRange[] {
  const result: PhysicalRange[] = [];
  for (const { pv, extent } of extents) {
    const last = result[result.length - 1];
    if (last !== undefined && last.pv === pv && last.firstExtent + last.extentCount === extent) {
      result[result.length - 1] = { ...last, extentCount: last.extentCount + 1 };
    } else {
      result.push({ pv, firstExtent: extent, extentCount: 1 });
    }
  }
  return result;
}

/** The extents of a set one by one, sorted by PV then extent. */
export function extentList(set: ExtentSet): { pv: string; extent: number }[] {
  return set.ranges().flatMap((r) => Array.from({ length: r.extentCount }, (_, i) => ({ pv: r.pv, extent: r.firstExtent + i })));
}

export const HOST_NAMES = ['h1', 'h2', 'h3'] as const;

export interface LayoutArbitraryOptions {
  readonly minHosts?: number;
  readonly maxHosts?: number;
}

/**
 * Random valid layouts: two PVs of 40 to 200 extents; 2*hostCount ring extents and
 * one extent per thin LV at the start of the first PV; then runs of 1 to 12 extents
 * handed to VG free space (30%), a host's pool (45%) or a thin LV (25%); whatever
 * is left after the runs is free.
 * Host cursors (applied seq, rejected count, grant generation) and settings vary too.
 */
export function thinlvLayoutArbitrary(options: LayoutArbitraryOptions = {}): fc.Arbitrary<ThinlvVgSpec> {
  const { minHosts = 2, maxHosts = 3 } = options;
  return fc
    .record({
      hostCount: fc.integer({ min: minHosts, max: maxHosts }),
      thinLvCount: fc.integer({ min: 1, max: 4 }),
      peCounts: fc.tuple(fc.integer({ min: 40, max: 200 }), fc.integer({ min: 40, max: 200 })),
      runs: fc.array(fc.record({ extentCount: fc.integer({ min: 1, max: 12 }), owner: fc.nat({ max: 99 }) }), { minLength: 4, maxLength: 60, size: 'medium' }),
      settings: fc.record({
        quantumExtents: fc.integer({ min: 1, max: 40 }),
        lowWaterExtents: fc.integer({ min: 0, max: 40 }),
        reservePermille: fc.integer({ min: 0, max: 300 }),
      }),
      cursors: fc.array(
        fc.record({ appliedSeq: fc.nat({ max: 1000 }), rejectedCount: fc.option(fc.nat({ max: 5 }), { nil: undefined }), grantGeneration: fc.nat({ max: 20 }) }),
        { minLength: maxHosts, maxLength: maxHosts },
      ),
    })
    .map(({ hostCount, thinLvCount, peCounts, runs, settings, cursors }): ThinlvVgSpec => {
      const pvs: PvSpec[] = [
        { ...PV_SDB, peCount: peCounts[0] },
        { ...PV_SDC, peCount: peCounts[1] },
      ];
      const first = PV_SDB.device;
      const pools: PhysicalRange[][] = Array.from({ length: hostCount }, () => []);
      const thinRanges: PhysicalRange[][] = Array.from({ length: thinLvCount }, (_, j) => [range(first, 2 * hostCount + j, 1)]);
      // Walk both PVs from the first extent left after the fixed ones, handing out runs.
      let pvIndex = 0;
      let cursor = 2 * hostCount + thinLvCount;
      for (const run of runs) {
        let left = run.extentCount;
        while (left > 0 && pvIndex < pvs.length) {
          const pv = pvs[pvIndex]!;
          if (cursor >= pv.peCount) {
            pvIndex += 1;
            cursor = 0;
            continue;
          }
          const taken = Math.min(left, pv.peCount - cursor);
          const piece = range(pv.device, cursor, taken);
          // owner 0-29: VG free space; 30-74: a host's pool; 75-99: a thin LV.
          if (run.owner >= 30) {
            const list = run.owner < 75 ? pools[run.owner % hostCount]! : thinRanges[run.owner % thinLvCount]!;
            const last = list[list.length - 1];
            // Merge with the previous run when they touch, as LVM would coalesce them.
            if (last !== undefined && last.pv === piece.pv && last.firstExtent + last.extentCount === piece.firstExtent) {
              list[list.length - 1] = { ...last, extentCount: last.extentCount + taken };
            } else {
              list.push(piece);
            }
          }
          left -= taken;
          cursor += taken;
        }
      }
      return {
        pvs,
        settings,
        hosts: Array.from({ length: hostCount }, (_, i): HostSpec => {
          const state = cursors[i]!;
          return {
            host: HOST_NAMES[i]!,
            journal: range(first, 2 * i, 1),
            grants: range(first, 2 * i + 1, 1),
            pool: pools[i]!,
            appliedSeq: state.appliedSeq,
            grantGeneration: state.grantGeneration,
            ...(state.rejectedCount === undefined ? {} : { rejectedCount: state.rejectedCount }),
          };
        }),
        thinLvs: thinRanges.map((ranges, j) => ({ name: `disk${j}`, uuid: `uuid-disk${j}`, ranges, owner: HOST_NAMES[j % hostCount]! })),
      };
    });
}
