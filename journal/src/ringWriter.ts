// The producer side of a ring: appends records with group commit.
//
//   append(a) ─┐                       one write in flight at a time
//   append(b) ─┼─► queue ─► group ─► [rec n | rec n+1 | rec n+2] ─► O_DIRECT|O_DSYNC write
//   append(c) ─┘                       then each caller's promise resolves
//
// While one write is in flight, new appends queue; the next write carries all of
// them (up to MAX_RECORDS_PER_GROUP_COMMIT and MAX_GROUP_COMMIT_BYTES). Each record
// is self-validating (seq + CRC32C), so the write that appends it also publishes it:
// there is no separate tail pointer on disk. Sequence numbers are given when a record
// joins a group, never earlier, so an append refused for lack of room leaves no gap.

import {
  BLOCK_BYTES,
  FULL_POLL_INTERVAL_MS,
  MAX_FULL_WAIT_MS,
  MAX_GROUP_COMMIT_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_QUEUED_APPENDS,
  MAX_RECORDS_PER_GROUP_COMMIT,
} from './constants.js';
import { JournalError, RingFullError, assert } from './errors.js';
import { encodeRecord, recordBlocksFor, recordStartAt, type ConsumerState, type RingHeader } from './layout.js';
import {
  ChainReader,
  openRingState,
  positionAfter,
  positionOfConsumer,
  readConsumerState,
  type ChainPosition,
} from './ringChain.js';
import { silentLogger, type BlockRegion, type JournalLogger } from './blockRegion.js';

export type OnFull = 'error' | { readonly waitMs: number };

export interface RingWriterOptions {
  readonly ringId: string;
  /** What append does when the ring has no room: fail at once (default) or wait up to waitMs for the consumer. */
  readonly onFull?: OnFull;
  /** Lower the per-write record limit (1..MAX_RECORDS_PER_GROUP_COMMIT); mainly for tests and benchmarks. */
  readonly maxRecordsPerGroupCommit?: number;
  readonly logger?: JournalLogger;
  /** Injected clock and sleep for the full-ring wait. */
  readonly nowMs?: () => number;
  readonly sleepMs?: (ms: number) => Promise<void>;
  /**
   * Test hook: skip zeroing the span past the tail at open, so a test can show that
   * the epoch rule alone rejects ghost records. Never set it in production.
   */
  readonly unsafeSkipTornSpanZeroing?: boolean;
}

export interface AppendResult {
  readonly seq: number;
}

interface PendingAppend {
  readonly payload: Uint8Array;
  readonly recordBytes: number;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Offsets of the records not yet consumed, indexed by seq, plus the anchor (the last
 * consumed record) when its offset is known.
 */
class UnconsumedIndex {
  private offsets: number[] = [];
  private firstSeq: number;

  /** `anchorOffsetBytes`: where record consumedSeq starts, if known. */
  constructor(consumedSeq: number, anchorOffsetBytes: number | undefined) {
    if (anchorOffsetBytes === undefined) {
      this.firstSeq = consumedSeq + 1;
    } else {
      this.firstSeq = consumedSeq;
      this.offsets.push(anchorOffsetBytes);
    }
  }

  push(seq: number, offsetBytes: number): void {
    assert(seq === this.firstSeq + this.offsets.length, 'unconsumed records are indexed without gaps');
    this.offsets.push(offsetBytes);
  }

  offsetOf(seq: number): number | undefined {
    return this.offsets[seq - this.firstSeq];
  }

  dropThrough(seq: number): void {
    const count = seq - this.firstSeq + 1;
    if (count <= 0) return;
    this.offsets = this.offsets.slice(count);
    this.firstSeq = seq + 1;
  }
}

const RESOLVED = Promise.resolve();

export class RingWriter {
  private readonly queue: PendingAppend[] = [];
  private writing = false;
  private flushScheduled = false;
  private failure: JournalError | undefined;
  private closed = false;
  private readonly writeBuffer: Uint8Array;
  private readonly maxRecordsPerGroup: number;
  private idleWaiters: (() => void)[] = [];
  private writeGate: (() => Promise<void>) | undefined;

