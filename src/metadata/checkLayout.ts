// What can be checked from LVM metadata alone (invariant I1 and the metadata
// half of I2), used both by `thinlv check` and by the commit path, which refuses
// any batch whose result has an error finding.

import { findOverlaps, type OwnedRange } from '../extent/findOverlaps.js';
import { ExtentSet } from '../extent/extentSet.js';
import type { PhysicalRange } from '../extent/types.js';
import { invalidNameReason, invalidTagReason } from './names.js';
import { segmentPhysicalRanges, type Segment, type VgLayout, type VgReport } from './vgModel.js';

export const METADATA_AREA_WARN_RATIO = 0.5;
export const METADATA_AREA_ERROR_RATIO = 0.8;
/** Bound on findings listed per kind, so a badly broken VG gives a readable report. */
export const MAX_FINDINGS_PER_CODE = 100;

export type Severity = 'error' | 'warning';

export interface Finding {
  readonly severity: Severity;
  /** Stable identifier of the kind of problem. */
  readonly code: string;
  readonly message: string;
  readonly data: Readonly<Record<string, unknown>>;
}

const describe = (r: PhysicalRange): string =>
  r.extentCount === 1 ? `${r.pv}:${r.firstExtent}` : `${r.pv}:${r.firstExtent}-${r.firstExtent + r.extentCount - 1}`;

/** A segment whose size is not a positive whole number of extents per stripe maps no extents thinlv can name. */
const hasWholeStripes = (segment: Segment): boolean =>
  Number.isSafeInteger(segment.extentCount) &&
  segment.extentCount >= 1 &&
  (segment.stripes.length === 0 || segment.extentCount % segment.stripes.length === 0);

/** Extents held by LVs, each tagged with its LV, in VG order. Malformed segments are left to checkLayout's SEGMENT_INVALID. */
export function ownedRanges(vg: VgLayout): OwnedRange[] {
  return vg.lvs.flatMap((lv) =>
    lv.segments.filter(hasWholeStripes).flatMap((segment) => segmentPhysicalRanges(segment).map((range) => ({ owner: lv.name, range }))),
  );
}

/** The extents of all PVs. */
export function pvExtents(vg: VgLayout): ExtentSet {
  return ExtentSet.fromRanges(vg.pvs.filter((pv) => pv.peCount > 0).map((pv) => ({ pv: pv.device, firstExtent: 0, extentCount: pv.peCount })));
}

/** VG free space computed from the layout: PV extents not held by any LV. */
export function computeFreeExtents(vg: VgLayout): ExtentSet {
  return pvExtents(vg).difference(ExtentSet.fromRanges(ownedRanges(vg).map((o) => o.range)));
}

/** Structural findings on a layout: names, tags, segment shape, extents in two LVs or outside their PV. */
export function checkLayout(vg: VgLayout): Finding[] {
  const findings: Finding[] = [];
  const add = (severity: Severity, code: string, message: string, data: Record<string, unknown>): void => {
    if (findings.filter((f) => f.code === code).length < MAX_FINDINGS_PER_CODE) findings.push({ severity, code, message, data });
  };

  const vgNameProblem = invalidNameReason(vg.name, 'VG');
  if (vgNameProblem) add('error', 'INVALID_NAME', vgNameProblem, { vg: vg.name });
  for (const tag of vg.tags) {
    const problem = invalidTagReason(tag);
    if (problem) add('error', 'INVALID_TAG', `VG ${vg.name}: ${problem}`, { tag });
  }

  const pvByDevice = new Map(vg.pvs.map((pv) => [pv.device, pv]));
  const seenNames = new Set<string>();
  for (const lv of vg.lvs) {
    if (seenNames.has(lv.name)) add('error', 'DUPLICATE_LV', `two LVs are named ${lv.name}`, { lv: lv.name });
    seenNames.add(lv.name);
    const nameProblem = invalidNameReason(lv.name, 'LV');
    if (nameProblem) add('error', 'INVALID_NAME', nameProblem, { lv: lv.name });
    for (const tag of lv.tags) {
      const problem = invalidTagReason(tag);
      if (problem) add('error', 'INVALID_TAG', `LV ${lv.name}: ${problem}`, { lv: lv.name, tag });
    }
    if (lv.segments.length === 0) add('error', 'EMPTY_LV', `LV ${lv.name} has no segments (LVM needs at least one extent)`, { lv: lv.name });
    let expectedStart = 0;
    for (const segment of lv.segments) {
      if (segment.logicalStart !== expectedStart || segment.extentCount < 1) {
        add('error', 'SEGMENT_GAP', `LV ${lv.name}: segment at logical extent ${segment.logicalStart} should start at ${expectedStart}`, {
          lv: lv.name,
          logicalStart: segment.logicalStart,
          expectedStart,
        });
      }
      expectedStart = segment.logicalStart + segment.extentCount;
      if (!hasWholeStripes(segment)) {
        add('error', 'SEGMENT_INVALID', `LV ${lv.name}: segment at logical extent ${segment.logicalStart} has ${segment.extentCount} extents in ${segment.stripes.length} stripes`, {
          lv: lv.name,
          logicalStart: segment.logicalStart,
        });
        continue;
      }
      for (const range of segmentPhysicalRanges(segment)) {
        const pv = pvByDevice.get(range.pv);
        if (pv === undefined) {
          add('error', 'UNKNOWN_PV', `LV ${lv.name}: segment on ${range.pv}, which is not a PV of ${vg.name}`, { lv: lv.name, pv: range.pv });
        } else if (range.firstExtent + range.extentCount > pv.peCount) {
          add('error', 'OUTSIDE_PV', `LV ${lv.name}: extents ${describe(range)} lie beyond the ${pv.peCount} extents of ${pv.device}`, {
            lv: lv.name,
            range,
            peCount: pv.peCount,
          });
        }
      }
      if (segment.type !== 'striped') {
        add('warning', 'UNMANAGED_SEGMENT', `LV ${lv.name} has a "${segment.type}" segment, which thinlv does not check`, {
          lv: lv.name,
          type: segment.type,
        });
      }
    }
  }

  for (const overlap of findOverlaps(ownedRanges(vg))) {
    add('error', 'EXTENT_DOUBLE_USE', `extents ${describe(overlap.overlap)} belong to both ${overlap.a.owner} and ${overlap.b.owner}`, {
      lvs: [overlap.a.owner, overlap.b.owner],
      range: overlap.overlap,
    });
  }
  return findings;
}

