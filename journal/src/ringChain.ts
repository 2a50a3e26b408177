// Reading a ring: the checks both the writer and the reader apply. Keeping them in
// one place is what makes the two sides agree on where the log ends.
//
//   region:  | header | consumer | rec s+1 | rec s+2 | ... | rec t | (free) ... | wrap gap |
//            block 0   block 1    ^ consumer.nextRecordOffsetBytes
//
// The chain starts at the consumer block's position and follows records while each
// one is valid and carries the next sequence number (isNextInChain). Both the writer
// (to find its tail) and the reader (to return records) stop at the first record
// that fails; nothing after it is ever looked at.

import { BLOCK_BYTES, RECORD_HEADER_BYTES, CONSUMER_BLOCK_OFFSET_BYTES, HEADER_BLOCK_OFFSET_BYTES, MAX_RING_BYTES, MIN_RING_BYTES, READ_CHUNK_BYTES, RING_ID_PATTERN, MAX_RING_ID_BYTES, SURVEY_READS_AHEAD } from './constants.js';
import { JournalError, RingIdentityError, assert } from './errors.js';
import {
  decodeConsumerBlock,
  decodeRecordHeader,
  decodeRingHeader,
  claimedRecordBlocks,
  futureRecordIntact,
  recordCrcMatches,
  recordStartAt,
  type ConsumerState,
  type RecordHeader,
  type RingHeader,
} from './layout.js';
import type { BlockRegion } from './blockRegion.js';

export function checkRingId(ringId: string): void {
  const bytes = new TextEncoder().encode(ringId);
  if (bytes.length === 0 || bytes.length > MAX_RING_ID_BYTES || !RING_ID_PATTERN.test(ringId)) {
    throw new JournalError(
      'INVALID_ARGUMENT',
      `ring id ${JSON.stringify(ringId)} must be 1 to ${MAX_RING_ID_BYTES} characters from [A-Za-z0-9._:-]`,
      { ringId },
    );
  }
}

export function checkRegionSize(region: BlockRegion): void {
  const sizeBytes = region.sizeBytes;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes % BLOCK_BYTES !== 0 || sizeBytes < MIN_RING_BYTES || sizeBytes > MAX_RING_BYTES) {
    throw new JournalError(
      'REGION_INVALID',
      `region ${region.description} is ${sizeBytes} bytes; a ring needs a multiple of ${BLOCK_BYTES} between ${MIN_RING_BYTES} and ${MAX_RING_BYTES}`,
      { sizeBytes, minRingBytes: MIN_RING_BYTES, maxRingBytes: MAX_RING_BYTES },
    );
  }
}

/** Reads block 0 and checks it is the ring `ringId` in a format this code speaks. */
export async function readRingHeader(region: BlockRegion, ringId: string): Promise<RingHeader> {
  checkRingId(ringId);
  checkRegionSize(region);
  const decoded = decodeRingHeader(await region.read(HEADER_BLOCK_OFFSET_BYTES, BLOCK_BYTES));
  const where = region.description;
  switch (decoded.kind) {
    case 'not-a-ring':
      throw new RingIdentityError('NOT_A_RING', `${where} holds no thinlv ring (magic missing); create it with createRing or check the offset`, { region: where, ringId });
    case 'other-version':
      throw new RingIdentityError('RING_VERSION', `${where} holds a ring of format version ${decoded.formatVersion}; this code reads only version 1. Upgrade thinlv on this node`, { region: where, formatVersion: decoded.formatVersion });
    case 'corrupt':
      throw new RingIdentityError('HEADER_CORRUPT', `ring header on ${where} is damaged (${decoded.reason}); the ring cannot be trusted, recreate it with force after replaying what can be read`, { region: where, reason: decoded.reason });
    case 'ok':
      break;
  }
  const header = decoded.header;
  if (header.ringId !== ringId) {
    throw new RingIdentityError('RING_ID_MISMATCH', `${where} holds ring ${JSON.stringify(header.ringId)}, not ${JSON.stringify(ringId)}; check which LV this offset belongs to`, { region: where, expected: ringId, found: header.ringId });
  }
  if (header.ringBytes !== region.sizeBytes) {
    throw new JournalError('REGION_INVALID', `ring ${ringId} was created ${header.ringBytes} bytes long but the region is ${region.sizeBytes}; open it with its original length`, { ringBytes: header.ringBytes, regionBytes: region.sizeBytes });
  }
  return header;
}

