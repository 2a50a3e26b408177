// openStateDb on real files in a temp dir: durability settings on every open, schema
// migrations, refusal of files it must not touch, and a writer killed with SIGKILL.

import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InvariantError } from '../../src/errors.js';
import {
  BUSY_TIMEOUT_MS,
  CURRENT_SCHEMA_VERSION,
  HostState,
  IN_MEMORY_PATH,
  MasterState,
  STATE_DB_FAILED,
  STATE_DB_SCHEMA,
  STATE_INVALID_ARGUMENT,
  STATE_MIGRATIONS,
  StateError,
  openStateDb,
  type Migration,
  type StateDb,
} from '../../src/state/index.js';
import { stateErrorOf } from '../fixtures/stateErrors.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPILED_STATE_MODULE = path.join(REPO_ROOT, 'dist', 'src', 'state', 'index.js');

let tempDir = '';
let fileCounter = 0;
const freshPath = (name = 'state'): string => path.join(tempDir, `${name}-${++fileCounter}.db`);

beforeAll(() => {
  tempDir = fs.mkdtempSync(path.join(tmpdir(), 'thinlv-state-db-'));
});
afterAll(() => {
  fs.rmSync(tempDir, { recursive: true, force: true });
});

function settingsOf(db: StateDb): Record<string, unknown> {
  return {
    journalMode: db.pragma('journal_mode', { simple: true }),
    synchronous: db.pragma('synchronous', { simple: true }),
    foreignKeys: db.pragma('foreign_keys', { simple: true }),
    busyTimeoutMs: db.pragma('busy_timeout', { simple: true }),
    userVersion: db.pragma('user_version', { simple: true }),
  };
}

function schemaOf(db: StateDb): unknown[] {
  return db.prepare('SELECT type, name, sql FROM sqlite_schema ORDER BY name').all();
}

describe('openStateDb: durability settings on every open', () => {
  const expected = { journalMode: 'wal', synchronous: 2, foreignKeys: 1, busyTimeoutMs: BUSY_TIMEOUT_MS, userVersion: CURRENT_SCHEMA_VERSION };

  it('a new file is WAL, synchronous FULL (2), foreign keys on, busy timeout set, at the current schema', () => {
    const db = openStateDb(freshPath());
    expect(settingsOf(db)).toEqual(expected);
    db.close();
  });

  it('reopening an existing WAL file is synchronous FULL again, where plain better-sqlite3 would give NORMAL (1)', () => {
    const filePath = freshPath();
    openStateDb(filePath).close();
    // The reason openStateDb must set FULL on every open, checked so the test notices
    // if better-sqlite3 ever changes its default.
    const plain = new Database(filePath);
    expect(plain.pragma('synchronous', { simple: true })).toBe(1);
    plain.close();
    for (let reopen = 0; reopen < 3; reopen++) {
      const db = openStateDb(filePath);
      expect(settingsOf(db)).toEqual(expected);
      db.close();
    }
  });

  it('a read-only open of an existing file is synchronous FULL and WAL too', () => {
    const filePath = freshPath();
    openStateDb(filePath).close();
    const db = openStateDb(filePath, { readonly: true });
    expect(settingsOf(db)).toEqual(expected);
    expect(db.readonly).toBe(true);
    db.close();
  });

  it('an in-memory database is synchronous FULL and migrated; its journal mode is memory', () => {
    const db = openStateDb(IN_MEMORY_PATH);
    expect(settingsOf(db)).toEqual({ ...expected, journalMode: 'memory' });
    db.close();
  });

  it('creates missing parent directories 0700 and the file 0600, and the -wal and -shm files get 0600 too', () => {
    const filePath = path.join(tempDir, 'nested-a', 'nested-b', 'state.db');
    const db = openStateDb(filePath);
    new MasterState(db).recordReturn({ atMs: 1, host: 'h1', extentCount: 1, vgSeqno: 1 });
    const modeOf = (p: string): number => fs.statSync(p).mode & 0o777;
    expect(modeOf(path.join(tempDir, 'nested-a'))).toBe(0o700);
    expect(modeOf(path.join(tempDir, 'nested-a', 'nested-b'))).toBe(0o700);
    expect(modeOf(filePath)).toBe(0o600);
    expect(modeOf(`${filePath}-wal`)).toBe(0o600);
    expect(modeOf(`${filePath}-shm`)).toBe(0o600);
    db.close();
  });

  it('tightens an existing file that is readable by others back to 0600', () => {
    const filePath = freshPath();
    openStateDb(filePath).close();
    fs.chmodSync(filePath, 0o644);
    openStateDb(filePath).close();
    expect(fs.statSync(filePath).mode & 0o777).toBe(0o600);
  });
});

