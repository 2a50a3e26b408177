// Demand-driven grants with several hosts, on real LVM on a loop device, with the
// master and the host daemons as processes: many parallel extends larger than a pool,
// a VG that holds only part of what is asked (idle pools give back, waiting extends
// are served, a host that cannot be served says the VG is full), and kills while
// demands are outstanding.

import { describe, expect, test } from 'vitest';
import { defaultSettings, readThinlvVg } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { planRefill, reserveExtentCount } from '../../src/pool/planRefill.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { pooled } from '../fixtures/pooled.js';
import { runCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, fillWithOrdinaryLv, type ThinlvTestVg } from '../fixtures/thinlvVg.js';
import { seededRandom as random } from '../fixtures/seededRandom.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const GIB = 1024 ** 3;

const extentsOf = (vg: VgMetadata, lv: string): number => vg.lvs.find((l) => l.name === lv)!.segments.reduce((n, s) => n + s.extentCount, 0);

async function replayUntilIdle(t: ThinlvTestVg): Promise<VgMetadata> {
  for (let i = 0; i < 20; i++) {
    const pass = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
    if (pass.replayedRecordCount === 0 && !pass.moreWaiting) break;
  }
  return readVgMetadata(t.vg.lvm, t.vg.vgName);
}

async function expectCheckClean(t: ThinlvTestVg): Promise<void> {
  const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
  expect(check.exitCode, check.stdout).toBe(0);
}

/** Grows `host`'s pool by what the master would grant for a demand of `extents` (the real plan, committed directly). */
async function growPool(t: ThinlvTestVg, host: string, extents: number): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const plan = planRefill(vg, readThinlvVg(vg), { demands: new Map([[host, extents]]) });
  await commitBatch(t.vg.lvm, vg, plan.changes);
}

/** Fills the VG with an ordinary LV until `leave` extents lie above the reserve. */
async function fillVg(t: ThinlvTestVg, leave: number): Promise<void> {
  await fillWithOrdinaryLv(t, 'filler', (vg) => reserveExtentCount(vg, readThinlvVg(vg).settings.reservePermille) + leave);
}