export async function readConsumerState(region: BlockRegion, header: RingHeader): Promise<ConsumerState> {
  const decoded = decodeConsumerBlock(header, await region.read(CONSUMER_BLOCK_OFFSET_BYTES, BLOCK_BYTES));
  if (decoded.kind === 'corrupt') {
    throw new JournalError('CONSUMER_CORRUPT', `consumer block of ring ${header.ringId} on ${region.description} is damaged (${decoded.reason}); the consumed position is unknown, so neither side may proceed. Replay from LVM's applied sequence and recreate the ring`, { ringId: header.ringId, reason: decoded.reason });
  }
  return decoded.state;
}

/**
 * The buffers a chunked reader reads into, reused: the survey of a writer's open reads the
 * whole ring (16 MiB at host start-up) and a buffer per chunk would be that much memory V8
 * does not see (fileRegion.ts), waiting for a collection. At most `maxBuffers` exist: the
 * chunk being scanned, the reads ahead, and one to join a record that crosses a chunk end.
 * A region without readInto is read with read(), a buffer per chunk, as before.
 */
class ChunkBuffers {
  private readonly free: Uint8Array[] = [];
  /** Every buffer this pool made, by its memory. */
  private readonly owned = new Map<ArrayBufferLike, Uint8Array>();

  constructor(
    private readonly region: BlockRegion,
    readonly bufferBytes: number,
    private readonly maxBuffers: number,
  ) {}

  /** [offset, offset + length) of the region, in a buffer of this pool when the region can read into one. */
  async read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    if (this.region.readInto === undefined || lengthBytes > this.bufferBytes) return this.region.read(offsetBytes, lengthBytes);
    const view = this.take().subarray(0, lengthBytes);
    try {
      await this.region.readInto(offsetBytes, view);
    } catch (error) {
      this.give(view);
      throw error;
    }
    return view;
  }

  /** A buffer to fill, whole (bufferBytes long). */
  take(): Uint8Array {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    assert(this.owned.size < this.maxBuffers, () => `a chunked reader wanted more than ${this.maxBuffers} buffers`);
    const buffer = this.region.allocateBuffer(this.bufferBytes);
    this.owned.set(buffer.buffer, buffer);
    return buffer;
  }

  /** Gives back the buffer `view` lies in, when it is one of this pool's; the caller keeps no view of it. */
  give(view: Uint8Array): void {
    const buffer = this.owned.get(view.buffer);
    if (buffer === undefined || this.free.includes(buffer)) return;
    this.free.push(buffer);
  }
}

/**
 * Blocks of the data area read in large chunks; records are re-read only when they cross
 * a chunk end. The first read after creation or forget() fetches only what was asked, so
 * a reader polling a ring where nothing new was written reads one block, not a chunk.
 * With `readsAhead` (the survey, which reads every chunk in order), that many following
 * chunks are read while the current one is scanned.
 *
 * With `reuseBuffers` (a reader that lives only through an open: the survey, the writer's
 * walk to its tail), chunks are read into a few buffers used again and again, so a view
 * bytes() returns holds only until the next call of bytes().
 */
class ChunkedReader {
  private chunkStart = -1;
  private chunk: Uint8Array = new Uint8Array(0);
  private firstRead = true;
  /** Chunk reads in flight ahead of the scan, by start offset. */
  private readonly ahead = new Map<number, Promise<Uint8Array>>();
  private readonly buffers: ChunkBuffers | undefined;

  constructor(
    private readonly region: BlockRegion,
    private readonly header: RingHeader,
    private readonly readsAhead = 0,
    reuseBuffers = false,
  ) {
    // A chunk, or the rest of one joined to the next: a record crossing a chunk end starts less than a record before it.
    this.buffers = reuseBuffers ? new ChunkBuffers(region, READ_CHUNK_BYTES + header.maxRecordBytes, readsAhead + 2) : undefined;
  }

