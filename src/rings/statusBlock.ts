// The master's status on the LUN: what the master last said about itself and its
// history, for `thinlv status`, `thinlv hosts` and `thinlv free` on any host. It is a
// report, never an input to a decision: nothing reads it to allocate, grant or replay.
//
// It lives in the LV thinlv_status (created by the master at its start), at its
// physical offset on the PV like the rings, in two slots written in turn:
//
//   slot 0 at 0, slot 1 at STATUS_SLOT_BYTES, each:
//     offset  size  field
//          0     8  magic, ASCII "TLVSTATS"
//          8     4  format version, u32 = 1
//         12     4  payload length in bytes, u32 (1..STATUS_SLOT_BYTES - 32)
//         16     8  counter, u64 (at most 2^53 - 1): one more at every write
//         24     4  CRC32C of bytes 0..23 and the payload
//         28     4  zero
//         32     -  payload: UTF-8 JSON (a MasterStatus, src/master/masterStatus.ts)
//
// A write goes to slot counter % 2, so a write torn by a crash leaves the other slot,
// one write older, intact; a reader takes the valid slot with the larger counter.

import { BLOCK_BYTES, MIN_RING_BYTES, crc32c, crc32cUpdate, type BlockRegion } from '../../journal/index.js';
import { assert } from '../errors.js';

/** The region the status LV holds: the smallest a file region may be. */
export const STATUS_REGION_BYTES = MIN_RING_BYTES;
export const STATUS_SLOT_BYTES = STATUS_REGION_BYTES / 2;
const HEADER_BYTES = 32;
export const MAX_STATUS_PAYLOAD_BYTES = STATUS_SLOT_BYTES - HEADER_BYTES;
const MAGIC = new TextEncoder().encode('TLVSTATS');
const VERSION = 1;
const OFFSET = { version: 8, length: 12, counter: 16, crc: 24 } as const;

export type DecodedStatusSlot =
  | { readonly kind: 'absent' }
  | { readonly kind: 'corrupt'; readonly reason: string }
  | { readonly kind: 'status'; readonly counter: number; readonly payload: unknown };

/** One slot's bytes for `payload` (JSON-serialisable) at `counter`, padded to whole blocks. */
export function encodeStatusSlot(counter: number, payload: unknown, target: Uint8Array): Uint8Array {
  assert(Number.isSafeInteger(counter) && counter >= 0, 'status counter must be a safe non-negative integer', { counter });
  const body = new TextEncoder().encode(JSON.stringify(payload));
  assert(body.length > 0 && body.length <= MAX_STATUS_PAYLOAD_BYTES, `status payload of ${body.length} bytes does not fit a ${STATUS_SLOT_BYTES}-byte slot`, { lengthBytes: body.length });
  const length = Math.ceil((HEADER_BYTES + body.length) / BLOCK_BYTES) * BLOCK_BYTES;
  assert(target.length >= length, 'status buffer too small', { needed: length, got: target.length });
  const slot = target.subarray(0, length);
  slot.fill(0);
  const view = new DataView(slot.buffer, slot.byteOffset, HEADER_BYTES);
  slot.set(MAGIC, 0);
  view.setUint32(OFFSET.version, VERSION, true);
  view.setUint32(OFFSET.length, body.length, true);
  view.setBigUint64(OFFSET.counter, BigInt(counter), true);
  slot.set(body, HEADER_BYTES);
  view.setUint32(OFFSET.crc, checksum(slot, body.length), true);
  return slot;
}

function checksum(slot: Uint8Array, payloadLength: number): number {
  return crc32cUpdate(crc32c(slot.subarray(0, OFFSET.crc)), slot.subarray(HEADER_BYTES, HEADER_BYTES + payloadLength));
}

/** Decodes one slot as read from disk; never throws on bad data. */
export function decodeStatusSlot(bytes: Uint8Array): DecodedStatusSlot {
  if (!MAGIC.every((byte, index) => bytes[index] === byte)) return { kind: 'absent' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const version = view.getUint32(OFFSET.version, true);
  if (version !== VERSION) return { kind: 'corrupt', reason: `status format version ${version} is not ${VERSION}: a newer thinlv wrote it` };
  const length = view.getUint32(OFFSET.length, true);
  if (length === 0 || length > MAX_STATUS_PAYLOAD_BYTES || HEADER_BYTES + length > bytes.length) return { kind: 'corrupt', reason: `payload length ${length} is out of range` };
  if (view.getUint32(OFFSET.crc, true) !== checksum(bytes, length)) return { kind: 'corrupt', reason: 'CRC32C does not match (a torn or damaged write)' };
  const counter = view.getBigUint64(OFFSET.counter, true);
  if (counter > BigInt(Number.MAX_SAFE_INTEGER)) return { kind: 'corrupt', reason: `counter ${counter} exceeds 2^53 - 1` };
  try {
    return { kind: 'status', counter: Number(counter), payload: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + length))) };
  } catch (error) {
    return { kind: 'corrupt', reason: `payload is not UTF-8 JSON: ${String(error)}` };
  }
}

/** The newer valid slot of the region; 'absent' when neither was ever written. */
export async function readStatusRegion(region: BlockRegion): Promise<DecodedStatusSlot> {
  const slots = [decodeStatusSlot(await region.read(0, STATUS_SLOT_BYTES)), decodeStatusSlot(await region.read(STATUS_SLOT_BYTES, STATUS_SLOT_BYTES))];
  const valid = slots.filter((s): s is Extract<DecodedStatusSlot, { kind: 'status' }> => s.kind === 'status');
  if (valid.length > 0) return valid.reduce((a, b) => (b.counter > a.counter ? b : a));
  return slots.find((s) => s.kind === 'corrupt') ?? { kind: 'absent' };
}

/** Writes `payload` as status number `counter`, into slot counter % 2. */
export async function writeStatusRegion(region: BlockRegion, counter: number, payload: unknown): Promise<void> {
  const slot = encodeStatusSlot(counter, payload, region.allocateBuffer(STATUS_SLOT_BYTES));
  await region.write((counter % 2) * STATUS_SLOT_BYTES, slot);
}
