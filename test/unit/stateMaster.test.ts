// MasterState: the master's history, its allocation rate and time-to-full forecast,
// with hand-computed expectations and fast-check models.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { fc, test } from '@fast-check/vitest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  IN_MEMORY_PATH,
  MAX_EXTENT_COUNT,
  MAX_HISTORY_ROWS,
  MAX_MASTER_EVENT_ROWS,
  MS_PER_HOUR,
  MasterState,
  STATE_INVALID_ARGUMENT,
  StateError,
  openStateDb,
  type HistoryRow,
  type StateDb,
} from '../../src/state/index.js';
import { stateErrorOf } from '../fixtures/stateErrors.js';

const T0_MS = 1_700_000_000_000;
const openDbs: StateDb[] = [];

function memoryMaster(maxEventRows?: number): MasterState {
  const db = openStateDb(IN_MEMORY_PATH);
  openDbs.push(db);
  return maxEventRows === undefined ? new MasterState(db) : new MasterState(db, { maxEventRows });
}

afterEach(() => {
  for (const db of openDbs.splice(0)) db.close();
});

const replay = (atMs: number, host: string, extentCount: number, appliedSeq = 1) =>
  ({ atMs, host, recordCount: 1, extentCount, rejectedCount: 0, appliedSeq, vgSeqno: 10, vgFreeExtentsAfter: 5_000 }) as const;
const grant = (atMs: number, host: string, extentCount: number, generation = 1) =>
  ({ atMs, host, generation, extentCount, vgSeqno: 11, vgFreeExtentsAfter: 4_000 }) as const;
const giveBack = (atMs: number, host: string, extentCount: number) => ({ atMs, host, extentCount, vgSeqno: 12 }) as const;