  private constructor(
    private readonly region: BlockRegion,
    readonly header: RingHeader,
    /** This session's epoch, above every record on disk when it opened. */
    readonly epoch: number,
    private tail: ChainPosition,
    private consumer: ConsumerState,
    private readonly unconsumed: UnconsumedIndex,
    private readonly options: RingWriterOptions,
  ) {
    this.writeBuffer = region.allocateBuffer(MAX_GROUP_COMMIT_BYTES);
    this.maxRecordsPerGroup = options.maxRecordsPerGroupCommit ?? MAX_RECORDS_PER_GROUP_COMMIT;
  }

  static async open(region: BlockRegion, options: RingWriterOptions): Promise<RingWriter> {
    const logger = options.logger ?? silentLogger;
    checkWriterOptions(options);
    const { header, consumer, survey } = await openRingState(region, options.ringId);

    // Find the tail by following the chain from the consumer position, exactly as a
    // reader does; the writer continues right after the last record a reader accepts.
    const chain = new ChainReader(region, header, true);
    const unconsumed = new UnconsumedIndex(consumer.consumedSeq, consumer.consumedSeq > 0 ? survey.anchorOffsetBytes : undefined);
    let tail = positionOfConsumer(consumer);
    for (;;) {
      const next = await chain.next(tail);
      if (next.kind === 'stop') break;
      unconsumed.push(next.record.seq, next.record.offsetBytes);
      tail = positionAfter(header, next.record);
    }

    // The new epoch is above every record anywhere on disk, so records this session
    // writes are told apart from anything a crashed session left behind. Nothing is
    // stored: a crash before this session's first write just lets the next session
    // compute the same value, which is harmless because this one wrote nothing.
    const epoch = Math.max(survey.maxEpoch, consumer.consumedEpoch, tail.epoch) + 1;
    assert(Number.isSafeInteger(epoch), 'epoch overflow');

    const writer = new RingWriter(region, header, epoch, tail, consumer, unconsumed, options);
    if (options.unsafeSkipTornSpanZeroing !== true) {
      await writer.zeroTornSpan();
    }
    logger('info', `ring writer open on ${region.description}`, { ringId: header.ringId, epoch, tailSeq: tail.seq, consumedSeq: consumer.consumedSeq });
    return writer;
  }

  /**
   * Zeroes the span a crashed session's last write could have covered. That write
   * started at the tail's next position (one write in flight at a time), was at most
   * MAX_GROUP_COMMIT_BYTES, and never crossed the ring end; any of its records that
   * landed whole after a torn one is a ghost. Zeroing them is a second, independent
   * guard next to the epoch rule. Repeating it after a crash is harmless: the tail is
   * the same (zeros never form a record), the span only grows as the consumer
   * advances, and nothing in it is part of the log.
   */
  private async zeroTornSpan(): Promise<void> {
    const start = this.tail.nextRecordOffsetBytes;
    let end = Math.min(start + MAX_GROUP_COMMIT_BYTES, this.header.ringBytes);
    const kept = this.keptFromOffset(this.tail.seq - this.consumer.consumedSeq);
    if (kept !== undefined && kept >= start) end = Math.min(end, kept);
    if (end <= start) return;
    const zeros = this.writeBuffer.subarray(0, end - start);
    zeros.fill(0);
    await this.region.write(start, zeros);
  }

  /** Seq of the last record in the log (acknowledged or found at open). */
  get lastSeq(): number {
    return this.tail.seq;
  }

