// Node-local bookkeeping in SQLite: the only module of thinlv that opens a database.
// openStateDb opens and migrates a file; MasterState and HostState are the two roles'
// views of it. Nothing here is the truth (LVM metadata and the rings are).

export {
  BUSY_TIMEOUT_MS,
  CURRENT_SCHEMA_VERSION,
  IN_MEMORY_PATH,
  STATE_DIR_MODE,
  STATE_FILE_MODE,
  SYNCHRONOUS_FULL,
  openStateDb,
  type OpenStateDbOptions,
  type StateDb,
} from './openStateDb.js';
export { STATE_MIGRATIONS, type Migration } from './migrations.js';
export {
  MAX_EXTENT_COUNT,
  MAX_HOST_NAME_CHARS,
  STATE_DB_FAILED,
  STATE_DB_SCHEMA,
  STATE_INVALID_ARGUMENT,
  STATE_LIMIT_REACHED,
  StateError,
  type StateErrorCode,
} from './stateErrors.js';
export {
  MAX_HISTORY_ROWS,
  MAX_MASTER_EVENT_ROWS,
  MS_PER_HOUR,
  MasterState,
  type AllocationRate,
  type GrantEvent,
  type HistoryQuery,
  type HistoryRow,
  type HostAllocationRate,
  type MasterStateOptions,
  type ReplayEvent,
  type ReturnEvent,
} from './masterState.js';
export {
  HostState,
  MAX_ACTIVE_LVS,
  MAX_IN_FLIGHT_INTENTS,
  MAX_TABLE_TEXT_BYTES,
  type ActiveLv,
  type InFlightIntent,
} from './hostState.js';
