// Reads a thinlv ring from disk as journal/FORMAT.md specifies it: the header, the
// consumer block and the chain of records the validity rule accepts. Independent
// of journal/: its own byte decoding and CRC32C. Plain positioned reads on a fresh
// descriptor (a checker may read through the page cache).

import { closeSync, openSync, readSync } from 'node:fs';
import { crc32c } from './crc32c.js';

const BLOCK = 4096;
const DATA_OFFSET = 8192;
const MAX_RECORD = 65536;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const HEADER_MAGIC = 'THINLVRG';
const CONSUMER_MAGIC = 'TLVCONSU';
const RECORD_MAGIC = 0x52564c54;

export interface RingOnDisk {
  readonly ringId: string;
  readonly ringBytes: number;
  /** Full 64 bits: compared, never converted to a double. */
  readonly ringNonce: bigint;
  readonly consumedSeq: number;
  readonly nextRecordOffsetBytes: number;
  readonly consumedEpoch: number;
}

export interface ChainRecord {
  readonly seq: number;
  readonly epoch: number;
  readonly offsetBytes: number;
  readonly payload: Uint8Array;
}

export type StopReason = 'empty' | 'no-magic' | 'other-ring' | 'bad-fields' | 'seq-mismatch' | 'older-epoch' | 'bad-crc' | 'record-version';

export interface ChainRead {
  readonly ring: RingOnDisk;
  /** Every record of the chain from the consumer position, in order. */
  readonly records: readonly ChainRecord[];
  readonly stopReason: StopReason;
  readonly stopOffsetBytes: number;
}

export class RingFormatError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function u64(dv: DataView, offset: number): number | undefined {
  const value = dv.getBigUint64(offset, true);
  return value <= MAX_SAFE ? Number(value) : undefined;
}
const ascii = (bytes: Uint8Array): string => String.fromCharCode(...bytes);
const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Reads [offset, offset + length) of the region; the whole region is read once, so it stays one snapshot. */
function readRegion(device: string, offsetBytes: number, lengthBytes: number): Uint8Array {
  const fd = openSync(device, 'r');
  try {
    const buffer = new Uint8Array(lengthBytes);
    let done = 0;
    while (done < lengthBytes) {
      const n = readSync(fd, buffer, done, lengthBytes - done, offsetBytes + done);
      if (n <= 0) throw new RingFormatError('IO_ERROR', `short read on ${device} at ${offsetBytes + done}`);
      done += n;
    }
    return buffer;
  } finally {
    closeSync(fd);
  }
}

function decodeHeader(region: Uint8Array, expectedRingId: string): { ringBytes: number; ringNonce: bigint; ringId: string } {
  const block = region.subarray(0, BLOCK);
  const dv = view(block);
  if (ascii(block.subarray(0, 8)) !== HEADER_MAGIC) throw new RingFormatError('NOT_A_RING', 'ring header magic missing');
  if (dv.getUint32(8, true) !== 1) throw new RingFormatError('RING_VERSION', `ring format version ${dv.getUint32(8, true)}`);
  if (dv.getUint32(4092, true) !== crc32c(block.subarray(0, 4092))) throw new RingFormatError('HEADER_CORRUPT', 'header CRC');
  const ringBytes = u64(dv, 16);
  const idBytes = dv.getUint8(56);
  if (dv.getUint32(12, true) !== BLOCK || u64(dv, 24) !== DATA_OFFSET || dv.getUint32(32, true) !== MAX_RECORD) throw new RingFormatError('HEADER_CORRUPT', 'header constants');
  if (ringBytes === undefined || ringBytes % BLOCK !== 0 || ringBytes < 256 * 1024 || ringBytes > 1024 ** 3) throw new RingFormatError('HEADER_CORRUPT', 'ring size');
  if (u64(dv, 48) === undefined || idBytes < 1 || idBytes > 64) throw new RingFormatError('HEADER_CORRUPT', 'creation time or id length');
  const ringId = ascii(block.subarray(128, 128 + idBytes));
  if (ringId !== expectedRingId) throw new RingFormatError('RING_ID_MISMATCH', `ring id ${ringId}, expected ${expectedRingId}`);
  if (ringBytes !== region.length) throw new RingFormatError('REGION_INVALID', `ring of ${ringBytes} bytes on a region of ${region.length}`);
  return { ringBytes, ringNonce: dv.getBigUint64(40, true), ringId };
}

const isRecordStart = (ringBytes: number, offset: number): boolean => offset >= DATA_OFFSET && offset % BLOCK === 0 && ringBytes - offset >= MAX_RECORD;
const wrap = (ringBytes: number, end: number): number => (ringBytes - end >= MAX_RECORD ? end : DATA_OFFSET);