  /**
   * Appends one record. Resolves with its seq once it is durable; rejects with
   * PAYLOAD_TOO_LARGE, APPEND_QUEUE_FULL, RING_FULL, WRITER_FAILED or WRITER_CLOSED,
   * or with the error of the gate (gateWrites) that refused its write.
   */
  append(payload: Uint8Array): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new JournalError('WRITER_CLOSED', `ring writer for ${this.header.ringId} is closed; open a new one`, { ringId: this.header.ringId }));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (!(payload instanceof Uint8Array)) return Promise.reject(new JournalError('INVALID_ARGUMENT', 'payload must be a Uint8Array', {}));
    if (payload.length > MAX_PAYLOAD_BYTES) {
      return Promise.reject(new JournalError('PAYLOAD_TOO_LARGE', `payload of ${payload.length} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte record limit; split it into several records`, { payloadBytes: payload.length, maxPayloadBytes: MAX_PAYLOAD_BYTES }));
    }
    if (this.queue.length >= MAX_QUEUED_APPENDS) {
      return Promise.reject(new JournalError('APPEND_QUEUE_FULL', `${MAX_QUEUED_APPENDS} appends already wait for the disk on ring ${this.header.ringId}; retry after some complete`, { queued: this.queue.length, maxQueuedAppends: MAX_QUEUED_APPENDS }));
    }
    return new Promise<AppendResult>((resolve, reject) => {
      // Copied now: the caller may reuse its buffer as soon as append returns.
      this.queue.push({ payload: payload.slice(), recordBytes: recordBlocksFor(payload.length) * BLOCK_BYTES, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Runs `gate` right before each group write starts. When it rejects, the appends
   * queued then are rejected with its error and nothing is written; the writer stays
   * usable. A caller that checks its right to write before calling append (the host's
   * lease) needs this too: its append may queue behind a slow write and start only
   * after that right ran out.
   */
  gateWrites(gate: () => Promise<void>): void {
    this.writeGate = gate;
  }

  /** Waits for queued appends to finish, then refuses new ones. The region stays open: its owner closes it. */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.writing && !this.flushScheduled && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private scheduleFlush(): void {
    if (this.writing || this.flushScheduled) return;
    this.flushScheduled = true;
    // A microtask, not a timer: appends issued in the same turn share the first
    // write, and a lone append pays no added latency. A resolved promise rather than
    // queueMicrotask, which makes an AsyncResource per call in Node.
    void RESOLVED.then(() => {
      this.flushScheduled = false;
      this.writeGroups();
    });
  }

  /**
   * Starts the next group write. When it completes, the callers are resolved first
   * and the group after it is planned in a microtask queued behind their
   * continuations, so a caller that appends again as soon as its record is durable
   * joins that next write instead of trailing one write behind; no timer or
   * event-loop turn is added to a lone appender's latency. Written without async
   * functions: this is the hot path, and each promise layer costs allocations that
   * show up as garbage-collection pauses in the latency tail.
   */
  private writeGroups(): void {
    if (this.writing || this.queue.length === 0 || this.failure !== undefined) {
      this.wakeIdleWaitersIfIdle();
      return;
    }
    this.writing = true;
    if (this.planGroup().count === 0) {
      this.waitForRoom().then(
        () => this.groupDone(),
        (error: unknown) => {
          this.fail(error);
          this.groupDone();
        },
      );
      return;
    }
    const gate = this.writeGate;
    if (gate === undefined) {
      this.writeOneGroup();
      return;
    }
    // The group is planned and written in the same turn as the gate resolves: no
    // await between the check and the write's start. The queue only grew meanwhile
    // and the tail did not move, so its first append still fits.
    gate().then(
      () => this.writeOneGroup(),
      (error: unknown) => {
        for (const pending of this.queue.splice(0)) pending.reject(error);
        this.groupDone();
      },
    );
  }

  private groupDone(): void {
    this.writing = false;
    if (this.queue.length > 0 && this.failure === undefined) {
      this.scheduleFlush();
    } else {
      this.wakeIdleWaitersIfIdle();
    }
  }

  private wakeIdleWaitersIfIdle(): void {
    if (this.writing || this.flushScheduled || (this.queue.length > 0 && this.failure === undefined)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** After an I/O error the state of the in-flight write is unknown: refuse everything until reopened. */
  private fail(error: unknown): void {
    const failure =
      error instanceof JournalError && error.code === 'WRITER_FAILED'
        ? error
        : new JournalError('WRITER_FAILED', `ring writer for ${this.header.ringId} stopped after an error (${error instanceof Error ? error.message : String(error)}); reopen the writer, which finds the tail again`, { ringId: this.header.ringId, causeCode: error instanceof JournalError ? error.code : undefined }, { cause: error });
    this.failure = failure;
    for (const pending of this.queue.splice(0)) pending.reject(failure);
  }

  /**
   * Where the records this writer must keep begin: the anchor (the last consumed
   * record) when its offset is known, else the oldest unconsumed record, else nothing.
   * The anchor is kept so that the ring always holds the record at consumedSeq: a
   * reader or writer opening the ring checks the consumer against the highest seq on
   * disk, and with the anchor gone (overwritten by a group or zeroed as a torn span in
   * a ring not much larger than a group) that check would refuse a healthy ring.
   */
  private keptFromOffset(unconsumedCount: number): number | undefined {
    const anchor = this.consumer.consumedSeq > 0 ? this.unconsumed.offsetOf(this.consumer.consumedSeq) : undefined;
    if (anchor !== undefined) return anchor;
    return unconsumedCount > 0 ? this.consumer.nextRecordOffsetBytes : undefined;
  }

  /** True when a record of `recordBytes` may be written at `offsetBytes` with `unconsumedCount` records before it. */
  private hasRoom(offsetBytes: number, recordBytes: number, unconsumedCount: number): boolean {
    const kept = this.keptFromOffset(unconsumedCount);
    // The writer only moves forward, so the first kept byte it could reach is where they begin.
    return kept === undefined || !(kept >= offsetBytes && kept < offsetBytes + recordBytes);
  }

  private writeOneGroup(): void {
    const group = this.planGroup();
    assert(group.count > 0, 'a group is written only when its first record fits');
    const members = this.queue.splice(0, group.count);
    const startOffset = this.tail.nextRecordOffsetBytes;
    const firstSeq = this.tail.seq + 1;
    const offsets: number[] = [];
    let offset = startOffset;
    for (let index = 0; index < members.length; index++) {
      const seq = firstSeq + index;
      assert(Number.isSafeInteger(seq), 'sequence number exceeds Number.MAX_SAFE_INTEGER');
      offsets.push(offset);
      offset += encodeRecord(this.writeBuffer.subarray(offset - startOffset), { seq, epoch: this.epoch, ringNonce: this.header.ringNonce }, members[index]!.payload) * BLOCK_BYTES;
    }
    assert(offset - startOffset === group.bytes && offset <= this.header.ringBytes, 'group layout disagrees with its plan');
    const lastSeq = firstSeq + members.length - 1;
    const groupEndOffset = offset;
    // One write makes every record of the group durable and visible. If it tears or
    // the process dies, nothing was acknowledged; the next session finds the tail
    // again and writes over the span with a newer epoch.
    let written: Promise<void>;
    try {
      written = this.region.write(startOffset, this.writeBuffer.subarray(0, offset - startOffset));
    } catch (error) {
      written = Promise.reject(error);
    }
    written.then(
      () => {
        for (let index = 0; index < members.length; index++) this.unconsumed.push(firstSeq + index, offsets[index]!);
        this.tail = { seq: lastSeq, epoch: this.epoch, nextRecordOffsetBytes: recordStartAt(this.header, groupEndOffset) };
        for (let index = 0; index < members.length; index++) members[index]!.resolve({ seq: firstSeq + index });
        this.groupDone();
      },
      (error: unknown) => {
        this.fail(error);
        for (const member of members) member.reject(this.failure);
        this.groupDone();
      },
    );
  }

  /** How many queued appends the next write can carry, contiguous, before the ring end and the consumer. */
  private planGroup(): { count: number; bytes: number } {
    let offset = this.tail.nextRecordOffsetBytes;
    let unconsumedCount = this.tail.seq - this.consumer.consumedSeq;
    let count = 0;
    let bytes = 0;
    for (const pending of this.queue) {
      if (count >= this.maxRecordsPerGroup || bytes + pending.recordBytes > MAX_GROUP_COMMIT_BYTES) break;
      // A group never wraps: the records after the wrap point go in the next write.
      if (recordStartAt(this.header, offset) !== offset) break;
      if (!this.hasRoom(offset, pending.recordBytes, unconsumedCount)) break;
      count += 1;
      bytes += pending.recordBytes;
      offset += pending.recordBytes;
      unconsumedCount += 1;
    }
    return { count, bytes };
  }

  /** The ring is full for the first queued append: re-read the consumer, wait if allowed, else reject the queue. */
  private async waitForRoom(): Promise<void> {
    const onFull = this.options.onFull ?? 'error';
    const nowMs = this.options.nowMs ?? Date.now;
    const sleepMs = this.options.sleepMs ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    const deadlineMs = nowMs() + (onFull === 'error' ? 0 : onFull.waitMs);
    for (;;) {
      await this.refreshConsumer();
      if (this.planGroup().count > 0) return;
      if (nowMs() >= deadlineMs) break;
      await sleepMs(FULL_POLL_INTERVAL_MS);
    }
    const error = new RingFullError(
      `ring ${this.header.ringId} is full: ${this.tail.seq - this.consumer.consumedSeq} records (seq ${this.consumer.consumedSeq + 1}..${this.tail.seq}) wait for the consumer; retry after it consumes, or check that the master is replaying`,
      { ringId: this.header.ringId, consumedSeq: this.consumer.consumedSeq, lastSeq: this.tail.seq, waitedMs: onFull === 'error' ? 0 : onFull.waitMs },
    );
    for (const pending of this.queue.splice(0)) pending.reject(error);
  }

  /**
   * The consumer's position as the consumer block says now: for reports (what the
   * consumer has taken so far). Changes nothing in this writer.
   */
  async readConsumedSeq(): Promise<number> {
    return (await readConsumerState(this.region, this.header)).consumedSeq;
  }

  /**
   * Reads the consumer block and checks it against what this writer wrote: the
   * consumed seq only moves forward, never past the tail, and points at the record
   * this writer put there. A block that fails these checks stops the writer rather
   * than letting it overwrite records the consumer never saw.
   */
  private async refreshConsumer(): Promise<void> {
    const fresh = await readConsumerState(this.region, this.header);
    const previous = this.consumer;
    const expectedOffset = fresh.consumedSeq === this.tail.seq ? this.tail.nextRecordOffsetBytes : this.unconsumed.offsetOf(fresh.consumedSeq + 1);
    if (fresh.consumedSeq < previous.consumedSeq || fresh.consumedSeq > this.tail.seq || expectedOffset !== fresh.nextRecordOffsetBytes) {
      throw new JournalError(
        'CONSUMER_CORRUPT',
        `consumer block of ring ${this.header.ringId} says seq ${fresh.consumedSeq} at offset ${fresh.nextRecordOffsetBytes}, which disagrees with this writer (consumed ${previous.consumedSeq}, tail ${this.tail.seq}, expected offset ${String(expectedOffset)}); stop and check which process writes this ring`,
        { ringId: this.header.ringId, consumedSeq: fresh.consumedSeq, previousConsumedSeq: previous.consumedSeq, tailSeq: this.tail.seq, nextRecordOffsetBytes: fresh.nextRecordOffsetBytes, expectedOffset },
      );
    }
    this.consumer = fresh;
    // Keep the new anchor's offset (this writer wrote that record, so it is indexed).
    this.unconsumed.dropThrough(fresh.consumedSeq - 1);
  }
}

function checkWriterOptions(options: RingWriterOptions): void {
  const onFull = options.onFull;
  if (onFull !== undefined && onFull !== 'error') {
    if (!Number.isInteger(onFull.waitMs) || onFull.waitMs < 0 || onFull.waitMs > MAX_FULL_WAIT_MS) {
      throw new JournalError('INVALID_ARGUMENT', `onFull.waitMs ${onFull.waitMs} must be an integer between 0 and ${MAX_FULL_WAIT_MS}`, { waitMs: onFull.waitMs, maxFullWaitMs: MAX_FULL_WAIT_MS });
    }
  }
  const maxRecords = options.maxRecordsPerGroupCommit;
  if (maxRecords !== undefined && (!Number.isInteger(maxRecords) || maxRecords < 1 || maxRecords > MAX_RECORDS_PER_GROUP_COMMIT)) {
    throw new JournalError('INVALID_ARGUMENT', `maxRecordsPerGroupCommit ${maxRecords} must be an integer between 1 and ${MAX_RECORDS_PER_GROUP_COMMIT}`, { maxRecordsPerGroupCommit: maxRecords });
  }
}

export function openRingWriter(region: BlockRegion, options: RingWriterOptions): Promise<RingWriter> {
  return RingWriter.open(region, options);
}
