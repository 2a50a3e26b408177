// Child process of ringTwoProcesses.test.ts: reads records as the writer process
// appends them, checks every byte and the order, and consumes as it goes so the
// writer can wrap. Prints one JSON line when it has seen recordCount records.

import { openFileRegion, openRingReader } from '../index.js';
import { parseProcessArgs, payloadForSeq, sameBytes } from './ringProcessPayload.js';

const IDLE_POLL_MS = 1;
const DEADLINE_MS = 120_000;

async function main(): Promise<void> {
  const args = parseProcessArgs(process.argv.slice(2));
  const region = await openFileRegion(args.devicePath, { offsetBytes: args.offsetBytes, lengthBytes: args.lengthBytes });
  const reader = await openRingReader(region, { ringId: args.ringId });
  const startedMs = Date.now();
  let expectedSeq = reader.consumedSeq + 1;
  let reads = 0;
  let emptyReads = 0;
  while (expectedSeq <= args.recordCount) {
    if (Date.now() - startedMs > DEADLINE_MS) throw new Error(`gave up at seq ${expectedSeq} after ${DEADLINE_MS} ms`);
    const { records } = await reader.read({ fromSeq: expectedSeq });
    reads += 1;
    if (records.length === 0) {
      emptyReads += 1;
      await new Promise((resolve) => setTimeout(resolve, IDLE_POLL_MS));
      continue;
    }
    for (const record of records) {
      if (record.seq !== expectedSeq) throw new Error(`expected seq ${expectedSeq}, got ${record.seq}`);
      if (!sameBytes(record.payload, payloadForSeq(record.seq))) throw new Error(`payload of seq ${record.seq} differs from what the writer appended`);
      expectedSeq += 1;
    }
    await reader.consume(expectedSeq - 1);
  }
  await region.close();
  process.stdout.write(`${JSON.stringify({ role: 'reader', read: expectedSeq - 1, reads, emptyReads, elapsedMs: Date.now() - startedMs })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`reader failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
