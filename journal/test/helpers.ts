// Shared by the journal tests: payloads that say which append made them, and a
// fresh ring on an in-memory disk.

import { createRing, MemoryDisk } from '../index.js';

export const TEST_RING_ID = 'thinlv_test_journal';

/** A payload of `sizeBytes` whose bytes identify `tag`, so a misplaced record cannot pass as another. */
export function taggedPayload(tag: number, sizeBytes: number): Uint8Array {
  const payload = new Uint8Array(sizeBytes);
  const text = new TextEncoder().encode(`<${tag}>`);
  for (let i = 0; i < sizeBytes; i++) payload[i] = text[i % text.length]!;
  return payload;
}

export async function freshMemoryRing(ringBytes: number): Promise<MemoryDisk> {
  const disk = new MemoryDisk(ringBytes);
  await createRing(disk.open(), { ringId: TEST_RING_ID });
  return disk;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

const RECORD_MAGIC_LE = 0x52564c54;

/**
 * Where record `seq` sits on a memory disk, found by looking at every block. Only
 * meaningful while each seq was written once (no crash rewrote it).
 */
export function locateRecord(disk: MemoryDisk, seq: number): { offsetBytes: number; payloadBytes: number; recordBlocks: number } {
  const view = new DataView(disk.bytes.buffer, disk.bytes.byteOffset, disk.bytes.byteLength);
  for (let offset = 2 * 4096; offset < disk.bytes.length; offset += 4096) {
    if (view.getUint32(offset, true) === RECORD_MAGIC_LE && Number(view.getBigUint64(offset + 8, true)) === seq) {
      return { offsetBytes: offset, payloadBytes: view.getUint32(offset + 32, true), recordBlocks: view.getUint32(offset + 36, true) };
    }
  }
  throw new Error(`record ${seq} not found on disk`);
}

/** Appends `count` records of the given sizes one after another and returns their payloads by seq. */
export async function appendAll(writer: { append(payload: Uint8Array): Promise<{ seq: number }> }, sizes: readonly number[], firstTag = 0): Promise<Map<number, Uint8Array>> {
  const bySeq = new Map<number, Uint8Array>();
  let tag = firstTag;
  for (const size of sizes) {
    const payload = taggedPayload(++tag, size);
    const { seq } = await writer.append(payload);
    bySeq.set(seq, payload);
  }
  return bySeq;
}
