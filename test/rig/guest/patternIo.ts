// Runs INSIDE a rig guest: writes or verifies a known pattern on a block device with
// O_DIRECT (4 KiB-aligned buffers and offsets: what one guest writes, another reads).
//
//   node patternIo.js write DEVICE TOTAL_BYTES BLOCK_BYTES SEED [WAIT_MS]
//   node patternIo.js verify DEVICE TOTAL_BYTES BLOCK_BYTES SEED
//
// `write` writes blocks 0, 1, ... in order; a block past the device's current end is
// retried until the device has grown to hold it (an extend running meanwhile) or
// WAIT_MS (default 120000) passes. It prints progress lines ("waiting at block N") and
// one JSON summary line last; `verify` prints one JSON line with the blocks that differ.

import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { alignedBuffer, ALIGNMENT_BYTES, patternBlock, sleepMs } from './pattern.js';

const RETRY_PAUSE_MS = 50;

function write(device: string, totalBytes: number, blockBytes: number, seed: string, waitMs: number): number {
  const started = Date.now();
  const fd = openSync(device, constants.O_WRONLY | constants.O_DIRECT | constants.O_DSYNC);
  let waits = 0;
  try {
    for (let block = 0; block * blockBytes < totalBytes; block += 1) {
      const data = patternBlock(seed, block, blockBytes);
      let announced = false;
      for (const deadline = Date.now() + waitMs; ; ) {
        let written = 0;
        try {
          written = writeSync(fd, data, 0, blockBytes, block * blockBytes);
        } catch (error) {
          // ENOSPC (or EINVAL) past the end of a device that has not grown yet.
          if (!['ENOSPC', 'EINVAL', 'EIO'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
        }
        if (written === blockBytes) break;
        if (!announced) {
          process.stdout.write(`waiting at block ${block} (byte ${block * blockBytes})\n`);
          announced = true;
          waits += 1;
        }
        if (Date.now() > deadline) throw new Error(`block ${block} could not be written within ${waitMs} ms (the device did not grow)`);
        sleepMs(RETRY_PAUSE_MS);
      }
    }
  } finally {
    closeSync(fd);
  }
  process.stdout.write(`${JSON.stringify({ op: 'write', device, totalBytes, blockBytes, waits, ms: Date.now() - started })}\n`);
  return 0;
}

function verify(device: string, totalBytes: number, blockBytes: number, seed: string): number {
  const fd = openSync(device, constants.O_RDONLY | constants.O_DIRECT);
  const bad: number[] = [];
  let blocks = 0;
  try {
    const buffer = alignedBuffer(blockBytes);
    for (let block = 0; block * blockBytes < totalBytes; block += 1) {
      const read = readSync(fd, buffer, 0, blockBytes, block * blockBytes);
      if (read !== blockBytes || !buffer.equals(patternBlock(seed, block, blockBytes))) bad.push(block);
      blocks += 1;
    }
  } finally {
    closeSync(fd);
  }
  process.stdout.write(`${JSON.stringify({ op: 'verify', device, blocks, badBlocks: bad.slice(0, 50), badCount: bad.length })}\n`);
  return bad.length === 0 ? 0 : 1;
}

const [op, device, total, block, seed, wait] = process.argv.slice(2);
const totalBytes = Number(total);
const blockBytes = Number(block);
if ((op !== 'write' && op !== 'verify') || device === undefined || seed === undefined || !(totalBytes > 0) || !(blockBytes > 0) || blockBytes % ALIGNMENT_BYTES !== 0) {
  process.stderr.write('usage: patternIo.js write|verify DEVICE TOTAL_BYTES BLOCK_BYTES(4 KiB multiple) SEED [WAIT_MS]\n');
  process.exit(2);
}
process.exitCode = op === 'write' ? write(device, totalBytes, blockBytes, seed, Number(wait ?? 120_000)) : verify(device, totalBytes, blockBytes, seed);