describe('MasterState: recording and reading history', () => {
  it('each kind reads back as written, newest first, with its own fields only', () => {
    const master = memoryMaster();
    master.recordReplay({ atMs: 100, host: 'h1', recordCount: 3, extentCount: 12, rejectedCount: 1, appliedSeq: 41, vgSeqno: 7, vgFreeExtentsAfter: 900 });
    master.recordGrant({ atMs: 200, host: 'h2', generation: 5, extentCount: 64, vgSeqno: 8, vgFreeExtentsAfter: 836 });
    master.recordReturn({ atMs: 300, host: 'h1', extentCount: 16, vgSeqno: 9 });
    expect(master.history({ limit: 10 })).toEqual([
      { kind: 'return', id: 3, atMs: 300, host: 'h1', extentCount: 16, vgSeqno: 9 },
      { kind: 'grant', id: 2, atMs: 200, host: 'h2', generation: 5, extentCount: 64, vgSeqno: 8, vgFreeExtentsAfter: 836 },
      { kind: 'replay', id: 1, atMs: 100, host: 'h1', recordCount: 3, extentCount: 12, rejectedCount: 1, appliedSeq: 41, vgSeqno: 7, vgFreeExtentsAfter: 900 },
    ]);
  });

  it('rows with the same atMs come back in reverse insertion order', () => {
    const master = memoryMaster();
    master.recordReplay(replay(50, 'h1', 1, 1));
    master.recordReplay(replay(50, 'h1', 1, 2));
    master.recordReplay(replay(50, 'h1', 1, 3));
    expect(master.history({ limit: 10 }).map((row) => (row.kind === 'replay' ? row.appliedSeq : 0))).toEqual([3, 2, 1]);
  });

  it('filters by host and sinceMs (inclusive) and stops at the limit', () => {
    const master = memoryMaster();
    for (let i = 0; i < 10; i++) master.recordReplay(replay(i * 10, i % 2 === 0 ? 'even' : 'odd', i, i));
    const seqs = (rows: HistoryRow[]): number[] => rows.map((row) => (row.kind === 'replay' ? row.appliedSeq : -1));
    expect(seqs(master.history({ host: 'even', limit: 100 }))).toEqual([8, 6, 4, 2, 0]);
    expect(seqs(master.history({ sinceMs: 70, limit: 100 }))).toEqual([9, 8, 7]);
    expect(seqs(master.history({ host: 'odd', sinceMs: 30, limit: 100 }))).toEqual([9, 7, 5, 3]);
    expect(seqs(master.history({ limit: 2 }))).toEqual([9, 8]);
    expect(master.history({ host: 'nobody', limit: 5 })).toEqual([]);
  });

  it(`a limit of MAX_HISTORY_ROWS (${MAX_HISTORY_ROWS}) returns that many rows; one more is refused, not truncated`, () => {
    const master = memoryMaster();
    for (let i = 0; i < MAX_HISTORY_ROWS + 5; i++) master.recordReturn(giveBack(i, 'h1', 1));
    const rows = master.history({ limit: MAX_HISTORY_ROWS });
    expect(rows).toHaveLength(MAX_HISTORY_ROWS);
    expect(rows[0]?.atMs).toBe(MAX_HISTORY_ROWS + 4);
    for (const limit of [MAX_HISTORY_ROWS + 1, 0, -1, 1.5, Number.NaN]) {
      const error = stateErrorOf(() => master.history({ limit }));
      expect(error.code).toBe(STATE_INVALID_ARGUMENT);
      expect(error.data).toMatchObject({ what: 'limit' });
    }
  });

  it('history survives closing and reopening the file', () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'thinlv-state-master-'));
    try {
      const filePath = path.join(dir, 'master.db');
      const db = openStateDb(filePath);
      new MasterState(db).recordGrant(grant(T0_MS, 'h1', 32, 9));
      db.close();
      const reopened = openStateDb(filePath);
      expect(new MasterState(reopened).history({ limit: 5 })).toEqual([
        { kind: 'grant', id: 1, atMs: T0_MS, host: 'h1', generation: 9, extentCount: 32, vgSeqno: 11, vgFreeExtentsAfter: 4_000 },
      ]);
      reopened.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MasterState: bad input is refused at the boundary and nothing is written', () => {
  const good = replay(T0_MS, 'h1', 4);
  it.each([
    ['an empty host name', { ...good, host: '' }, 'host'],
    ['a 65-character host name', { ...good, host: 'h'.repeat(65) }, 'host'],
    ['a negative extent count', { ...good, extentCount: -1 }, 'extentCount'],
    ['a fractional extent count', { ...good, extentCount: 1.5 }, 'extentCount'],
    ['an extent count over what LVM can hold', { ...good, extentCount: MAX_EXTENT_COUNT + 1 }, 'extentCount'],
    ['a NaN record count', { ...good, recordCount: Number.NaN }, 'recordCount'],
    ['a negative rejected count', { ...good, rejectedCount: -3 }, 'rejectedCount'],
    ['an unsafe applied seq', { ...good, appliedSeq: 2 ** 53 }, 'appliedSeq'],
    ['a negative atMs', { ...good, atMs: -1 }, 'atMs'],
    ['a string vgSeqno', { ...good, vgSeqno: '7' as unknown as number }, 'vgSeqno'],
  ])('%s', (_what, event, field) => {
    const master = memoryMaster();
    const error = stateErrorOf(() => master.recordReplay(event));
    expect(error.code).toBe(STATE_INVALID_ARGUMENT);
    expect(error.data).toMatchObject({ what: field });
    expect(error.message).toContain(field);
    expect(master.history({ limit: 10 })).toEqual([]);
  });

  it('a 64-character host name is accepted', () => {
    const master = memoryMaster();
    master.recordGrant(grant(1, 'h'.repeat(64), 1));
    expect(master.history({ limit: 1 })[0]?.host).toHaveLength(64);
  });

  it('grants and returns are validated too', () => {
    const master = memoryMaster();
    expect(stateErrorOf(() => master.recordGrant({ ...grant(1, 'h1', 1), generation: -1 })).data).toMatchObject({ what: 'generation' });
    expect(stateErrorOf(() => master.recordReturn({ ...giveBack(1, 'h1', 1), extentCount: -1 })).data).toMatchObject({ what: 'extentCount' });
    expect(master.history({ limit: 10 })).toEqual([]);
  });
});

