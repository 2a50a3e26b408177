// One error hierarchy for the whole program. Every error a user can see has a
// stable string `code` (scripts match on it; never change an existing one) and
// structured `data`; the message says what failed, with which value, and what to
// do next. The CLI's single top-level handler maps codes to exit codes and JSON.

export type ErrorData = Readonly<Record<string, unknown>>;

export class ThinlvError extends Error {
  readonly code: string;
  readonly data: ErrorData;

  constructor(code: string, message: string, data: ErrorData = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.data = data;
  }

  toJSON(): { code: string; message: string; data: ErrorData } {
    return { code: this.code, message: this.message, data: this.data };
  }
}

/** Bad input from the operator or a caller: nothing was written. */
export class UsageError extends ThinlvError {}

/** lvm failed, was missing, timed out or could not get its lock. */
export class LvmError extends ThinlvError {}

/** A metadata commit was refused or could not be verified. */
export class CommitError extends ThinlvError {}

/** A device-mapper operation failed. */
export class DmError extends ThinlvError {}

/**
 * A broken invariant: a bug, not an operating error. Whoever catches it must stop
 * before writing anything else.
 */
export class InvariantError extends ThinlvError {
  constructor(message: string, data: ErrorData = {}) {
    super('INVARIANT_BROKEN', message, data);
  }
}

export const ErrorCode = {
  invalidArgument: 'INVALID_ARGUMENT',
  vgNotFound: 'VG_NOT_FOUND',
  lvNotFound: 'LV_NOT_FOUND',
  insufficientExtents: 'INSUFFICIENT_EXTENTS',
  metadataAreaTooSmall: 'METADATA_AREA_TOO_SMALL',
  lockBusy: 'LOCK_BUSY',
  lvmTimeout: 'LVM_TIMEOUT',
  lvmMissing: 'LVM_MISSING',
  lvmFailed: 'LVM_FAILED',
  lvmOutputInvalid: 'LVM_OUTPUT_INVALID',
  vgMetadataCorrupt: 'VG_METADATA_CORRUPT',
  metadataParse: 'METADATA_PARSE',
  staleSeqno: 'STALE_SEQNO',
  invalidBatch: 'INVALID_BATCH',
  readbackMismatch: 'READBACK_MISMATCH',
  unsupportedMetadata: 'UNSUPPORTED_METADATA',
  dmFailed: 'DM_FAILED',
} as const;

/** Asserts an invariant; a failure is a bug and throws InvariantError. */
export function assert(condition: unknown, message: string, data: ErrorData = {}): asserts condition {
  if (!condition) throw new InvariantError(message, data);
}
