// Errors thrown by the pure extent model. Each carries a stable `code` and structured
// `data`, so a top-level handler can map it to an exit code and to `--json` output without
// parsing the message.
//
// Two kinds, because they call for different reactions:
// - ExtentArgumentError: a caller passed something malformed or impossible (a negative
//   extent, a range to remove that the LV does not hold). The caller's input is wrong.
// - ExtentInvariantError: this module's own result broke a postcondition. That is a bug
//   here; the process must stop before anything it computed is written.

import { ThinlvError } from '../errors.js';

export type ExtentErrorCode =
  /** A number, PV name or shape is out of its domain (negative, not an integer, empty, ...). */
  | 'EXTENT_INVALID_ARGUMENT'
  /** An extent would belong twice to the same thing, or to an LV and a pool at once (I1). */
  | 'EXTENT_DOUBLE_USE'
  /** An extent that should be present (to remove, to map) is not. */
  | 'EXTENT_NOT_PRESENT'
  /** A sector number would leave the range a JavaScript number holds exactly. */
  | 'EXTENT_SECTOR_OVERFLOW'
  /** A postcondition of this module failed: a bug in src/extent/. */
  | 'EXTENT_INVARIANT_BROKEN';

export class ExtentError extends ThinlvError {
  declare readonly code: ExtentErrorCode;

  constructor(code: ExtentErrorCode, message: string, data: Readonly<Record<string, unknown>> = {}) {
    super(code, message, data);
  }
}

/** Bad input from the caller. Plays the role of a RangeError with a stable code. */
export class ExtentArgumentError extends ExtentError {
  constructor(
    code: Exclude<ExtentErrorCode, 'EXTENT_INVARIANT_BROKEN'>,
    message: string,
    data: Readonly<Record<string, unknown>> = {},
  ) {
    super(code, message, data);
  }
}

/** A result of this module failed its own check: never catch and continue. */
export class ExtentInvariantError extends ExtentError {
  constructor(message: string, data: Readonly<Record<string, unknown>> = {}) {
    super('EXTENT_INVARIANT_BROKEN', `extent invariant broken (bug in src/extent): ${message}`, data);
  }
}
