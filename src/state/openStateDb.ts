// Opens a node's state database: the only place in thinlv that opens SQLite.
//
// The file holds bookkeeping only (history on the master, intents and activations on a
// host); LVM metadata and the rings are the truth. Still, what is written here must
// survive a power cut once the write returns, so every open sets and then reads back:
//
//   journal_mode = WAL    readers never block the writer; one fsync per commit
//   synchronous  = FULL   fsync the WAL on every commit. better-sqlite3 builds SQLite
//                         with a WAL default of NORMAL and applies it on every open of
//                         a WAL file, so setting FULL once at creation is not enough.
//   busy_timeout          another process holding the write lock is waited for, boundedly
//   foreign_keys  = ON    off by default in SQLite, per connection
//
// Then the schema is brought to CURRENT_SCHEMA_VERSION (see migrations.ts).

import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ThinlvError, assert } from '../errors.js';
import { CURRENT_SCHEMA_VERSION, STATE_MIGRATIONS, type Migration } from './migrations.js';
import { STATE_DB_FAILED, STATE_DB_SCHEMA, STATE_INVALID_ARGUMENT, StateError } from './stateErrors.js';

export type StateDb = Database.Database;

/** The path that opens a private, empty, in-memory database (unit tests). */
export const IN_MEMORY_PATH = ':memory:';
/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5_000;
/** `PRAGMA synchronous` reads back as a number; FULL is 2. */
export const SYNCHRONOUS_FULL = 2;
/** The database file and its -wal/-shm siblings (SQLite gives them the file's mode). */
export const STATE_FILE_MODE = 0o600;
/** Mode of a parent directory that openStateDb creates. */
export const STATE_DIR_MODE = 0o700;

export interface OpenStateDbOptions {
  /** Open an existing file without writing to it (reports); it must already be at the current schema. */
  readonly?: boolean;
  /** The schema to bring the file to; tests pass their own lists. Defaults to STATE_MIGRATIONS. */
  migrations?: readonly Migration[];
}

const OPERATOR_ADVICE =
  "the file holds only this node's bookkeeping (LVM metadata and the rings are the truth): " +
  'stop the thinlv daemon, move the file and its -wal and -shm files aside, and start again with an empty one.';

export function openStateDb(filePath: string, options: OpenStateDbOptions = {}): StateDb {
  if (typeof filePath !== 'string' || filePath.length === 0) {
    throw new StateError(STATE_INVALID_ARGUMENT, `state database path must be a non-empty string, got ${JSON.stringify(filePath)}`, {
      path: String(filePath),
    });
  }
  const readonly = options.readonly === true;
  const migrations = options.migrations ?? STATE_MIGRATIONS;
  assertMigrationList(migrations);
  const inMemory = filePath === IN_MEMORY_PATH;
  if (inMemory && readonly) {
    throw new StateError(STATE_INVALID_ARGUMENT, 'an in-memory state database cannot be opened read-only: it would always be empty', {
      path: filePath,
    });
  }
  if (!inMemory && !readonly) prepareFile(filePath);

  let db: StateDb | undefined;
  try {
    db = new Database(filePath, { readonly, fileMustExist: readonly, timeout: BUSY_TIMEOUT_MS });
    configureConnection(db, filePath, inMemory, readonly);
    migrate(db, filePath, migrations, readonly);
    return db;
  } catch (error) {
    try {
      db?.close();
    } catch {
      // Closing a connection that failed half-way can fail too; the first error is the one to report.
    }
    if (error instanceof ThinlvError) throw error;
    throw new StateError(
      STATE_DB_FAILED,
      `cannot open state database ${filePath}: ${describe(error)}. If the file is not a SQLite database or is damaged: ${OPERATOR_ADVICE}`,
      { path: filePath, sqliteCode: sqliteCode(error) },
      { cause: error },
    );
  }
}

/**
 * Creates the parent directory (0700) and the file itself (0600) before SQLite does,
 * because SQLite would create the file with the process umask (usually 0644).
 * Repeating it is harmless: mkdir is recursive, the open does not truncate, and the
 * chmod sets the same mode again.
 */
function prepareFile(filePath: string): void {
  try {
    fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: STATE_DIR_MODE });
    const fd = fs.openSync(filePath, fs.constants.O_RDWR | fs.constants.O_CREAT, STATE_FILE_MODE);
    try {
      fs.fchmodSync(fd, STATE_FILE_MODE);
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    throw new StateError(
      STATE_DB_FAILED,
      `cannot create or open state database file ${filePath}: ${describe(error)}. Check that its directory is writable by this user.`,
      { path: filePath, errno: (error as NodeJS.ErrnoException).code },
      { cause: error },
    );
  }
}

