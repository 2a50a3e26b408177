// The host allocator's own bookkeeping, one file per host per VG:
//
//   intents          journaled extends whose dm table is not reloaded yet. After a crash
//                    the daemon reloads each listed LV's table, then completes the intent.
//   active LVs       LVs this host has active, with the table text it last loaded (I6 is
//                    checked against it).
//   grant generation the last grant record applied from the grants ring; a grant with
//                    an equal or lower generation is a replay and must be ignored.
//
// None of it is the truth: the journal records, the grants ring and LVM metadata are.
// A lost file is rebuilt from them (intents from the unreplayed journal records, active
// LVs from device-mapper, the generation from the host's tag in metadata), so a lost
// row can cost a redundant table reload, never a wrong extent.

import { InvariantError } from '../errors.js';
import { invalidNameReason } from '../metadata/names.js';
import { runStateOperation, type StateDb } from './openStateDb.js';
import {
  STATE_INVALID_ARGUMENT,
  STATE_LIMIT_REACHED,
  StateError,
  checkIntegerInRange,
  checkNonNegativeSafeInteger,
} from './stateErrors.js';

/**
 * The most intents in flight at once. Each is one grow waiting for a table reload, and a
 * reload takes milliseconds, so hitting this means reloads are stuck: the daemon must
 * stop taking grows rather than journal ever more extends it cannot load.
 */
export const MAX_IN_FLIGHT_INTENTS = 4_096;
/** The most LVs recorded as active on one host (far more than one host runs guests for). */
export const MAX_ACTIVE_LVS = 65_536;
/** A dm table of a badly fragmented LV is a few hundred KiB at most; more is a bug upstream. */
export const MAX_TABLE_TEXT_BYTES = 1024 * 1024;

export interface InFlightIntent {
  readonly lv: string;
  /** The journal record's sequence number (unique per host ring). */
  readonly seq: number;
  /** The dm table the LV must get, as passed to `dmsetup reload`. */
  readonly tableText: string;
  readonly createdAtMs: number;
}

export interface ActiveLv {
  readonly lv: string;
  /** The dm table text last loaded for this LV on this host. */
  readonly tableText: string;
  readonly loadedAtMs: number;
}

export class HostState {
  readonly #db: StateDb;
  readonly #insertIntent;
  readonly #selectIntent;
  readonly #deleteIntent;
  readonly #listIntents;
  readonly #countIntents;
  readonly #upsertActiveLv;
  readonly #selectActiveLv;
  readonly #deleteActiveLv;
  readonly #listActiveLvs;
  readonly #countActiveLvs;
  readonly #selectGeneration;
  readonly #raiseGeneration;

