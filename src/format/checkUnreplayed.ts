// `thinlv check`'s findings from the hosts' journals (the rest come from metadata alone:
// metadata/checkLayout.ts, format/checkThinlv.ts). Found on real device-mapper by the rig's
// `stock` run: while extents are only in a journal, a table built from metadata alone maps
// the LV short, and check said nothing.

import type { CommandContext } from '../cli/context.js';
import { isFormatted } from './thinlvVg.js';
import { thinViewOf, type ThinView } from '../lvmcompat/thinSizes.js';
import { readSnapshot } from '../report/journalSnapshot.js';
import type { Finding } from '../metadata/checkLayout.js';
import type { VgReport } from '../metadata/vgModel.js';

/**
 * Thin LVs that hosts have grown past their metadata. Between master passes that is
 * normal, but it is what a table built from metadata alone would lose: a stock
 * `lvchange -ay -K` or `vgchange -ay -K` (activation-skip ignored) on any host maps such
 * an LV short, and what was written past its metadata end is out of reach there. A
 * warning, so that an operator about to run stock lvm sees it; exit codes do not change.
 */
export async function unreplayedFindings(context: CommandContext, vgName: string, report: VgReport): Promise<Finding[]> {
  if (!isFormatted(report)) return [];
  // The journals read against the report already in hand (re-read if the master replays meanwhile).
  const { vg, journals } = await readSnapshot(context, vgName, Promise.resolve(report));
  return unreplayedOf(thinViewOf(vg, journals));
}

function unreplayedOf(view: ThinView): Finding[] {
  const findings: Finding[] = view.warnings.map((message) => ({ severity: 'warning', code: 'JOURNAL_UNREADABLE', message, data: {} }));
  for (const lv of view.grown.values()) {
    const missingBytes = (lv.extentCount - lv.metadataExtentCount) * view.extentSizeBytes;
    if (missingBytes <= 0) continue; // a deflate not replayed yet: metadata is longer, nothing is lost
    findings.push({
      severity: 'warning',
      code: 'UNREPLAYED_EXTENTS',
      message:
        `thin LV ${lv.name} is ${lv.extentCount} extents long, ${lv.extentCount - lv.metadataExtentCount} of them (${missingBytes} bytes) only in host journals until the master replays them: ` +
        `a table built from metadata alone (stock lvchange -ay -K or vgchange -ay -K, on any host) would map it ${missingBytes} bytes short; activate and refresh it only through thinlv (thinlv lvchange -ay|--refresh)`,
      data: { lv: lv.name, extentCount: lv.extentCount, metadataExtentCount: lv.metadataExtentCount, missingBytes },
    });
  }
  return findings;
}
