// Byte layout of the three kinds of block on disk (FORMAT.md has the tables). Pure:
// encoders fill caller-provided buffers, decoders return a value or a reason.
// All integers are little-endian; u64 fields are exposed as JS numbers and must be
// <= Number.MAX_SAFE_INTEGER.

import {
  BLOCK_BYTES,
  DATA_OFFSET_BYTES,
  FORMAT_VERSION,
  MAX_PAYLOAD_BYTES,
  MAX_RECORD_BYTES,
  MAX_RING_BYTES,
  MAX_RING_ID_BYTES,
  MIN_RING_BYTES,
  RECORD_HEADER_BYTES,
  RECORD_VERSION,
} from './constants.js';
import { crc32c, crc32cUpdate } from './crc32c.js';
import { assert } from './errors.js';

/** "THINLVRG" */
export const HEADER_MAGIC = Uint8Array.from([0x54, 0x48, 0x49, 0x4e, 0x4c, 0x56, 0x52, 0x47]);
/** "TLVCONSU" */
export const CONSUMER_MAGIC = Uint8Array.from([0x54, 0x4c, 0x56, 0x43, 0x4f, 0x4e, 0x53, 0x55]);
/** "TLVR" read as a little-endian u32. */
export const RECORD_MAGIC = 0x52564c54;

const HEADER_CRC_OFFSET = BLOCK_BYTES - 4;
const CONSUMER_CRC_OFFSET = 60;
const RECORD_CRC_OFFSET = RECORD_HEADER_BYTES - 4;
const RING_ID_OFFSET = 128;

export interface RingHeader {
  readonly formatVersion: number;
  readonly blockBytes: number;
  readonly ringBytes: number;
  readonly dataOffsetBytes: number;
  readonly maxRecordBytes: number;
  /** Random per createRing: records and consumer blocks of an earlier ring on the same region never match. */
  readonly ringNonce: bigint;
  readonly createdAtMs: number;
  readonly ringId: string;
}

export interface ConsumerState {
  /** Every record with seq <= consumedSeq may be overwritten. 0 means nothing consumed. */
  readonly consumedSeq: number;
  /** Offset (from the start of the region) where record consumedSeq + 1 starts. */
  readonly nextRecordOffsetBytes: number;
  /** Epoch of record consumedSeq (0 when nothing was consumed); record consumedSeq + 1 must not be older. */
  readonly consumedEpoch: number;
  /** Counts consumer-block writes, for diagnostics only. */
  readonly updateCount: number;
}

export interface RecordHeader {
  readonly recordVersion: number;
  readonly seq: number;
  readonly epoch: number;
  readonly ringNonce: bigint;
  readonly payloadBytes: number;
  readonly recordBlocks: number;
}

function view(buffer: Uint8Array): DataView {
  return new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function setSafeU64(dv: DataView, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'u64 fields hold safe non-negative integers');
  dv.setBigUint64(offset, BigInt(value), true);
}

