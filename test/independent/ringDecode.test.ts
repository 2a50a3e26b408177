// The independent ring decoder (written from journal/FORMAT.md alone) against the
// journal library itself: rings written by the real writer through torn group
// commits, crashes, new sessions, consumes and bit flips, then read by both. They must
// return the same records and give the same stop reason, or refuse the ring with the
// same error code. A disagreement is a gap in FORMAT.md (or a bug on either side).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { createRing, isJournalError, MemoryDisk, openRingReader, openRingWriter, type RingWriter } from '../../journal/index.js';
import { readRingChain, RingFormatError } from './ringDecode.js';

const RING_ID = 'Xq3c2V-0mYy-1a2b-3c4d-5e6f-7g8h-9i0jkl';
const RING_BYTES = 320 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'thinlv-indep-ring-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Command =
  | { kind: 'append'; sizes: number[] }
  | { kind: 'tear'; sizes: number[]; landed: boolean[] }
  | { kind: 'restart' }
  | { kind: 'consume'; fraction: number }
  | { kind: 'flip'; offset: number; bit: number };

const sizes = fc.array(fc.integer({ min: 0, max: 9000 }), { minLength: 1, maxLength: 6 });
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: sizes.map((s) => ({ kind: 'append' as const, sizes: s })) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tear' as const), sizes, landed: fc.array(fc.boolean(), { minLength: 1, maxLength: 200 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  { weight: 2, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((fraction) => ({ kind: 'consume' as const, fraction })) },
  // Mostly in the data area; sometimes the header or the consumer block.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), offset: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 8192, max: RING_BYTES - 1 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 8191 }) }), bit: fc.integer({ min: 0, max: 7 }) }) },
);

const payload = (size: number, tag: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (tag * 31 + i) & 0xff);

/** Plays the commands on a memory disk with the real writer and reader; stops writing once the ring refuses to open. */
async function play(commands: readonly Command[]): Promise<MemoryDisk> {
  const disk = new MemoryDisk(RING_BYTES);
  await createRing(disk.open(), { ringId: RING_ID });
  let writer: RingWriter | undefined = await openRingWriter(disk.open(), { ringId: RING_ID });
  let tag = 0;
  const reopen = async (): Promise<void> => {
    writer = await openRingWriter(disk.open(), { ringId: RING_ID }).catch(() => undefined);
  };
  for (const c of commands) {
    if (c.kind === 'flip') {
      disk.bytes[c.offset] = disk.bytes[c.offset]! ^ (1 << c.bit);
      continue;
    }
    if (writer === undefined) {
      await reopen();
      if (writer === undefined) return disk;
    }
    const current: RingWriter = writer;
    if (c.kind === 'append') {
      await Promise.all(c.sizes.map((size) => current.append(payload(size, ++tag)))).catch(() => undefined);
    } else if (c.kind === 'tear') {
      disk.tearNextWrite((units) => c.landed.slice(0, units).flatMap((landed, i) => (landed ? [i] : [])), 512);
      await Promise.all(c.sizes.map((size) => current.append(payload(size, ++tag)))).catch(() => undefined);
      disk.crash();
      await reopen();
    } else if (c.kind === 'restart') {
      disk.crash();
      await reopen();
    } else {
      const reader = await openRingReader(disk.open(), { ringId: RING_ID }).catch(() => undefined);
      if (reader === undefined) continue;
      const { records } = await reader.read({ fromSeq: reader.consumedSeq + 1 });
      const through = records[Math.floor(c.fraction * records.length) - 1];
      if (through !== undefined) await reader.consume(through.seq);
    }
  }
  return disk;
}

type Outcome = { error: string } | { seqs: number[]; payloads: string[]; stopReason: string };

/** The journal library's reader; `survey: false` as a report reads (no CONSUMER_AHEAD check), like ours. */
async function journalReads(disk: MemoryDisk, survey: boolean): Promise<Outcome> {
  try {
    const reader = await openRingReader(disk.open(), { ringId: RING_ID, survey });
    const { records, stopReason } = await reader.read({ fromSeq: reader.consumedSeq + 1 });
    return { seqs: records.map((r) => r.seq), payloads: records.map((r) => Buffer.from(r.payload).toString('hex')), stopReason };
  } catch (error) {
    if (isJournalError(error)) return { error: error.code };
    throw error;
  }
}

function independentReads(disk: MemoryDisk, run: number): Outcome {
  const file = join(dir, `ring-${run}.img`);
  writeFileSync(file, disk.bytes);
  try {
    const { records, stopReason } = readRingChain(file, 0, RING_BYTES, RING_ID);
    return { seqs: records.map((r) => r.seq), payloads: records.map((r) => Buffer.from(r.payload).toString('hex')), stopReason };
  } catch (error) {
    if (error instanceof RingFormatError) return { error: error.code };
    throw error;
  } finally {
    rmSync(file, { force: true });
  }
}

describe('the independent ring decoder', () => {
  test('reads what the journal library reads, through torn writes, crashes, consumes and bit flips', async () => {
    let run = 0;
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 40 }), async (commands) => {
        const disk = await play(commands);
        const theirs = await journalReads(disk, false);
        const ours = independentReads(disk, run++);
        const outcome = 'error' in theirs ? theirs.error : theirs.stopReason;
        seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
        expect(ours).toEqual(theirs);
        // The consuming reader surveys the data area first; past that it reads the same chain.
        const surveyed = await journalReads(disk, true);
        if (!('error' in surveyed && surveyed.error === 'CONSUMER_AHEAD')) expect(ours).toEqual(surveyed);
      }),
      { numRuns: Number(process.env['INDEPENDENT_RING_RUNS'] ?? 150) },
    );
    console.log(`outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
    // The scenarios must reach the end-of-log shapes that matter, or they prove little.
    for (const outcome of ['empty', 'bad-crc']) expect(seen.has(outcome), `outcome ${outcome} never seen: ${JSON.stringify(Object.fromEntries(seen))}`).toBe(true);
  }, 120_000);
});