describe('openStateDb: schema migrations', () => {
  it('a fresh file gets every migration; reopening changes nothing and keeps the rows', () => {
    const filePath = freshPath();
    const db = openStateDb(filePath);
    expect(db.pragma('user_version', { simple: true })).toBe(STATE_MIGRATIONS.length);
    const tables = (schemaOf(db) as { type: string; name: string }[]).filter((row) => row.type === 'table').map((row) => row.name);
    expect(tables).toEqual(expect.arrayContaining(['master_events', 'host_intents', 'host_active_lvs', 'host_grant_generation']));
    new MasterState(db).recordReturn({ atMs: 5, host: 'h1', extentCount: 2, vgSeqno: 3 });
    expect(new HostState(db).setGrantGeneration(7)).toBe(true);
    const schemaBefore = schemaOf(db);
    db.close();

    const reopened = openStateDb(filePath);
    expect(schemaOf(reopened)).toEqual(schemaBefore);
    expect(reopened.pragma('user_version', { simple: true })).toBe(CURRENT_SCHEMA_VERSION);
    expect(new MasterState(reopened).history({ limit: 10 })).toHaveLength(1);
    expect(new HostState(reopened).grantGeneration()).toBe(7);
    reopened.close();
  });

  const first: Migration = { version: 1, description: 'one', sql: 'CREATE TABLE one (x INTEGER) STRICT;' };
  const second: Migration = { version: 2, description: 'two', sql: 'CREATE TABLE two (x INTEGER) STRICT;' };
  const third: Migration = { version: 3, description: 'three', sql: 'CREATE TABLE three (x INTEGER) STRICT; INSERT INTO three VALUES (3);' };

  it('an older file gets only the migrations after its version, in order', () => {
    const filePath = freshPath();
    openStateDb(filePath, { migrations: [first] }).close();
    const db = openStateDb(filePath, { migrations: [first, second, third] });
    expect(db.pragma('user_version', { simple: true })).toBe(3);
    expect(db.prepare('SELECT x FROM three').all()).toEqual([{ x: 3 }]);
    db.close();
  });

  it('migrations run in one transaction: a failing one leaves the file at its old version with none of the new tables', () => {
    const filePath = freshPath();
    openStateDb(filePath, { migrations: [first] }).close();
    const broken: Migration = { version: 3, description: 'broken', sql: 'CREATE TABLE three (x INTEGER) STRICT; INSERT INTO nowhere VALUES (1);' };
    const error = stateErrorOf(() => openStateDb(filePath, { migrations: [first, second, broken] }));
    expect(error.code).toBe(STATE_DB_FAILED);
    expect(error.message).toContain(filePath);
    const db = openStateDb(filePath, { migrations: [first] });
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    const names = (schemaOf(db) as { name: string }[]).map((row) => row.name);
    expect(names).toContain('one');
    expect(names).not.toContain('two');
    expect(names).not.toContain('three');
    db.close();
  });

  it('a migration list that is not numbered 1, 2, 3, ... is a bug and is refused before the file is touched', () => {
    const filePath = freshPath();
    expect(() => openStateDb(filePath, { migrations: [first, third] })).toThrow(InvariantError);
    expect(fs.existsSync(filePath)).toBe(false);
  });

  it('a file from a newer schema version is refused with STATE_DB_SCHEMA, says what to do, and is left as it was', () => {
    const filePath = freshPath();
    openStateDb(filePath).close();
    const newer = new Database(filePath);
    newer.pragma(`user_version = ${CURRENT_SCHEMA_VERSION + 5}`);
    newer.close();
    for (const readonly of [false, true]) {
      const error = stateErrorOf(() => openStateDb(filePath, { readonly }));
      expect(error.code).toBe(STATE_DB_SCHEMA);
      expect(error.message).toContain(filePath);
      expect(error.message).toContain(`schema version ${CURRENT_SCHEMA_VERSION + 5}`);
      expect(error.message).toMatch(/newer thinlv/);
      expect(error.message).toMatch(/Upgrade thinlv/);
      expect(error.data).toMatchObject({ path: filePath, foundVersion: CURRENT_SCHEMA_VERSION + 5, latestVersion: CURRENT_SCHEMA_VERSION });
    }
    const check = new Database(filePath, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(CURRENT_SCHEMA_VERSION + 5);
    check.close();
  });

  it('a read-only open of a file that needs a migration is refused: it would have to write', () => {
    const filePath = freshPath();
    openStateDb(filePath, { migrations: [first] }).close();
    const error = stateErrorOf(() => openStateDb(filePath, { readonly: true, migrations: [first, second] }));
    expect(error.code).toBe(STATE_DB_SCHEMA);
    expect(error.message).toMatch(/read-only/);
  });

  it("another program's SQLite database (tables, no schema version) is refused, not migrated into", () => {
    const filePath = freshPath();
    const foreign = new Database(filePath);
    foreign.exec('CREATE TABLE someone_elses (x)');
    foreign.close();
    const error = stateErrorOf(() => openStateDb(filePath));
    expect(error.code).toBe(STATE_DB_SCHEMA);
    expect(error.message).toContain('not a thinlv state database');
  });
});

describe('openStateDb: files it cannot use are clear errors, never crashes', () => {
  it('a file of garbage bytes is STATE_DB_FAILED naming the path, and is not modified', () => {
    const filePath = freshPath('garbage');
    const garbage = Buffer.alloc(16 * 1024);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + 7) % 251;
    fs.writeFileSync(filePath, garbage);
    for (const readonly of [false, true]) {
      const error = stateErrorOf(() => openStateDb(filePath, { readonly }));
      expect(error.code).toBe(STATE_DB_FAILED);
      expect(error.message).toContain(`cannot open state database ${filePath}`);
      expect(error.message).toMatch(/not a database/);
      expect(error.message).toMatch(/move the file and its -wal and -shm files aside/);
      expect(error.data).toMatchObject({ path: filePath, sqliteCode: 'SQLITE_NOTADB' });
    }
    expect(fs.readFileSync(filePath).equals(garbage)).toBe(true);
  });

  it('a read-only open of a missing file is STATE_DB_FAILED and creates nothing', () => {
    const filePath = freshPath('missing');
    const error = stateErrorOf(() => openStateDb(filePath, { readonly: true }));
    expect(error.code).toBe(STATE_DB_FAILED);
    expect(error.message).toContain(filePath);
    expect(fs.existsSync(filePath)).toBe(false);
  });

  it('a path that is a directory is STATE_DB_FAILED naming it', () => {
    const dirPath = path.join(tempDir, 'a-directory.db');
    fs.mkdirSync(dirPath);
    const error = stateErrorOf(() => openStateDb(dirPath));
    expect(error.code).toBe(STATE_DB_FAILED);
    expect(error.message).toContain(dirPath);
  });

  it('an empty path and a read-only in-memory database are refused as bad arguments', () => {
    expect(stateErrorOf(() => openStateDb('')).code).toBe(STATE_INVALID_ARGUMENT);
    expect(stateErrorOf(() => openStateDb(IN_MEMORY_PATH, { readonly: true })).code).toBe(STATE_INVALID_ARGUMENT);
  });

  it('a write to a read-only connection is STATE_DB_FAILED, not a raw SQLite error', () => {
    const filePath = freshPath();
    openStateDb(filePath).close();
    const db = openStateDb(filePath, { readonly: true });
    const error = stateErrorOf(() => new MasterState(db).recordReturn({ atMs: 1, host: 'h1', extentCount: 1, vgSeqno: 1 }));
    expect(error.code).toBe(STATE_DB_FAILED);
    expect(error.data).toMatchObject({ sqliteCode: 'SQLITE_READONLY' });
    db.close();
  });
});

