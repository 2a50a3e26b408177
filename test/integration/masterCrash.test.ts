import { describe, expect, test } from 'vitest';
import { ExtentSet } from '../../src/extent/extentSet.js';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { linearSegments } from '../../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { expectInvariantsAfterReplay } from '../fixtures/invariants.js';
import { createLoopVg, realLvmUnavailableReason, TEST_LVM_CONFIG } from '../fixtures/loopVg.js';
import { runCli } from '../fixtures/runCli.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg, holdLv, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const QUANTUM = 32;
const LOW_WATER = 16;

async function masterOnce(t: ThinlvTestVg, faults?: string): Promise<Awaited<ReturnType<typeof runCli>>> {
  return runCli(['master', t.vg.vgName, '--once', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()], {
    ...(faults ? { env: { ...process.env, THINLV_FAULTS: faults } as Record<string, string> } : {}),
  });
}

/** Allocates enough on every host that the next pass both replays and refills. */
async function allocateBelowLowWater(hosts: readonly AllocatorHost[], lvs: readonly string[]): Promise<void> {
  for (const [h, host] of hosts.entries()) {
    // The fixture hands thin LV i to host i mod hosts.
    const mine = lvs.filter((_, n) => n % hosts.length === h);
    for (let i = 0; i < 10; i++) await host.allocate(mine[i % mine.length]!, 2);
  }
}

/** Pool the host believes it has must equal its free LV in metadata once everything is replayed. */
async function expectHostPoolsMatchMetadata(t: ThinlvTestVg, hosts: readonly AllocatorHost[]): Promise<void> {
  const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  for (const host of hosts) {
    await host.applyGrants();
    const free = metadata.lvs.find((lv) => lv.name === hostLvNames(host.host).free);
    const pool = ExtentSet.fromRanges(free ? (linearSegments(free) ?? []) : []);
    expect(host.poolExtentCount, `${host.host} pool`).toBe(pool.extentCount);
  }
}

describe.skipIf(skipReason !== undefined)('the master killed between the steps of a pass', () => {
  test.each(['master.afterRead', 'commit.afterBackup', 'commit.afterRestore', 'master.afterCommit', 'master.afterConsume', 'master.afterGrant'])(
    'killed at %s, then restarted: nothing lost, nothing applied twice, no grant applied twice',
    async (point) => {
      const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 3, quantumExtents: QUANTUM, lowWaterExtents: LOW_WATER });
      const hosts = [await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA'), await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostB')];
      try {
        for (const host of hosts) expect(await host.applyGrants()).toBe(true);
        await allocateBelowLowWater(hosts, t.thinLvs);
        const before = readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName));

        const killed = await masterOnce(t, `${point}:kill`);
        expect(killed.signal, killed.stderr).toBe('SIGKILL');

        const restarted = await masterOnce(t);
        expect(restarted.exitCode, restarted.stderr).toBe(0);
        await expectInvariantsAfterReplay(t.vg, hosts, 1);

        // The refill happened exactly once: one generation more per host, one quantum more.
        const after = readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName));
        for (const host of hosts) {
          expect(after.hosts.get(host.host)?.grantGeneration).toBe((before.hosts.get(host.host)?.grantGeneration ?? 0) + 1);
        }
        await expectHostPoolsMatchMetadata(t, hosts);
        // A further pass, and a grant read again, change nothing.
        const again = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
        expect(again.committed).toBe(false);
        for (const host of hosts) expect(await host.applyGrants()).toBe(false);
      } finally {
        for (const host of hosts) await host.close();
        await t.destroy();
      }
    },
  );
});

