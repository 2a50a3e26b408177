// A new master session sends every host its current grant once, in case an earlier
// master died between a commit and its grant write. When the host's grants ring already
// holds that grant (unconsumed, or as the last record the host consumed), the re-send is
// skipped: it would cost a writer's open of the ring (a read of all of it and a write of
// up to 1 MiB) to send a generation the host ignores. When the grant is missing, it is
// still written.

import { describe, expect, test } from 'vitest';
import { createRing, openFileRegion, openRingReader } from '../../journal/index.js';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass, type MasterDeps } from '../../src/master/replayPass.js';
import { decodeGrantRecord } from '../../src/records/records.js';
import { ringLocation, type RegionOpener } from '../../src/rings/ringRegions.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg } from '../fixtures/thinlvVg.js';
import { observedRegions } from '../fixtures/observedRegions.js';

const skipReason = realLvmUnavailableReason();

/** `inner`, counting the bytes written per ring id. */
function countingWrites(inner: RegionOpener, writes: Map<string, number>): RegionOpener {
  return observedRegions(inner, (call, run) => {
    if (call.op === 'write') writes.set(call.location.ringId, (writes.get(call.location.ringId) ?? 0) + call.bytes);
    return run();
  });
}

describe.skipIf(skipReason !== undefined)('grants re-sent by a new master session', () => {
  test('a grant already on the ring (consumed or not) is not written again; a missing one is', async () => {
    const hostNames = ['h1', 'h2', 'h3'];
    const t = await createThinlvTestVg({ hosts: hostNames, thinLvCount: 6, quantumExtents: 20, lowWaterExtents: 2 });
    try {
      // h1 takes its grant in (and consumes it); h2 leaves it unconsumed; h3's ring is recreated empty.
      const h1 = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'h1');
      expect(await h1.applyGrants()).toBe(true);
      await h1.close();
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const h3Grants = ringLocation(vg, hostLvNames('h3').grants);
      const h3Region = await openFileRegion(h3Grants.device, h3Grants);
      await createRing(h3Region, { ringId: h3Grants.ringId, force: true });
      await h3Region.close();

      const writes = new Map<string, number>();
      const deps: MasterDeps = { ...t.deps(), regions: countingWrites(t.deps().regions, writes) };
      const pass = await runPass(deps, new MasterSession(), t.vg.vgName);
      expect(pass.committed).toBe(false);
      const grantsRing = (host: string) => ringLocation(vg, hostLvNames(host).grants).ringId;
      expect(writes.get(grantsRing('h1')) ?? 0).toBe(0);
      expect(writes.get(grantsRing('h2')) ?? 0).toBe(0);
      expect(writes.get(grantsRing('h3')) ?? 0).toBeGreaterThan(0);

      // h3's ring now carries its current grant.
      const generation = readThinlvVg(vg).hosts.get('h3')!.grantGeneration;
      const region = await openFileRegion(h3Grants.device, h3Grants);
      try {
        const reader = await openRingReader(region, { ringId: h3Grants.ringId });
        const grants = (await reader.read({ fromSeq: 1 })).records.map((r) => decodeGrantRecord(r.payload));
        expect(grants.some((g) => g.ok && g.record.kind === 'grant' && g.record.generation === generation)).toBe(true);
      } finally {
        await region.close();
      }
    } finally {
      await t.destroy();
    }
  });
});
