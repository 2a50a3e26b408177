// The master's status publisher writes only where fresh metadata puts thinlv_status, and
// nothing at all once the master halts on a broken invariant.

import { describe, expect, test } from 'vitest';
import { MemoryDisk, type BlockRegion } from '../../journal/index.js';
import { createLogger } from '../../src/log.js';
import { MAX_STATUS_METADATA_AGE_MS, StatusPublisher, createStatusLvChange } from '../../src/master/masterStatus.js';
import { MasterSession } from '../../src/master/masterSession.js';
import { applyChanges } from '../../src/metadata/applyChanges.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { statusLocation, type RegionOpener, type RingLocation } from '../../src/rings/ringRegions.js';
import { readStatusRegion } from '../../src/rings/statusBlock.js';
import { countingIdentity, thinlvVgMetadata, twoHostSpec } from './arbitraries/thinlvVg.js';

const INTERVAL_MS = 2000;

/** In-memory regions, one disk per place, so what a test reads is what the publisher wrote. */
function memoryRegions(): RegionOpener & { read(location: RingLocation): Promise<BlockRegion> } {
  const disks = new Map<string, MemoryDisk>();
  const open = async (location: RingLocation): Promise<BlockRegion> => {
    const key = `${location.device}:${location.offsetBytes}:${location.lengthBytes}`;
    if (!disks.has(key)) disks.set(key, new MemoryDisk(location.lengthBytes));
    return disks.get(key)!.open();
  };
  return { open, read: open };
}

function setUp() {
  const base = thinlvVgMetadata(twoHostSpec());
  const vg: VgMetadata = applyChanges(base, [createStatusLvChange(base)!], countingIdentity());
  const regions = memoryRegions();
  let now = 1_000_000;
  const clock = { advance: (ms: number) => void (now += ms) };
  const publisher = new StatusPublisher({ regions, log: createLogger('silent'), nowMs: () => now, history: undefined }, { vg: vg.name, intervalMs: INTERVAL_MS });
  const session = new MasterSession();
  session.lastPass = { metadata: vg, atMs: now };
  const written = async () => readStatusRegion(await regions.read(statusLocation(vg)));
  const ok = { atMs: now, durationMs: 10 };
  return { vg, clock, publisher, session, written, ok };
}

describe('the master status publisher', () => {
  test('a pass from fresh metadata is published; a failed pass long after the last good one is not', async () => {
    const { clock, publisher, session, written, ok } = setUp();
    publisher.publish(session, ok);
    await publisher.settled();
    expect(await written()).toMatchObject({ kind: 'status', counter: 1, payload: { failedPassCount: 0, stoppedAtMs: null } });
    clock.advance(MAX_STATUS_METADATA_AGE_MS + 1);
    publisher.publish(session, { ...ok, error: new Error('lvm timed out') });
    await publisher.settled();
    // Nothing written from metadata that old: readers see the master fall silent instead.
    expect(await written()).toMatchObject({ kind: 'status', counter: 1 });
    await publisher.stopped(session);
    expect(await written()).toMatchObject({ kind: 'status', counter: 1, payload: { stoppedAtMs: null } });
  });

  test('after halt() (a broken invariant) nothing more is written, not even that the master stopped', async () => {
    const { publisher, session, written, ok } = setUp();
    publisher.publish(session, ok);
    publisher.halt();
    publisher.publish(session, ok);
    await publisher.stopped(session);
    expect(await written()).toEqual({ kind: 'absent' });
  });

  test('a clean stop with fresh metadata says so', async () => {
    const { publisher, session, written, ok } = setUp();
    publisher.publish(session, ok);
    await publisher.stopped(session);
    expect(await written()).toMatchObject({ kind: 'status', counter: 2, payload: { stoppedAtMs: expect.any(Number) } });
  });
});
