// Extends larger than a pool quantum: the host's demand reaches the master through
// its journal, and the next pass grants what the demand needs in one grant.
// Real LVM on a loop device, the master and a host daemon as processes.

import { connect } from 'node:net';
import { describe, expect, test } from 'vitest';
import { formatRequest } from '../../src/host/protocol.js';
import { newRequestId } from '../../src/host/socketServer.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { createThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const GIB = 1024 ** 3;

describe.skipIf(skipReason !== undefined)('extends larger than a pool quantum', () => {
  test('1 GiB, 10 GiB and 40 GiB extends on a 64 GiB VG succeed while the master runs; with it stopped they fail within the bound', async () => {
    // The defaults `thinlv format` picks for 64 GiB: a quantum of 82 extents (328 MiB).
    const t = await createThinlvTestVg({ sizeBytes: 64 * GIB, hosts: ['h1'], thinLvCount: 1, quantumExtents: 82, lowWaterExtents: 41 });
    // The fixture gives disk0 (virtual size 100 GiB) to h1, as if h1 had activated it.
    let master = startMasterDaemon(t, 200);
    const host = await HostDaemonProcess.start(t, 'h1', 5000);
    try {
      expect((await host.extend('disk0', 1 * GIB)).sizeBytes).toBe(1 * GIB);
      expect((await host.extend('disk0', 10 * GIB)).sizeBytes).toBe(10 * GIB);

      await stopDaemon(master);
      const started = Date.now();
      await expect(host.extend('disk0', 40 * GIB)).rejects.toMatchObject({ code: 'OUT_OF_SPACE', data: { reason: 'master-not-answering' } });
      expect(Date.now() - started).toBeGreaterThanOrEqual(4900);

      master = startMasterDaemon(t, 200);
      expect((await host.extend('disk0', 40 * GIB)).sizeBytes).toBe(40 * GIB);
      await expect(host.extend('disk0', 101 * GIB)).rejects.toMatchObject({ code: 'VIRTUAL_SIZE_EXCEEDED' });
      await stopDaemon(master);
      for (let i = 0; i < 10; i++) if ((await runPass(t.deps(), new MasterSession(), t.vg.vgName)).replayedRecordCount === 0) break;
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(vg.lvs.find((lv) => lv.name === 'disk0')!.segments.reduce((n, s) => n + s.extentCount, 0)).toBe((40 * GIB) / EXTENT_BYTES);
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a host waiting for extents gets its pass at once: with a master interval of a minute, large extends are still served within the host\'s 5 s bound', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 16 * GIB, hosts: ['h1'], thinLvCount: 1, quantumExtents: 32, lowWaterExtents: 16 });
    const master = startCli(['master', t.vg.vgName, '--interval-ms', '60000', '--poll-ms', '100', '--no-history', ...t.cliArgs()]);
    const host = await HostDaemonProcess.start(t, 'h1', 5000);
    try {
      // Each needs several quanta: only a pass started by the demand can serve it in time.
      for (const gib of [1, 2, 3]) expect((await host.extend('disk0', gib * GIB)).sizeBytes).toBe(gib * GIB);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a client that disconnects while its extend waits for a grant cancels it: nothing is allocated for it, and the host serves on', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 1, quantumExtents: 32, lowWaterExtents: 16 });
    const host = await HostDaemonProcess.start(t, 'h1', 20_000);
    let master: ReturnType<typeof startMasterDaemon> | undefined;
    try {
      // No master: an extend past the pool waits. Its client goes away after 500 ms.
      const socket = connect(host.socketPath);
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(formatRequest({ id: newRequestId(), op: 'extend', lv: 'disk0', sizeBytes: 1 * GIB }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      socket.destroy();
      // The master comes back: had the wait gone on, its grant would now serve the 1 GiB.
      master = startMasterDaemon(t, 200);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect((await host.extend('disk0', 2 * EXTENT_BYTES)).sizeBytes).toBe(2 * EXTENT_BYTES);
      await stopDaemon(master);
      for (let i = 0; i < 10; i++) if ((await runPass(t.deps(), new MasterSession(), t.vg.vgName)).replayedRecordCount === 0) break;
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(vg.lvs.find((lv) => lv.name === 'disk0')!.segments.reduce((n, s) => n + s.extentCount, 0)).toBe(2);
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      if (master !== undefined) await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });
});
