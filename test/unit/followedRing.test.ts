// The host follows its grants ring across a recreation by the master (src/master/grantsRing.ts
// recreates a ring it cannot read): a reader still on the old ring would never see the grants
// written since. And a damaged header neither stops a running daemon's reads nor its start.

import { describe, expect, test } from 'vitest';
import { MIN_RING_BYTES, MemoryDisk, createRing, openRingWriter } from '../../journal/index.js';
import type { HostAllocator } from '../../src/host/allocator.js';
import { FollowedRing } from '../../src/host/followedRing.js';
import { grantFollower } from '../../src/host/grantFollower.js';
import { createLogger } from '../../src/log.js';
import { encodeGrantRecord } from '../../src/records/records.js';
import type { HostState } from '../../src/state/hostState.js';

const RING_ID = 'grants-ring-uuid';
const CHECK_EVERY_MS = 1000;

function world() {
  const disk = new MemoryDisk(MIN_RING_BYTES);
  let now = 0;
  const applied: number[] = [];
  const allocator = { applyGrant: (grant: { generation: number }) => (applied.push(grant.generation), true), status: () => ({ poolExtentCount: 0 }) } as unknown as HostAllocator;
  const state = { setGrantGeneration: () => undefined } as unknown as HostState;
  const follow = async () => {
    const ring = await FollowedRing.open({ region: disk.open(), ringId: RING_ID, log: createLogger('silent'), nowMs: () => now, checkEveryMs: CHECK_EVERY_MS });
    const poll = grantFollower({ ring, allocator, state, log: createLogger('silent'), beforeWrite: async () => undefined, ownerId: 'daemon-1', onStop: () => undefined });
    return { ring, poll };
  };
  return {
    disk,
    applied,
    follow,
    at: (ms: number) => (now = ms),
    /** What the master does: write a grant, recreating the ring first when asked to. */
    grant: async (generation: number, recreate = false) => {
      const region = disk.open();
      if (recreate) await createRing(region, { ringId: RING_ID, force: true });
      const writer = await openRingWriter(region, { ringId: RING_ID });
      await writer.append(encodeGrantRecord({ kind: 'grant', generation, appliedSeq: 0, freeRanges: [] }));
      await writer.close();
    },
    flipHeaderBit: () => (disk.bytes[20] = disk.bytes[20]! ^ 0x10),
  };
}

describe('the grants ring a host follows', () => {
  test('a ring the master recreated is read from its start at the next header check', async () => {
    const w = world();
    await createRing(w.disk.open(), { ringId: RING_ID });
    await w.grant(1);
    const { poll } = await w.follow();
    await poll();
    expect(w.applied).toEqual([1]);

    await w.grant(2, true);
    w.at(CHECK_EVERY_MS - 1);
    await poll();
    expect(w.applied).toEqual([1]); // not yet looked at the header
    w.at(CHECK_EVERY_MS);
    await poll();
    expect(w.applied).toEqual([1, 2]);
    await w.grant(3);
    await poll();
    expect(w.applied).toEqual([1, 2, 3]);
  });

  test('a header damaged under a running daemon: it keeps reading with the header it holds', async () => {
    const w = world();
    await createRing(w.disk.open(), { ringId: RING_ID });
    const { poll } = await w.follow();
    await w.grant(1);
    w.flipHeaderBit();
    w.at(CHECK_EVERY_MS);
    await poll();
    expect(w.applied).toEqual([1]);
    // The master cannot open it: it recreates it, and the host follows.
    await expect(openRingWriter(w.disk.open(), { ringId: RING_ID })).rejects.toMatchObject({ code: 'HEADER_CORRUPT' });
    await w.grant(2, true);
    w.at(2 * CHECK_EVERY_MS);
    await poll();
    expect(w.applied).toEqual([1, 2]);
  });

  test('a daemon starts on a damaged ring, and takes the first grant written to the recreated one', async () => {
    const w = world();
    await createRing(w.disk.open(), { ringId: RING_ID });
    await w.grant(1);
    w.flipHeaderBit();
    const { ring, poll } = await w.follow();
    expect(await ring.current()).toBeUndefined();
    await poll();
    expect(w.applied).toEqual([]);
    await w.grant(2, true);
    await poll(); // no reader: every poll tries to open it
    expect(w.applied).toEqual([2]);
  });
});
