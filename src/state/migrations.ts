// The state database's schema, as an ordered list of migrations. `PRAGMA user_version`
// holds the version of the last one applied; openStateDb runs the missing ones in one
// transaction, so a file is always at exactly one version.
//
// A shipped migration is never edited: a file migrated by it must keep meaning the same
// thing. Change the schema by appending a migration. Bounds that also exist as constants
// in TypeScript (64-character host names) are written out here on purpose, because a
// later change of the constant must not silently change what an old migration did.
//
// One schema serves both roles: a master's file leaves the host tables empty and a
// host's file leaves the master tables empty. Tables are STRICT so a value of the wrong
// type is refused by SQLite instead of being stored as text.

export interface Migration {
  /** 1, 2, 3, ... in order, no gaps: the user_version the file has after this migration. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const STATE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'master history: replays, grants and returns, for reports and forecasts',
    sql: `
      CREATE TABLE master_events (
        -- AUTOINCREMENT: ids are never reused, so id order is insertion order and the
        -- row cap can trim "the oldest rows" with a cheap id range.
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('replay', 'grant', 'return')),
        at_ms INTEGER NOT NULL CHECK (at_ms >= 0),
        host TEXT NOT NULL CHECK (length(host) BETWEEN 1 AND 64),
        extent_count INTEGER NOT NULL CHECK (extent_count >= 0),
        vg_seqno INTEGER NOT NULL CHECK (vg_seqno >= 0),
        record_count INTEGER CHECK (record_count >= 0),
        rejected_count INTEGER CHECK (rejected_count >= 0),
        applied_seq INTEGER CHECK (applied_seq >= 0),
        generation INTEGER CHECK (generation >= 0),
        vg_free_extents_after INTEGER CHECK (vg_free_extents_after >= 0),
        -- Each kind has exactly its own columns, so a row always reads back as one
        -- well-formed event.
        CHECK ((kind = 'replay') = (record_count IS NOT NULL AND rejected_count IS NOT NULL AND applied_seq IS NOT NULL)),
        CHECK ((kind = 'replay') = (record_count IS NOT NULL OR rejected_count IS NOT NULL OR applied_seq IS NOT NULL)),
        CHECK ((kind = 'grant') = (generation IS NOT NULL)),
        CHECK ((kind = 'return') = (vg_free_extents_after IS NULL))
      ) STRICT;
      CREATE INDEX master_events_by_time ON master_events (at_ms, id);
      CREATE INDEX master_events_by_host_time ON master_events (host, at_ms, id);
    `,
  },
  {
    version: 2,
    description: 'host allocator: in-flight intents, active LVs, last applied grant generation',
    sql: `
      -- A journaled extend whose dm table is not reloaded yet. The journal record is the
      -- truth; this row only tells a restarted daemon which tables it still owes.
      CREATE TABLE host_intents (
        seq INTEGER PRIMARY KEY CHECK (seq >= 1),
        lv TEXT NOT NULL CHECK (length(lv) >= 1),
        table_text TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL CHECK (created_at_ms >= 0)
      ) STRICT;
      CREATE TABLE host_active_lvs (
        lv TEXT PRIMARY KEY CHECK (length(lv) >= 1),
        table_text TEXT NOT NULL,
        loaded_at_ms INTEGER NOT NULL CHECK (loaded_at_ms >= 0)
      ) STRICT;
      -- Exactly one row, created here, so setting the generation is always a plain
      -- conditional UPDATE and never an insert race.
      CREATE TABLE host_grant_generation (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        generation INTEGER NOT NULL CHECK (generation >= 0)
      ) STRICT;
      INSERT INTO host_grant_generation (only_row, generation) VALUES (1, 0);
    `,
  },
  {
    version: 3,
    description: 'master history: extents each LV gained per replay (top growers), and when history began',
    sql: `
      CREATE TABLE master_lv_growth (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL CHECK (at_ms >= 0),
        lv TEXT NOT NULL CHECK (length(lv) BETWEEN 1 AND 128),
        extent_count INTEGER NOT NULL CHECK (extent_count >= 1)
      ) STRICT;
      CREATE INDEX master_lv_growth_by_time ON master_lv_growth (at_ms, id);
      -- One row: the first time a master kept history in this file, so a rate over a
      -- window longer than the history says how much of the window it covers.
      CREATE TABLE master_history_start (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        since_ms INTEGER NOT NULL CHECK (since_ms >= 0)
      ) STRICT;
    `,
  },
];

/** The schema version this build writes; a file with a larger user_version is refused. */
export const CURRENT_SCHEMA_VERSION: number = STATE_MIGRATIONS.length;
