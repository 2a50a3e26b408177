// An idle master pass reads about one block per host journal (issue 14: an idle pass
// over 64 hosts under 50 ms of ring I/O): a daemon session's kept readers read only the
// block after what they have seen, also in the pass right after a commit, which starts
// from the commit's metadata and then reads the VG again; and a new session's readers
// open without reading the whole ring.

import { describe, expect, test } from 'vitest';
import { hostLvNames } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass, type MasterDeps } from '../../src/master/replayPass.js';
import { ringLocation, type RegionOpener } from '../../src/rings/ringRegions.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg } from '../fixtures/thinlvVg.js';
import { observedRegions } from '../fixtures/observedRegions.js';

const skipReason = realLvmUnavailableReason();

/** `inner`, counting reads (calls and bytes) per ring id. */
function countingReads(inner: RegionOpener, reads: Map<string, { calls: number; bytes: number }>): RegionOpener {
  return observedRegions(inner, (call, run) => {
    if (call.op === 'read') {
      const count = reads.get(call.location.ringId) ?? { calls: 0, bytes: 0 };
      reads.set(call.location.ringId, { calls: count.calls + 1, bytes: count.bytes + call.bytes });
    }
    return run();
  });
}

describe.skipIf(skipReason !== undefined)('idle master passes', () => {
  test('after a commit, a pass that has nothing to do reads each journal once; a new session opens each with a few small reads', async () => {
    const hostNames = ['h1', 'h2', 'h3'];
    const t = await createThinlvTestVg({ hosts: hostNames, thinLvCount: 6, quantumExtents: 20, lowWaterExtents: 2 });
    try {
      const reads = new Map<string, { calls: number; bytes: number }>();
      const deps: MasterDeps = { ...t.deps(), regions: countingReads(t.deps().regions, reads) };
      const h1 = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'h1');
      await h1.applyGrants();
      await h1.allocate('disk0', 1);
      await h1.close();
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const journalIds = hostNames.map((host) => ringLocation(vg, hostLvNames(host).journal).ringId);

      const session = new MasterSession({ keepJournalsOpen: true });
      const replay = await runPass(deps, session, t.vg.vgName);
      expect(replay.committed).toBe(true);
      reads.clear();
      const idle = await runPass(deps, session, t.vg.vgName);
      expect(idle.committed).toBe(false);
      for (const id of journalIds) expect(reads.get(id)).toEqual({ calls: 1, bytes: 4096 });

      reads.clear();
      await runPass(deps, new MasterSession(), t.vg.vgName);
      // Header, consumer block, the kept record's window (at most 64 KiB here), the next block.
      for (const id of journalIds) expect(reads.get(id)!.bytes).toBeLessThanOrEqual(3 * 4096 + 64 * 1024);
      await session.close();
    } finally {
      await t.destroy();
    }
  });
});