  /** `db` comes from openStateDb (schema migrated); the caller owns it and closes it. */
  constructor(db: StateDb) {
    this.#db = db;
    this.#insertIntent = db.prepare<InFlightIntent>(
      'INSERT INTO host_intents (seq, lv, table_text, created_at_ms) VALUES (@seq, @lv, @tableText, @createdAtMs) ON CONFLICT (seq) DO NOTHING',
    );
    this.#selectIntent = db.prepare<[number], InFlightIntent>(
      'SELECT lv, seq, table_text AS tableText, created_at_ms AS createdAtMs FROM host_intents WHERE seq = ?',
    );
    this.#deleteIntent = db.prepare<[number]>('DELETE FROM host_intents WHERE seq = ?');
    this.#listIntents = db.prepare<[], InFlightIntent>(
      'SELECT lv, seq, table_text AS tableText, created_at_ms AS createdAtMs FROM host_intents ORDER BY seq',
    );
    this.#countIntents = db.prepare<[], { rowCount: number }>('SELECT count(*) AS rowCount FROM host_intents');
    this.#upsertActiveLv = db.prepare<ActiveLv>(
      `INSERT INTO host_active_lvs (lv, table_text, loaded_at_ms) VALUES (@lv, @tableText, @loadedAtMs)
       ON CONFLICT (lv) DO UPDATE SET table_text = excluded.table_text, loaded_at_ms = excluded.loaded_at_ms`,
    );
    this.#selectActiveLv = db.prepare<[string], ActiveLv>(
      'SELECT lv, table_text AS tableText, loaded_at_ms AS loadedAtMs FROM host_active_lvs WHERE lv = ?',
    );
    this.#deleteActiveLv = db.prepare<[string]>('DELETE FROM host_active_lvs WHERE lv = ?');
    this.#listActiveLvs = db.prepare<[], ActiveLv>(
      'SELECT lv, table_text AS tableText, loaded_at_ms AS loadedAtMs FROM host_active_lvs ORDER BY lv',
    );
    this.#countActiveLvs = db.prepare<[], { rowCount: number }>('SELECT count(*) AS rowCount FROM host_active_lvs');
    this.#selectGeneration = db.prepare<[], { generation: number }>('SELECT generation FROM host_grant_generation WHERE only_row = 1');
    this.#raiseGeneration = db.prepare<[number, number]>(
      'UPDATE host_grant_generation SET generation = ? WHERE only_row = 1 AND generation < ?',
    );
  }

  /**
   * Records an intent; returns false when this exact intent is already recorded. Safe to
   * repeat after a crash: the journal seq is the key, and the same seq with different
   * content would mean two different extends under one journal record, which is a bug.
   */
  addIntent(intent: InFlightIntent): boolean {
    const checked: InFlightIntent = {
      lv: checkLvName(intent.lv),
      seq: checkIntegerInRange(intent.seq, 'seq', 1, Number.MAX_SAFE_INTEGER),
      tableText: checkTableText(intent.tableText),
      createdAtMs: checkNonNegativeSafeInteger(intent.createdAtMs, 'createdAtMs'),
    };
    return runStateOperation(this.#db, `recording the intent for journal seq ${checked.seq}`, () =>
      this.#db.transaction(() => {
        const existing = this.#selectIntent.get(checked.seq);
        if (existing !== undefined) {
          if (existing.lv !== checked.lv || existing.tableText !== checked.tableText) {
            throw new InvariantError('an intent with this journal seq is already recorded for another extend', {
              seq: checked.seq,
              recordedLv: existing.lv,
              newLv: checked.lv,
            });
          }
          return false;
        }
        const rowCount = this.#countIntents.get()?.rowCount ?? 0;
        if (rowCount >= MAX_IN_FLIGHT_INTENTS) {
          throw new StateError(
            STATE_LIMIT_REACHED,
            `${rowCount} intents are already in flight (limit ${MAX_IN_FLIGHT_INTENTS}): dm table reloads are not completing; ` +
              'check `dmsetup` on this host before taking more grows',
            { rowCount, limit: MAX_IN_FLIGHT_INTENTS },
          );
        }
        const changes = this.#insertIntent.run(checked).changes;
        if (changes !== 1) throw new InvariantError('intent insert changed no row after the seq was found free', { seq: checked.seq });
        return true;
      }).immediate(),
    );
  }

  /** Forgets the intent once its table is loaded; returns false if it was not recorded (a repeat). */
  completeIntent(seq: number): boolean {
    const checkedSeq = checkIntegerInRange(seq, 'seq', 1, Number.MAX_SAFE_INTEGER);
    return runStateOperation(this.#db, `completing the intent for journal seq ${checkedSeq}`, () => this.#deleteIntent.run(checkedSeq).changes === 1);
  }

  /** In-flight intents by journal seq, oldest first: the order their tables must be loaded in. */
  listIntents(): InFlightIntent[] {
    return runStateOperation(this.#db, 'listing intents', () => this.#listIntents.all());
  }

  /** Records that `lv` is active here with this table (insert or replace: safe to repeat). */
  setActiveLv(activeLv: ActiveLv): void {
    const checked: ActiveLv = {
      lv: checkLvName(activeLv.lv),
      tableText: checkTableText(activeLv.tableText),
      loadedAtMs: checkNonNegativeSafeInteger(activeLv.loadedAtMs, 'loadedAtMs'),
    };
    runStateOperation(this.#db, `recording active LV ${checked.lv}`, () =>
      this.#db.transaction(() => {
        if (this.#selectActiveLv.get(checked.lv) === undefined) {
          const rowCount = this.#countActiveLvs.get()?.rowCount ?? 0;
          if (rowCount >= MAX_ACTIVE_LVS) {
            throw new StateError(STATE_LIMIT_REACHED, `${rowCount} LVs are already recorded as active on this host (limit ${MAX_ACTIVE_LVS})`, {
              rowCount,
              limit: MAX_ACTIVE_LVS,
            });
          }
        }
        this.#upsertActiveLv.run(checked);
      }).immediate(),
    );
  }

  /** Records that `lv` is no longer active here; returns false if it was not recorded. */
  unsetActiveLv(lv: string): boolean {
    const checkedLv = checkLvName(lv);
    return runStateOperation(this.#db, `forgetting active LV ${checkedLv}`, () => this.#deleteActiveLv.run(checkedLv).changes === 1);
  }

  activeLv(lv: string): ActiveLv | undefined {
    const checkedLv = checkLvName(lv);
    return runStateOperation(this.#db, `reading active LV ${checkedLv}`, () => this.#selectActiveLv.get(checkedLv));
  }

  /** Active LVs by name. */
  listActiveLvs(): ActiveLv[] {
    return runStateOperation(this.#db, 'listing active LVs', () => this.#listActiveLvs.all());
  }

  /** The generation of the last grant applied; 0 before the first. */
  grantGeneration(): number {
    const row = runStateOperation(this.#db, 'reading the grant generation', () => this.#selectGeneration.get());
    if (row === undefined || !Number.isSafeInteger(row.generation) || row.generation < 0) {
      throw new InvariantError('the grant generation row is missing or not a count', { row });
    }
    return row.generation;
  }

  /**
   * Stores `generation` as the last applied grant if it is newer than the stored one.
   * Returns false, changing nothing, when it is not: the grant was already applied (a
   * grant replayed after a crash) and must be ignored. The comparison and the write are
   * one UPDATE, so two callers racing cannot both see "newer" and move it backwards.
   */
  setGrantGeneration(generation: number): boolean {
    const checked = checkIntegerInRange(generation, 'generation', 1, Number.MAX_SAFE_INTEGER);
    const changes = runStateOperation(this.#db, `storing grant generation ${checked}`, () => this.#raiseGeneration.run(checked, checked).changes);
    if (changes !== 0 && changes !== 1) throw new InvariantError('grant generation update changed more than one row', { changes });
    return changes === 1;
  }
}

function checkLvName(lv: unknown): string {
  const reason = typeof lv === 'string' ? invalidNameReason(lv, 'LV') : 'LV name is not a string';
  if (reason !== undefined) {
    throw new StateError(STATE_INVALID_ARGUMENT, `invalid LV name: ${reason}`, { what: 'lv', value: String(lv) });
  }
  return lv as string;
}

function checkTableText(tableText: unknown): string {
  if (typeof tableText !== 'string' || tableText.length === 0 || Buffer.byteLength(tableText, 'utf8') > MAX_TABLE_TEXT_BYTES) {
    throw new StateError(STATE_INVALID_ARGUMENT, `tableText must be a non-empty dm table of at most ${MAX_TABLE_TEXT_BYTES} bytes`, {
      what: 'tableText',
      lengthChars: typeof tableText === 'string' ? tableText.length : undefined,
    });
  }
  return tableText;
}
