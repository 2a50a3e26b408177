// The volume group as thinlv reasons about it. Two readers fill it:
//   - lvm fullreport (src/lvm/readVgReport.ts): adds metadata-area use, for reports;
//   - the vgcfgbackup text (src/lvm/metadataText.ts): adds everything LVM wrote
//     that thinlv does not interpret, so a commit can print it back unchanged.
// Both name PVs by device path in segments, as `lvs -o seg_pe_ranges` does.

import type { ConfigEntry } from '../lvm/configTree.js';
import type { LinearSegment, PhysicalRange } from '../extent/types.js';

export const SECTOR_BYTES = 512;

export interface PvLayout {
  /** Device path, as LVM names the PV ("/dev/sdb", "/dev/loop3"). */
  readonly device: string;
  readonly uuid: string;
  /** Offset of physical extent 0 on the device. */
  readonly peStartSectors: number;
  readonly peCount: number;
}

/** One stripe area of a segment: where the segment's data starts on a PV. */
export interface StripeArea {
  readonly pv: string;
  readonly firstExtent: number;
}

export interface Segment {
  readonly logicalStart: number;
  readonly extentCount: number;
  /** LVM segment type: "striped" covers linear (one stripe); anything else is carried but not managed. */
  readonly type: string;
  /** For "striped": the stripe areas, each extentCount / stripes.length extents long. Empty for other types. */
  readonly stripes: readonly StripeArea[];
}

export interface LvLayout {
  readonly name: string;
  readonly uuid: string;
  readonly tags: readonly string[];
  /** LVM's activation-skip flag (lvcreate -ky): a stock `vgchange -ay` leaves the LV alone. */
  readonly activationSkip: boolean;
  readonly segments: readonly Segment[];
}

export interface VgLayout {
  readonly name: string;
  readonly uuid: string;
  readonly seqno: number;
  readonly extentSizeSectors: number;
  readonly tags: readonly string[];
  readonly pvs: readonly PvLayout[];
  readonly lvs: readonly LvLayout[];
}

/** What `lvm fullreport` adds: what LVM itself says about space and the metadata area. */
export interface VgReport extends VgLayout {
  readonly extentCount: number;
  readonly freeExtentCount: number;
  readonly metadataAreaSizeBytes: number;
  readonly metadataAreaFreeBytes: number;
  /** Free space as LVM's own pvseg report gives it. */
  readonly freeRanges: readonly PhysicalRange[];
  readonly pvs: readonly (PvLayout & { readonly deviceSizeBytes: number })[];
}

// The metadata-text model: the layout plus every entry thinlv does not interpret.

export interface PvMetadata extends PvLayout {
  /** The PV's key inside the text ("pv0"); segments refer to PVs by it. */
  readonly key: string;
  readonly status: readonly string[];
  readonly flags: readonly string[];
  readonly tags: readonly string[];
  readonly devSizeSectors: number;
  readonly extra: readonly ConfigEntry[];
}

export interface SegmentMetadata extends Segment {
  readonly extra: readonly ConfigEntry[];
}

export interface LvMetadata extends LvLayout {
  readonly status: readonly string[];
  /** Flags other than ACTIVATION_SKIP, which is `activationSkip`. */
  readonly flags: readonly string[];
  readonly segments: readonly SegmentMetadata[];
  readonly extra: readonly ConfigEntry[];
}

export interface VgMetadata extends VgLayout {
  /** Top-level entries outside the VG section (contents, version, description, ...). */
  readonly header: readonly ConfigEntry[];
  readonly status: readonly string[];
  readonly flags: readonly string[];
  readonly pvs: readonly PvMetadata[];
  readonly lvs: readonly LvMetadata[];
  readonly extra: readonly ConfigEntry[];
}

export const isLinear = (segment: Segment): boolean => segment.type === 'striped' && segment.stripes.length === 1;

/** The physical extents a segment occupies, one range per stripe. Empty for types thinlv does not manage. */
export function segmentPhysicalRanges(segment: Segment): PhysicalRange[] {
  if (segment.type !== 'striped' || segment.stripes.length === 0) return [];
  const perStripe = segment.extentCount / segment.stripes.length;
  return segment.stripes.map((stripe) => ({ pv: stripe.pv, firstExtent: stripe.firstExtent, extentCount: perStripe }));
}

/** The LV's segments as linear segments, or undefined when any segment is not linear. */
export function linearSegments(lv: LvLayout): LinearSegment[] | undefined {
  const result: LinearSegment[] = [];
  for (const segment of lv.segments) {
    const stripe = segment.stripes[0];
    if (!isLinear(segment) || stripe === undefined) return undefined;
    result.push({
      logicalStart: segment.logicalStart,
      extentCount: segment.extentCount,
      pv: stripe.pv,
      firstExtent: stripe.firstExtent,
    });
  }
  return result;
}

export const lvExtentCount = (lv: LvLayout): number =>
  lv.segments.reduce((total, segment) => total + segment.extentCount, 0);

export const extentSizeBytes = (vg: VgLayout): number => vg.extentSizeSectors * SECTOR_BYTES;
