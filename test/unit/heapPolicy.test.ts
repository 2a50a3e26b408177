import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { expect, test } from 'vitest';
import { keepHeapSmall } from '../../src/host/heapPolicy.js';

// Each test file runs in a process of its own (vitest's default isolation), so the flags
// set here touch no other test.

const newSpaceBytes = (): number => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_size;

/** `megabytes` of small objects, kept: what a metadata read builds while it parses. */
function smallObjects(megabytes: number): unknown[] {
  const kept: unknown[] = [];
  for (let i = 0; i < (megabytes * 1024 * 1024) / 64; i++) kept.push({ index: i, name: `lv${i}` });
  return kept;
}

test('after keepHeapSmall, V8 grows neither its young generation nor its heap far past what is held', () => {
  keepHeapSmall();
  const youngBefore = newSpaceBytes();
  const held = smallObjects(16);
  expect(newSpaceBytes()).toBeLessThanOrEqual(youngBefore);
  // Reads of metadata, one after another: each keeps its result until the next one is made,
  // as the daemon keeps the layout in use while it reads the next.
  let previous = smallObjects(16);
  let peakBytes = 0;
  for (let read = 0; read < 6; read++) {
    const next = smallObjects(16);
    peakBytes = Math.max(peakBytes, getHeapStatistics().total_heap_size);
    previous = next;
  }
  expect(previous.length + held.length).toBeGreaterThan(0);
  // Held: 16 MB and two reads' (each about 20 MB of objects). Without optimize_for_size V8
  // lets the garbage of several reads pile up first (measured on Node 20: a peak of 192 MB
  // without the flags, 67 MB with them).
  expect(peakBytes).toBeLessThan(110 * 1024 * 1024);
});