/**
 * How full the metadata area is. LVM writes each new metadata copy beside the
 * old one, so it reports as free only what fits in half the area: capacity is
 * half the size, and an empty VG reads about 0%.
 */
export function metadataAreaUsedRatio(vg: Pick<VgReport, 'metadataAreaSizeBytes' | 'metadataAreaFreeBytes'>): number {
  const capacityBytes = vg.metadataAreaSizeBytes / 2;
  if (capacityBytes <= 0) return 1;
  return Math.min(1, Math.max(0, 1 - vg.metadataAreaFreeBytes / capacityBytes));
}

export interface VgCheckResult {
  readonly ok: boolean;
  readonly findings: readonly Finding[];
  readonly extentCount: number;
  readonly freeExtentCount: number;
  readonly allocatedExtentCount: number;
  readonly metadataAreaUsedRatio: number;
}

/** Everything `thinlv check` verifies from one fullreport. `ok` is false when any error finding exists. */
export function checkVgReport(vg: VgReport): VgCheckResult {
  const findings = [...checkLayout(vg)];
  const hasUnmanaged = findings.some((f) => f.code === 'UNMANAGED_SEGMENT');
  const owned = ExtentSet.fromRanges(ownedRanges(vg).map((o) => o.range));
  const totalExtentCount = vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  const lvmFree = ExtentSet.fromRanges(vg.freeRanges);

  if (totalExtentCount !== vg.extentCount) {
    findings.push({
      severity: 'error',
      code: 'EXTENT_COUNT_MISMATCH',
      message: `the PVs hold ${totalExtentCount} extents but the VG reports ${vg.extentCount}`,
      data: { pvExtentCount: totalExtentCount, vgExtentCount: vg.extentCount },
    });
  }
  if (!hasUnmanaged) {
    if (owned.extentCount + vg.freeExtentCount !== vg.extentCount) {
      findings.push({
        severity: 'error',
        code: 'EXTENT_ACCOUNTING',
        message: `allocated (${owned.extentCount}) plus free (${vg.freeExtentCount}) is not the VG's ${vg.extentCount} extents`,
        data: { allocatedExtentCount: owned.extentCount, freeExtentCount: vg.freeExtentCount, extentCount: vg.extentCount },
      });
    }
    const computedFree = computeFreeExtents(vg);
    if (!computedFree.equals(lvmFree)) {
      findings.push({
        severity: 'error',
        code: 'FREE_SPACE_MISMATCH',
        message: `LVM's free space (${lvmFree.extentCount} extents) differs from the PVs less the LVs (${computedFree.extentCount} extents)`,
        data: {
          onlyInLvm: lvmFree.difference(computedFree).ranges(),
          onlyComputed: computedFree.difference(lvmFree).ranges(),
        },
      });
    }
  }

  const usedRatio = metadataAreaUsedRatio(vg);
  const percent = `${(usedRatio * 100).toFixed(1)}%`;
  if (usedRatio >= METADATA_AREA_ERROR_RATIO) {
    findings.push({
      severity: 'error',
      code: 'METADATA_AREA_FULL',
      message: `metadata area ${percent} used (error at ${METADATA_AREA_ERROR_RATIO * 100}%): further commits may fail; move to PVs with a larger --metadatasize`,
      data: { usedRatio, sizeBytes: vg.metadataAreaSizeBytes, freeBytes: vg.metadataAreaFreeBytes },
    });
  } else if (usedRatio >= METADATA_AREA_WARN_RATIO) {
    findings.push({
      severity: 'warning',
      code: 'METADATA_AREA_FILLING',
      message: `metadata area ${percent} used (warning at ${METADATA_AREA_WARN_RATIO * 100}%)`,
      data: { usedRatio, sizeBytes: vg.metadataAreaSizeBytes, freeBytes: vg.metadataAreaFreeBytes },
    });
  }

  return {
    ok: !findings.some((f) => f.severity === 'error'),
    findings,
    extentCount: vg.extentCount,
    freeExtentCount: vg.freeExtentCount,
    allocatedExtentCount: owned.extentCount,
    metadataAreaUsedRatio: usedRatio,
  };
}