describe('MasterState: allocation rate and time to full', () => {
  // Window [T0, T0 + 2 h]. Inside: replays of 30 (at T0, the inclusive start) and 50
  // (at T0 + 2 h, the inclusive end) on h1, 40 on h2. Grants, returns and replays
  // just outside the window do not count. Total 120 extents / 2 h = 60 per hour.
  function masterWithKnownHistory(): MasterState {
    const master = memoryMaster();
    master.recordReplay(replay(T0_MS - 1, 'h1', 999));
    master.recordReplay(replay(T0_MS, 'h1', 30));
    master.recordReplay(replay(T0_MS + MS_PER_HOUR, 'h2', 40));
    master.recordGrant(grant(T0_MS + MS_PER_HOUR, 'h1', 1_000));
    master.recordReturn(giveBack(T0_MS + MS_PER_HOUR, 'h2', 500));
    master.recordReplay(replay(T0_MS + 2 * MS_PER_HOUR, 'h1', 50));
    master.recordReplay(replay(T0_MS + 2 * MS_PER_HOUR + 1, 'h2', 777));
    return master;
  }

  it('sums replayed extents in [sinceMs, nowMs] per host and in total, per hour', () => {
    const rate = masterWithKnownHistory().allocationRate({ sinceMs: T0_MS, nowMs: T0_MS + 2 * MS_PER_HOUR });
    expect(rate).toEqual({
      sinceMs: T0_MS,
      nowMs: T0_MS + 2 * MS_PER_HOUR,
      extentCount: 120,
      extentsPerHour: 60,
      perHost: [
        { host: 'h1', extentCount: 80, extentsPerHour: 40 },
        { host: 'h2', extentCount: 40, extentsPerHour: 20 },
      ],
    });
  });

  it('a window with no replays has rate 0 and no hosts', () => {
    const rate = masterWithKnownHistory().allocationRate({ sinceMs: T0_MS + 10 * MS_PER_HOUR, nowMs: T0_MS + 11 * MS_PER_HOUR });
    expect(rate).toMatchObject({ extentCount: 0, extentsPerHour: 0, perHost: [] });
  });

  it('an empty or backwards window is refused', () => {
    const master = memoryMaster();
    expect(stateErrorOf(() => master.allocationRate({ sinceMs: 5, nowMs: 5 })).code).toBe(STATE_INVALID_ARGUMENT);
    expect(stateErrorOf(() => master.allocationRate({ sinceMs: 6, nowMs: 5 })).code).toBe(STATE_INVALID_ARGUMENT);
  });

  it('forecasts 600 free extents at 60 extents per hour as 10 hours', () => {
    const master = masterWithKnownHistory();
    const nowMs = T0_MS + 2 * MS_PER_HOUR;
    expect(master.forecastFull({ nowMs, windowMs: 2 * MS_PER_HOUR, vgFreeExtents: 600 })).toBe(10 * MS_PER_HOUR);
    // 1 extent at 120 extents per 2 h: one minute.
    expect(master.forecastFull({ nowMs, windowMs: 2 * MS_PER_HOUR, vgFreeExtents: 1 })).toBe(60_000);
    // Last hour only: (T0 + 1 h .. T0 + 2 h) holds 40 + 50 = 90 extents; 45 free last half an hour.
    expect(master.forecastFull({ nowMs, windowMs: MS_PER_HOUR, vgFreeExtents: 45 })).toBe(MS_PER_HOUR / 2);
  });

  it('rounds the forecast down to whole ms', () => {
    const master = memoryMaster();
    master.recordReplay(replay(1_000, 'h1', 7));
    // 7 extents in 1000 ms: 1 extent lasts 1000 / 7 = 142.86 ms.
    expect(master.forecastFull({ nowMs: 1_000, windowMs: 1_000, vgFreeExtents: 1 })).toBe(142);
  });

  it('is null when nothing was allocated in the window, and 0 when the VG is already full', () => {
    const master = masterWithKnownHistory();
    const quietNowMs = T0_MS + 50 * MS_PER_HOUR;
    expect(master.forecastFull({ nowMs: quietNowMs, windowMs: MS_PER_HOUR, vgFreeExtents: 600 })).toBeNull();
    expect(master.forecastFull({ nowMs: quietNowMs, windowMs: MS_PER_HOUR, vgFreeExtents: 0 })).toBe(0);
    expect(master.forecastFull({ nowMs: T0_MS + 2 * MS_PER_HOUR, windowMs: MS_PER_HOUR, vgFreeExtents: 0 })).toBe(0);
  });

  it('refuses a window of 0 ms', () => {
    expect(stateErrorOf(() => memoryMaster().forecastFull({ nowMs: 10, windowMs: 0, vgFreeExtents: 1 })).code).toBe(STATE_INVALID_ARGUMENT);
  });

  const hostName = fc.constantFrom('h1', 'h2', 'h3');
  const historyEvent = fc.record({
    kind: fc.constantFrom('replay', 'grant', 'return'),
    atMs: fc.integer({ min: 0, max: 20_000 }),
    host: hostName,
    extentCount: fc.integer({ min: 0, max: 5_000 }),
  });

  function recordAll(master: MasterState, events: readonly { kind: string; atMs: number; host: string; extentCount: number }[]): void {
    for (const event of events) {
      if (event.kind === 'replay') master.recordReplay(replay(event.atMs, event.host, event.extentCount));
      else if (event.kind === 'grant') master.recordGrant(grant(event.atMs, event.host, event.extentCount));
      else master.recordReturn(giveBack(event.atMs, event.host, event.extentCount));
    }
  }

  test.prop([fc.array(historyEvent, { maxLength: 60 }), fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 1, max: 20_000 })])(
    'the rate over any history equals the sum of replayed extents in the window divided by its hours',
    (events, sinceMs, windowMs) => {
      const master = memoryMaster();
      recordAll(master, events);
      const nowMs = sinceMs + windowMs;
      const hours = windowMs / MS_PER_HOUR;
      const inWindow = events.filter((e) => e.kind === 'replay' && e.atMs >= sinceMs && e.atMs <= nowMs);
      const hosts = [...new Set(inWindow.map((e) => e.host))].sort();
      const sumOf = (list: typeof inWindow): number => list.reduce((sum, e) => sum + e.extentCount, 0);
      const total = sumOf(inWindow);
      expect(master.allocationRate({ sinceMs, nowMs })).toEqual({
        sinceMs,
        nowMs,
        extentCount: total,
        extentsPerHour: total / hours,
        perHost: hosts.map((host) => {
          const hostSum = sumOf(inWindow.filter((e) => e.host === host));
          return { host, extentCount: hostSum, extentsPerHour: hostSum / hours };
        }),
      });
      const vgFreeExtents = 12_345;
      expect(master.forecastFull({ nowMs, windowMs, vgFreeExtents })).toBe(total === 0 ? null : Math.floor((vgFreeExtents * windowMs) / total));
    },
  );

  test.prop([
    fc.array(historyEvent, { maxLength: 60 }),
    fc.option(hostName, { nil: undefined }),
    fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }),
    fc.integer({ min: 1, max: 70 }),
  ])('history over any events equals the filtered model, newest first', (events, host, sinceMs, limit) => {
    const master = memoryMaster();
    recordAll(master, events);
    const expected = events
      .map((event, index) => ({ ...event, id: index + 1 }))
      .filter((e) => (host === undefined || e.host === host) && (sinceMs === undefined || e.atMs >= sinceMs))
      .sort((a, b) => b.atMs - a.atMs || b.id - a.id)
      .slice(0, limit)
      .map(({ kind, id, atMs, host: rowHost, extentCount }) => ({ kind, id, atMs, host: rowHost, extentCount }));
    const query = { limit, ...(host === undefined ? {} : { host }), ...(sinceMs === undefined ? {} : { sinceMs }) };
    const actual = master.history(query).map(({ kind, id, atMs, host: rowHost, extentCount }) => ({ kind, id, atMs, host: rowHost, extentCount }));
    expect(actual).toEqual(expected);
  });
});

