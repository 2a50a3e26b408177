// LVs that grow at once from one host's pool stay contiguous on disk: the host daemon
// (a process) serves interleaved extends of several thin LVs, the master replays them,
// and LVM's own metadata then holds each LV in two segments (where it was created, and
// one run from the pool) instead of one segment per extend. Stock lvm reads the VG.

import { describe, expect, test } from 'vitest';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { HostDaemonProcess } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli } from '../fixtures/runCli.js';
import { createThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const LV_COUNT = 6;
const ROUNDS = 5;
const EXTENTS_PER_EXTEND = 2;

describe.skipIf(skipReason !== undefined)('interleaved growth through the host daemon', () => {
  test('thin LVs extended at once, round after round, end in two segments each in LVM metadata', async () => {
    // One host holds every LV; its pool (one quantum) has room for 4x their growth.
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: LV_COUNT, quantumExtents: 4 * LV_COUNT * ROUNDS * EXTENTS_PER_EXTEND, lowWaterExtents: 1 });
    const daemon = await HostDaemonProcess.start(t, 'h1');
    try {
      const lvs = t.thinLvs;
      for (let round = 0; round < ROUNDS; round++) {
        // A different order each round, all in flight at once: allocations from one pool interleave.
        const order = [...lvs.slice(round % lvs.length), ...lvs.slice(0, round % lvs.length)];
        if (round % 2 === 1) order.reverse();
        const replies = await Promise.all(order.map((lv) => daemon.extend(lv, (1 + (round + 1) * EXTENTS_PER_EXTEND) * EXTENT_BYTES)));
        for (const reply of replies) expect(reply.extentsGranted).toBe(EXTENTS_PER_EXTEND);
      }
      const pass = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      expect(pass.replayedRecordCount).toBe(lvs.length * ROUNDS);

      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      for (const name of lvs) {
        const lv = vg.lvs.find((l) => l.name === name)!;
        expect(lv.segments.reduce((n, s) => n + s.extentCount, 0), name).toBe(1 + ROUNDS * EXTENTS_PER_EXTEND);
        expect(lv.segments.length, `${name}: ${JSON.stringify(lv.segments)}`).toBe(2);
      }
      // Stock lvm agrees (I7) and thinlv's check finds nothing wrong (I1, I2).
      await t.vg.lvm.run('vgck', [t.vg.vgName]);
      const { stdout } = await t.vg.lvm.run('lvs', ['--reportformat', 'json', '-o', 'lv_name,seg_count', t.vg.vgName]);
      const rows = (JSON.parse(stdout) as { report: { lv: { lv_name: string; seg_count: string }[] }[] }).report[0]!.lv;
      for (const name of lvs) expect(rows.find((r) => r.lv_name === name)?.seg_count.trim(), name).toBe('2');
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      await daemon.cleanUp();
      await t.destroy();
    }
  }, 120_000);
});
