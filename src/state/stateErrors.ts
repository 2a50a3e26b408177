// Errors and boundary checks of the state module (src/state/, the only code that opens
// SQLite). Codes are stable strings: scripts and the CLI's top-level handler match on
// them, so never change an existing one.

import { ThinlvError, type ErrorData } from '../errors.js';

/** The database file could not be opened, read or written (not SQLite, damaged, disk full, ...). */
export const STATE_DB_FAILED = 'STATE_DB_FAILED';
/** The file's schema version is not one this thinlv can use (written by a newer thinlv, or needs a migration read-only). */
export const STATE_DB_SCHEMA = 'STATE_DB_SCHEMA';
/** A caller passed a malformed value (empty host name, negative count, limit over its bound). Nothing was written. */
export const STATE_INVALID_ARGUMENT = 'STATE_INVALID_ARGUMENT';
/** A named bound of the state module was reached (too many in-flight intents). Nothing was written. */
export const STATE_LIMIT_REACHED = 'STATE_LIMIT_REACHED';

export type StateErrorCode =
  | typeof STATE_DB_FAILED
  | typeof STATE_DB_SCHEMA
  | typeof STATE_INVALID_ARGUMENT
  | typeof STATE_LIMIT_REACHED;

export class StateError extends ThinlvError {
  declare readonly code: StateErrorCode;

  constructor(code: StateErrorCode, message: string, data: ErrorData = {}, options?: { cause?: unknown }) {
    super(code, message, data, options);
  }
}

/** Host names as the master knows them; also bounds what one history row can hold. */
export const MAX_HOST_NAME_CHARS = 64;

/**
 * LVM2 keeps a VG's extent_count and free_count as uint32 (struct volume_group), so no
 * real extent count is larger. The bound also keeps SUM(extent_count) over every row the
 * master keeps below 2^53, so sums read back as exact JavaScript numbers.
 */
export const MAX_EXTENT_COUNT = 0xffff_ffff;

function invalid(what: string, value: unknown, rule: string): StateError {
  return new StateError(STATE_INVALID_ARGUMENT, `${what} must be ${rule}, got ${JSON.stringify(value) ?? String(value)}`, {
    what,
    value: typeof value === 'number' || typeof value === 'string' ? value : String(value),
  });
}

export function checkNonNegativeSafeInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(what, value, 'a non-negative safe integer');
  }
  return value;
}

export function checkSafeInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalid(what, value, 'a safe integer');
  return value;
}

export function checkIntegerInRange(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(what, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

export function checkExtentCount(value: unknown, what: string): number {
  return checkIntegerInRange(value, what, 0, MAX_EXTENT_COUNT);
}

export function checkHostName(value: unknown, what = 'host'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_HOST_NAME_CHARS) {
    throw invalid(what, value, `a non-empty string of at most ${MAX_HOST_NAME_CHARS} characters`);
  }
  return value;
}
