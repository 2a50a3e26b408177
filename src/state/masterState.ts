// The master's history: one row per replay, grant and return, for reports
// (`thinlv report`), the allocation rate and the time-to-full forecast.
//
// This is history, not state. Deleting the file loses the history and nothing else:
// replay cursors, grant generations and pool contents live in LVM metadata tags and
// the rings, and a master that fails over to another host starts with an empty
// history and is just as correct. That is why the rows are capped and pruned freely.
//
// Rows are written after the LVM commit they describe. A crash between the two loses
// one history row (a report undercounts a little), never the reverse: no row
// describes a commit that did not happen.

import { assert } from '../errors.js';
import { runStateOperation, type StateDb } from './openStateDb.js';
import {
  STATE_INVALID_ARGUMENT,
  StateError,
  checkExtentCount,
  checkHostName,
  checkIntegerInRange,
  checkNonNegativeSafeInteger,
  checkSafeInteger,
} from './stateErrors.js';

/** The most rows one history() call returns; larger requests are refused, not truncated. */
export const MAX_HISTORY_ROWS = 10_000;
/**
 * The most event rows kept. Each insert beyond it deletes the oldest. A replay per host
 * every few seconds on 64 hosts is about a million rows a day; at roughly 100 bytes a
 * row this bounds the file near 100 MiB and every query's scan to the same.
 */
export const MAX_MASTER_EVENT_ROWS = 1_000_000;
export const MS_PER_HOUR = 3_600_000;

export interface ReplayEvent {
  readonly atMs: number;
  readonly host: string;
  /** Journal records applied by this replay's commit. */
  readonly recordCount: number;
  /** Extents moved from the host's free LV to user LVs: the allocation that rates count. */
  readonly extentCount: number;
  /** Records read but refused (bad checksum past the tail is not counted; refused content is). */
  readonly rejectedCount: number;
  /** The host's applied journal sequence number after the commit. */
  readonly appliedSeq: number;
  /** The VG metadata seqno the commit produced. */
  readonly vgSeqno: number;
  readonly vgFreeExtentsAfter: number;
}

export interface GrantEvent {
  readonly atMs: number;
  readonly host: string;
  readonly generation: number;
  /** Extents moved from VG free space into the host's free LV. */
  readonly extentCount: number;
  readonly vgSeqno: number;
  readonly vgFreeExtentsAfter: number;
}

export interface ReturnEvent {
  readonly atMs: number;
  readonly host: string;
  /** Extents moved from the host's free LV back to VG free space. */
  readonly extentCount: number;
  readonly vgSeqno: number;
}

export type HistoryRow =
  | ({ readonly kind: 'replay'; readonly id: number } & ReplayEvent)
  | ({ readonly kind: 'grant'; readonly id: number } & GrantEvent)
  | ({ readonly kind: 'return'; readonly id: number } & ReturnEvent);

export interface HistoryQuery {
  /** Only this host's rows. */
  readonly host?: string;
  /** Only rows with atMs >= sinceMs. */
  readonly sinceMs?: number;
  /** 1 to MAX_HISTORY_ROWS. */
  readonly limit: number;
}

export interface HostAllocationRate {
  readonly host: string;
  readonly extentCount: number;
  readonly extentsPerHour: number;
}

export interface AllocationRate {
  readonly sinceMs: number;
  readonly nowMs: number;
  /** Replayed extents in [sinceMs, nowMs], all hosts. */
  readonly extentCount: number;
  readonly extentsPerHour: number;
  /** Hosts with at least one replay in the window, by name. */
  readonly perHost: readonly HostAllocationRate[];
}

export interface LvGrowth {
  readonly lv: string;
  /** Extents the LV gained by replays in the window. */
  readonly extentCount: number;
}

/** The most LVs one topGrowers() call returns. */
export const MAX_TOP_GROWERS = 100;

export interface MasterStateOptions {
  /** Row cap, 1 to MAX_MASTER_EVENT_ROWS (tests use small ones). */
  readonly maxEventRows?: number;
}

