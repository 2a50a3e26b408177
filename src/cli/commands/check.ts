// `thinlv check VG`: what can be checked from metadata, and what hosts' journals add
// to it. Exit 0 when clean, 1 when there are error findings (warnings alone still exit 0).

import { ErrorCode, LvmError } from '../../errors.js';
import { readVgReport } from '../../lvm/readVgReport.js';
import { checkVgReport, type VgCheckResult } from '../../metadata/checkLayout.js';
import type { CommandContext } from '../context.js';
import { validateVgName } from '../validate.js';
import { checkThinlv } from '../../format/checkThinlv.js';
import { isFormatted } from '../../format/thinlvVg.js';
import { thinViewOf, type ThinView } from '../../lvmcompat/thinSizes.js';
import { readSnapshot } from '../../report/journalSnapshot.js';
import type { Finding } from '../../metadata/checkLayout.js';
import type { VgReport } from '../../metadata/vgModel.js';

/** A VG that LVM itself refuses to read is the worst finding there is, not an operating error. */
function refusedByLvm(error: LvmError): VgCheckResult {
  return {
    ok: false,
    findings: [{ severity: 'error', code: ErrorCode.vgMetadataCorrupt, message: error.message, data: { stderr: error.data['stderr'] } }],
    extentCount: 0,
    freeExtentCount: 0,
    allocatedExtentCount: 0,
    metadataAreaUsedRatio: 0,
  };
}

/**
 * Thin LVs that hosts have grown past their metadata. Between master passes that is
 * normal, but it is what a table built from metadata alone would lose: a stock
 * `lvchange -ay -K` or `vgchange -ay -K` (activation-skip ignored) on any host maps such
 * an LV short, and what was written past its metadata end is out of reach there. A
 * warning, so that an operator about to run stock lvm sees it; exit codes do not change.
 */
async function unreplayedFindings(context: CommandContext, vgName: string, report: VgReport): Promise<Finding[]> {
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

export async function runCheck(context: CommandContext, vgName: string): Promise<number> {
  validateVgName(vgName);
  let result: VgCheckResult;
  let seqno: number | null = null;
  try {
    // lvm's own view, not the PVs read directly: check compares lvm's free space with the segments.
    const report = await readVgReport(context.lvm, vgName, { via: 'lvm' });
    seqno = report.seqno;
    const base = checkVgReport(report);
    const findings = [...base.findings, ...checkThinlv(report), ...(await unreplayedFindings(context, vgName, report))];
    result = { ...base, findings, ok: !findings.some((f) => f.severity === 'error') };
  } catch (error) {
    if (!(error instanceof LvmError && error.code === ErrorCode.vgMetadataCorrupt)) throw error;
    result = refusedByLvm(error);
  }
  if (context.options.json) {
    process.stdout.write(`${JSON.stringify({ vg: vgName, seqno, ...result }, null, 2)}\n`);
  } else {
    for (const finding of result.findings) process.stdout.write(`${finding.severity}: ${finding.code}: ${finding.message}\n`);
    const errors = result.findings.filter((f) => f.severity === 'error').length;
    const warnings = result.findings.length - errors;
    process.stdout.write(
      `${vgName}: ${result.ok ? 'clean' : 'NOT CLEAN'} (${errors} errors, ${warnings} warnings); ` +
        `${result.extentCount} extents, ${result.allocatedExtentCount} allocated, ${result.freeExtentCount} free; ` +
        `metadata area ${(result.metadataAreaUsedRatio * 100).toFixed(1)}% used\n`,
    );
  }
  return result.ok ? 0 : 1;
}