describe.skipIf(skipReason !== undefined)('format killed inside its one commit', () => {
  test.each([
    ['commit.afterBackup', 'formats the VG'],
    ['commit.afterRestore', 'finds it formatted'],
  ])('killed at %s, running format again %s, and the VG is clean', async (point, _outcome) => {
    const vg = await createLoopVg({ sizeBytes: 4 * 1024 ** 3 });
    try {
      const args = ['format', vg.vgName, '--json', '--quantum', '64m', ...vg.cliDeviceArgs, '--lvm-config', TEST_LVM_CONFIG];
      const killed = await runCli(args, { env: { ...process.env, THINLV_FAULTS: `${point}:kill` } as Record<string, string> });
      expect(killed.signal).toBe('SIGKILL');
      const again = await runCli(args);
      if (point === 'commit.afterBackup') {
        expect(again.exitCode, again.stdout).toBe(0);
      } else {
        expect(JSON.parse(again.stdout)).toMatchObject({ ok: false, error: { code: 'ALREADY_FORMATTED' } });
      }
      const settings = readThinlvVg(await readVgMetadata(vg.lvm, vg.vgName)).settings;
      expect(settings.quantumExtents).toBe(16);
      const check = await runCli(['check', vg.vgName, ...vg.cliDeviceArgs]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      await vg.destroy();
    }
  });
});

describe.skipIf(skipReason !== undefined)('host membership killed half-way', () => {
  test.each(['host.add.afterCommit', 'host.add.afterJournalRing'])('host add killed at %s is finished by running it again', async (point) => {
    const t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 1, quantumExtents: QUANTUM, lowWaterExtents: LOW_WATER });
    try {
      const killed = await runCli(['host', 'add', t.vg.vgName, 'hostC', ...t.cliArgs()], { env: { ...process.env, THINLV_FAULTS: `${point}:kill` } as Record<string, string> });
      expect(killed.signal).toBe('SIGKILL');
      // Until it is finished the host is incomplete, and the master goes on with the others
      // (it cannot read a ring not yet initialised, and used to fail every pass on it).
      expect(readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName)).incompleteHosts).toEqual(['hostC']);
      await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      const again = await runCli(['host', 'add', t.vg.vgName, 'hostC', '--json', ...t.cliArgs()]);
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      expect(JSON.parse(again.stdout).initialisedRings.length).toBeGreaterThan(0);
      expect(readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName)).incompleteHosts).toEqual([]);
      // The host now works: the master grants it a pool and replays what it journals.
      await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostC');
      try {
        expect(await host.applyGrants()).toBe(true);
        await holdLv(t, 'disk0', 'hostC');
        await host.applyGrants(); // re-reads metadata: hostC holds disk0 now
        await host.allocate('disk0', 3);
        await runPass(t.deps(), new MasterSession(), t.vg.vgName);
        await expectInvariantsAfterReplay(t.vg, [host], 1);
      } finally {
        await host.close();
      }
      const third = await runCli(['host', 'add', t.vg.vgName, 'hostC', '--json', ...t.cliArgs()]);
      expect(JSON.parse(third.stdout)).toMatchObject({ ok: false, error: { code: 'HOST_EXISTS' } });
    } finally {
      await t.destroy();
    }
  });

  test('host removal killed after its replay is finished by running it again; nothing is lost', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 2, quantumExtents: QUANTUM, lowWaterExtents: LOW_WATER });
    const hostA = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await hostA.applyGrants();
      for (let i = 0; i < 5; i++) await hostA.allocate(t.thinLvs[0]!, 1);
      const killed = await runCli(['host', 'remove', t.vg.vgName, 'hostA', ...t.cliArgs()], { env: { ...process.env, THINLV_FAULTS: 'host.remove.afterReplay:kill' } as Record<string, string> });
      expect(killed.signal).toBe('SIGKILL');
      const again = await runCli(['host', 'remove', t.vg.vgName, 'hostA', '--json', ...t.cliArgs()]);
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(metadata.lvs.some((lv) => lv.name.startsWith('thinlv_hostA_'))).toBe(false);
      // The records journaled before removal landed in their LVs.
      const sizes = new Map(metadata.lvs.map((lv) => [lv.name, lv.segments.reduce((n, s) => n + s.extentCount, 0)]));
      expect(sizes.get('disk0')).toBe(1 + 5);
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      await hostA.close();
      await t.destroy();
    }
  });

  test('host removal killed while it holds the host lease is finished by running it again, which waits the dead lease out', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 1, quantumExtents: QUANTUM, lowWaterExtents: LOW_WATER });
    const hostA = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await hostA.applyGrants();
      for (let i = 0; i < 3; i++) await hostA.allocate('disk0', 1);
      const lease = ['--lease-interval-ms', '50'];
      const killed = await runCli(['host', 'remove', t.vg.vgName, 'hostA', ...lease, ...t.cliArgs()], { env: { ...process.env, THINLV_FAULTS: 'host.remove.afterLease:kill' } as Record<string, string> });
      expect(killed.signal).toBe('SIGKILL');
      // The killed command left the host a member, its lease held by nobody alive.
      expect(readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName)).hosts.has('hostA')).toBe(true);
      const again = await runCli(['host', 'remove', t.vg.vgName, 'hostA', ...lease, '--json', ...t.cliArgs()]);
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(metadata.lvs.some((lv) => lv.name.startsWith('thinlv_hostA_'))).toBe(false);
      expect(metadata.lvs.find((lv) => lv.name === 'disk0')!.segments.reduce((n, seg) => n + seg.extentCount, 0)).toBe(1 + 3);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await hostA.close();
      await t.destroy();
    }
  });

  test('a host that reports active LVs is not removed; once it reports none, it is', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 1, quantumExtents: QUANTUM, lowWaterExtents: LOW_WATER });
    const hostA = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await hostA.applyGrants();
      await hostA.appendRaw({ kind: 'activity', activeLvCount: 2 });
      await hostA.allocate('disk0', 1);
      const refused = await runCli(['host', 'remove', t.vg.vgName, 'hostA', '--json', ...t.cliArgs()]);
      expect(refused.exitCode).toBe(3);
      expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false, error: { code: 'HOST_ACTIVE', data: { activeLvCount: 2 } } });
      // The replay it ran first is kept (always safe); the host and its pool are.
      const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(metadata.lvs.some((lv) => lv.name === 'thinlv_hostA_journal')).toBe(true);
      expect(readThinlvVg(metadata).hosts.get('hostA')).toMatchObject({ appliedSeq: 2, activeLvCount: 2 });

      await hostA.appendRaw({ kind: 'activity', activeLvCount: 0 });
      const removed = await runCli(['host', 'remove', t.vg.vgName, 'hostA', '--json', ...t.cliArgs()]);
      expect(removed.exitCode, removed.stdout).toBe(0);
      expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.some((lv) => lv.name.startsWith('thinlv_hostA_'))).toBe(false);
    } finally {
      await hostA.close();
      await t.destroy();
    }
  });

  test('a host declared dead with unreplayed records: the records land, then its pool returns to free space', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 2, quantumExtents: QUANTUM, lowWaterExtents: LOW_WATER });
    const hostB = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostB');
    try {
      await hostB.applyGrants();
      for (let i = 0; i < 6; i++) await hostB.allocate(t.thinLvs[1]!, 2);
      await hostB.appendRaw({ kind: 'activity', activeLvCount: 2 });
      await hostB.allocate(t.thinLvs[1]!, 2);
      // The host reported active LVs before it died; declare-dead proceeds regardless (it is fenced).
      const freeBefore = (await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.length;
      expect(freeBefore).toBeGreaterThan(0);
      const result = await runCli(['host', 'declare-dead', t.vg.vgName, 'hostB', '--lease-interval-ms', '50', '--json', ...t.cliArgs()]);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      const body = JSON.parse(result.stdout) as { replayedRecordCount: number; returnedExtentCount: number };
      expect(body.replayedRecordCount).toBe(8);
      expect(body.returnedExtentCount).toBe(QUANTUM - 14);
      const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const sizes = new Map(metadata.lvs.map((lv) => [lv.name, lv.segments.reduce((n, s) => n + s.extentCount, 0)]));
      expect(sizes.get('disk1')).toBe(1 + 14);
      for (const allocation of hostB.acknowledged) {
        const lv = metadata.lvs.find((l) => l.name === allocation.lv)!;
        expect(ExtentSet.fromRanges(linearSegments(lv)!).containsAll(ExtentSet.fromRanges(allocation.ranges))).toBe(true);
      }
      expect(metadata.lvs.some((lv) => lv.name.startsWith('thinlv_hostB_'))).toBe(false);
    } finally {
      await hostB.close();
      await t.destroy();
    }
  });
});
