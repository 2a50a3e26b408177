// How long each lvm call takes, by subcommand: a decorator over the lvm runner, so
// runLvm.ts stays the one place that starts lvm and knows nothing about metrics.
// Every lvm run costs 40 to 500 ms and grows with the metadata: this is the histogram
// that shows it growing.

import { Histogram, type Registry } from 'prom-client';
import type { LvmRunner } from '../lvm/runLvm.js';

/** From a quick `fullreport` on a small VG to a `vgcfgrestore` near the runner's 60 s timeout. */
export const LVM_CALL_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export type LvmCallHistogram = Histogram<'command'>;

export function lvmCallHistogram(registry: Registry): LvmCallHistogram {
  return new Histogram({
    name: 'thinlv_lvm_call_duration_seconds',
    help: 'Time each lvm call took, failed ones included, by lvm subcommand (vgcfgbackup, vgcfgrestore, fullreport, ...)',
    labelNames: ['command'],
    buckets: LVM_CALL_BUCKETS_SECONDS,
    registers: [registry],
  });
}

/**
 * `runner`, with each call's duration observed under its subcommand. Everything else the
 * runner says of itself (its `--devices`, whether it remembers PV devices) passes through:
 * without it, readers fall back from reading the PVs to an lvm process per read.
 */
export function timedLvmRunner(runner: LvmRunner, histogram: LvmCallHistogram): LvmRunner {
  return {
    ...runner,
    async run(command, args, options) {
      const endTimer = histogram.startTimer({ command });
      try {
        return await runner.run(command, args, options);
      } finally {
        endTimer();
      }
    },
  };
}