interface EventRowColumns {
  kind: string;
  atMs: number;
  host: string;
  extentCount: number;
  vgSeqno: number;
  recordCount: number | null;
  rejectedCount: number | null;
  appliedSeq: number | null;
  generation: number | null;
  vgFreeExtentsAfter: number | null;
}

interface StoredEventRow extends EventRowColumns {
  id: number;
}

const SELECT_COLUMNS = `id, kind, at_ms AS atMs, host, extent_count AS extentCount, vg_seqno AS vgSeqno,
  record_count AS recordCount, rejected_count AS rejectedCount, applied_seq AS appliedSeq,
  generation, vg_free_extents_after AS vgFreeExtentsAfter`;
const NEWEST_FIRST = 'ORDER BY at_ms DESC, id DESC';

export class MasterState {
  readonly maxEventRows: number;
  readonly #db: StateDb;
  readonly #insertEvent;
  readonly #trimToCap;
  readonly #historyAll;
  readonly #historySince;
  readonly #historyHost;
  readonly #historyHostSince;
  readonly #replayedExtentsByHost;
  readonly #pruneOlderThan;
  readonly #insertGrowth;
  readonly #trimGrowth;
  readonly #topGrowers;
  readonly #pruneGrowth;
  readonly #startHistory;
  readonly #historyStart;

