// The host allocator keeps LVs that grow at once from one pool contiguous: each new
// segment starts in the middle of the pool's longest free run (chooseExtents 'spread'),
// so LVs do not interleave extent by extent.

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { HostAllocator, type HostJournal } from '../../src/host/allocator.js';
import type { VgLayout } from '../../src/metadata/vgModel.js';
import type { JournalRecord } from '../../src/records/records.js';

const PV = '/dev/sdx';
const EXTENT_SECTORS = 8192;
const EXTENT_BYTES = EXTENT_SECTORS * 512;
const POOL_FIRST_EXTENT = 1000;

function layout(lvCount: number, peCount: number): VgLayout {
  const lvs = Array.from({ length: lvCount }, (_, i) => ({
    name: `lv${i}`,
    uuid: `uuid-lv${i}`,
    tags: [`thinlv_virtual_bytes=${peCount * EXTENT_BYTES}`, 'thinlv_owner=h1'],
    activationSkip: true,
    segments: [{ logicalStart: 0, extentCount: 1, type: 'striped', stripes: [{ pv: PV, firstExtent: i }] }],
  }));
  const tags = ['thinlv_format=1', 'thinlv_quantum_extents=16', 'thinlv_lowwater_extents=8', 'thinlv_reserve_permille=0'];
  return { name: 'vg', uuid: 'vg-uuid', seqno: 1, extentSizeSectors: EXTENT_SECTORS, tags, pvs: [{ device: PV, uuid: 'pv-uuid', peStartSectors: 2048, peCount }], lvs };
}

function allocatorWithPool(lvCount: number, poolExtentCount: number): { allocator: HostAllocator; journal: JournalRecord[] } {
  const journal: JournalRecord[] = [];
  const append: HostJournal['append'] = async (record) => {
    // A real write takes a while: extends of other LVs choose meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 0));
    journal.push(record);
    return { seq: journal.length };
  };
  const allocator = new HostAllocator(
    {
      host: 'h1',
      vg: layout(lvCount, POOL_FIRST_EXTENT + poolExtentCount),
      freeRanges: [{ pv: PV, firstExtent: POOL_FIRST_EXTENT, extentCount: poolExtentCount }],
      unreplayed: [],
      appliedSeq: 0,
      lastGrantGeneration: 0,
      outOfSpaceWaitMs: 0,
    },
    {
      journal: { append },
      dm: { activate: async () => undefined, reload: async () => undefined, deactivate: async () => undefined },
      nowMs: () => 0,
      sleepMs: async () => undefined,
      dmName: (vg, lv) => `${vg}-${lv}`,
      refreshMetadata: async () => undefined,
    },
  );
  return { allocator, journal };
}

describe('interleaved extends from one pool', () => {
  test.prop([
    fc.record({
      lvCount: fc.integer({ min: 2, max: 16 }),
      rounds: fc.integer({ min: 2, max: 8 }),
      extentCount: fc.integer({ min: 1, max: 6 }),
      orderSeed: fc.integer({ min: 0, max: 1_000_000 }),
    }),
  ], { numRuns: 60 })('LVs extended at once, round after round, keep their pool extents in one segment each', async ({ lvCount, rounds, extentCount, orderSeed }) => {
    const { allocator, journal } = allocatorWithPool(lvCount, 4 * lvCount * rounds * extentCount + 4 * lvCount);
    let state = orderSeed;
    for (let round = 0; round < rounds; round++) {
      const order = Array.from({ length: lvCount }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        state = (state * 1103515245 + 12345) % 2147483648;
        const j = state % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      // All of a round's extends in flight at once, as a host's clients send them.
      await Promise.all(order.map((i) => allocator.extendBy(`lv${i}`, extentCount * EXTENT_BYTES)));
    }
    expect(journal.filter((r) => r.kind === 'allocate')).toHaveLength(lvCount * rounds);
    for (let i = 0; i < lvCount; i++) {
      const segments = allocator.segmentsOf(`lv${i}`);
      expect(segments.reduce((n, s) => n + s.extentCount, 0)).toBe(1 + rounds * extentCount);
      // Its first extent, where it was created, and one segment from the pool.
      expect(segments.length, `lv${i}: ${JSON.stringify(segments)} (order seed ${orderSeed})`).toBeLessThanOrEqual(2);
    }
  });
});
