// Model-based property test: random sequences of appends (concurrent, so group
// commit kicks in), consumes, reads from arbitrary seqs, reader restarts and
// crashes (clean, with a write landed but unacknowledged, or with a torn write),
// on a ring small enough to wrap every few operations. After every step the reader
// must return exactly the records of the log, in order, each once.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  isJournalError,
  MAX_PAYLOAD_BYTES,
  MemoryDisk,
  MIN_RING_BYTES,
  openRingReader,
  openRingWriter,
  RingReader,
  RingWriter,
} from '../index.js';
import { freshMemoryRing, hex, taggedPayload, TEST_RING_ID } from './helpers.js';

const RING_BYTES = MIN_RING_BYTES;
/** JOURNAL_MODEL_RUNS=5000 for a longer soak; the default keeps the suite quick. */
const MODEL_RUNS = Number(process.env['JOURNAL_MODEL_RUNS'] ?? 250);

type CrashMode = 'clean' | 'landed-unacknowledged' | 'torn';

type Op =
  | { readonly kind: 'append'; readonly sizes: readonly number[] }
  | { readonly kind: 'consume'; readonly fraction: number }
  | { readonly kind: 'read'; readonly skip: number; readonly maxRecords: number }
  | { readonly kind: 'restartReader' }
  | { readonly kind: 'crash'; readonly mode: CrashMode; readonly sizes: readonly number[]; readonly landMask: readonly boolean[] };

const payloadSize = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 300 }) },
  { weight: 3, arbitrary: fc.integer({ min: 3000, max: 13000 }) },
  { weight: 1, arbitrary: fc.constant(MAX_PAYLOAD_BYTES) },
);

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), sizes: fc.array(payloadSize, { minLength: 1, maxLength: 8 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('consume' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), skip: fc.integer({ min: 0, max: 6 }), maxRecords: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restartReader' as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('crash' as const),
      mode: fc.constantFrom<CrashMode>('clean', 'landed-unacknowledged', 'torn'),
      sizes: fc.array(payloadSize, { minLength: 1, maxLength: 6 }),
      landMask: fc.array(fc.boolean(), { minLength: 1, maxLength: 24 }),
    }),
  },
);

interface Model {
  /** The log: every record acknowledged, or durable at a crash and adopted by the next writer. */
  log: { seq: number; payload: Uint8Array }[];
  consumedSeq: number;
}

function lastSeq(model: Model): number {
  return model.log.length === 0 ? model.consumedSeq : model.log[model.log.length - 1]!.seq;
}

async function expectReaderMatchesModel(reader: RingReader, model: Model, fromSeq = model.consumedSeq + 1, maxRecords?: number): Promise<void> {
  const result = await reader.read(maxRecords === undefined ? { fromSeq } : { fromSeq, maxRecords });
  const expected = model.log.filter((record) => record.seq >= fromSeq).slice(0, maxRecords ?? Infinity);
  expect(result.records.map((record) => record.seq)).toEqual(expected.map((record) => record.seq));
  result.records.forEach((record, index) => expect(hex(record.payload)).toBe(hex(expected[index]!.payload)));
}

async function runScenario(ops: readonly Op[], writerOptions: { unsafeSkipTornSpanZeroing?: boolean }): Promise<void> {
  const disk: MemoryDisk = await freshMemoryRing(RING_BYTES);
  const model: Model = { log: [], consumedSeq: 0 };
  let writer: RingWriter = await openRingWriter(disk.open(), { ringId: TEST_RING_ID, ...writerOptions });
  let reader: RingReader = await openRingReader(disk.open(), { ringId: TEST_RING_ID });
  let tag = 0;

  for (const op of ops) {
    switch (op.kind) {
      case 'append': {
        const unconsumedBefore = lastSeq(model) - model.consumedSeq;
        const payloads = op.sizes.map((size) => taggedPayload(++tag, size));
        const results = await Promise.allSettled(payloads.map((payload) => writer.append(payload)));
        results.forEach((result, index) => {
          if (result.status === 'fulfilled') {
            // Sequence numbers follow the log without gaps, in the order of the appends that succeeded.
            expect(result.value.seq).toBe(lastSeq(model) + 1);
            model.log.push({ seq: result.value.seq, payload: payloads[index]! });
          } else {
            expect(isJournalError(result.reason, 'RING_FULL'), String(result.reason)).toBe(true);
          }
        });
        // An empty ring always has room for one record of any allowed size.
        if (unconsumedBefore === 0) expect(results[0]!.status).toBe('fulfilled');
        break;
      }
      case 'consume': {
        const unconsumed = model.log.length;
        const through = model.consumedSeq + Math.round(op.fraction * unconsumed);
        await reader.read({ fromSeq: model.consumedSeq + 1 });
        await reader.consume(through);
        model.log = model.log.filter((record) => record.seq > through);
        model.consumedSeq = Math.max(model.consumedSeq, through);
        break;
      }
      case 'read':
        await expectReaderMatchesModel(reader, model, model.consumedSeq + 1 + op.skip, op.maxRecords);
        break;
      case 'restartReader':
        reader = await openRingReader(disk.open(), { ringId: TEST_RING_ID });
        expect(reader.consumedSeq).toBe(model.consumedSeq);
        break;
      case 'crash': {
        let inFlight: Uint8Array[] = [];
        if (op.mode !== 'clean') {
          if (op.mode === 'torn') {
            disk.tearNextWrite((blockCount) => [...Array(blockCount).keys()].filter((index) => op.landMask[index % op.landMask.length]));
          } else {
            disk.crashAfterNextWrite();
          }
          inFlight = op.sizes.map((size) => taggedPayload(++tag, size));
          const results = await Promise.allSettled(inFlight.map((payload) => writer.append(payload)));
          // The write died with the process, so nothing may have been acknowledged.
          for (const result of results) expect(result.status).toBe('rejected');
        }
        disk.crash();
        writer = await openRingWriter(disk.open(), { ringId: TEST_RING_ID, ...writerOptions });
        reader = await openRingReader(disk.open(), { ringId: TEST_RING_ID });
        // Records of the dying write that landed whole, in order, join the log; no
        // others. The new writer continues after them.
        const adopted = writer.lastSeq - lastSeq(model);
        expect(adopted).toBeGreaterThanOrEqual(0);
        expect(adopted).toBeLessThanOrEqual(inFlight.length);
        for (let i = 0; i < adopted; i++) model.log.push({ seq: lastSeq(model) + 1, payload: inFlight[i]! });
        expect(reader.consumedSeq).toBe(model.consumedSeq);
        break;
      }
    }
    await expectReaderMatchesModel(reader, model);
  }
}

describe('ring model', () => {
  it('the reader returns exactly the acknowledged records, in order, each once, across appends, consumes, wraps and crashes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 40 }), (ops) => runScenario(ops, {})),
      { numRuns: MODEL_RUNS },
    );
  });

  it('the epoch rule alone keeps ghost records out (torn-span zeroing disabled)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 40 }), (ops) => runScenario(ops, { unsafeSkipTornSpanZeroing: true })),
      { numRuns: MODEL_RUNS },
    );
  });
});
