// Benchmark of the journal on a loop device: append latency with one appender and
// throughput with 64, next to a raw aligned 4 KiB O_DIRECT|O_DSYNC write to the
// same device. Raw writes and appends alternate one by one, and the throughput runs
// alternate too, so a noisy machine slows both alike. Prints a table, then one JSON line.
//
//   npm run bench:journal
//
// The loop device is attached with --direct-io=on, so O_DIRECT reaches the backing
// file and O_DSYNC flushes it, as it would on a SAN LUN. The backing file is written
// with zeros first, so neither side pays for allocating blocks on first write.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import {
  BLOCK_BYTES,
  createRing,
  openFileRegion,
  openRingWriter,
  type FileRegion,
  type RingWriter,
} from '../journal/index.js';
import { attachLoopDevice, loopDeviceProblem } from '../journal/support/loopDevice.js';
import { percentile, round1 } from './benchStats.js';

const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as {
  O_DIRECT: number;
  O_DSYNC: number;
  getAlignedBuffer(size: number, alignment: number): Buffer;
};

const DEVICE_BYTES = 256 * 1024 * 1024;
const RING_OFFSET_BYTES = 1024 * 1024;
const RING_BYTES = 64 * 1024 * 1024;
const RAW_OFFSET_BYTES = 128 * 1024 * 1024;
const RAW_AREA_BYTES = 64 * 1024 * 1024;
const RING_ID = 'thinlv_bench_journal';
const PAYLOAD_BYTES = 100;
const WARMUP_WRITES = 200;
const LATENCY_SAMPLES = 4000;
const THROUGHPUT_ROUNDS = 3;
const SINGLE_APPENDER_RECORDS = 1000;
const CONCURRENT_APPENDERS = 64;
const RECORDS_PER_CONCURRENT_APPENDER = 150;

function elapsedUs(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1000;
}

class RawWriter {
  private readonly buffer = directIo.getAlignedBuffer(BLOCK_BYTES, BLOCK_BYTES);
  private next = 0;
  constructor(private readonly fd: number) {
    this.buffer.fill(0x5a);
  }
  write(): Promise<void> {
    const position = RAW_OFFSET_BYTES + ((this.next++ * BLOCK_BYTES) % RAW_AREA_BYTES);
    return new Promise((resolve, reject) => fs.write(this.fd, this.buffer, 0, BLOCK_BYTES, position, (error) => (error ? reject(error) : resolve())));
  }
}

async function freshWriter(region: FileRegion): Promise<RingWriter> {
  await createRing(region, { ringId: RING_ID, force: true });
  return openRingWriter(region, { ringId: RING_ID });
}

async function measureRaw(raw: RawWriter, samples: number, into: number[]): Promise<void> {
  for (let i = 0; i < samples; i++) {
    const start = process.hrtime.bigint();
    await raw.write();
    into.push(elapsedUs(start));
  }
}

async function measureAppend(writer: RingWriter, payload: Uint8Array, into: number[]): Promise<void> {
  const start = process.hrtime.bigint();
  await writer.append(payload);
  into.push(elapsedUs(start));
}

/** Records per second with `appenders` callers each appending `perAppender` records back to back. */
async function measureThroughput(region: FileRegion, appenders: number, perAppender: number): Promise<{ records: number; seconds: number }> {
  const writer = await freshWriter(region);
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(9);
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: appenders }, async () => {
      for (let i = 0; i < perAppender; i++) await writer.append(payload);
    }),
  );
  const seconds = elapsedUs(start) / 1e6;
  await writer.close();
  return { records: appenders * perAppender, seconds };
}