  /** `db` comes from openStateDb (schema migrated); the caller owns it and closes it. */
  constructor(db: StateDb, options: MasterStateOptions = {}) {
    this.#db = db;
    this.maxEventRows = checkIntegerInRange(options.maxEventRows ?? MAX_MASTER_EVENT_ROWS, 'maxEventRows', 1, MAX_MASTER_EVENT_ROWS);
    this.#insertEvent = db.prepare<EventRowColumns>(
      `INSERT INTO master_events (kind, at_ms, host, extent_count, vg_seqno, record_count, rejected_count, applied_seq, generation, vg_free_extents_after)
       VALUES (@kind, @atMs, @host, @extentCount, @vgSeqno, @recordCount, @rejectedCount, @appliedSeq, @generation, @vgFreeExtentsAfter)`,
    );
    this.#trimToCap = db.prepare<[number]>('DELETE FROM master_events WHERE id <= ?');
    this.#historyAll = db.prepare<[number], StoredEventRow>(`SELECT ${SELECT_COLUMNS} FROM master_events ${NEWEST_FIRST} LIMIT ?`);
    this.#historySince = db.prepare<[number, number], StoredEventRow>(
      `SELECT ${SELECT_COLUMNS} FROM master_events WHERE at_ms >= ? ${NEWEST_FIRST} LIMIT ?`,
    );
    this.#historyHost = db.prepare<[string, number], StoredEventRow>(
      `SELECT ${SELECT_COLUMNS} FROM master_events WHERE host = ? ${NEWEST_FIRST} LIMIT ?`,
    );
    this.#historyHostSince = db.prepare<[string, number, number], StoredEventRow>(
      `SELECT ${SELECT_COLUMNS} FROM master_events WHERE host = ? AND at_ms >= ? ${NEWEST_FIRST} LIMIT ?`,
    );
    this.#replayedExtentsByHost = db.prepare<[number, number], { host: string; extentCount: number }>(
      `SELECT host, SUM(extent_count) AS extentCount FROM master_events
       WHERE kind = 'replay' AND at_ms >= ? AND at_ms <= ? GROUP BY host ORDER BY host`,
    );
    this.#pruneOlderThan = db.prepare<[number]>('DELETE FROM master_events WHERE at_ms < ?');
    this.#insertGrowth = db.prepare<[number, string, number]>('INSERT INTO master_lv_growth (at_ms, lv, extent_count) VALUES (?, ?, ?)');
    this.#trimGrowth = db.prepare<[number]>('DELETE FROM master_lv_growth WHERE id <= ?');
    this.#topGrowers = db.prepare<[number, number, number], LvGrowth>(
      `SELECT lv, SUM(extent_count) AS extentCount FROM master_lv_growth WHERE at_ms >= ? AND at_ms <= ?
       GROUP BY lv ORDER BY extentCount DESC, lv LIMIT ?`,
    );
    this.#pruneGrowth = db.prepare<[number]>('DELETE FROM master_lv_growth WHERE at_ms < ?');
    this.#startHistory = db.prepare<[number]>('INSERT OR IGNORE INTO master_history_start (only_row, since_ms) VALUES (1, ?)');
    this.#historyStart = db.prepare<[], { sinceMs: number }>('SELECT since_ms AS sinceMs FROM master_history_start');
  }

  /** When this file began keeping history: set by the first call, returned by every call. */
  historySinceMs(nowMs: number): number {
    checkNonNegativeSafeInteger(nowMs, 'nowMs');
    return runStateOperation(this.#db, 'reading when history began', () => {
      this.#startHistory.run(nowMs);
      const row = this.#historyStart.get();
      assert(row !== undefined && Number.isSafeInteger(row.sinceMs), 'history start row missing after insert');
      return row.sinceMs;
    });
  }

  /** Records the extents each LV gained in one committed replay, in one transaction. */
  recordLvGrowth(atMs: number, growth: readonly LvGrowth[]): void {
    checkNonNegativeSafeInteger(atMs, 'atMs');
    for (const g of growth) checkIntegerInRange(g.extentCount, 'extentCount', 1, Number.MAX_SAFE_INTEGER);
    if (growth.length === 0) return;
    runStateOperation(this.#db, 'recording LV growth', () =>
      this.#db.transaction(() => {
        let id = 0;
        for (const g of growth) id = Number(this.#insertGrowth.run(atMs, g.lv, g.extentCount).lastInsertRowid);
        if (id > this.maxEventRows) this.#trimGrowth.run(id - this.maxEventRows);
      }).immediate(),
    );
  }

  /** The LVs that gained most extents in [sinceMs, nowMs], most first (ties by name). */
  topGrowers(window: { readonly sinceMs: number; readonly nowMs: number; readonly limit: number }): LvGrowth[] {
    const limit = checkIntegerInRange(window.limit, 'limit', 1, MAX_TOP_GROWERS);
    const rows = runStateOperation(this.#db, 'reading top growers', () => this.#topGrowers.all(checkSafeInteger(window.sinceMs, 'sinceMs'), checkSafeInteger(window.nowMs, 'nowMs'), limit));
    return rows.map((row) => ({ lv: row.lv, extentCount: row.extentCount }));
  }

  /** Records a committed replay; returns the row id. */
  recordReplay(event: ReplayEvent): number {
    return this.#insert({
      kind: 'replay',
      atMs: checkNonNegativeSafeInteger(event.atMs, 'atMs'),
      host: checkHostName(event.host),
      extentCount: checkExtentCount(event.extentCount, 'extentCount'),
      vgSeqno: checkNonNegativeSafeInteger(event.vgSeqno, 'vgSeqno'),
      recordCount: checkNonNegativeSafeInteger(event.recordCount, 'recordCount'),
      rejectedCount: checkNonNegativeSafeInteger(event.rejectedCount, 'rejectedCount'),
      appliedSeq: checkNonNegativeSafeInteger(event.appliedSeq, 'appliedSeq'),
      generation: null,
      vgFreeExtentsAfter: checkExtentCount(event.vgFreeExtentsAfter, 'vgFreeExtentsAfter'),
    });
  }

  /** Records a committed grant (extents added to a host's free LV); returns the row id. */
  recordGrant(event: GrantEvent): number {
    return this.#insert({
      kind: 'grant',
      atMs: checkNonNegativeSafeInteger(event.atMs, 'atMs'),
      host: checkHostName(event.host),
      extentCount: checkExtentCount(event.extentCount, 'extentCount'),
      vgSeqno: checkNonNegativeSafeInteger(event.vgSeqno, 'vgSeqno'),
      recordCount: null,
      rejectedCount: null,
      appliedSeq: null,
      generation: checkNonNegativeSafeInteger(event.generation, 'generation'),
      vgFreeExtentsAfter: checkExtentCount(event.vgFreeExtentsAfter, 'vgFreeExtentsAfter'),
    });
  }

  /** Records a committed return (extents from a host's free LV back to the VG); returns the row id. */
  recordReturn(event: ReturnEvent): number {
    return this.#insert({
      kind: 'return',
      atMs: checkNonNegativeSafeInteger(event.atMs, 'atMs'),
      host: checkHostName(event.host),
      extentCount: checkExtentCount(event.extentCount, 'extentCount'),
      vgSeqno: checkNonNegativeSafeInteger(event.vgSeqno, 'vgSeqno'),
      recordCount: null,
      rejectedCount: null,
      appliedSeq: null,
      generation: null,
      vgFreeExtentsAfter: null,
    });
  }

  /** Rows newest first (by atMs, then insertion order). */
  history(query: HistoryQuery): HistoryRow[] {
    const limit = checkHistoryLimit(query.limit);
    const host = query.host === undefined ? undefined : checkHostName(query.host);
    const sinceMs = query.sinceMs === undefined ? undefined : checkSafeInteger(query.sinceMs, 'sinceMs');
    const rows = runStateOperation(this.#db, 'reading history', () => {
      if (host === undefined) return sinceMs === undefined ? this.#historyAll.all(limit) : this.#historySince.all(sinceMs, limit);
      return sinceMs === undefined ? this.#historyHost.all(host, limit) : this.#historyHostSince.all(host, sinceMs, limit);
    });
    assert(rows.length <= limit, 'history returned more rows than its limit', { limit, rowCount: rows.length });
    return rows.map((row) => {
      const decoded = decodeEventRow(row);
      // Pair assertions: the query's filters hold for what came back.
      assert(host === undefined || decoded.host === host, 'history returned a row of another host', { host, row });
      assert(sinceMs === undefined || decoded.atMs >= sinceMs, 'history returned a row older than sinceMs', { sinceMs, row });
      return decoded;
    });
  }

  /**
   * Extents allocated per hour, from replays with sinceMs <= atMs <= nowMs. Replays,
   * not grants: a grant only moves extents into a host's pool in large steps, while
   * replayed extents are what guests actually consumed.
   */
  allocationRate(window: { readonly sinceMs: number; readonly nowMs: number }): AllocationRate {
    const sinceMs = checkSafeInteger(window.sinceMs, 'sinceMs');
    const nowMs = checkSafeInteger(window.nowMs, 'nowMs');
    if (nowMs <= sinceMs) {
      throw new StateError(STATE_INVALID_ARGUMENT, `allocation rate window is empty: nowMs ${nowMs} must be after sinceMs ${sinceMs}`, {
        sinceMs,
        nowMs,
      });
    }
    const hours = (nowMs - sinceMs) / MS_PER_HOUR;
    const sums = runStateOperation(this.#db, 'summing replayed extents', () => this.#replayedExtentsByHost.all(sinceMs, nowMs));
    let extentCount = 0;
    const perHost = sums.map((row) => {
      assert(typeof row.host === 'string' && Number.isSafeInteger(row.extentCount) && row.extentCount >= 0, 'bad replay sum row', { row });
      extentCount += row.extentCount;
      return { host: row.host, extentCount: row.extentCount, extentsPerHour: row.extentCount / hours };
    });
    // MAX_EXTENT_COUNT x MAX_MASTER_EVENT_ROWS < 2^53, so the total is exact.
    assert(Number.isSafeInteger(extentCount), 'replayed extent total is not exact', { extentCount });
    return { sinceMs, nowMs, extentCount, extentsPerHour: extentCount / hours, perHost };
  }

  /**
   * Estimated ms until the VG's free extents run out at the allocation rate of the last
   * windowMs, rounded down. null when nothing was allocated in the window (never, at
   * that rate); 0 when the VG has no free extents left.
   */
  forecastFull(input: { readonly nowMs: number; readonly windowMs: number; readonly vgFreeExtents: number }): number | null {
    const nowMs = checkSafeInteger(input.nowMs, 'nowMs');
    const windowMs = checkIntegerInRange(input.windowMs, 'windowMs', 1, Number.MAX_SAFE_INTEGER);
    const vgFreeExtents = checkExtentCount(input.vgFreeExtents, 'vgFreeExtents');
    const sinceMs = checkSafeInteger(nowMs - windowMs, 'nowMs - windowMs');
    const rate = this.allocationRate({ sinceMs, nowMs });
    if (vgFreeExtents === 0) return 0;
    if (rate.extentCount === 0) return null;
    // free / (extentCount / windowMs), written so no hours round trip loses precision.
    const msUntilFull = Math.floor((vgFreeExtents * windowMs) / rate.extentCount);
    assert(msUntilFull >= 0, 'negative time to full', { msUntilFull, vgFreeExtents, windowMs, extentCount: rate.extentCount });
    return msUntilFull;
  }

  /** Deletes rows with atMs < olderThanMs; returns how many. Repeating it deletes nothing more. */
  prune(input: { readonly olderThanMs: number }): number {
    const olderThanMs = checkSafeInteger(input.olderThanMs, 'olderThanMs');
    return runStateOperation(this.#db, 'pruning history', () => this.#pruneOlderThan.run(olderThanMs).changes + this.#pruneGrowth.run(olderThanMs).changes);
  }

  #insert(columns: EventRowColumns): number {
    return runStateOperation(this.#db, `recording a ${columns.kind}`, () =>
      // One transaction, so the insert and the trim that keeps the cap commit together
      // (one WAL fsync), and a crash never leaves the table over its cap.
      this.#db.transaction(() => {
        const id = Number(this.#insertEvent.run(columns).lastInsertRowid);
        assert(Number.isSafeInteger(id) && id >= 1, 'insert returned no row id', { id });
        // AUTOINCREMENT ids grow in insertion order and are never reused, so the rows
        // with id > id - cap are the newest, at most cap of them.
        if (id > this.maxEventRows) this.#trimToCap.run(id - this.maxEventRows);
        return id;
      }).immediate(),
    );
  }
}

