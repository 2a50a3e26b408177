// A bug the simulator found (seed 3 of an early workload, fixed in ea593df), replayed
// here step by step over the simulator's effects: a host read a grant whose snapshot
// was older than the metadata it had already read, and the extents its replayed records
// had taken came back into its pool (a double allocation). Without the fix in
// HostAllocator.applyGrant this test fails.

import { describe, expect, test } from 'vitest';
import { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { hostLvNames } from '../../src/format/thinlvVg.js';
import { ExtentSet } from '../../src/extent/extentSet.js';
import { noFaults } from '../../src/faults.js';
import { formatVg } from '../../src/master/formatVg.js';
import { addHost } from '../../src/master/hostMembership.js';
import { MasterSession, runPass, type MasterDeps } from '../../src/master/replayPass.js';
import { createThinLv } from '../../src/master/thinLvs.js';
import { linearSegments } from '../../src/metadata/vgModel.js';
import { SharedReports } from './sharedReports.js';
import { SimPv, simRegionOpener } from './simDisk.js';
import { SimHost, SimHostStateStore, silentLog } from './simHost.js';
import { drainMicrotasks, SimKernel, SimProcess } from './simKernel.js';
import { initialVgMetadata, SimLvm } from './simLvm.js';

const VG = 'simvg';
const PV = '/dev/simpv0';
const EXTENT = 4 * 1024 * 1024;

describe('stale grant snapshot', () => {
  test('a grant older than the metadata a host has read does not put replayed extents back in its pool', async () => {
    const kernel = new SimKernel();
    const pv = new SimPv(PV, 1024 * 1024 + 1000 * EXTENT);
    const pvs = new Map([[PV, pv]]);
    const lvm = new SimLvm(initialVgMetadata({ vgName: VG, device: PV, extentSizeBytes: EXTENT, peCount: 1000, peStartBytes: 1024 * 1024, metadataAreaBytes: 1024 * 1024 }), 1024 * 1024);
    const masterProc = new SimProcess('master', 'master', 1);
    const deps: MasterDeps = {
      lvm: lvm.runner(masterProc, kernel, { readOnly: false }),
      regions: simRegionOpener(pvs, masterProc, kernel, () => undefined),
      log: silentLog,
      faults: noFaults,
      nowMs: () => kernel.nowMs(),
      sleepMs: (ms) => kernel.sleep(masterProc, ms),
    };
    const session = new MasterSession({ keepJournalsOpen: true, intervalMs: 1000 });
    await formatVg(deps.lvm, VG, { quantumExtents: 16, lowWaterExtents: 8, reservePermille: 50, expectedLvCount: 100 });
    await addHost(deps, VG, 'h1');
    await createThinLv(deps.lvm, VG, 'lv1', 500 * EXTENT, 0, true);
    await runPass(deps, session, VG); // grant generation 1: 16 extents
    const hostProc = new SimProcess('h1', 'host', 1);
    const starting = SimHost.start({
      vgName: VG, host: 'h1', proc: hostProc, kernel, lvm: lvm.runner(hostProc, kernel, { readOnly: true }), reports: new SharedReports(),
      regions: simRegionOpener(pvs, hostProc, kernel, () => undefined), dm: new FakeDeviceMapper(), states: new SimHostStateStore(),
      faults: noFaults, outOfSpaceWaitMs: 2000, claimWaitMs: 3000, leaseRenewMs: 50, newOwnerId: () => '0000000000000001',
    });
    // Taking the lease (a quick claim of a free one) waits on the clock.
    let host: SimHost | undefined;
    void starting.then((started) => (host = started));
    for (let i = 0; i < 100 && host === undefined; i++) {
      await drainMicrotasks();
      await kernel.advance(10);
    }
    if (host === undefined) throw new Error('the host did not start within 1 s of simulated time');
    // Activate lv1: a claim, answered by a pass, seen by the host's polling of metadata.
    const activated = host.allocator.activate('lv1');
    await kernel.advance(10);
    await runPass(deps, session, VG);
    await kernel.advance(200);
    await activated;

    // 1. Take the pool below low-water; the pass replays it and refills: grant 2, not read yet.
    await host.allocator.extendBy('lv1', 9 * EXTENT);
    await kernel.advance(2000);
    const refill = await runPass(deps, session, VG);
    expect(refill.grantedHosts).toContain('h1');
    // 2. Extend from the pool as it was: these extents are also in grant 2's snapshot.
    const taken = await host.allocator.extendBy('lv1', 2 * EXTENT);
    expect(taken.seq).not.toBeNull();
    // 3. A pass replays them (no new grant: the pool is above low-water); the host reads the metadata.
    await kernel.advance(2000);
    const replay = await runPass(deps, session, VG);
    expect(replay.grantedHosts).not.toContain('h1');
    await host.refresh();
    // 4. Now the host reads grant 2, whose snapshot predates step 3.
    await host.pollGrants();

    const vg = lvm.metadata;
    const free = ExtentSet.fromRanges(linearSegments(vg.lvs.find((lv) => lv.name === hostLvNames('h1').free)!) ?? []);
    const lv1 = ExtentSet.fromRanges(linearSegments(vg.lvs.find((lv) => lv.name === 'lv1')!) ?? []);
    const pool = host.allocator.poolExtents();
    expect(pool.intersection(lv1).toString(), 'extents of lv1 (replayed) back in the host pool').toBe(ExtentSet.empty().toString());
    expect(free.containsAll(pool), 'the pool lies in the host free LV').toBe(true);
  });
});
