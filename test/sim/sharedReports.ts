// How simulated hosts read metadata: `lvm fullreport` through the host's own runner (its
// effect points, its crashes), then the real parser, src/lvm/readVgReport.ts's
// parseFullReport, as readVgReport runs them when lvm is not restricted to known devices.
// One thing differs: the parse of a report text is done once and shared by every host
// until the text changes. The simulated lvm answers with the same text object until the
// next commit, and hosts re-read it on every claim poll (most of a run's CPU went to
// parsing the same text again). The shared report is frozen, so a host that changed it
// would fail the run instead of changing what another host sees.

import { FULLREPORT_ARGS, parseFullReport } from '../../src/lvm/readVgReport.js';
import type { LvmRunner } from '../../src/lvm/runLvm.js';
import type { VgReport } from '../../src/metadata/vgModel.js';

export class SharedReports {
  private last: { readonly stdout: string; readonly vgName: string; readonly report: VgReport } | undefined;
  /** Parses done, and reads served from a parse done before (for the run's summary). */
  parses = 0;
  reuses = 0;

  async read(lvm: LvmRunner, vgName: string): Promise<VgReport> {
    const { stdout } = await lvm.run('fullreport', [...FULLREPORT_ARGS, '--readonly', vgName]);
    if (this.last !== undefined && this.last.stdout === stdout && this.last.vgName === vgName) {
      this.reuses += 1;
      return this.last.report;
    }
    const report = deepFreeze(parseFullReport(stdout, vgName));
    this.parses += 1;
    this.last = { stdout, vgName, report };
    return report;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}