function checkHistoryLimit(limit: unknown): number {
  return checkIntegerInRange(limit, 'limit', 1, MAX_HISTORY_ROWS);
}

/** Turns a stored row back into an event, asserting it is one (the CHECKs in the schema promise it). */
function decodeEventRow(row: StoredEventRow): HistoryRow {
  const base = { id: row.id, atMs: row.atMs, host: row.host, extentCount: row.extentCount, vgSeqno: row.vgSeqno };
  for (const [name, value] of Object.entries(base)) {
    if (name !== 'host') assert(Number.isSafeInteger(value) && (value as number) >= 0, `stored ${name} is not a count`, { row });
  }
  switch (row.kind) {
    case 'replay':
      assert(row.recordCount !== null && row.rejectedCount !== null && row.appliedSeq !== null && row.vgFreeExtentsAfter !== null, 'replay row lacks its columns', {
        row,
      });
      return {
        kind: 'replay',
        ...base,
        recordCount: row.recordCount,
        rejectedCount: row.rejectedCount,
        appliedSeq: row.appliedSeq,
        vgFreeExtentsAfter: row.vgFreeExtentsAfter,
      };
    case 'grant':
      assert(row.generation !== null && row.vgFreeExtentsAfter !== null, 'grant row lacks its columns', { row });
      return { kind: 'grant', ...base, generation: row.generation, vgFreeExtentsAfter: row.vgFreeExtentsAfter };
    case 'return':
      return { kind: 'return', ...base };
    default:
      assert(false, 'stored event has an unknown kind', { row });
  }
}