function configureConnection(db: StateDb, filePath: string, inMemory: boolean, readonly: boolean): void {
  // The first statement reads the header: a file that is not SQLite fails here with
  // SQLITE_NOTADB, which the caller turns into an error that names the file.
  const journalMode = readonly ? db.pragma('journal_mode', { simple: true }) : db.pragma('journal_mode = WAL', { simple: true });
  const expectedJournalMode = inMemory ? 'memory' : 'wal';
  if (journalMode !== expectedJournalMode) {
    throw new StateError(
      STATE_DB_FAILED,
      `state database ${filePath} is in journal mode ${String(journalMode)}, not ${expectedJournalMode}` +
        (readonly ? '; open it read-write once to convert it' : '; put it on a local filesystem that supports shared memory (WAL)'),
      { path: filePath, journalMode: String(journalMode) },
    );
  }
  // After journal_mode: switching a connection into WAL applies the WAL default
  // (NORMAL) to synchronous, so FULL must come second.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // Pair assertions: read back every setting this module relies on.
  const synchronous = db.pragma('synchronous', { simple: true });
  if (synchronous !== SYNCHRONOUS_FULL) {
    throw new StateError(
      STATE_DB_FAILED,
      `state database ${filePath}: PRAGMA synchronous reads back ${String(synchronous)} after setting FULL (${SYNCHRONOUS_FULL}); ` +
        'refusing to use it, commits would not be durable',
      { path: filePath, synchronous: String(synchronous) },
    );
  }
  const foreignKeys = db.pragma('foreign_keys', { simple: true });
  const busyTimeoutMs = db.pragma('busy_timeout', { simple: true });
  assert(foreignKeys === 1, 'PRAGMA foreign_keys did not read back ON', { path: filePath, foreignKeys: String(foreignKeys) });
  assert(busyTimeoutMs === BUSY_TIMEOUT_MS, 'PRAGMA busy_timeout did not read back as set', {
    path: filePath,
    busyTimeoutMs: String(busyTimeoutMs),
  });
}

function readUserVersion(db: StateDb): number {
  const version = db.pragma('user_version', { simple: true });
  assert(typeof version === 'number' && Number.isSafeInteger(version) && version >= 0, 'PRAGMA user_version is not a count', {
    version: String(version),
  });
  return version;
}

/**
 * Brings the file to the last migration's version. Safe to repeat and to race: the
 * version is re-read after BEGIN IMMEDIATE has taken the write lock, the migrations and
 * the new user_version commit together, and a crash before COMMIT leaves the old
 * version with none of the new tables.
 */
function migrate(db: StateDb, filePath: string, migrations: readonly Migration[], readonly: boolean): void {
  const latestVersion = migrations.length;
  const foundVersion = readUserVersion(db);
  checkNotNewer(filePath, foundVersion, latestVersion);
  if (foundVersion === latestVersion) return;
  if (readonly) {
    throw new StateError(
      STATE_DB_SCHEMA,
      `state database ${filePath} has schema version ${foundVersion} and this thinlv needs ${latestVersion}; ` +
        'it cannot be migrated when opened read-only: start the thinlv daemon (or any read-write command) once to migrate it',
      { path: filePath, foundVersion, latestVersion },
    );
  }
  db.transaction(() => {
    const version = readUserVersion(db);
    checkNotNewer(filePath, version, latestVersion);
    if (version === 0) checkNoForeignTables(db, filePath);
    for (const migration of migrations) {
      if (migration.version > version) db.exec(migration.sql);
    }
    db.pragma(`user_version = ${latestVersion}`);
  }).immediate();
  assert(readUserVersion(db) === latestVersion, 'user_version did not read back as the last migration', { path: filePath, latestVersion });
}

function checkNotNewer(filePath: string, foundVersion: number, latestVersion: number): void {
  if (foundVersion <= latestVersion) return;
  throw new StateError(
    STATE_DB_SCHEMA,
    `state database ${filePath} has schema version ${foundVersion}, newer than the ${latestVersion} this thinlv knows: ` +
      'it was written by a newer thinlv. Upgrade thinlv on this node to that version or later; ' +
      `or, to go back to this version and lose that bookkeeping: ${OPERATOR_ADVICE}`,
    { path: filePath, foundVersion, latestVersion },
  );
}

/** A version-0 file with tables in it is some other program's database, not a fresh one: leave it alone. */
function checkNoForeignTables(db: StateDb, filePath: string): void {
  const row = db.prepare("SELECT count(*) AS tableCount FROM sqlite_schema WHERE type = 'table'").get() as { tableCount: number };
  if (row.tableCount === 0) return;
  throw new StateError(
    STATE_DB_SCHEMA,
    `${filePath} is a SQLite database with ${row.tableCount} table(s) but no thinlv schema version: it is not a thinlv state database. ` +
      'Point thinlv at another path, or move that file aside if it is a leftover.',
    { path: filePath, tableCount: row.tableCount },
  );
}

function assertMigrationList(migrations: readonly Migration[]): void {
  migrations.forEach((migration, index) => {
    assert(migration.version === index + 1, 'migrations must be numbered 1, 2, 3, ... in order', {
      index,
      version: migration.version,
    });
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Runs one statement or transaction of a state class, turning an SQLite failure (disk
 * full, I/O error, a lock held past BUSY_TIMEOUT_MS) into STATE_DB_FAILED. Errors of
 * thinlv's own (bad input, broken invariants) pass through unchanged.
 */
export function runStateOperation<T>(db: StateDb, operation: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof ThinlvError) throw error;
    throw new StateError(
      STATE_DB_FAILED,
      `state database ${db.name}: ${operation} failed: ${describe(error)}`,
      { path: db.name, operation, sqliteCode: sqliteCode(error) },
      { cause: error },
    );
  }
}

export { CURRENT_SCHEMA_VERSION };