  /** Bytes [offset, offset + length), never past the end of the ring. */
  async bytes(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    assert(offsetBytes + lengthBytes <= this.header.ringBytes, 'read past the ring end');
    if (this.chunkStart < 0 || offsetBytes < this.chunkStart || offsetBytes + lengthBytes > this.chunkStart + this.chunk.length) {
      const chunkBytes = this.firstRead ? lengthBytes : Math.min(Math.max(READ_CHUNK_BYTES, lengthBytes), this.header.ringBytes - offsetBytes);
      this.firstRead = false;
      const previous = this.chunk;
      let next = await this.fromReadsAhead(offsetBytes, lengthBytes);
      // The chunk scanned so far is not needed once the next one is known (a join copied what it needed).
      this.chunkStart = -1;
      this.chunk = new Uint8Array(0);
      this.buffers?.give(previous);
      next ??= await this.readChunk(offsetBytes, chunkBytes);
      this.chunk = next;
      this.chunkStart = offsetBytes;
      this.readAhead(offsetBytes + this.chunk.length);
    }
    const start = offsetBytes - this.chunkStart;
    return this.chunk.subarray(start, start + lengthBytes);
  }

  private readChunk(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    return this.buffers === undefined ? this.region.read(offsetBytes, lengthBytes) : this.buffers.read(offsetBytes, lengthBytes);
  }

  /**
   * [offset, offset + length) from the read ahead that starts at offset, or, for a record
   * crossing the current chunk's end, from the rest of the current chunk joined to the read
   * ahead that follows it: either way the reads ahead stay in use.
   */
  private async fromReadsAhead(offsetBytes: number, lengthBytes: number): Promise<Uint8Array | undefined> {
    const chunkEndBytes = this.chunkStart + this.chunk.length;
    const crossing = this.chunkStart >= 0 && offsetBytes >= this.chunkStart && offsetBytes < chunkEndBytes;
    const key = crossing ? chunkEndBytes : offsetBytes;
    const pending = this.ahead.get(key);
    if (pending === undefined) return undefined;
    this.ahead.delete(key);
    const next = await pending;
    if (!crossing) {
      if (next.length >= lengthBytes) return next;
      this.buffers?.give(next);
      return undefined;
    }
    const rest = this.chunk.subarray(offsetBytes - this.chunkStart);
    if (rest.length + next.length < lengthBytes) {
      this.buffers?.give(next);
      return undefined;
    }
    const joinedBytes = rest.length + next.length;
    const joined = this.buffers !== undefined && joinedBytes <= this.buffers.bufferBytes ? this.buffers.take().subarray(0, joinedBytes) : new Uint8Array(joinedBytes);
    joined.set(rest, 0);
    joined.set(next, rest.length);
    this.buffers?.give(next);
    return joined;
  }

  private readAhead(fromBytes: number): void {
    for (let i = 0, start = fromBytes; i < this.readsAhead && start < this.header.ringBytes; i++, start += READ_CHUNK_BYTES) {
      if (this.ahead.has(start)) continue;
      const read = this.readChunk(start, Math.min(READ_CHUNK_BYTES, this.header.ringBytes - start));
      // Awaited when the scan gets there (which rethrows a failure), or by settle().
      read.catch(() => undefined);
      this.ahead.set(start, read);
    }
  }

  /** Waits for reads ahead the scan never used (a record crossed a chunk end), so none outlives it. */
  async settle(): Promise<void> {
    const pending = [...this.ahead.values()];
    this.ahead.clear();
    await Promise.allSettled(pending);
  }

  forget(): void {
    this.chunkStart = -1;
    this.firstRead = true;
  }
}

export interface ChainPosition {
  /** Sequence number of the last record in the chain so far (consumedSeq when none). */
  readonly seq: number;
  /** Epoch of that record (the consumer block's epoch when none). */
  readonly epoch: number;
  /** Where the record after it must start (wrap rule applied). */
  readonly nextRecordOffsetBytes: number;
}

export interface ChainRecord {
  readonly seq: number;
  readonly epoch: number;
  readonly offsetBytes: number;
  readonly recordBlocks: number;
  readonly payload: Uint8Array;
}

export type ChainStopReason =
  | 'empty'
  | 'no-magic'
  | 'bad-fields'
  | 'other-ring'
  | 'bad-crc'
  | 'seq-mismatch'
  | 'older-epoch';

export class ChainReader {
  private readonly chunks: ChunkedReader;