// ---------------------------------------------------------------------------
// Crash safety: a child process writes through the compiled module and prints a line
// after each committed write; it is killed with SIGKILL mid-stream. Every write it
// reported must be in the file afterwards, and the file must pass integrity_check.

/**
 * The child's operations, in order: a pure function of the index, so the child and the
 * test agree on what the first k operations were. Its source is copied into the child.
 */
function crashOperationAt(index: number): { kind: 'replay' | 'addIntent' | 'completeIntent' | 'setGeneration'; n: number } {
  const n = Math.floor(index / 4) + 1;
  const step = index % 4;
  if (step === 0) return { kind: 'replay', n };
  if (step === 1) return { kind: 'addIntent', n };
  if (step === 2) return { kind: 'completeIntent', n: n - 1 };
  return { kind: 'setGeneration', n: 2 * n };
}

const CHILD_SOURCE = `
${crashOperationAt.toString()}
const [moduleUrl, dbPath] = process.argv.slice(2);
const state = await import(moduleUrl);
const db = state.openStateDb(dbPath);
const master = new state.MasterState(db);
const host = new state.HostState(db);
process.stdout.write('opened\\n');
for (let index = 0; index < 10_000_000; index++) {
  const op = crashOperationAt(index);
  if (op.kind === 'replay') {
    master.recordReplay({ atMs: op.n, host: 'crash-host', recordCount: 1, extentCount: op.n % 7, rejectedCount: 0, appliedSeq: op.n, vgSeqno: op.n, vgFreeExtentsAfter: 1000 });
  } else if (op.kind === 'addIntent') {
    host.addIntent({ lv: 'vm-disk', seq: op.n, tableText: '0 8192 linear 7:0 ' + op.n * 8192, createdAtMs: op.n });
  } else if (op.kind === 'completeIntent') {
    if (op.n >= 1) host.completeIntent(op.n);
  } else {
    host.setGrantGeneration(op.n);
  }
  // Printed only after the write above committed (pipes are written synchronously on Linux).
  process.stdout.write('committed ' + index + '\\n');
}
`;

