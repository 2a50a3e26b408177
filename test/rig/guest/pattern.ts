// The data pattern the rig's guest writers write and read back (patternIo.ts,
// ackedWriter.ts): "SEED:BLOCK:" repeated, so each block names itself, in buffers aligned
// for O_DIRECT.

import { createRequire } from 'node:module';

const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as { getAlignedBuffer(size: number, alignment: number): Buffer };

export const ALIGNMENT_BYTES = 4096;

/** A buffer of `bytes` aligned for O_DIRECT. */
export function alignedBuffer(bytes: number): Buffer {
  return directIo.getAlignedBuffer(bytes, ALIGNMENT_BYTES);
}

export function patternBlock(seed: string, block: number, blockBytes: number): Buffer {
  const buffer = alignedBuffer(blockBytes);
  const text = Buffer.from(`${seed}:${block}:`, 'latin1');
  for (let offset = 0; offset < blockBytes; offset += text.length) text.copy(buffer, offset, 0, Math.min(text.length, blockBytes - offset));
  return buffer;
}

/** Sleeps the whole process (the writers are synchronous). */
export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
