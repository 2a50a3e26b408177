// Extends waiting for a grant (src/host/grantWaits.ts), on a simulated clock: the
// demand is journaled and repeated, a grant wakes the waiter, and one that gives up
// says why and withdraws its demand.

import { describe, expect, test } from 'vitest';
import { DEMAND_REPEAT_MS, GrantWaits, MASTER_SILENT_MS, type WhyNotServed } from '../../src/host/grantWaits.js';
import type { ShortageRecord } from '../../src/records/records.js';

class World {
  now = 0;
  readonly announced: { atMs: number; extentCount: number }[] = [];
  /** Runs at each simulated sleep, before the clock moves: what "happens" meanwhile. */
  onSleep: (world: World) => void = () => undefined;
  readonly waits = new GrantWaits({
    nowMs: () => this.now,
    sleepMs: async (ms) => {
      this.onSleep(this);
      this.now += ms;
    },
    announce: (extentCount) => this.announced.push({ atMs: this.now, extentCount }),
  });
}

const shortage = (reason: ShortageRecord['reason']): ShortageRecord => ({ kind: 'shortage', reason, demandExtentCount: 50, grantedExtentCount: 10, vgFreeExtentCount: 30, reserveExtentCount: 30 });
const giveUp = (why: WhyNotServed) => Object.assign(new Error(why.reason), { why });

async function waitFailure(world: World, waitMs: number, signal?: AbortSignal): Promise<Error & { why?: WhyNotServed; code?: string }> {
  return world.waits.waitFor(50, () => undefined, { waitMs, signal, giveUp }).then(
    () => {
      throw new Error('the wait should have failed');
    },
    (error: Error & { why?: WhyNotServed; code?: string }) => error,
  );
}

describe('grant waits', () => {
  test('a grant wakes the waiter at once, and the demand is announced once', async () => {
    const world = new World();
    let pool = 0;
    world.onSleep = (w) => {
      if (w.now >= 300 && pool === 0) {
        pool = 50;
        w.waits.noteGrant();
      }
    };
    const taken = await world.waits.waitFor(50, () => (pool >= 50 ? 'extents' : undefined), { waitMs: 5000, giveUp });
    expect(taken).toBe('extents');
    expect(world.now).toBeLessThan(500);
    expect(world.announced).toEqual([{ atMs: 0, extentCount: 50 }]);
    expect(world.waits.isWaiting()).toBe(false);
  });

  test('with no answer at all the wait fails as master-not-answering, having repeated its demand every DEMAND_REPEAT_MS, and withdraws it', async () => {
    const world = new World();
    const error = await waitFailure(world, 5000);
    expect(error.why).toMatchObject({ reason: 'master-not-answering' });
    expect(error.why!.silentMs).toBeGreaterThanOrEqual(MASTER_SILENT_MS);
    const demands = world.announced.filter((a) => a.extentCount === 50);
    expect(demands.length).toBe(Math.ceil(5000 / DEMAND_REPEAT_MS));
    expect(world.announced.at(-1)).toEqual({ atMs: 5000, extentCount: 0 });
  });

  test.each(['vg-full', 'shared'] as const)('a shortage answered during the wait gives the reason %s, with its figures', async (reason) => {
    const world = new World();
    // The master answers each demand with a shortage 200 ms later.
    world.onSleep = (w) => {
      const last = w.announced.at(-1);
      if (last !== undefined && last.extentCount > 0 && w.now - last.atMs >= 200) w.waits.noteShortage(shortage(reason));
    };
    const error = await waitFailure(world, 5000);
    expect(error.why).toEqual({ reason, silentMs: expect.any(Number), shortage: shortage(reason) });
  });

  test('a master that answered once and then fell silent is reported as not answering', async () => {
    const world = new World();
    world.onSleep = (w) => {
      if (w.now === 200) w.waits.noteShortage(shortage('vg-full'));
    };
    const error = await waitFailure(world, 5000);
    expect(error.why).toMatchObject({ reason: 'master-not-answering' });
  });

  test('a bound shorter than the master could answer in gives no-grant-in-time', async () => {
    const world = new World();
    const error = await waitFailure(world, 300);
    expect(error.why).toMatchObject({ reason: 'no-grant-in-time' });
  });

  test('a client that goes away ends the wait with CANCELLED, nothing taken, and the demand withdrawn', async () => {
    const world = new World();
    const aborter = new AbortController();
    world.onSleep = (w) => {
      if (w.now >= 400) aborter.abort();
    };
    const error = await waitFailure(world, 5000, aborter.signal);
    expect(error.code).toBe('CANCELLED');
    expect(world.now).toBeLessThan(1000);
    expect(world.announced).toEqual([
      { atMs: 0, extentCount: 50 },
      { atMs: expect.any(Number), extentCount: 0 },
    ]);
  });

  test('two waiters: the demand announced is what both need, and one giving up leaves what the other needs', async () => {
    const world = new World();
    const first = world.waits.waitFor(30, () => undefined, { waitMs: 500, giveUp }).catch(() => 'gave up');
    const second = world.waits.waitFor(20, () => undefined, { waitMs: 5000, giveUp }).catch(() => 'gave up');
    expect(await first).toBe('gave up');
    expect(world.announced.slice(0, 2).map((a) => a.extentCount)).toEqual([30, 50]);
    expect(world.announced.some((a) => a.extentCount === 20)).toBe(true);
    expect(await second).toBe('gave up');
    expect(world.announced.at(-1)!.extentCount).toBe(0);
  });
});