interface CrashModelState {
  appliedSeqs: number[];
  intentSeqs: number[];
  generation: number;
}

/** The state after the first `operationCount` operations. */
function modelAfter(operationCount: number): CrashModelState {
  const appliedSeqs: number[] = [];
  const intents = new Set<number>();
  let generation = 0;
  for (let index = 0; index < operationCount; index++) {
    const op = crashOperationAt(index);
    if (op.kind === 'replay') appliedSeqs.push(op.n);
    else if (op.kind === 'addIntent') intents.add(op.n);
    else if (op.kind === 'completeIntent') intents.delete(op.n);
    else generation = op.n;
  }
  return { appliedSeqs, intentSeqs: [...intents].sort((a, b) => a - b), generation };
}

function stateOnDisk(filePath: string): CrashModelState & { integrity: unknown } {
  const db = openStateDb(filePath);
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    const appliedSeqs = new MasterState(db)
      .history({ limit: 10_000 })
      .map((row) => (row.kind === 'replay' ? row.appliedSeq : -1))
      .sort((a, b) => a - b);
    const host = new HostState(db);
    return { integrity, appliedSeqs, intentSeqs: host.listIntents().map((intent) => intent.seq), generation: host.grantGeneration() };
  } finally {
    db.close();
  }
}

interface ChildRun {
  committedCount: number;
  opened: boolean;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Starts the child and SIGKILLs it once it has reported `killAfterCommits` commits, or after `killAfterMs`. */
function runAndKill(scriptPath: string, dbPath: string, kill: { killAfterCommits?: number; killAfterMs?: number }): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [scriptPath, pathToFileURL(COMPILED_STATE_MODULE).href, dbPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    let stderr = '';
    let committedCount = 0;
    let opened = false;
    let lastIndex = -1;
    let protocolError: Error | undefined;
    const timer = kill.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), kill.killAfterMs);
    const safetyTimer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'opened') {
          opened = true;
          continue;
        }
        const match = /^committed (\d+)$/.exec(line);
        const index = match === null ? Number.NaN : Number(match[1]);
        if (index !== lastIndex + 1) {
          protocolError ??= new Error(`unexpected line from the crash child after commit ${lastIndex}: ${JSON.stringify(line)}`);
          child.kill('SIGKILL');
          continue;
        }
        lastIndex = index;
        committedCount = index + 1;
        if (kill.killAfterCommits !== undefined && committedCount >= kill.killAfterCommits) child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    // 'close' waits for stdout to drain, so every line the child wrote is counted.
    child.on('close', (_code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      clearTimeout(safetyTimer);
      if (protocolError !== undefined) reject(protocolError);
      else resolve({ committedCount, opened, signal, stderr });
    });
  });
}

