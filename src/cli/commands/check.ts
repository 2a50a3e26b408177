// `thinlv check VG`: what can be checked from metadata alone. Exit 0 when clean,
// 1 when there are error findings (warnings alone still exit 0).

import { readVgReport } from '../../lvm/readVgReport.js';
import { checkVgReport } from '../../metadata/checkLayout.js';
import type { CommandContext } from '../context.js';
import { validateVgName } from '../validate.js';

export async function runCheck(context: CommandContext, vgName: string): Promise<number> {
  validateVgName(vgName);
  const report = await readVgReport(context.lvm, vgName);
  const result = checkVgReport(report);
  if (context.options.json) {
    process.stdout.write(`${JSON.stringify({ vg: vgName, seqno: report.seqno, ...result }, null, 2)}\n`);
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