function decodeConsumer(region: Uint8Array, ringBytes: number, ringNonce: bigint): Pick<RingOnDisk, 'consumedSeq' | 'nextRecordOffsetBytes' | 'consumedEpoch'> {
  const block = region.subarray(BLOCK, 2 * BLOCK);
  const dv = view(block);
  const bad = (why: string): never => {
    throw new RingFormatError('CONSUMER_CORRUPT', why);
  };
  if (ascii(block.subarray(0, 8)) !== CONSUMER_MAGIC) bad('consumer magic');
  if (dv.getUint32(60, true) !== crc32c(block.subarray(0, 60))) bad('consumer CRC');
  if (dv.getUint32(8, true) !== 1) bad('consumer version');
  if (dv.getBigUint64(16, true) !== ringNonce) bad('consumer nonce');
  const consumedSeq = u64(dv, 24);
  const next = u64(dv, 32);
  const epoch = u64(dv, 40);
  if (consumedSeq === undefined || next === undefined || epoch === undefined || u64(dv, 48) === undefined) return bad('consumer field too large');
  if (!isRecordStart(ringBytes, next)) bad(`consumer offset ${next}`);
  return { consumedSeq, nextRecordOffsetBytes: next, consumedEpoch: epoch };
}

type Step = { kind: 'record'; record: ChainRecord; blocks: number } | { kind: 'stop'; reason: StopReason };

/** The validity rule of FORMAT.md, steps 1 to 7, in that order. */
function nextRecord(region: Uint8Array, ringBytes: number, nonce: bigint, offset: number, seq: number, epoch: number): Step {
  const dv = view(region.subarray(offset, offset + BLOCK));
  if (dv.getUint32(0, true) !== RECORD_MAGIC) return { kind: 'stop', reason: dv.getUint32(0, true) === 0 && dv.getUint32(4, true) === 0 ? 'empty' : 'no-magic' };
  if (dv.getBigUint64(24, true) !== nonce) return { kind: 'stop', reason: 'other-ring' };
  const version = dv.getUint16(4, true);
  if (version !== 1) {
    const blocks = dv.getUint32(36, true);
    if (blocks < 1 || blocks * BLOCK > MAX_RECORD) return { kind: 'stop', reason: 'bad-crc' };
    const headerBytes = dv.getUint16(6, true);
    const payloadBytes = dv.getUint32(32, true);
    const record = region.subarray(offset, offset + blocks * BLOCK);
    const intact =
      headerBytes >= 40 && headerBytes <= BLOCK && headerBytes % 4 === 0 && blocks === Math.ceil((headerBytes + payloadBytes) / BLOCK) &&
      view(record).getUint32(headerBytes - 4, true) === crc32c(record.subarray(0, headerBytes - 4), record.subarray(headerBytes, headerBytes + payloadBytes));
    if (!intact) return { kind: 'stop', reason: 'bad-crc' };
    const s = u64(dv, 8);
    const e = u64(dv, 16);
    return { kind: 'stop', reason: s === seq + 1 && e !== undefined && e >= epoch ? 'record-version' : 'seq-mismatch' };
  }
  const s = u64(dv, 8);
  const e = u64(dv, 16);
  const payloadBytes = dv.getUint32(32, true);
  const blocks = dv.getUint32(36, true);
  if (dv.getUint16(6, true) !== 64 || s === undefined || s === 0 || e === undefined || payloadBytes > MAX_RECORD - 64 || blocks !== Math.ceil((64 + payloadBytes) / BLOCK)) {
    return { kind: 'stop', reason: 'bad-fields' };
  }
  if (s !== seq + 1) return { kind: 'stop', reason: 'seq-mismatch' };
  if (e < epoch) return { kind: 'stop', reason: 'older-epoch' };
  const record = region.subarray(offset, offset + blocks * BLOCK);
  if (view(record).getUint32(60, true) !== crc32c(record.subarray(0, 60), record.subarray(64, 64 + payloadBytes))) return { kind: 'stop', reason: 'bad-crc' };
  void ringBytes;
  return { kind: 'record', record: { seq: s, epoch: e, offsetBytes: offset, payload: record.slice(64, 64 + payloadBytes) }, blocks };
}

/** Reads the ring at `offsetBytes` of `device` and walks its chain from the consumer position. */
export function readRingChain(device: string, offsetBytes: number, lengthBytes: number, expectedRingId: string, maxRecords = 1_000_000): ChainRead {
  const region = readRegion(device, offsetBytes, lengthBytes);
  const { ringBytes, ringNonce, ringId } = decodeHeader(region, expectedRingId);
  const consumer = decodeConsumer(region, ringBytes, ringNonce);
  const records: ChainRecord[] = [];
  let offset = consumer.nextRecordOffsetBytes;
  let seq = consumer.consumedSeq;
  let epoch = consumer.consumedEpoch;
  let stopReason: StopReason = 'empty';
  while (records.length < maxRecords) {
    const step = nextRecord(region, ringBytes, ringNonce, offset, seq, epoch);
    if (step.kind === 'stop') {
      stopReason = step.reason;
      break;
    }
    records.push(step.record);
    seq = step.record.seq;
    epoch = step.record.epoch;
    offset = wrap(ringBytes, offset + step.blocks * BLOCK);
  }
  return { ring: { ringId, ringBytes, ringNonce, ...consumer }, records, stopReason, stopOffsetBytes: offset };
}
