// The `code` label of the errors_total counters: the stable code an error carries
// (thinlv's and the journal library's), so a label's values stay a small known set.

import { isJournalError } from '../../journal/index.js';
import { ThinlvError } from '../errors.js';

export function errorCodeOf(error: unknown): string {
  if (error instanceof ThinlvError || isJournalError(error)) return error.code;
  return 'INTERNAL';
}