describe('MasterState: bounded growth', () => {
  const countRows = (master: MasterState): number => master.history({ limit: MAX_HISTORY_ROWS }).length;

  it('at the row cap every row is kept; one more insert deletes exactly the oldest', () => {
    const master = memoryMaster(50);
    for (let i = 1; i <= 50; i++) master.recordReturn(giveBack(i, 'h1', 1));
    expect(countRows(master)).toBe(50);
    master.recordReturn(giveBack(51, 'h1', 1));
    const ids = master.history({ limit: 100 }).map((row) => row.id);
    expect(ids).toHaveLength(50);
    expect(Math.min(...ids)).toBe(2);
    expect(Math.max(...ids)).toBe(51);
  });

  it('after many more inserts than the cap, only the newest cap rows remain', () => {
    const master = memoryMaster(50);
    for (let i = 1; i <= 120; i++) master.recordReplay(replay(i, 'h1', 1, i));
    const seqs = master.history({ limit: 100 }).map((row) => (row.kind === 'replay' ? row.appliedSeq : -1));
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, k) => 120 - k));
  });

  it('the cap option is itself bounded', () => {
    for (const maxEventRows of [0, MAX_MASTER_EVENT_ROWS + 1, 2.5]) {
      expect(stateErrorOf(() => memoryMaster(maxEventRows)).code).toBe(STATE_INVALID_ARGUMENT);
    }
  });

  it('prune deletes rows older than the cut-off, keeps the rest, and repeating it deletes nothing', () => {
    const master = memoryMaster();
    for (let atMs = 0; atMs < 10; atMs++) master.recordReturn(giveBack(atMs, 'h1', 1));
    expect(master.prune({ olderThanMs: 4 })).toBe(4);
    expect(master.prune({ olderThanMs: 4 })).toBe(0);
    expect(master.history({ limit: 100 }).map((row) => row.atMs)).toEqual([9, 8, 7, 6, 5, 4]);
  });

  const operation = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), atMs: fc.integer({ min: 0, max: 1_000 }) }),
    fc.record({ kind: fc.constant('prune' as const), olderThanMs: fc.integer({ min: 0, max: 1_000 }) }),
  );

  test.prop([fc.integer({ min: 1, max: 15 }), fc.array(operation, { maxLength: 80 })])(
    'under any mix of inserts and prunes the table never exceeds its cap and holds exactly the model rows',
    (maxEventRows, operations) => {
      const master = memoryMaster(maxEventRows);
      let model: { id: number; atMs: number }[] = [];
      let nextId = 1;
      for (const op of operations) {
        if (op.kind === 'insert') {
          const id = master.recordReturn(giveBack(op.atMs, 'h1', 1));
          expect(id).toBe(nextId);
          model.push({ id, atMs: op.atMs });
          model = model.filter((row) => row.id > nextId - maxEventRows);
          nextId++;
        } else {
          const before = model.length;
          model = model.filter((row) => row.atMs >= op.olderThanMs);
          expect(master.prune(op)).toBe(before - model.length);
        }
        const ids = master.history({ limit: 100 }).map((row) => row.id).sort((a, b) => a - b);
        expect(ids.length).toBeLessThanOrEqual(maxEventRows);
        expect(ids).toEqual(model.map((row) => row.id));
      }
    },
  );
});

describe('MasterState on a real file', () => {
  const countRows = (master: MasterState): number => master.history({ limit: MAX_HISTORY_ROWS }).length;
  let dir = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'thinlv-state-master-file-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the row cap holds across reopening with the same cap', () => {
    const filePath = path.join(dir, 'capped.db');
    for (let round = 0; round < 3; round++) {
      const db = openStateDb(filePath);
      const master = new MasterState(db, { maxEventRows: 20 });
      for (let i = 0; i < 15; i++) master.recordReturn(giveBack(round * 100 + i, 'h1', 1));
      expect(countRows(master)).toBe(Math.min(20, 15 * (round + 1)));
      db.close();
    }
  });
});