async function main(): Promise<void> {
  const problem = loopDeviceProblem();
  if (problem !== undefined) throw new Error(`cannot run the journal benchmark: ${problem}`);
  const loop = attachLoopDevice({ sizeBytes: DEVICE_BYTES, directIo: true, directory: '/var/tmp', preallocate: true });
  let rawFd: number | undefined;
  let region: FileRegion | undefined;
  try {
    region = await openFileRegion(loop.devicePath, { offsetBytes: RING_OFFSET_BYTES, lengthBytes: RING_BYTES });
    if (region.mode !== 'direct') throw new Error(`expected O_DIRECT on ${loop.devicePath}, got ${region.mode}`);
    rawFd = fs.openSync(loop.devicePath, fs.constants.O_RDWR | directIo.O_DIRECT | directIo.O_DSYNC);
    const raw = new RawWriter(rawFd);

    // Warm up both paths (page tables, thread pool, the backing file's extents).
    const writer = await freshWriter(region);
    await measureRaw(raw, WARMUP_WRITES, []);
    for (let i = 0; i < WARMUP_WRITES; i++) await measureAppend(writer, new Uint8Array(PAYLOAD_BYTES), []);

    // Raw writes and appends alternate one by one (which goes first flips every pair),
    // so bursts of noise from other work on the machine hit both sides alike.
    const rawUs: number[] = [];
    const appendUs: number[] = [];
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
    for (let pair = 0; pair < LATENCY_SAMPLES; pair++) {
      if (pair % 2 === 0) {
        await measureRaw(raw, 1, rawUs);
        await measureAppend(writer, payload, appendUs);
      } else {
        await measureAppend(writer, payload, appendUs);
        await measureRaw(raw, 1, rawUs);
      }
    }

    const single = { records: 0, seconds: 0 };
    const concurrent = { records: 0, seconds: 0 };
    for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
      const order = round % 2 === 0 ? ['single', 'concurrent'] : ['concurrent', 'single'];
      for (const kind of order) {
        const result = kind === 'single' ? await measureThroughput(region, 1, SINGLE_APPENDER_RECORDS) : await measureThroughput(region, CONCURRENT_APPENDERS, RECORDS_PER_CONCURRENT_APPENDER);
        const total = kind === 'single' ? single : concurrent;
        total.records += result.records;
        total.seconds += result.seconds;
      }
    }

    rawUs.sort((a, b) => a - b);
    appendUs.sort((a, b) => a - b);
    const summary = {
      device: loop.devicePath,
      loopDirectIo: loop.directIo,
      samplesEach: rawUs.length,
      payloadBytes: PAYLOAD_BYTES,
      appendP50Us: round1(percentile(appendUs, 0.5)),
      appendP99Us: round1(percentile(appendUs, 0.99)),
      rawWriteP50Us: round1(percentile(rawUs, 0.5)),
      rawWriteP99Us: round1(percentile(rawUs, 0.99)),
      p99Ratio: Math.round((percentile(appendUs, 0.99) / percentile(rawUs, 0.99)) * 1000) / 1000,
      p50Ratio: Math.round((percentile(appendUs, 0.5) / percentile(rawUs, 0.5)) * 1000) / 1000,
      recordsPerSec1: Math.round(single.records / single.seconds),
      recordsPerSec64: Math.round(concurrent.records / concurrent.seconds),
      groupCommitSpeedup: Math.round((concurrent.records / concurrent.seconds / (single.records / single.seconds)) * 10) / 10,
      targets: { p99RatioMax: 1.5, groupCommitSpeedupMin: 20 },
    };
    const rows: [string, string, string][] = [
      ['', 'raw 4 KiB O_DIRECT|O_DSYNC write', `ring append (${PAYLOAD_BYTES} B payload)`],
      ['latency p50 (us)', String(summary.rawWriteP50Us), String(summary.appendP50Us)],
      ['latency p99 (us)', String(summary.rawWriteP99Us), String(summary.appendP99Us)],
      ['p99 ratio append/raw', '', `${summary.p99Ratio} (target <= 1.5)`],
      ['records/s, 1 appender', '', String(summary.recordsPerSec1)],
      [`records/s, ${CONCURRENT_APPENDERS} appenders`, '', String(summary.recordsPerSec64)],
      ['group commit speedup', '', `${summary.groupCommitSpeedup}x (target >= 20x)`],
    ];
    const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
    console.log(`journal benchmark on ${loop.devicePath} (loop --direct-io=on, preallocated backing file in /var/tmp), ${rawUs.length} latency samples each, raw and append alternating`);
    for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  |  '));
    console.log(JSON.stringify(summary));
  } finally {
    if (rawFd !== undefined) fs.closeSync(rawFd);
    await region?.close();
    loop.detach();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack ?? error.message : String(error));
  process.exit(1);
});
