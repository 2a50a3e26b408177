// Typed errors of the journal. `code` is stable (callers and exit-code mappers switch
// on it); `data` carries the values involved; the message says what to do next.

export type JournalErrorCode =
  | 'REGION_INVALID'
  | 'NOT_A_RING'
  | 'HEADER_CORRUPT'
  | 'RING_VERSION'
  | 'RING_ID_MISMATCH'
  | 'RING_EXISTS'
  | 'CONSUMER_CORRUPT'
  | 'CONSUMER_AHEAD'
  | 'RECORD_VERSION'
  | 'PAYLOAD_TOO_LARGE'
  | 'RING_FULL'
  | 'APPEND_QUEUE_FULL'
  | 'WRITER_FAILED'
  | 'WRITER_CLOSED'
  | 'INVALID_ARGUMENT'
  | 'SEQ_ALREADY_CONSUMED'
  | 'SEQ_NOT_READ'
  | 'IO_ERROR';

export class JournalError extends Error {
  readonly code: JournalErrorCode;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: JournalErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JournalError';
    this.code = code;
    this.data = data;
  }
}

/** The ring has no room for the next record and the caller chose not to wait (or the wait ran out). */
export class RingFullError extends JournalError {
  constructor(message: string, data: Record<string, unknown>) {
    super('RING_FULL', message, data);
    this.name = 'RingFullError';
  }
}

/** What is on disk is not the ring the caller asked for (or not a ring at all). */
export class RingIdentityError extends JournalError {
  constructor(code: 'NOT_A_RING' | 'RING_VERSION' | 'RING_ID_MISMATCH' | 'RING_EXISTS' | 'HEADER_CORRUPT', message: string, data: Record<string, unknown>) {
    super(code, message, data);
    this.name = 'RingIdentityError';
  }
}

export function isJournalError(value: unknown, code?: JournalErrorCode): value is JournalError {
  return value instanceof JournalError && (code === undefined || value.code === code);
}

/**
 * A broken invariant is a bug, not an operating error: stop before anything wrong
 * reaches the disk. Pass a function for a message with values in it, so the hot path
 * builds no strings.
 */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new Error(`journal invariant violated: ${typeof message === 'string' ? message : message()}`);
  }
}
