import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { noFaults } from '../../src/faults.js';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { readVgReport } from '../../src/lvm/readVgReport.js';
import { createLogger } from '../../src/log.js';
import { checkVgReport } from '../../src/metadata/checkLayout.js';
import { linearSegments } from '../../src/metadata/vgModel.js';
import { formatVg } from '../../src/master/formatVg.js';
import { addHost, removeHost } from '../../src/master/hostMembership.js';
import { MasterSession, runPass, type MasterDeps } from '../../src/master/replayPass.js';
import { fileRegionOpener, ringLocation } from '../../src/rings/ringRegions.js';
import { createLoopVg, realLvmUnavailableReason, type LoopVg } from '../fixtures/loopVg.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { flipBitOnDevice } from '../fixtures/flipBit.js';

const skipReason = realLvmUnavailableReason();

function depsFor(vg: LoopVg): MasterDeps {
  return { lvm: vg.lvm, regions: fileRegionOpener(), log: createLogger('silent'), faults: noFaults, nowMs: () => Date.now(), sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
}

describe.skipIf(skipReason !== undefined)('the master on a real VG', () => {
  let vg: LoopVg;
  beforeAll(async () => {
    vg = await createLoopVg({ sizeBytes: 16 * 1024 ** 3 });
  });
  afterAll(async () => {
    await vg?.destroy();
  });

  test('format, add hosts, grant, replay host allocations, and remove a host', async () => {
    const deps = depsFor(vg);
    await formatVg(vg.lvm, vg.vgName, { quantumExtents: 64, lowWaterExtents: 32 });
    await expect(formatVg(vg.lvm, vg.vgName)).rejects.toMatchObject({ code: 'ALREADY_FORMATTED' });
    await addHost(deps, vg.vgName, 'hostA');
    await addHost(deps, vg.vgName, 'hostB');
    await expect(addHost(deps, vg.vgName, 'hostA')).rejects.toMatchObject({ code: 'HOST_EXISTS' });

    const base = await readVgMetadata(vg.lvm, vg.vgName);
    await commitBatch(vg.lvm, base, [
      { kind: 'createLv', name: 'disk1', ranges: [{ pv: vg.device, firstExtent: 3000, extentCount: 1 }], activationSkip: true, tags: ['thinlv_virtual_bytes=10737418240', 'thinlv_owner=hostA'] },
      { kind: 'createLv', name: 'disk2', ranges: [{ pv: vg.device, firstExtent: 3100, extentCount: 1 }], activationSkip: true, tags: ['thinlv_virtual_bytes=10737418240', 'thinlv_owner=hostB'] },
    ]);

    const session = new MasterSession();
    const first = await runPass(deps, session, vg.vgName);
    expect([...first.grantedHosts].sort()).toEqual(['hostA', 'hostB']);
    expect(first.seqnoAfter).toBe(first.seqnoBefore + 1);

    const hostA = await AllocatorHost.open(vg.lvm, vg.vgName, 'hostA');
    const hostB = await AllocatorHost.open(vg.lvm, vg.vgName, 'hostB');
    try {
      expect(await hostA.applyGrants()).toBe(true);
      expect(await hostB.applyGrants()).toBe(true);
      expect(hostA.poolExtentCount).toBe(64);
      for (let i = 0; i < 10; i++) {
        await hostA.allocate('disk1', 2);
        await hostB.allocate('disk2', 3);
      }
      const replay = await runPass(deps, session, vg.vgName);
      expect(replay.replayedRecordCount).toBe(20);
      expect(replay.rejectedRecordCount).toBe(0);
      expect(replay.seqnoAfter).toBe(replay.seqnoBefore + 1);

      const after = await readVgMetadata(vg.lvm, vg.vgName);
      const thinlv = readThinlvVg(after);
      expect(thinlv.hosts.get('hostA')?.appliedSeq).toBe(10);
      expect(thinlv.hosts.get('hostB')?.appliedSeq).toBe(10);
      const disk1 = linearSegments(after.lvs.find((lv) => lv.name === 'disk1')!)!;
      expect(disk1.reduce((sum, s) => sum + s.extentCount, 0)).toBe(21);
      const expectedDisk1 = hostA.acknowledged.flatMap((a) => a.ranges);
      for (const range of expectedDisk1) {
        expect(disk1.some((s) => s.pv === range.pv && s.firstExtent <= range.firstExtent && range.firstExtent + range.extentCount <= s.firstExtent + s.extentCount)).toBe(true);
      }

      // I5: a second pass changes nothing.
      const again = await runPass(deps, session, vg.vgName);
      expect(again.committed).toBe(false);
      expect(again.seqnoAfter).toBe(replay.seqnoAfter);

      await vg.lvm.run('vgck', [vg.vgName]);
      expect(checkVgReport(await readVgReport(vg.lvm, vg.vgName)).findings.filter((f) => f.severity === 'error')).toEqual([]);
    } finally {
      await hostA.close();
      await hostB.close();
    }

    const reportBefore = await readVgReport(vg.lvm, vg.vgName);
    const freeBefore = reportBefore.freeExtentCount;
    const ringExtents = reportBefore.lvs
      .filter((lv) => lv.name === 'thinlv_hostB_journal' || lv.name === 'thinlv_hostB_grants')
      .reduce((sum, lv) => sum + lv.segments.reduce((n, s) => n + s.extentCount, 0), 0);
    const removed = await removeHost(deps, vg.vgName, 'hostB');
    expect(removed.returnedExtentCount).toBeGreaterThan(0);
    const report = await readVgReport(vg.lvm, vg.vgName);
    expect(report.lvs.some((lv) => lv.name.startsWith('thinlv_hostB_'))).toBe(false);
    expect(report.freeExtentCount).toBe(freeBefore + removed.returnedExtentCount + ringExtents);
    expect(hostLvNames('hostB').free).toBe('thinlv_hostB_free');
  });

  test("a host whose grants ring header is damaged (a bit flipped on the LUN) can still be removed, and added again with a new ring", async () => {
    const deps = depsFor(vg);
    await addHost(deps, vg.vgName, 'hostC');
    const location = ringLocation(await readVgMetadata(vg.lvm, vg.vgName), hostLvNames('hostC').grants);
    flipBitOnDevice(location.device, location.offsetBytes + 20);
    await removeHost(deps, vg.vgName, 'hostC');
    expect((await readVgReport(vg.lvm, vg.vgName)).lvs.some((lv) => lv.name.startsWith('thinlv_hostC_'))).toBe(false);
    await addHost(deps, vg.vgName, 'hostC');
    expect(readThinlvVg(await readVgMetadata(vg.lvm, vg.vgName)).hosts.has('hostC')).toBe(true);
  });
});