describe('openStateDb: a writer killed with SIGKILL mid-stream loses no reported commit', () => {
  let scriptPath = '';

  beforeAll(() => {
    if (!fs.existsSync(COMPILED_STATE_MODULE)) {
      throw new Error(
        `${COMPILED_STATE_MODULE} is missing: the crash test runs the compiled state module in a child process; ` +
          'run `npm run build` (or `npm test`, which builds first)',
      );
    }
    scriptPath = path.join(tempDir, 'crashWriter.mjs');
    fs.writeFileSync(scriptPath, CHILD_SOURCE);
  });

  it.each([
    [1, 150],
    [2, 700],
    [3, 2_500],
  ])('run %i: killed after %i reported commits, every reported commit is on disk and integrity_check is ok', async (_run, killAfterCommits) => {
    const dbPath = freshPath('crash');
    const run = await runAndKill(scriptPath, dbPath, { killAfterCommits });
    expect(run.signal, `child was not killed by the test; stderr: ${run.stderr}`).toBe('SIGKILL');
    expect(run.committedCount, `child stderr: ${run.stderr}`).toBeGreaterThanOrEqual(killAfterCommits);
    const onDisk = stateOnDisk(dbPath);
    expect(onDisk.integrity).toBe('ok');
    // The operation after the last reported one may have committed before the kill
    // (committed, not yet printed); nothing later can have.
    const reported = modelAfter(run.committedCount);
    const reportedPlusOne = modelAfter(run.committedCount + 1);
    const { integrity: _integrity, ...state } = onDisk;
    expect([reported, reportedPlusOne], `killed after ${run.committedCount} reported commits`).toContainEqual(state);
  });

  it('killed at random early moments, even during the first open, the file reopens cleanly with all reported commits', async () => {
    const seed = Date.now();
    let random = seed;
    const nextDelayMs = (): number => {
      random = (random * 1_103_515_245 + 12_345) % 2 ** 31;
      return 5 + (random % 120);
    };
    for (let attempt = 0; attempt < 4; attempt++) {
      const dbPath = freshPath('early-crash');
      const killAfterMs = nextDelayMs();
      const run = await runAndKill(scriptPath, dbPath, { killAfterMs });
      const context = `seed ${seed}, attempt ${attempt}, killed after ${killAfterMs} ms, ${run.committedCount} commits reported; stderr: ${run.stderr}`;
      expect(run.signal, context).toBe('SIGKILL');
      const onDisk = stateOnDisk(dbPath);
      expect(onDisk.integrity, context).toBe('ok');
      const { integrity: _integrity, ...state } = onDisk;
      expect([modelAfter(run.committedCount), modelAfter(run.committedCount + 1)], context).toContainEqual(state);
    }
  });
});