  /** `reuseBuffers`: for a chain read once and dropped (a writer's open), see ChunkedReader. */
  constructor(
    region: BlockRegion,
    private readonly header: RingHeader,
    reuseBuffers = false,
  ) {
    this.chunks = new ChunkedReader(region, header, 0, reuseBuffers);
  }

  /** Drop cached bytes so the next call sees what the other side wrote since. */
  refresh(): void {
    this.chunks.forget();
  }

  /**
   * Validity rule (FORMAT.md, "Which records a reader accepts"). The record at the
   * chain's next position is accepted only if its magic, ring nonce, version, sizes and
   * CRC32C are right, its seq is exactly one more than its predecessor's, and its
   * epoch is not older than its predecessor's. The last condition is the ghost-record
   * guard: a record left behind by a torn write of a crashed writer session carries
   * that session's epoch, which is older than the epoch of whatever the next session
   * wrote in front of it.
   */
  async next(after: ChainPosition): Promise<{ kind: 'record'; record: ChainRecord } | { kind: 'stop'; reason: ChainStopReason }> {
    const offsetBytes = after.nextRecordOffsetBytes;
    const first = await this.chunks.bytes(offsetBytes, BLOCK_BYTES);
    const decoded = decodeRecordHeader(this.header, first);
    if (decoded.kind === 'unknown-version') {
      // Only a record whose CRC holds under the layout every version shares is a
      // newer version; otherwise it is a damaged record (e.g. a flipped version bit).
      const recordBlocks = claimedRecordBlocks(this.header, first);
      const intact = recordBlocks !== undefined && futureRecordIntact(await this.chunks.bytes(offsetBytes, recordBlocks * BLOCK_BYTES));
      if (!intact) return { kind: 'stop', reason: 'bad-crc' };
      if (decoded.seq === after.seq + 1 && decoded.epoch !== undefined && decoded.epoch >= after.epoch) {
        throw new JournalError(
          'RECORD_VERSION',
          `record ${decoded.seq} of ring ${this.header.ringId} has record version ${decoded.recordVersion}; this code reads only version 1. Upgrade thinlv before replaying this ring`,
          { ringId: this.header.ringId, seq: decoded.seq, recordVersion: decoded.recordVersion },
        );
      }
      return { kind: 'stop', reason: 'seq-mismatch' };
    }
    if (decoded.kind === 'invalid') return { kind: 'stop', reason: decoded.reason };
    const recordHeader: RecordHeader = decoded.header;
    if (recordHeader.seq !== after.seq + 1) return { kind: 'stop', reason: 'seq-mismatch' };
    if (recordHeader.epoch < after.epoch) return { kind: 'stop', reason: 'older-epoch' };
    const recordBytes = recordHeader.recordBlocks * BLOCK_BYTES;
    // decodeRecordHeader bounded recordBlocks by maxRecordBytes, and a record starts
    // only where maxRecordBytes fit, so this read stays inside the ring.
    const bytes = recordHeader.recordBlocks === 1 ? first : await this.chunks.bytes(offsetBytes, recordBytes);
    if (!recordCrcMatches(bytes, recordHeader.payloadBytes)) return { kind: 'stop', reason: 'bad-crc' };
    return {
      kind: 'record',
      record: {
        seq: recordHeader.seq,
        epoch: recordHeader.epoch,
        offsetBytes,
        recordBlocks: recordHeader.recordBlocks,
        payload: bytes.slice(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + recordHeader.payloadBytes),
      },
    };
  }
}

export function positionAfter(header: RingHeader, record: ChainRecord): ChainPosition {
  return {
    seq: record.seq,
    epoch: record.epoch,
    nextRecordOffsetBytes: recordStartAt(header, record.offsetBytes + record.recordBlocks * BLOCK_BYTES),
  };
}

export function positionOfConsumer(state: ConsumerState): ChainPosition {
  return { seq: state.consumedSeq, epoch: state.consumedEpoch, nextRecordOffsetBytes: state.nextRecordOffsetBytes };
}

export interface RingSurvey {
  /** Highest seq of any record of this ring anywhere in the data area, valid CRC only; 0 if none. */
  readonly maxSeq: number;
  /** Highest epoch of any such record; 0 if none. */
  readonly maxEpoch: number;
  /**
   * Where the consumer's last consumed record (the anchor: seq consumedSeq, its epoch,
   * ending at the consumer's next position) starts, when the survey was given a
   * consumer state and found it; undefined otherwise.
   */
  readonly anchorOffsetBytes?: number;
}