/** Reads a u64; returns undefined when it does not fit a JS number (never true for a valid block). */
function getSafeU64(dv: DataView, offset: number): number | undefined {
  const value = dv.getBigUint64(offset, true);
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Blocks a record of `payloadBytes` occupies: header plus payload, rounded up to whole blocks. */
export function recordBlocksFor(payloadBytes: number): number {
  return Math.ceil((RECORD_HEADER_BYTES + payloadBytes) / BLOCK_BYTES);
}

/**
 * The wrap rule. A record starts at `offsetBytes` only if a maximal record fits
 * between there and the end of the ring; otherwise it starts at the data area's
 * first block. Readers apply the same rule, so no wrap marker is written and no
 * record ever straddles the end.
 */
export function recordStartAt(header: RingHeader, offsetBytes: number): number {
  return header.ringBytes - offsetBytes < header.maxRecordBytes ? header.dataOffsetBytes : offsetBytes;
}

/** True when a record may start here: inside the data area, block aligned, not in the wrap gap. */
export function isRecordStart(header: RingHeader, offsetBytes: number): boolean {
  return (
    Number.isSafeInteger(offsetBytes) &&
    offsetBytes >= header.dataOffsetBytes &&
    offsetBytes % header.blockBytes === 0 &&
    header.ringBytes - offsetBytes >= header.maxRecordBytes
  );
}

// ---- ring header (block 0) ----

export function encodeRingHeader(header: RingHeader, block: Uint8Array): void {
  assert(block.length === BLOCK_BYTES, 'header block buffer must be one block');
  block.fill(0);
  const dv = view(block);
  block.set(HEADER_MAGIC, 0);
  dv.setUint32(8, header.formatVersion, true);
  dv.setUint32(12, header.blockBytes, true);
  setSafeU64(dv, 16, header.ringBytes);
  setSafeU64(dv, 24, header.dataOffsetBytes);
  dv.setUint32(32, header.maxRecordBytes, true);
  dv.setBigUint64(40, header.ringNonce, true);
  setSafeU64(dv, 48, header.createdAtMs);
  const idBytes = new TextEncoder().encode(header.ringId);
  assert(idBytes.length > 0 && idBytes.length <= MAX_RING_ID_BYTES, 'ring id length checked by the caller');
  dv.setUint8(56, idBytes.length);
  block.set(idBytes, RING_ID_OFFSET);
  dv.setUint32(HEADER_CRC_OFFSET, crc32c(block.subarray(0, HEADER_CRC_OFFSET)), true);
}

export type HeaderDecodeResult =
  | { readonly kind: 'ok'; readonly header: RingHeader }
  | { readonly kind: 'not-a-ring' }
  | { readonly kind: 'other-version'; readonly formatVersion: number }
  | { readonly kind: 'corrupt'; readonly reason: string };

export function decodeRingHeader(block: Uint8Array): HeaderDecodeResult {
  assert(block.length === BLOCK_BYTES, 'header block buffer must be one block');
  if (!bytesEqual(block.subarray(0, 8), HEADER_MAGIC)) return { kind: 'not-a-ring' };
  const dv = view(block);
  // The version sits right after the magic in every version, so it is checked
  // before the CRC: a later version may cover different bytes.
  const formatVersion = dv.getUint32(8, true);
  if (formatVersion !== FORMAT_VERSION) return { kind: 'other-version', formatVersion };
  if (dv.getUint32(HEADER_CRC_OFFSET, true) !== crc32c(block.subarray(0, HEADER_CRC_OFFSET))) {
    return { kind: 'corrupt', reason: 'header CRC32C mismatch' };
  }
  const blockBytes = dv.getUint32(12, true);
  const ringBytes = getSafeU64(dv, 16);
  const dataOffsetBytes = getSafeU64(dv, 24);
  const maxRecordBytes = dv.getUint32(32, true);
  const createdAtMs = getSafeU64(dv, 48);
  const idLength = dv.getUint8(56);
  if (blockBytes !== BLOCK_BYTES) return { kind: 'corrupt', reason: `block size ${blockBytes}, expected ${BLOCK_BYTES}` };
  if (dataOffsetBytes !== DATA_OFFSET_BYTES) return { kind: 'corrupt', reason: `data offset ${dataOffsetBytes}, expected ${DATA_OFFSET_BYTES}` };
  if (maxRecordBytes !== MAX_RECORD_BYTES) return { kind: 'corrupt', reason: `max record size ${maxRecordBytes}, expected ${MAX_RECORD_BYTES}` };
  if (ringBytes === undefined || ringBytes % BLOCK_BYTES !== 0 || ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES) {
    return { kind: 'corrupt', reason: `ring size ${String(ringBytes)} is not valid` };
  }
  if (createdAtMs === undefined) return { kind: 'corrupt', reason: 'creation time out of range' };
  if (idLength === 0 || idLength > MAX_RING_ID_BYTES) return { kind: 'corrupt', reason: `ring id length ${idLength}` };
  const ringId = new TextDecoder().decode(block.subarray(RING_ID_OFFSET, RING_ID_OFFSET + idLength));
  return {
    kind: 'ok',
    header: {
      formatVersion,
      blockBytes,
      ringBytes,
      dataOffsetBytes,
      maxRecordBytes,
      ringNonce: dv.getBigUint64(40, true),
      createdAtMs,
      ringId,
    },
  };
}

// ---- consumer block (block 1) ----
// Every field sits in the first 64 bytes, inside the first 512-byte sector, so a
// torn write of this block leaves either the old or the new state on any device
// that writes a sector atomically.

export function encodeConsumerBlock(header: RingHeader, state: ConsumerState, block: Uint8Array): void {
  assert(block.length === BLOCK_BYTES, 'consumer block buffer must be one block');
  assert(isRecordStart(header, state.nextRecordOffsetBytes), () => `consumer next offset ${state.nextRecordOffsetBytes} must be a record start`);
  block.fill(0);
  const dv = view(block);
  block.set(CONSUMER_MAGIC, 0);
  dv.setUint32(8, FORMAT_VERSION, true);
  dv.setBigUint64(16, header.ringNonce, true);
  setSafeU64(dv, 24, state.consumedSeq);
  setSafeU64(dv, 32, state.nextRecordOffsetBytes);
  setSafeU64(dv, 40, state.consumedEpoch);
  setSafeU64(dv, 48, state.updateCount);
  dv.setUint32(CONSUMER_CRC_OFFSET, crc32c(block.subarray(0, CONSUMER_CRC_OFFSET)), true);
}

export type ConsumerDecodeResult =
  | { readonly kind: 'ok'; readonly state: ConsumerState }
  | { readonly kind: 'corrupt'; readonly reason: string };

export function decodeConsumerBlock(header: RingHeader, block: Uint8Array): ConsumerDecodeResult {
  assert(block.length === BLOCK_BYTES, 'consumer block buffer must be one block');
  if (!bytesEqual(block.subarray(0, 8), CONSUMER_MAGIC)) return { kind: 'corrupt', reason: 'consumer magic missing' };
  const dv = view(block);
  if (dv.getUint32(CONSUMER_CRC_OFFSET, true) !== crc32c(block.subarray(0, CONSUMER_CRC_OFFSET))) {
    return { kind: 'corrupt', reason: 'consumer CRC32C mismatch' };
  }
  if (dv.getUint32(8, true) !== FORMAT_VERSION) return { kind: 'corrupt', reason: `consumer format version ${dv.getUint32(8, true)}` };
  if (dv.getBigUint64(16, true) !== header.ringNonce) {
    return { kind: 'corrupt', reason: 'consumer block belongs to an earlier ring on this region (nonce mismatch)' };
  }
  const consumedSeq = getSafeU64(dv, 24);
  const nextRecordOffsetBytes = getSafeU64(dv, 32);
  const consumedEpoch = getSafeU64(dv, 40);
  const updateCount = getSafeU64(dv, 48);
  if (consumedSeq === undefined || nextRecordOffsetBytes === undefined || consumedEpoch === undefined || updateCount === undefined) {
    return { kind: 'corrupt', reason: 'consumer field exceeds Number.MAX_SAFE_INTEGER' };
  }
  if (!isRecordStart(header, nextRecordOffsetBytes)) {
    return { kind: 'corrupt', reason: `consumer next offset ${nextRecordOffsetBytes} is not a record start` };
  }
  return { kind: 'ok', state: { consumedSeq, nextRecordOffsetBytes, consumedEpoch, updateCount } };
}

// ---- records ----

/**
 * Writes header and payload of one record into `target` (whole blocks, already
 * zeroed past the payload by the caller or zeroed here) and returns its block count.
 */
export function encodeRecord(
  target: Uint8Array,
  fields: { seq: number; epoch: number; ringNonce: bigint },
  payload: Uint8Array,
): number {
  assert(payload.length <= MAX_PAYLOAD_BYTES, 'payload size checked at append');
  const recordBlocks = recordBlocksFor(payload.length);
  const recordBytes = recordBlocks * BLOCK_BYTES;
  assert(target.length >= recordBytes, 'record target too small');
  const dv = view(target);
  dv.setUint32(0, RECORD_MAGIC, true);
  dv.setUint16(4, RECORD_VERSION, true);
  dv.setUint16(6, RECORD_HEADER_BYTES, true);
  setSafeU64(dv, 8, fields.seq);
  setSafeU64(dv, 16, fields.epoch);
  dv.setBigUint64(24, fields.ringNonce, true);
  dv.setUint32(32, payload.length, true);
  dv.setUint32(36, recordBlocks, true);
  target.fill(0, 40, RECORD_CRC_OFFSET);
  target.set(payload, RECORD_HEADER_BYTES);
  // Padding is zeroed so that a record's bytes are deterministic; it is not covered by the CRC.
  target.fill(0, RECORD_HEADER_BYTES + payload.length, recordBytes);
  const crc = crc32cUpdate(crc32c(target.subarray(0, RECORD_CRC_OFFSET)), payload);
  dv.setUint32(RECORD_CRC_OFFSET, crc, true);
  return recordBlocks;
}

export type RecordHeaderResult =
  | { readonly kind: 'ok'; readonly header: RecordHeader }
  | { readonly kind: 'invalid'; readonly reason: 'empty' | 'no-magic' | 'bad-fields' | 'other-ring' }
  | { readonly kind: 'unknown-version'; readonly recordVersion: number; readonly seq: number | undefined; readonly epoch: number | undefined };

/** Checks the fixed fields of a record header (not the CRC, which needs the payload). */
export function decodeRecordHeader(ring: RingHeader, block: Uint8Array): RecordHeaderResult {
  assert(block.length >= RECORD_HEADER_BYTES, 'record header needs 64 bytes');
  const dv = view(block);
  const magic = dv.getUint32(0, true);
  if (magic !== RECORD_MAGIC) {
    return { kind: 'invalid', reason: magic === 0 && dv.getUint32(4, true) === 0 ? 'empty' : 'no-magic' };
  }
  if (dv.getBigUint64(24, true) !== ring.ringNonce) return { kind: 'invalid', reason: 'other-ring' };
  const recordVersion = dv.getUint16(4, true);
  const seq = getSafeU64(dv, 8);
  if (recordVersion !== RECORD_VERSION) return { kind: 'unknown-version', recordVersion, seq, epoch: getSafeU64(dv, 16) };
  const epoch = getSafeU64(dv, 16);
  const payloadBytes = dv.getUint32(32, true);
  const recordBlocks = dv.getUint32(36, true);
  if (
    dv.getUint16(6, true) !== RECORD_HEADER_BYTES ||
    seq === undefined ||
    seq === 0 ||
    epoch === undefined ||
    payloadBytes > ring.maxRecordBytes - RECORD_HEADER_BYTES ||
    recordBlocks !== recordBlocksFor(payloadBytes)
  ) {
    return { kind: 'invalid', reason: 'bad-fields' };
  }
  return { kind: 'ok', header: { recordVersion, seq, epoch, ringNonce: ring.ringNonce, payloadBytes, recordBlocks } };
}

/** True when the CRC stored in `record` (header first, then payload) matches its bytes. */
export function recordCrcMatches(record: Uint8Array, payloadBytes: number): boolean {
  const dv = view(record);
  const stored = dv.getUint32(RECORD_CRC_OFFSET, true);
  const computed = crc32cUpdate(
    crc32c(record.subarray(0, RECORD_CRC_OFFSET)),
    record.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + payloadBytes),
  );
  return stored === computed;
}

