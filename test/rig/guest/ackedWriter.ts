// Runs INSIDE a rig guest: a writer whose acknowledged writes the harness can still see
// after the guest is killed, and the read-back that checks them on another guest.
//
//   node ackedWriter.js write DEVICE MAX_BLOCKS BLOCK_BYTES SEED ACK_TTY [WAIT_MS]
//   node ackedWriter.js verify DEVICE BLOCK_COUNT BLOCK_BYTES SEED
//
// `write` writes blocks 0, 1, ... in order with O_DIRECT|O_DSYNC; a block past the
// device's current end is retried until an extend has grown the device or WAIT_MS
// (default 600000) passes. After each write returns, and only then, it writes
// "rig-ack SEED N N!" to ACK_TTY (the guest's serial console, which the harness keeps
// in a file outside the guest): a line there means block N, and every block before it,
// was acknowledged. A line lost in the tty when the guest is killed only makes the
// harness demand less, never more. `verify` reads blocks 0 to BLOCK_COUNT-1 and prints
// one JSON line with those that differ from the pattern.

import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { alignedBuffer, ALIGNMENT_BYTES, patternBlock, sleepMs } from './pattern.js';

const RETRY_PAUSE_MS = 50;
const DEFAULT_WAIT_MS = 600_000;

/** Writes one block, waiting while it lies past the device's end; throws at the deadline. */
function writeBlock(fd: number, data: Buffer, position: number, waitMs: number, onWait: () => void): void {
  const deadline = Date.now() + waitMs;
  let announced = false;
  for (;;) {
    let written = 0;
    try {
      written = writeSync(fd, data, 0, data.length, position);
    } catch (error) {
      // ENOSPC (or EINVAL) past the end of a device that has not grown yet.
      if (!['ENOSPC', 'EINVAL', 'EIO'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
    if (written === data.length) return;
    if (!announced) onWait();
    announced = true;
    if (Date.now() > deadline) throw new Error(`the write at byte ${position} could not be made within ${waitMs} ms (the device did not grow)`);
    sleepMs(RETRY_PAUSE_MS);
  }
}

function write(device: string, maxBlocks: number, blockBytes: number, seed: string, ackTty: string, waitMs: number): number {
  const fd = openSync(device, constants.O_WRONLY | constants.O_DIRECT | constants.O_DSYNC);
  const ack = openSync(ackTty, constants.O_WRONLY | constants.O_NOCTTY);
  let waits = 0;
  try {
    for (let block = 0; block < maxBlocks; block += 1) {
      writeBlock(fd, patternBlock(seed, block, blockBytes), block * blockBytes, waitMs, () => {
        waits += 1;
        process.stdout.write(`waiting at block ${block}\n`);
      });
      writeSync(ack, `rig-ack ${seed} ${block} ${block}!\n`);
    }
  } finally {
    closeSync(fd);
    closeSync(ack);
  }
  process.stdout.write(`${JSON.stringify({ op: 'write', device, blocks: maxBlocks, blockBytes, waits })}\n`);
  return 0;
}

function verify(device: string, blockCount: number, blockBytes: number, seed: string): number {
  const fd = openSync(device, constants.O_RDONLY | constants.O_DIRECT);
  const bad: number[] = [];
  try {
    const buffer = alignedBuffer(blockBytes);
    for (let block = 0; block < blockCount; block += 1) {
      const read = readSync(fd, buffer, 0, blockBytes, block * blockBytes);
      if (read !== blockBytes || !buffer.equals(patternBlock(seed, block, blockBytes))) bad.push(block);
    }
  } finally {
    closeSync(fd);
  }
  process.stdout.write(`${JSON.stringify({ op: 'verify', device, blocks: blockCount, badBlocks: bad.slice(0, 50), badCount: bad.length })}\n`);
  return bad.length === 0 ? 0 : 1;
}

const [op, device, count, block, seed, ackTty, wait] = process.argv.slice(2);
const blockCount = Number(count);
const blockBytes = Number(block);
const usable = device !== undefined && seed !== undefined && Number.isSafeInteger(blockCount) && blockCount > 0 && blockBytes > 0 && blockBytes % ALIGNMENT_BYTES === 0;
if (op === 'write' && usable && ackTty !== undefined) {
  process.exitCode = write(device, blockCount, blockBytes, seed, ackTty, Number(wait ?? DEFAULT_WAIT_MS));
} else if (op === 'verify' && usable) {
  process.exitCode = verify(device, blockCount, blockBytes, seed);
} else {
  process.stderr.write('usage: ackedWriter.js write DEVICE MAX_BLOCKS BLOCK_BYTES SEED ACK_TTY [WAIT_MS] | verify DEVICE BLOCK_COUNT BLOCK_BYTES SEED\n');
  process.exitCode = 2;
}