describe.skipIf(skipReason !== undefined)('demand-driven grants across hosts', () => {
  test('three hosts each extend 100 LVs in parallel by random sizes up to 2 GiB: every extend succeeds and every acknowledged size is in metadata once', async () => {
    const sizeBytes = 640 * GIB;
    const defaults = defaultSettings(sizeBytes / EXTENT_BYTES, EXTENT_BYTES);
    const hosts = ['h1', 'h2', 'h3'];
    const t = await createThinlvTestVg({ sizeBytes, hosts, thinLvCount: 300, quantumExtents: defaults.quantumExtents, lowWaterExtents: defaults.lowWaterExtents });
    const master = startMasterDaemon(t, 2000);
    const daemons: HostDaemonProcess[] = [];
    try {
      for (const host of hosts) daemons.push(await HostDaemonProcess.start(t, host, 10_000));
      const next = random(10);
      // Thin LV i is held by host i mod 3 (the fixture's round robin).
      const targets = t.thinLvs.map((lv) => ({ lv, extents: 1 + Math.floor(next() * ((2 * GIB) / EXTENT_BYTES)) }));
      const results = await Promise.all(
        daemons.map((daemon, h) =>
          pooled(targets.filter((_, i) => i % 3 === h).map(({ lv, extents }) => () => daemon.extend(lv, extents * EXTENT_BYTES)), 16),
        ),
      );
      const failures = results.flat().filter((r) => r.status === 'rejected');
      expect(failures, JSON.stringify(failures.slice(0, 3))).toEqual([]);

      await stopDaemon(master);
      const vg = await replayUntilIdle(t);
      for (const { lv, extents } of targets) expect(extentsOf(vg, lv), lv).toBe(Math.max(1, extents));
      await expectCheckClean(t);
    } finally {
      await stopDaemon(master);
      for (const daemon of daemons) await daemon.cleanUp();
      await t.destroy();
    }
  });

  test('a VG that holds only part of the demand: with the idle host down the extend fails saying the VG is full; once it runs, it gives its idle pool back and the waiting extend is served', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 16 * GIB, hosts: ['h1', 'h2'], thinLvCount: 2, quantumExtents: 64, lowWaterExtents: 32 });
    // disk0 is h1's, disk1 is h2's. h1 holds a large idle pool; 200 extents lie above the reserve.
    await growPool(t, 'h1', 1500);
    await fillVg(t, 200);
    const master = startMasterDaemon(t, 200);
    const h2 = await HostDaemonProcess.start(t, 'h2', 8000);
    let h1: HostDaemonProcess | undefined;
    try {
      const failed: { code?: string; message?: string; data?: Record<string, unknown> } = await h2.extend('disk1', 800 * EXTENT_BYTES).then(
        () => ({}),
        (error: { code?: string; message?: string; data?: Record<string, unknown> }) => error,
      );
      expect(failed).toMatchObject({ code: 'OUT_OF_SPACE', data: { reason: 'vg-full', reserveExtents: expect.any(Number) } });
      expect(failed.message).toMatch(/the VG is out of space: \d+ extents free, of which \d+ are the reserve/);

      h1 = await HostDaemonProcess.start(t, 'h1', 8000);
      expect((await h2.extend('disk1', 800 * EXTENT_BYTES)).sizeBytes).toBe(800 * EXTENT_BYTES);
      // h1 still serves from what it kept.
      expect((await h1.extend('disk0', 40 * EXTENT_BYTES)).sizeBytes).toBe(40 * EXTENT_BYTES);

      await stopDaemon(master);
      const vg = await replayUntilIdle(t);
      expect(extentsOf(vg, 'disk1')).toBe(800);
      expect(extentsOf(vg, 'disk0')).toBe(40);
      // No pool was ever granted from the reserve.
      expect(computeFreeExtents(vg).extentCount).toBeGreaterThanOrEqual(reserveExtentCount(vg, readThinlvVg(vg).settings.reservePermille));
      await expectCheckClean(t);
    } finally {
      await stopDaemon(master);
      await h1?.cleanUp();
      await h2.cleanUp();
      await t.destroy();
    }
  });

  test('the master and a host killed (SIGKILL) while extends wait for grants: every client gets an answer, and after restarts every acknowledged extent is in metadata once', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 24, quantumExtents: 32, lowWaterExtents: 16 });
    let master = startMasterDaemon(t, 2000);
    const host = await HostDaemonProcess.start(t, 'h1', 10_000);
    try {
      const acknowledged = new Map<string, number>();
      // 2580 extents in all, on a 4096-extent VG; each needs more than the pool's 32.
      const extendAll = (lvs: readonly string[]) =>
        Promise.allSettled(lvs.map((lv) => host.extend(lv, (50 + t.thinLvs.indexOf(lv) * 5) * EXTENT_BYTES).then((result) => acknowledged.set(lv, result.sizeBytes / EXTENT_BYTES))));
      const early = extendAll(t.thinLvs.slice(0, 12));
      // The master dies once some are served (others may be waiting for its pass) ...
      const deadline = Date.now() + 30_000;
      while (acknowledged.size < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      master.kill('SIGKILL');
      await master.catch(() => undefined);
      // ... then more extends arrive, which wait for a grant no master will send, and the host dies too.
      const late = extendAll(t.thinLvs.slice(12));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await host.kill();
      const settled = [...(await early), ...(await late)];
      // Every client got an answer: a reply, or its connection closed by the kill; none timed out.
      for (const outcome of settled) if (outcome.status === 'rejected') expect((outcome.reason as { code?: string }).code).not.toBe('HOST_DAEMON_TIMEOUT');
      expect(settled.slice(12).every((o) => o.status === 'rejected'), 'the late extends were waiting at the kill').toBe(true);
      expect(acknowledged.size).toBeGreaterThanOrEqual(3);

      master = startMasterDaemon(t, 2000);
      await host.restart();
      // The restarted host serves the rest; an acknowledged size is there already.
      for (const [i, lv] of t.thinLvs.entries()) {
        const wanted = (50 + i * 5) * EXTENT_BYTES;
        const again: { extentsGranted?: number; code?: string } = await host.extend(lv, wanted).catch((error: { code?: string }) => error);
        // Acknowledged: nothing more to grant. Not acknowledged: served now (or found durable, its reply lost to the kill).
        if (acknowledged.has(lv)) expect(again.extentsGranted ?? again.code, lv).toBe(0);
        else expect(again.code, lv).toBeUndefined();
      }
      await stopDaemon(master);
      const vg = await replayUntilIdle(t);
      for (const [i, lv] of t.thinLvs.entries()) expect(extentsOf(vg, lv), lv).toBe(50 + i * 5);
      await expectCheckClean(t);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });
});