/**
 * The part of the record layout every version keeps: magic, version, header size at
 * 6, seq at 8, epoch at 16, ring nonce at 24, payload size at 32, block count at 36,
 * and a CRC32C in the last 4
 * header bytes over the rest of the header and the payload. It lets a reader tell a
 * record of a newer version (CRC holds) from a damaged one (a flipped version bit).
 */
export function claimedRecordBlocks(ring: RingHeader, firstBlock: Uint8Array): number | undefined {
  const recordBlocks = view(firstBlock).getUint32(36, true);
  return recordBlocks >= 1 && recordBlocks * BLOCK_BYTES <= ring.maxRecordBytes ? recordBlocks : undefined;
}

export function futureRecordIntact(record: Uint8Array): boolean {
  const dv = view(record);
  const headerBytes = dv.getUint16(6, true);
  const payloadBytes = dv.getUint32(32, true);
  const recordBlocks = dv.getUint32(36, true);
  if (headerBytes < 40 || headerBytes > BLOCK_BYTES || headerBytes % 4 !== 0) return false;
  if (recordBlocks * BLOCK_BYTES !== record.length || recordBlocks !== Math.ceil((headerBytes + payloadBytes) / BLOCK_BYTES)) return false;
  const crc = crc32cUpdate(crc32c(record.subarray(0, headerBytes - 4)), record.subarray(headerBytes, headerBytes + payloadBytes));
  return dv.getUint32(headerBytes - 4, true) === crc;
}
