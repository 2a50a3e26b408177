// The simulator finds the guards that fixed real bugs (issue 13), through workloads and
// checks of their own: the freezer holds a paused daemon's effects and requests until it
// thaws, the journal-writer ledger reports a write by any daemon but the last to take the
// host's lease (I8), and seeded runs reach the guarded situations (each fails, at the step
// named, with its guard removed: test/sim/README.md).

import { describe, expect, test } from 'vitest';
import { Freezer } from './freezer.js';
import { JournalWriters } from './journalWriters.js';
import { drainMicrotasks, SimProcess } from './simKernel.js';
import type { SimOptions } from './simulator.js';
import { runOrReport as run } from './runOrReport.js';

describe('a paused daemon', () => {
  test('runs no request and passes no effect until it thaws, then in the order asked', async () => {
    const freezer = new Freezer();
    const proc = new SimProcess('h1', 'host', 1);
    const order: string[] = [];
    freezer.freeze(proc);
    void freezer.whenRunning(proc, async () => order.push('request'));
    void freezer.effectGate(proc)!.then(() => order.push('effect'));
    await drainMicrotasks();
    expect(order).toEqual([]);
    await freezer.thaw(proc, true, drainMicrotasks);
    await drainMicrotasks();
    expect(order).toEqual(['request', 'effect']);
    expect(freezer.effectGate(proc)).toBeUndefined();
  });
});

describe('I8: one daemon writes a host journal', () => {
  test('a write by a daemon whose lease another took is reported; the taker writes freely', () => {
    const violations: string[] = [];
    const writers = new JournalWriters((message) => violations.push(message));
    writers.took('ring-a', 'h1#1');
    writers.writes('ring-a', 'h1#1', 'h1');
    writers.took('ring-a', 'h1b#2');
    writers.writes('ring-a', 'h1b#2', 'h1');
    expect(violations).toEqual([]);
    writers.writes('ring-a', 'h1#1', 'h1');
    expect(violations).toEqual(["I8: h1#1 writes h1's journal while h1b#2 holds its lease"]);
  });
});

describe('simulator: the guarded situations', () => {
  test('a daemon paused past its lease and taken over halts on thawing, writing nothing (the first seed that makes one, --membership); the same seed gives the same run', async () => {
    // Without leasedJournal's ensureHeld: "I8: h3#1 writes h3's journal while h3b#2 holds its lease"
    // (seed 1, step 111, when this was written). Where the situation falls moves with any change
    // to the code a run goes through, so seeds are tried in turn until one reaches it.
    const halted = (operations: Record<string, number>) => Object.keys(operations).some((outcome) => outcome.startsWith('paused daemon halted on thawing'));
    let found: { options: SimOptions; traceHash: string } | undefined;
    for (let seed = 1; seed <= 12 && found === undefined; seed++) {
      const options: SimOptions = { seed, steps: 200, membershipRate: 10, deflateChance: 0.5 };
      const stats = await run(options);
      if ((stats.operations['daemon paused, taken over'] ?? 0) > 0 && halted(stats.operations)) found = { options, traceHash: stats.traceHash };
    }
    expect(found, 'no seed of 1 to 12 paused a daemon that another took over and that then halted on thawing').toBeDefined();
    expect((await run(found!.options)).traceHash, `seed ${found!.options.seed}`).toBe(found!.traceHash);
  }, 240_000);

  test('a deflate record that reaches the master after a migration target claimed the LV leaves it whole (the first seed that makes one, --membership)', async () => {
    // Without planReplay's "held by host" skip: "I8: a commit cut thin LV ... while host ... held it"
    // (README: default seeds 1-6 and --membership seeds 2, 4, 5 find it). The situation is rare
    // per step and where it falls moves with any change to the code a run goes through, so
    // seeds are tried in turn until one reaches it, every run checked throughout.
    const reached: number[] = [];
    for (let seed = 1; seed <= 24 && reached.length === 0; seed++) {
      const stats = await run({ seed, steps: 600, membershipRate: 10, deflateChance: 0.5 });
      if ((stats.operations['deflate (host) skipped: held by a host'] ?? 0) > 0) reached.push(seed);
    }
    expect(reached.length, 'no seed of 1 to 24 made a deflate record reach the master after another host claimed its LV').toBeGreaterThan(0);
  }, 240_000);
});
