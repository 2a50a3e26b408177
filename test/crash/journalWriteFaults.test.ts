// The torn-write fault point's choice of sectors (src/host/journalWriteFaults.ts): a torn
// write never lands whole, and unarmed the region is passed through untouched. The tear
// itself (which kills the process) runs in the crash campaign, in a real host daemon.

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MemoryDisk } from '../../journal/index.js';
import { noFaults } from '../../src/faults.js';
import { tornSectors, withJournalWriteFaults } from '../../src/host/journalWriteFaults.js';

describe('host.journal.groupWrite', () => {
  test('a torn write lands a strict subset of its sectors, as a prefix or any subset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2048 }), fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 64 }), (sectors, draws) => {
        let i = 0;
        const landed = tornSectors(sectors, () => draws[i++ % draws.length]!);
        expect(landed).toHaveLength(sectors);
        expect(landed.every(Boolean)).toBe(false);
      }),
    );
  });

  test('with no fault point armed the journal region is the region itself', () => {
    const region = new MemoryDisk(256 * 1024).open();
    expect(withJournalWriteFaults(region, noFaults)).toBe(region);
    expect(withJournalWriteFaults(region, undefined)).toBe(region);
  });
});
