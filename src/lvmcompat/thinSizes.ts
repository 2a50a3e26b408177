// Thin LVs as stock lvm will show them once the master has replayed every host's journal:
// their metadata segments, then the allocations hosts have journaled but the master has
// not replayed yet, placed exactly where replay will put them. The read is `thinlv free`'s
// (src/report/journalSnapshot.ts readSnapshot: `lvm fullreport --readonly`, then each host's
// journal through a read-only descriptor, re-read if the master replays meanwhile), and
// the placement is the master's own plan (src/replay/planReplay.ts), so a record replay
// would refuse adds nothing here either.
//
//   LV layout = coalesce(metadata segments ++ ranges of its unreplayed allocations, in
//               host then seq order), less the tail an unreplayed deflate gives back
// which is how the host daemon maps it (src/host/allocator.ts, I6) and what the master
// commits (moveRanges appends, then coalesces neighbours).

import { InvariantError, ThinlvError } from '../errors.js';
import { appendSegments, coalesceSegments, removeExtentsFromSegments } from '../extent/segments.js';
import type { LinearSegment } from '../extent/types.js';
import { readThinlvVg } from '../format/thinlvVg.js';
import { readVgReport } from '../lvm/readVgReport.js';
import { linearSegments, lvExtentCount, SECTOR_BYTES, type VgReport } from '../metadata/vgModel.js';
import { planReplay, type JournalRecordBytes } from '../replay/planReplay.js';
import type { HostJournal } from '../report/freeSpace.js';
import type { CommandContext } from '../cli/context.js';

export interface GrownThinLv {
  readonly name: string;
  readonly uuid: string;
  readonly metadataSegments: readonly LinearSegment[];
  /** Metadata segments, then the unreplayed allocations, coalesced as the master commits them. */
  readonly segments: readonly LinearSegment[];
  readonly metadataExtentCount: number;
  readonly extentCount: number;
}

export interface ThinView {
  readonly vg: VgReport;
  readonly extentSizeBytes: number;
  /** Thin LVs with allocations (or a deflate) not replayed yet, by LV uuid; thin LVs without any are absent. */
  readonly grown: ReadonlyMap<string, GrownThinLv>;
  /** What could not be counted (a host journal that cannot be read), one line each. */
  readonly warnings: readonly string[];
}

/** The view of `vg` given every host's journal as read against this very metadata. */
export function thinViewOf(vg: VgReport, journals: ReadonlyMap<string, HostJournal>): ThinView {
  const thinlv = readThinlvVg(vg);
  const records = new Map<string, readonly JournalRecordBytes[]>();
  const warnings: string[] = [];
  for (const host of thinlv.hosts.keys()) {
    const journal = journals.get(host);
    if (journal?.readable === true) records.set(host, journal.records);
    else {
      const why = journal === undefined ? 'it was not read' : journal.reason;
      warnings.push(`WARNING: thinlv: host ${host}'s journal could not be read (${why}); sizes of the thin LVs it extends may lack allocations not replayed yet.`);
    }
  }
  const changed = new Map<string, LinearSegment[]>();
  const segmentsOf = (name: string): LinearSegment[] => {
    const segments = changed.get(name) ?? linearSegments(thinlv.thinLvs.get(name)!.lv);
    // Replay changes only linear LVs (applyChanges refuses others), so this is a bug.
    if (segments === undefined) throw new InvariantError(`thin LV ${name} is not linear, yet replay would change it`, { lv: name });
    return segments;
  };
  for (const change of planReplay(vg, thinlv, records).changes) {
    if (change.kind === 'moveRanges' && thinlv.thinLvs.has(change.toLv)) changed.set(change.toLv, appendSegments(segmentsOf(change.toLv), change.ranges));
    // A deflate (`lvchange -an --deflate`) gives back the LV's tail.
    if (change.kind === 'releaseRanges' && thinlv.thinLvs.has(change.lv)) changed.set(change.lv, removeExtentsFromSegments(segmentsOf(change.lv), change.ranges));
  }
  const grown = new Map<string, GrownThinLv>();
  for (const [name, changedSegments] of changed) {
    const lv = thinlv.thinLvs.get(name)!.lv;
    const segments = coalesceSegments(changedSegments);
    const extentCount = segments.reduce((sum, s) => sum + s.extentCount, 0);
    grown.set(lv.uuid, { name, uuid: lv.uuid, metadataSegments: linearSegments(lv)!, segments, metadataExtentCount: lvExtentCount(lv), extentCount });
  }
  return { vg, extentSizeBytes: vg.extentSizeSectors * SECTOR_BYTES, grown, warnings };
}

/**
 * Reads the view of `vgName`; undefined when the VG is not formatted for thinlv (it has
 * no thin LVs, so stock lvm's answer stands). Other errors (the VG gone, lvm failing)
 * are thrown for the caller to report as lvm would.
 */
export async function readThinView(context: CommandContext, vgName: string): Promise<ThinView | undefined> {
  // The metadata read starts first: it is the longest step, and loading the snapshot's
  // module (here, not at the top: only a thinlv VG needs it) overlaps with it.
  const firstRead = readVgReport(context.lvm, vgName);
  firstRead.catch(() => undefined);
  const { readSnapshot } = await import('../report/journalSnapshot.js');
  try {
    const { vg, journals } = await readSnapshot(context, vgName, firstRead);
    return thinViewOf(vg, journals);
  } catch (error) {
    if (error instanceof ThinlvError && error.code === 'NOT_FORMATTED') return undefined;
    throw error;
  }
}
