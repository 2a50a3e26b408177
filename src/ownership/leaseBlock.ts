// The 4096-byte lease block: pure encode and decode, no I/O. hostLease.ts owns the
// protocol; this file owns the bytes. Little-endian.
//
//   offset  size  field
//        0     8  magic, ASCII "TLVLEASE"
//        8     4  format version, u32 = 1
//       12     4  state, u32: 1 = held, 2 = released
//       16     8  counter, u64 (at most 2^53 - 1, so it stays exact in a JS number)
//       24    16  ownerId: 16 lowercase hex chars, drawn afresh at every acquisition
//       40     2  leaseId length in bytes, u16 (1..64)
//       42     2  holder length in bytes, u16 (0..128)
//       44    64  leaseId, printable ASCII, zero padded (thinlv: the journal LV's uuid)
//      108   128  holder, UTF-8, zero padded (informational: "hostA pid 1234")
//      236   272  reserved, zero
//      508     4  CRC32C of bytes 0..507
//      512  3584  zero when written, ignored when read
//
// Everything that matters sits in the first 512 bytes, one sector: on a device that
// writes sectors atomically, a torn 4 KiB write leaves either the old or the new
// lease, never a mix. Readers never trust a block without its magic and CRC.

import { crc32c } from '../../journal/index.js';
import { assert } from '../errors.js';

export const LEASE_BLOCK_BYTES = 4096;
/** The prefix that holds every field and the CRC. */
export const LEASE_MEANINGFUL_BYTES = 512;
export const LEASE_MAGIC = 'TLVLEASE';
export const LEASE_FORMAT_VERSION = 1;
export const MAX_LEASE_ID_BYTES = 64;
export const MAX_LEASE_HOLDER_BYTES = 128;
export const OWNER_ID_PATTERN = /^[0-9a-f]{16}$/;

const LEASE_ID_PATTERN = /^[\x21-\x7e]+$/;
const OFFSET = {
  magic: 0,
  version: 8,
  state: 12,
  counter: 16,
  ownerId: 24,
  leaseIdLength: 40,
  holderLength: 42,
  leaseId: 44,
  holder: 108,
  reserved: 236,
  crc: 508,
} as const;
const OWNER_ID_BYTES = 16;
const STATE_CODE = { held: 1, released: 2 } as const;

export type LeaseState = keyof typeof STATE_CODE;

export interface LeaseBlock {
  readonly state: LeaseState;
  readonly counter: number;
  readonly ownerId: string;
  readonly leaseId: string;
  readonly holder: string;
}

export type DecodedLeaseBlock =
  | { readonly kind: 'absent' }
  | { readonly kind: 'corrupt'; readonly reason: string }
  | ({ readonly kind: 'lease' } & LeaseBlock);

const MAGIC_BYTES = new TextEncoder().encode(LEASE_MAGIC);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Why `leaseId` cannot be stored, or undefined when it can. */
export function leaseIdProblem(leaseId: string): string | undefined {
  if (leaseId.length === 0) return 'lease id is empty';
  if (leaseId.length > MAX_LEASE_ID_BYTES) return `lease id is longer than ${MAX_LEASE_ID_BYTES} characters`;
  if (!LEASE_ID_PATTERN.test(leaseId)) return `lease id "${leaseId}" must be printable ASCII without spaces`;
  return undefined;
}

/** Why `holder` cannot be stored, or undefined when it can. */
export function holderProblem(holder: string): string | undefined {
  const bytes = new TextEncoder().encode(holder);
  if (bytes.length > MAX_LEASE_HOLDER_BYTES) return `holder description is ${bytes.length} UTF-8 bytes, more than ${MAX_LEASE_HOLDER_BYTES}`;
  // A lone surrogate would be stored as U+FFFD and read back as a different string.
  if (utf8Decoder.decode(bytes) !== holder) return 'holder description is not valid Unicode';
  return undefined;
}

function blockProblem(block: LeaseBlock): string | undefined {
  if (!Number.isSafeInteger(block.counter) || block.counter < 0) return `counter ${block.counter} is not a safe non-negative integer`;
  if (!OWNER_ID_PATTERN.test(block.ownerId)) return `owner id "${block.ownerId}" is not 16 lowercase hex chars`;
  if (STATE_CODE[block.state] === undefined) return `state "${String(block.state)}" is neither held nor released`;
  return leaseIdProblem(block.leaseId) ?? holderProblem(block.holder);
}

/**
 * Writes `block` into `target` (4096 bytes, typically from region.allocateBuffer)
 * and returns it. A block that could not be read back is a bug, so it asserts.
 */
