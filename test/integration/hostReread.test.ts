// The host daemon's metadata re-read after a master commit, in process on a real VG: the
// LVs the commit did not touch stay the objects the daemon held, so a re-read of a large
// pool does not hold every LV twice while the old layout is still in use (issue 14).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { TAG } from '../../src/format/thinlvVg.js';
import { heldLayout } from '../../src/host/heldLayout.js';
import { startHostDaemon, type HostDaemonDeps } from '../../src/host/hostDaemon.js';
import { newRequestId, requestOnce } from '../../src/host/socketServer.js';
import { createLogger } from '../../src/log.js';
import { readVgReport } from '../../src/lvm/readVgReport.js';
import { fileRegionOpener } from '../../src/rings/ringRegions.js';
import { HostState, openStateDb } from '../../src/state/index.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { createThinlvTestVg, holdLv } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();

function daemonDeps(t: Awaited<ReturnType<typeof createThinlvTestVg>>, stateDir: string): HostDaemonDeps {
  return {
    lvm: t.vg.lvm,
    regions: fileRegionOpener(),
    dm: new FakeDeviceMapper(),
    deviceMapperPresent: false,
    openState: (ringIdentity) => new HostState(openStateDb(join(stateDir, `host-${ringIdentity}.db`))),
    log: createLogger('silent'),
    nowMs: () => Date.now(),
    sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

describe.skipIf(skipReason !== undefined)('host daemon metadata re-read', () => {
  test('after a commit, the LVs it did not change are the objects the daemon held; the one it changed is read afresh', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1', 'h2'], thinLvCount: 4, quantumExtents: 20, lowWaterExtents: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-host-reread-'));
    const socketPath = join(dir, 'h1.sock');
    const daemon = await startHostDaemon(daemonDeps(t, dir), { vg: t.vg.vgName, host: 'h1', socketPath, outOfSpaceWaitMs: 1000, localLockDir: join(dir, 'lock') });
    try {
      const before = daemon.allocator.layout();
      await holdLv(t, 'disk3', 'h1');
      // An LV the daemon does not know makes it re-read metadata before it answers.
      const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'extend', lv: 'no_such_lv', incrementBytes: 4 * 1024 ** 2 }, 30_000);
      expect(reply.ok ? 'ok' : reply.error.code).toBe('LV_NOT_FOUND');

      const after = daemon.allocator.layout();
      expect(after.seqno).toBeGreaterThan(before.seqno);
      const heldBefore = new Map(before.lvs.map((lv) => [lv.name, lv]));
      const changed = after.lvs.filter((lv) => lv !== heldBefore.get(lv.name)).map((lv) => lv.name);
      expect(changed).toEqual(['disk3']);
      expect(after.lvs.find((lv) => lv.name === 'disk3')!.tags).toContain(`${TAG.owner}h1`);
      // What the daemon holds is what a read of its own gives.
      expect(after).toEqual(heldLayout(await readVgReport(t.vg.lvm, t.vg.vgName)));
    } finally {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
  });
});
