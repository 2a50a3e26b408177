// Which journal errors say a ring cannot be used as it is on disk: not this LV's ring, or
// damaged where nothing but recreating it helps. Only a ring whose records are notices (a
// host's grants ring) may be recreated on such an error; a journal holds acknowledged
// extends, and its errors are never handled this way.

import { isJournalError } from '../../journal/index.js';

export const unreadableRing = (error: unknown): boolean =>
  isJournalError(error) && ['NOT_A_RING', 'HEADER_CORRUPT', 'RING_VERSION', 'RING_ID_MISMATCH', 'CONSUMER_CORRUPT', 'CONSUMER_AHEAD'].includes(error.code);