/**
 * Looks at every block of the data area for a record of this ring, wherever it is.
 * Opening uses it twice: a consumer block that claims more than any record ever
 * written is refused (CONSUMER_AHEAD), and a new writer session takes an epoch above
 * every record on disk, ghosts included.
 */
export async function surveyDataArea(region: BlockRegion, header: RingHeader, consumer?: ConsumerState): Promise<RingSurvey> {
  const chunks = new ChunkedReader(region, header, SURVEY_READS_AHEAD, true);
  try {
    return await surveyChunks(chunks, header, consumer);
  } finally {
    await chunks.settle();
  }
}

async function surveyChunks(chunks: ChunkedReader, header: RingHeader, consumer: ConsumerState | undefined): Promise<RingSurvey> {
  let maxSeq = 0;
  let maxEpoch = 0;
  let anchorOffsetBytes: number | undefined;
  for (let offset = header.dataOffsetBytes; offset < header.ringBytes; offset += BLOCK_BYTES) {
    const decoded = decodeRecordHeader(header, await chunks.bytes(offset, BLOCK_BYTES));
    if (decoded.kind !== 'ok') continue;
    const recordBytes = decoded.header.recordBlocks * BLOCK_BYTES;
    if (offset + recordBytes > header.ringBytes) continue;
    if (!recordCrcMatches(await chunks.bytes(offset, recordBytes), decoded.header.payloadBytes)) continue;
    maxSeq = Math.max(maxSeq, decoded.header.seq);
    maxEpoch = Math.max(maxEpoch, decoded.header.epoch);
    if (
      consumer !== undefined &&
      decoded.header.seq === consumer.consumedSeq &&
      decoded.header.epoch === consumer.consumedEpoch &&
      recordStartAt(header, offset + recordBytes) === consumer.nextRecordOffsetBytes
    ) {
      anchorOffsetBytes = offset;
    }
  }
  return anchorOffsetBytes === undefined ? { maxSeq, maxEpoch } : { maxSeq, maxEpoch, anchorOffsetBytes };
}

/**
 * The CONSUMER_AHEAD check of a consuming reader's open, without reading the whole ring
 * when it can be avoided. The survey refuses a consumer block exactly when no intact
 * record of this ring has a seq >= consumedSeq. A healthy ring keeps the last consumed
 * record (FORMAT.md, "The kept record"), and it ends where the consumer block says the
 * next record starts, so it lies in a window of at most two record lengths before that
 * position (or before the ring end, when that position wrapped to the data start). One
 * intact record with seq >= consumedSeq in that window is the proof the survey would
 * find, so the outcome is the survey's; only when the window holds none (a ring written
 * before the kept-record rule, or a consumer block that is really ahead) does the
 * whole data area get read.
 */
export async function checkConsumerNotAhead(region: BlockRegion, header: RingHeader, consumer: ConsumerState): Promise<void> {
  if (consumer.consumedSeq === 0) return;
  if (await consumedRecordNearby(region, header, consumer)) return;
  const survey = await surveyDataArea(region, header, consumer);
  if (consumer.consumedSeq > survey.maxSeq) throw consumerAheadError(header, consumer, survey);
}

/** Whether the window where record consumedSeq must end holds an intact record with seq >= consumedSeq. */
async function consumedRecordNearby(region: BlockRegion, header: RingHeader, consumer: ConsumerState): Promise<boolean> {
  const { startBytes, endBytes } = consumedRecordWindow(header, consumer.nextRecordOffsetBytes);
  if (endBytes <= startBytes) return false;
  const window = await region.read(startBytes, endBytes - startBytes);
  for (let offset = 0; offset < window.length; offset += BLOCK_BYTES) {
    const decoded = decodeRecordHeader(header, window.subarray(offset, offset + BLOCK_BYTES));
    if (decoded.kind !== 'ok' || decoded.header.seq < consumer.consumedSeq) continue;
    const recordBytes = decoded.header.recordBlocks * BLOCK_BYTES;
    // A record running past the window is left to the survey (it reads whole records).
    if (offset + recordBytes > window.length) continue;
    if (recordCrcMatches(window.subarray(offset, offset + recordBytes), decoded.header.payloadBytes)) return true;
  }
  return false;
}

