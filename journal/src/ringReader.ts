// The consumer side of a ring: returns records in sequence order and publishes how
// far it has consumed in the consumer block, which only it writes.

import { BLOCK_BYTES, CONSUMER_BLOCK_OFFSET_BYTES, MAX_RECORDS_PER_READ } from './constants.js';
import { JournalError, assert } from './errors.js';
import { encodeConsumerBlock, type ConsumerState, type RingHeader } from './layout.js';
import {
  ChainReader,
  checkConsumerNotAhead,
  findConsumedRecord,
  positionAfter,
  positionOfConsumer,
  readConsumerState,
  readRingHeader,
  type ChainPosition,
  type ChainStopReason,
} from './ringChain.js';
import { silentLogger, type BlockRegion, type JournalLogger } from './blockRegion.js';

export interface RingReaderOptions {
  readonly ringId: string;
  readonly logger?: JournalLogger;
  /**
   * false skips the check that the consumer block claims no record that was never
   * written (CONSUMER_AHEAD). For read-only reports, which read from the consumer
   * position on and never consume: opening costs two block reads. A consumer (the
   * master, a host's grants) keeps the check, which usually costs one read of at most
   * two records' length before the consumer position (checkConsumerNotAhead) and falls
   * back to a read of the whole ring only when that window does not settle it.
   */
  readonly survey?: boolean;
}

export interface RingRecord {
  readonly seq: number;
  readonly payload: Uint8Array;
}

export interface ReadOptions {
  /** First seq wanted; any value >= consumedSeq + 1. Records before it are checked and skipped. */
  readonly fromSeq: number;
  /** At most this many records (1..MAX_RECORDS_PER_READ, default MAX_RECORDS_PER_READ). */
  readonly maxRecords?: number;
}

export interface ReadResult {
  /** Consecutive records fromSeq, fromSeq + 1, ... (possibly none). */
  readonly records: RingRecord[];
  /** Last seq of the valid chain seen by this read (consumedSeq if none). */
  readonly lastSeq: number;
  /**
   * Why the chain ended, or 'max-records' when the read stopped at maxRecords.
   * 'empty', 'seq-mismatch' and 'older-epoch' are what the end of the log normally
   * looks like; 'bad-crc' and 'no-magic' may also be a torn or damaged record.
   */
  readonly stopReason: ChainStopReason | 'max-records';
}

/** Where a record read (and not yet consumed) sits, so consume() can point past it. */
interface SeenRecord {
  readonly seq: number;
  readonly epoch: number;
  readonly after: ChainPosition;
}

export class RingReader {
  /** Records seen by read() since the consumer position: seen[i].seq === consumedSeq + 1 + i. */
  private seen: SeenRecord[] = [];
  private readonly chain: ChainReader;

  private constructor(
    private readonly region: BlockRegion,
    readonly header: RingHeader,
    private consumer: ConsumerState,
  ) {
    this.chain = new ChainReader(region, header);
  }

  static async open(region: BlockRegion, options: RingReaderOptions): Promise<RingReader> {
    const logger = options.logger ?? silentLogger;
    const { header, consumer } = await openWithoutSurvey(region, options.ringId);
    if (options.survey !== false) await checkConsumerNotAhead(region, header, consumer);
    logger('info', `ring reader open on ${region.description}`, { ringId: header.ringId, consumedSeq: consumer.consumedSeq });
    return new RingReader(region, header, consumer);
  }

  get consumedSeq(): number {
    return this.consumer.consumedSeq;
  }

