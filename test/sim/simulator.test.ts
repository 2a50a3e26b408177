// The deterministic simulator (test/sim/simulator.ts) in `npm test`: short runs of
// the real master and host allocator over simulated LVM, disk, dm and clock, with
// crashes, torn writes and fault points, checking the invariants after every step.
// Longer runs: `npm run sim -- --seed S --steps N`.

import { describe, expect, test } from 'vitest';
import { THROUGHPUT_PROFILE } from './simulator.js';
import { runOrReport as run } from './runOrReport.js';

const STEPS = 200;

describe('simulator', () => {
  test('one seed gives the same run twice (same trace hash)', async () => {
    const first = await run({ seed: 11, steps: 80 });
    const second = await run({ seed: 11, steps: 80 });
    expect(second.traceHash, 'seed 11').toBe(first.traceHash);
    expect(second.extendsAcknowledged, 'seed 11').toBe(first.extendsAcknowledged);
    expect(first.extendsAcknowledged, 'seed 11 acknowledges extends').toBeGreaterThan(0);
  });

  test('the throughput profile keeps every invariant, one seed giving the same run twice, with many records per commit', async () => {
    const first = await run({ seed: 14, steps: 80, ...THROUGHPUT_PROFILE });
    const second = await run({ seed: 14, steps: 80, ...THROUGHPUT_PROFILE });
    expect(second.traceHash, 'seed 14').toBe(first.traceHash);
    expect(first.commits, 'seed 14').toBeGreaterThan(0);
    expect(first.extendsAcknowledged / first.commits, 'seed 14: extends per commit').toBeGreaterThan(20);
  });

  for (const seed of [1, 2, 3]) {
    test(`seed ${seed}: ${STEPS} steps keep every invariant`, async () => {
      const stats = await run({ seed, steps: STEPS });
      expect(stats.steps, `seed ${seed}`).toBe(STEPS);
      expect(stats.commits, `seed ${seed}`).toBeGreaterThan(0);
    });
  }

  test(`a random seed: ${STEPS} steps keep every invariant`, async () => {
    const seed = Math.floor(Math.random() * 0xffffffff);
    console.log(`simulator random seed ${seed}`);
    const stats = await run({ seed, steps: STEPS });
    expect(stats.steps, `seed ${seed}`).toBe(STEPS);
  });
});