/**
 * The last consumed record (the kept record: seq consumedSeq, epoch consumedEpoch, its
 * end with the wrap rule applied at nextRecordOffsetBytes), when it is still on disk,
 * read from the window it must lie in. The writer never overwrites it, so it is missing
 * only on a ring written before the kept-record rule or with nothing consumed.
 */
export async function findConsumedRecord(region: BlockRegion, header: RingHeader, consumer: ConsumerState): Promise<ChainRecord | undefined> {
  if (consumer.consumedSeq === 0) return undefined;
  const { startBytes, endBytes } = consumedRecordWindow(header, consumer.nextRecordOffsetBytes);
  if (endBytes <= startBytes) return undefined;
  const window = await region.read(startBytes, endBytes - startBytes);
  for (let offset = 0; offset < window.length; offset += BLOCK_BYTES) {
    const decoded = decodeRecordHeader(header, window.subarray(offset, offset + BLOCK_BYTES));
    if (decoded.kind !== 'ok' || decoded.header.seq !== consumer.consumedSeq || decoded.header.epoch !== consumer.consumedEpoch) continue;
    const recordBytes = decoded.header.recordBlocks * BLOCK_BYTES;
    if (offset + recordBytes > window.length || recordStartAt(header, startBytes + offset + recordBytes) !== consumer.nextRecordOffsetBytes) continue;
    const bytes = window.subarray(offset, offset + recordBytes);
    if (!recordCrcMatches(bytes, decoded.header.payloadBytes)) continue;
    return {
      seq: decoded.header.seq,
      epoch: decoded.header.epoch,
      offsetBytes: startBytes + offset,
      recordBlocks: decoded.header.recordBlocks,
      payload: bytes.slice(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + decoded.header.payloadBytes),
    };
  }
  return undefined;
}

/**
 * Where the last consumed record can lie, given the position after it. A record ending
 * at e is followed at e when at least maxRecordBytes remain, else at the data start; so
 * a position past the data start means the record ended right there, and the data
 * start means it ended in the last maxRecordBytes of the ring (a record never ends at
 * the data start itself). It is at most maxRecordBytes long.
 */
export function consumedRecordWindow(header: RingHeader, nextRecordOffsetBytes: number): { startBytes: number; endBytes: number } {
  const wrapped = nextRecordOffsetBytes === header.dataOffsetBytes;
  const endBytes = wrapped ? header.ringBytes : nextRecordOffsetBytes;
  // Wrapped: it ended after ringBytes - maxRecordBytes, so it started after ringBytes - 2 maxRecordBytes.
  const earliestStartBytes = wrapped ? header.ringBytes - 2 * header.maxRecordBytes : nextRecordOffsetBytes - header.maxRecordBytes;
  return { startBytes: Math.max(header.dataOffsetBytes, earliestStartBytes), endBytes };
}

/**
 * What opening either side of a ring starts with: the header (checked to be ring
 * `ringId`), the consumer block, and a survey of the data area, refusing a consumer
 * block that claims records never written (CONSUMER_AHEAD).
 */
export async function openRingState(region: BlockRegion, ringId: string): Promise<{ header: RingHeader; consumer: ConsumerState; survey: RingSurvey }> {
  const header = await readRingHeader(region, ringId);
  const consumer = await readConsumerState(region, header);
  const survey = await surveyDataArea(region, header, consumer);
  if (consumer.consumedSeq > survey.maxSeq) throw consumerAheadError(header, consumer, survey);
  return { header, consumer, survey };
}

export function consumerAheadError(header: RingHeader, consumed: ConsumerState, survey: RingSurvey): JournalError {
  return new JournalError(
    'CONSUMER_AHEAD',
    `consumer block of ring ${header.ringId} claims seq ${consumed.consumedSeq} consumed, but no record above seq ${survey.maxSeq} was ever written; the consumer block is wrong. Replay from LVM's applied sequence and recreate the ring`,
    { ringId: header.ringId, consumedSeq: consumed.consumedSeq, maxSeqOnDisk: survey.maxSeq },
  );
}
