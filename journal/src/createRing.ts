// Writing a fresh ring onto a region: consumer block first, header last.

import { randomBytes } from 'node:crypto';
import { BLOCK_BYTES, CONSUMER_BLOCK_OFFSET_BYTES, DATA_OFFSET_BYTES, FORMAT_VERSION, HEADER_BLOCK_OFFSET_BYTES, MAX_RECORD_BYTES } from './constants.js';
import { RingIdentityError } from './errors.js';
import { decodeRingHeader, encodeConsumerBlock, encodeRingHeader, type RingHeader } from './layout.js';
import { checkRegionSize, checkRingId } from './ringChain.js';
import type { BlockRegion } from './blockRegion.js';

export interface CreateRingOptions {
  readonly ringId: string;
  /** Overwrite a region that already holds a ring (any id, any version). */
  readonly force?: boolean;
  /** Clock for the header's creation time; defaults to Date.now. */
  readonly nowMs?: () => number;
}

export async function createRing(region: BlockRegion, options: CreateRingOptions): Promise<RingHeader> {
  checkRingId(options.ringId);
  checkRegionSize(region);
  const existing = decodeRingHeader(await region.read(HEADER_BLOCK_OFFSET_BYTES, BLOCK_BYTES));
  if (existing.kind !== 'not-a-ring' && options.force !== true) {
    const found = existing.kind === 'ok' ? `ring ${JSON.stringify(existing.header.ringId)}` : existing.kind === 'other-version' ? `a version ${existing.formatVersion} ring` : 'a damaged ring header';
    throw new RingIdentityError('RING_EXISTS', `${region.description} already holds ${found}; pass force to destroy it (its unconsumed records are lost)`, {
      region: region.description,
      found: existing.kind === 'ok' ? existing.header.ringId : existing.kind,
    });
  }
  const header: RingHeader = {
    formatVersion: FORMAT_VERSION,
    blockBytes: BLOCK_BYTES,
    ringBytes: region.sizeBytes,
    dataOffsetBytes: DATA_OFFSET_BYTES,
    maxRecordBytes: MAX_RECORD_BYTES,
    // A fresh nonce makes every record and consumer block of an earlier ring on this
    // region invalid for the new one, so the data area need not be zeroed.
    ringNonce: randomBytes(8).readBigUInt64LE(0),
    createdAtMs: (options.nowMs ?? Date.now)(),
    ringId: options.ringId,
  };
  const block = region.allocateBuffer(BLOCK_BYTES);
  // Step 1: destroy the old header. A crash after it leaves "not a ring", so a retry
  // needs no force and cannot mix the old ring's consumer block with a new header.
  block.fill(0);
  await region.write(HEADER_BLOCK_OFFSET_BYTES, block);
  // Step 2: the consumer block for the new nonce. Without a header nothing reads it;
  // a crash here is retried from step 1 with a new nonce, which is harmless.
  encodeConsumerBlock(header, { consumedSeq: 0, nextRecordOffsetBytes: DATA_OFFSET_BYTES, consumedEpoch: 0, updateCount: 0 }, block);
  await region.write(CONSUMER_BLOCK_OFFSET_BYTES, block);
  // Step 3: the header makes the ring live. Its records need no preparation: none
  // carries the new nonce yet.
  encodeRingHeader(header, block);
  await region.write(HEADER_BLOCK_OFFSET_BYTES, block);
  return header;
}