  async read(options: ReadOptions): Promise<ReadResult> {
    const { fromSeq } = options;
    const maxRecords = options.maxRecords ?? MAX_RECORDS_PER_READ;
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) {
      throw new JournalError('INVALID_ARGUMENT', `fromSeq ${fromSeq} must be a positive safe integer`, { fromSeq });
    }
    if (!Number.isInteger(maxRecords) || maxRecords < 1 || maxRecords > MAX_RECORDS_PER_READ) {
      throw new JournalError('INVALID_ARGUMENT', `maxRecords ${maxRecords} must be an integer between 1 and ${MAX_RECORDS_PER_READ}`, { maxRecords });
    }
    if (fromSeq <= this.consumer.consumedSeq) {
      throw new JournalError('SEQ_ALREADY_CONSUMED', `records up to ${this.consumer.consumedSeq} of ring ${this.header.ringId} are consumed and may be overwritten; read from ${this.consumer.consumedSeq + 1} or later`, { fromSeq, consumedSeq: this.consumer.consumedSeq });
    }
    // Records already seen cannot change (the writer never overwrites an unconsumed
    // record), so the walk resumes at the latest seen one before fromSeq.
    const resumeIndex = Math.min(fromSeq - 1, this.consumer.consumedSeq + this.seen.length) - this.consumer.consumedSeq - 1;
    let position = resumeIndex >= 0 ? this.seen[resumeIndex]!.after : positionOfConsumer(this.consumer);
    this.chain.refresh();
    const records: RingRecord[] = [];
    let stopReason: ReadResult['stopReason'] = 'max-records';
    while (records.length < maxRecords) {
      const next = await this.chain.next(position);
      if (next.kind === 'stop') {
        stopReason = next.reason;
        break;
      }
      const record = next.record;
      const after = positionAfter(this.header, record);
      const seenIndex = record.seq - this.consumer.consumedSeq - 1;
      if (seenIndex === this.seen.length) {
        this.seen.push({ seq: record.seq, epoch: record.epoch, after });
      } else {
        // Pair assertion: a record seen before is where, and what, it was.
        const earlier = this.seen[seenIndex];
        assert(earlier !== undefined && earlier.after.nextRecordOffsetBytes === after.nextRecordOffsetBytes && earlier.epoch === record.epoch, () => `record ${record.seq} changed under the reader`);
      }
      if (record.seq >= fromSeq) records.push({ seq: record.seq, payload: record.payload });
      position = after;
    }
    return { records, lastSeq: position.seq, stopReason };
  }

  /**
   * Durably publishes that every record up to throughSeq is consumed, so the writer
   * may reuse their space. throughSeq must have been returned (or skipped) by read().
   * Repeating it after a crash is harmless: the block is rewritten with the same
   * values, and a throughSeq at or below the consumed seq is ignored.
   */
  async consume(throughSeq: number): Promise<void> {
    if (!Number.isSafeInteger(throughSeq) || throughSeq < 0) {
      throw new JournalError('INVALID_ARGUMENT', `throughSeq ${throughSeq} must be a non-negative safe integer`, { throughSeq });
    }
    if (throughSeq <= this.consumer.consumedSeq) return;
    // Never move the pointer back: another consumer (a second master started by mistake)
    // may have consumed further since this reader last looked, and the writer may already
    // have reused that space. One extra block read per consume buys that.
    const onDisk = await readConsumerState(this.region, this.header);
    if (onDisk.consumedSeq >= throughSeq) {
      this.seen = this.seen.slice(Math.max(0, onDisk.consumedSeq - this.consumer.consumedSeq));
      this.consumer = onDisk;
      return;
    }
    const index = throughSeq - this.consumer.consumedSeq - 1;
    const record = this.seen[index];
    if (record === undefined) {
      throw new JournalError('SEQ_NOT_READ', `cannot consume through seq ${throughSeq} of ring ${this.header.ringId}: this reader has only seen up to ${this.consumer.consumedSeq + this.seen.length}; read it first`, { throughSeq, lastSeenSeq: this.consumer.consumedSeq + this.seen.length });
    }
    assert(record.seq === throughSeq, 'seen records are indexed by seq');
    const next: ConsumerState = {
      consumedSeq: throughSeq,
      nextRecordOffsetBytes: record.after.nextRecordOffsetBytes,
      consumedEpoch: record.epoch,
      updateCount: this.consumer.updateCount + 1,
    };
    const block = this.region.allocateBuffer(BLOCK_BYTES);
    encodeConsumerBlock(this.header, next, block);
    await this.region.write(CONSUMER_BLOCK_OFFSET_BYTES, block);
    this.consumer = next;
    this.seen = this.seen.slice(index + 1);
  }

  /**
   * The last consumed record (seq consumedSeq), if it is still on disk: the writer keeps
   * it (FORMAT.md, "The kept record"), so it usually is. One read of at most two records'
   * length. For a producer that wants to know what its consumer last took in (the master
   * checks whether a host already has its current grant); undefined when nothing was
   * consumed or the record is not where the consumer block says it ends.
   */
  async readConsumedRecord(): Promise<RingRecord | undefined> {
    const found = await findConsumedRecord(this.region, this.header, this.consumer);
    return found === undefined ? undefined : { seq: found.seq, payload: found.payload };
  }

  /**
   * Whether the ring on the region is still the one this reader opened: false once it was
   * created again over it (a new nonce). Throws as open does when the header cannot be
   * read now (HEADER_CORRUPT, RING_ID_MISMATCH, ...). One block read. For a consumer whose
   * producer may recreate the ring: it opens a new reader then.
   */
  async stillCurrent(): Promise<boolean> {
    const header = await readRingHeader(this.region, this.header.ringId);
    return header.ringNonce === this.header.ringNonce;
  }

  /** Re-reads the consumer block, e.g. after another process consumed. Mostly for tools. */
  async refreshConsumer(): Promise<ConsumerState> {
    this.consumer = await readConsumerState(this.region, this.header);
    this.seen = [];
    return this.consumer;
  }
}

async function openWithoutSurvey(region: BlockRegion, ringId: string): Promise<{ header: RingHeader; consumer: ConsumerState }> {
  const header = await readRingHeader(region, ringId);
  return { header, consumer: await readConsumerState(region, header) };
}

export function openRingReader(region: BlockRegion, options: RingReaderOptions): Promise<RingReader> {
  return RingReader.open(region, options);
}