export function encodeLeaseBlock(block: LeaseBlock, target: Uint8Array = new Uint8Array(LEASE_BLOCK_BYTES)): Uint8Array {
  assert(target.length === LEASE_BLOCK_BYTES, `lease block buffer must be ${LEASE_BLOCK_BYTES} bytes`, { lengthBytes: target.length });
  const problem = blockProblem(block);
  assert(problem === undefined, `refusing to encode an invalid lease block: ${problem}`, { block });
  target.fill(0);
  const view = new DataView(target.buffer, target.byteOffset, LEASE_MEANINGFUL_BYTES);
  const encoder = new TextEncoder();
  const leaseIdBytes = encoder.encode(block.leaseId);
  const holderBytes = encoder.encode(block.holder);
  target.set(MAGIC_BYTES, OFFSET.magic);
  view.setUint32(OFFSET.version, LEASE_FORMAT_VERSION, true);
  view.setUint32(OFFSET.state, STATE_CODE[block.state], true);
  view.setBigUint64(OFFSET.counter, BigInt(block.counter), true);
  target.set(encoder.encode(block.ownerId), OFFSET.ownerId);
  view.setUint16(OFFSET.leaseIdLength, leaseIdBytes.length, true);
  view.setUint16(OFFSET.holderLength, holderBytes.length, true);
  target.set(leaseIdBytes, OFFSET.leaseId);
  target.set(holderBytes, OFFSET.holder);
  view.setUint32(OFFSET.crc, crc32c(target.subarray(0, OFFSET.crc)), true);
  // Pair assertion: what we are about to write must read back as what we meant.
  const readBack = decodeLeaseBlock(target);
  assert(readBack.kind === 'lease' && sameFields(readBack, block), 'lease block does not decode to what was encoded', { block });
  return target;
}

function sameFields(a: LeaseBlock, b: LeaseBlock): boolean {
  return a.state === b.state && a.counter === b.counter && a.ownerId === b.ownerId && a.leaseId === b.leaseId && a.holder === b.holder;
}

/** Decodes the first 512 bytes of a lease block read from disk; never throws on bad data. */
export function decodeLeaseBlock(bytes: Uint8Array): DecodedLeaseBlock {
  assert(bytes.length >= LEASE_MEANINGFUL_BYTES, `a lease block read must hold at least ${LEASE_MEANINGFUL_BYTES} bytes`, { lengthBytes: bytes.length });
  // No magic means nothing of ours was ever written here (zeros, fresh extents, old data).
  if (!MAGIC_BYTES.every((byte, index) => bytes[OFFSET.magic + index] === byte)) return { kind: 'absent' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, LEASE_MEANINGFUL_BYTES);
  const storedCrc = view.getUint32(OFFSET.crc, true);
  const computedCrc = crc32c(bytes.subarray(0, OFFSET.crc));
  if (storedCrc !== computedCrc) return corrupt(`CRC32C ${hex(storedCrc)} does not match the contents (${hex(computedCrc)})`);
  const version = view.getUint32(OFFSET.version, true);
  if (version !== LEASE_FORMAT_VERSION) return corrupt(`format version ${version} is not ${LEASE_FORMAT_VERSION}`);
  return decodeFields(bytes, view);
}

function decodeFields(bytes: Uint8Array, view: DataView): DecodedLeaseBlock {
  const stateCode = view.getUint32(OFFSET.state, true);
  const state = stateCode === STATE_CODE.held ? 'held' : stateCode === STATE_CODE.released ? 'released' : undefined;
  if (state === undefined) return corrupt(`state ${stateCode} is neither held (1) nor released (2)`);
  const bigCounter = view.getBigUint64(OFFSET.counter, true);
  if (bigCounter > BigInt(Number.MAX_SAFE_INTEGER)) return corrupt(`counter ${bigCounter} exceeds 2^53 - 1`);
  const leaseIdLength = view.getUint16(OFFSET.leaseIdLength, true);
  const holderLength = view.getUint16(OFFSET.holderLength, true);
  if (leaseIdLength > MAX_LEASE_ID_BYTES) return corrupt(`lease id length ${leaseIdLength} exceeds ${MAX_LEASE_ID_BYTES}`);
  if (holderLength > MAX_LEASE_HOLDER_BYTES) return corrupt(`holder length ${holderLength} exceeds ${MAX_LEASE_HOLDER_BYTES}`);
  if (!paddingIsZero(bytes, OFFSET.leaseId + leaseIdLength, OFFSET.holder) || !paddingIsZero(bytes, OFFSET.holder + holderLength, OFFSET.crc)) {
    return corrupt('padding or reserved bytes are not zero');
  }
  let ownerId: string;
  let leaseId: string;
  let holder: string;
  try {
    ownerId = utf8Decoder.decode(bytes.subarray(OFFSET.ownerId, OFFSET.ownerId + OWNER_ID_BYTES));
    leaseId = utf8Decoder.decode(bytes.subarray(OFFSET.leaseId, OFFSET.leaseId + leaseIdLength));
    holder = utf8Decoder.decode(bytes.subarray(OFFSET.holder, OFFSET.holder + holderLength));
  } catch {
    return corrupt('a text field is not valid UTF-8');
  }
  const block: LeaseBlock = { state, counter: Number(bigCounter), ownerId, leaseId, holder };
  const problem = blockProblem(block);
  if (problem !== undefined) return corrupt(problem);
  return { kind: 'lease', ...block };
}

function paddingIsZero(bytes: Uint8Array, startOffset: number, endOffset: number): boolean {
  for (let offset = startOffset; offset < endOffset; offset++) if (bytes[offset] !== 0) return false;
  return true;
}

const corrupt = (reason: string): DecodedLeaseBlock => ({ kind: 'corrupt', reason });
const hex = (value: number): string => `0x${value.toString(16).padStart(8, '0')}`;
