// `thinlv check VG`: what can be checked from metadata, and what hosts' journals add
// to it. Exit 0 when clean, 1 when there are error findings (warnings alone still exit 0).

import { ErrorCode, LvmError } from '../../errors.js';
import { readVgReport } from '../../lvm/readVgReport.js';
import { checkVgReport, type VgCheckResult } from '../../metadata/checkLayout.js';
import type { CommandContext } from '../context.js';
import { validateVgName } from '../validate.js';
import { checkThinlv } from '../../format/checkThinlv.js';
import { unreplayedFindings } from '../../format/checkUnreplayed.js';

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
