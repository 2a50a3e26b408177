// Child process of ringTwoProcesses.test.ts: appends records 1..recordCount to a ring
// on a device, keeping several appends in flight so group commit is exercised, and
// waiting on a full ring for the reader process. Prints one JSON line when done.

import { openFileRegion, openRingWriter } from '../index.js';
import { parseProcessArgs, payloadForSeq } from './ringProcessPayload.js';

const APPENDS_IN_FLIGHT = 16;

async function main(): Promise<void> {
  const args = parseProcessArgs(process.argv.slice(2));
  const region = await openFileRegion(args.devicePath, { offsetBytes: args.offsetBytes, lengthBytes: args.lengthBytes });
  const writer = await openRingWriter(region, { ringId: args.ringId, onFull: { waitMs: 30_000 } });
  const startedMs = Date.now();
  let nextSeq = writer.lastSeq + 1;
  const lastSeq = args.recordCount;
  const worker = async (): Promise<void> => {
    while (nextSeq <= lastSeq) {
      const seq = nextSeq++;
      // Appends are issued in seq order from one event loop, so the ring gives them these seqs.
      const result = await writer.append(payloadForSeq(seq));
      if (result.seq !== seq) throw new Error(`append for seq ${seq} got seq ${result.seq}`);
    }
  };
  await Promise.all(Array.from({ length: APPENDS_IN_FLIGHT }, worker));
  await writer.close();
  await region.close();
  process.stdout.write(`${JSON.stringify({ role: 'writer', appended: lastSeq, mode: region.mode, elapsedMs: Date.now() - startedMs })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`writer failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
