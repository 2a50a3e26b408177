// A short run of the real-process crash campaign (test/crash/crashCampaign.ts; the long
// one is `npm run crash -- --minutes N --seed S`): a master and three host daemons on a
// loop-backed VG, a seeded workload, SIGKILLs at random moments and at fault points
// (torn journal writes included), and at every quiet point `thinlv check`, `vgck` and the
// independent checker with every acknowledged extend. Needs `npm run build` first.

import { describe, expect, test } from 'vitest';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCrashCampaign, type CampaignSummary } from '../crash/crashCampaign.js';

const skipReason = realLvmUnavailableReason();
const SEED = Number(process.env['THINLV_CRASH_SEED'] ?? 20261130);
const MINUTES = Number(process.env['THINLV_CRASH_MINUTES'] ?? 2);

describe.skipIf(skipReason !== undefined)('crash campaign', () => {
  test(`every acknowledged extend survives SIGKILLs, fault points and torn journal writes, and every check holds (seed ${SEED})`, async () => {
    const lines: string[] = [];
    let summary: CampaignSummary;
    try {
      summary = await runCrashCampaign({ minutes: MINUTES, seed: SEED, hosts: 3, log: (line) => lines.push(line) });
    } catch (error) {
      // The failure names the seed and the step; the progress lines show how it got there.
      throw new Error(`${(error as Error).message}\n${lines.join('\n')}`);
    }
    console.log(JSON.stringify(summary));
    expect(summary.ok).toBe(true);
    expect(summary.quietChecks, `seed ${SEED}`).toBeGreaterThanOrEqual(2);
    expect(summary.extendsAcknowledged, `seed ${SEED}`).toBeGreaterThan(0);
    expect(summary.kills.master + summary.kills.host, `seed ${SEED}`).toBeGreaterThan(0);
  }, (MINUTES * 60 + 240) * 1000);
});
