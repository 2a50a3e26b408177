// HostState: the host allocator's intents, active LVs and last applied grant generation.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { fc, test } from '@fast-check/vitest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { InvariantError } from '../../src/errors.js';
import {
  HostState,
  IN_MEMORY_PATH,
  MAX_ACTIVE_LVS,
  MAX_IN_FLIGHT_INTENTS,
  MAX_TABLE_TEXT_BYTES,
  STATE_INVALID_ARGUMENT,
  STATE_LIMIT_REACHED,
  StateError,
  openStateDb,
  type InFlightIntent,
  type StateDb,
} from '../../src/state/index.js';
import { stateErrorOf } from '../fixtures/stateErrors.js';

const openDbs: StateDb[] = [];
function memoryHost(): HostState {
  const db = openStateDb(IN_MEMORY_PATH);
  openDbs.push(db);
  return new HostState(db);
}
afterEach(() => {
  for (const db of openDbs.splice(0)) db.close();
});

let tempDir = '';
beforeAll(() => {
  tempDir = fs.mkdtempSync(path.join(tmpdir(), 'thinlv-state-host-'));
});
afterAll(() => {
  fs.rmSync(tempDir, { recursive: true, force: true });
});

const table = (startSector: number): string => `0 8192 linear 253:3 ${startSector}\n8192 8192 linear 253:3 ${startSector + 65_536}`;
const intent = (seq: number, lv = 'vm-disk-1'): InFlightIntent => ({ lv, seq, tableText: table(seq * 8192), createdAtMs: 1_000 + seq });

describe('HostState: in-flight intents', () => {
  it('added intents are listed by journal seq until completed', () => {
    const host = memoryHost();
    expect(host.addIntent(intent(7))).toBe(true);
    expect(host.addIntent(intent(3, 'vm-disk-2'))).toBe(true);
    expect(host.addIntent(intent(5))).toBe(true);
    expect(host.listIntents()).toEqual([intent(3, 'vm-disk-2'), intent(5), intent(7)]);
    expect(host.completeIntent(5)).toBe(true);
    expect(host.listIntents()).toEqual([intent(3, 'vm-disk-2'), intent(7)]);
  });

  it('adding the same intent again (a retry after a crash) is a no-op that returns false', () => {
    const host = memoryHost();
    expect(host.addIntent(intent(1))).toBe(true);
    expect(host.addIntent({ ...intent(1), createdAtMs: 99_999 })).toBe(false);
    expect(host.listIntents()).toEqual([intent(1)]);
  });

  it('completing an intent twice is harmless: the second returns false', () => {
    const host = memoryHost();
    host.addIntent(intent(1));
    expect(host.completeIntent(1)).toBe(true);
    expect(host.completeIntent(1)).toBe(false);
    expect(host.completeIntent(42)).toBe(false);
    expect(host.listIntents()).toEqual([]);
  });

  it('a second, different extend under one journal seq is a broken invariant and changes nothing', () => {
    const host = memoryHost();
    host.addIntent(intent(4));
    expect(() => host.addIntent(intent(4, 'vm-disk-9'))).toThrow(InvariantError);
    expect(() => host.addIntent({ ...intent(4), tableText: table(1) })).toThrow(InvariantError);
    expect(host.listIntents()).toEqual([intent(4)]);
  });

  it(`at MAX_IN_FLIGHT_INTENTS (${MAX_IN_FLIGHT_INTENTS}) a new intent is refused until one completes`, () => {
    const host = memoryHost();
    for (let seq = 1; seq <= MAX_IN_FLIGHT_INTENTS; seq++) expect(host.addIntent(intent(seq))).toBe(true);
    const error = stateErrorOf(() => host.addIntent(intent(MAX_IN_FLIGHT_INTENTS + 1)));
    expect(error.code).toBe(STATE_LIMIT_REACHED);
    expect(error.data).toEqual({ rowCount: MAX_IN_FLIGHT_INTENTS, limit: MAX_IN_FLIGHT_INTENTS });
    // A retry of one already recorded is still answered: it adds nothing.
    expect(host.addIntent(intent(1))).toBe(false);
    expect(host.completeIntent(1)).toBe(true);
    expect(host.addIntent(intent(MAX_IN_FLIGHT_INTENTS + 1))).toBe(true);
    expect(host.listIntents()).toHaveLength(MAX_IN_FLIGHT_INTENTS);
  });

  it.each([
    ['seq 0', { ...intent(1), seq: 0 }, 'seq'],
    ['a fractional seq', { ...intent(1), seq: 1.5 }, 'seq'],
    ['an empty LV name', { ...intent(1), lv: '' }, 'lv'],
    ['an LV name with a space', { ...intent(1), lv: 'vm disk' }, 'lv'],
    ['an empty table', { ...intent(1), tableText: '' }, 'tableText'],
    ['a table over MAX_TABLE_TEXT_BYTES', { ...intent(1), tableText: 'x'.repeat(MAX_TABLE_TEXT_BYTES + 1) }, 'tableText'],
    ['a negative createdAtMs', { ...intent(1), createdAtMs: -1 }, 'createdAtMs'],
  ])('an intent with %s is refused and nothing is written', (_what, bad, field) => {
    const host = memoryHost();
    const error = stateErrorOf(() => host.addIntent(bad));
    expect(error.code).toBe(STATE_INVALID_ARGUMENT);
    expect(error.data).toMatchObject({ what: field });
    expect(host.listIntents()).toEqual([]);
  });

  const intentOperation = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), seq: fc.integer({ min: 1, max: 12 }) }),
    fc.record({ kind: fc.constant('complete' as const), seq: fc.integer({ min: 1, max: 12 }) }),
  );
  test.prop([fc.array(intentOperation, { maxLength: 60 })])('any sequence of adds and completes matches a set of seqs', (operations) => {
    const host = memoryHost();
    const model = new Set<number>();
    for (const op of operations) {
      if (op.kind === 'add') {
        expect(host.addIntent(intent(op.seq))).toBe(!model.has(op.seq));
        model.add(op.seq);
      } else {
        expect(host.completeIntent(op.seq)).toBe(model.has(op.seq));
        model.delete(op.seq);
      }
    }
    expect(host.listIntents()).toEqual([...model].sort((a, b) => a - b).map((seq) => intent(seq)));
  });
});

describe('HostState: LVs active on this host', () => {
  it('set, replace, unset and list, by LV name', () => {
    const host = memoryHost();
    host.setActiveLv({ lv: 'vm-b', tableText: table(0), loadedAtMs: 10 });
    host.setActiveLv({ lv: 'vm-a', tableText: table(8192), loadedAtMs: 11 });
    // A reload after a grow replaces the table text: one row per LV.
    host.setActiveLv({ lv: 'vm-b', tableText: table(16_384), loadedAtMs: 12 });
    expect(host.listActiveLvs()).toEqual([
      { lv: 'vm-a', tableText: table(8192), loadedAtMs: 11 },
      { lv: 'vm-b', tableText: table(16_384), loadedAtMs: 12 },
    ]);
    expect(host.activeLv('vm-b')).toEqual({ lv: 'vm-b', tableText: table(16_384), loadedAtMs: 12 });
    expect(host.unsetActiveLv('vm-b')).toBe(true);
    expect(host.unsetActiveLv('vm-b')).toBe(false);
    expect(host.activeLv('vm-b')).toBeUndefined();
    expect(host.listActiveLvs().map((row) => row.lv)).toEqual(['vm-a']);
  });

  it('an invalid LV name or table is refused', () => {
    const host = memoryHost();
    expect(stateErrorOf(() => host.setActiveLv({ lv: '-bad', tableText: table(0), loadedAtMs: 1 })).code).toBe(STATE_INVALID_ARGUMENT);
    expect(stateErrorOf(() => host.setActiveLv({ lv: 'ok', tableText: '', loadedAtMs: 1 })).code).toBe(STATE_INVALID_ARGUMENT);
    expect(stateErrorOf(() => host.unsetActiveLv('')).code).toBe(STATE_INVALID_ARGUMENT);
    expect(host.listActiveLvs()).toEqual([]);
  });

  it(`MAX_ACTIVE_LVS (${MAX_ACTIVE_LVS}) is enforced for new LVs; updating a recorded one still works`, () => {
    const db = openStateDb(IN_MEMORY_PATH);
    openDbs.push(db);
    // Fill to the bound directly: 65,536 validated upserts would be slow for a unit test.
    db.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${MAX_ACTIVE_LVS})
       INSERT INTO host_active_lvs (lv, table_text, loaded_at_ms) SELECT 'lv' || i, 'table', 0 FROM n`,
    ).run();
    const host = new HostState(db);
    const error = stateErrorOf(() => host.setActiveLv({ lv: 'one-too-many', tableText: table(0), loadedAtMs: 1 }));
    expect(error.code).toBe(STATE_LIMIT_REACHED);
    host.setActiveLv({ lv: 'lv1', tableText: table(0), loadedAtMs: 2 });
    expect(host.activeLv('lv1')).toEqual({ lv: 'lv1', tableText: table(0), loadedAtMs: 2 });
    expect(host.unsetActiveLv('lv2')).toBe(true);
    host.setActiveLv({ lv: 'one-too-many', tableText: table(0), loadedAtMs: 1 });
    expect(host.activeLv('one-too-many')).toBeDefined();
  });
});

describe('HostState: last applied grant generation', () => {
  it('starts at 0, moves forward, and refuses an equal or lower generation (a replayed grant)', () => {
    const host = memoryHost();
    expect(host.grantGeneration()).toBe(0);
    expect(host.setGrantGeneration(5)).toBe(true);
    expect(host.setGrantGeneration(5)).toBe(false);
    expect(host.setGrantGeneration(3)).toBe(false);
    expect(host.grantGeneration()).toBe(5);
    expect(host.setGrantGeneration(6)).toBe(true);
    expect(host.grantGeneration()).toBe(6);
  });

  it('a generation below 1 or not an integer is refused', () => {
    const host = memoryHost();
    for (const generation of [0, -1, 2.5, Number.NaN, 2 ** 53]) {
      expect(stateErrorOf(() => host.setGrantGeneration(generation)).code).toBe(STATE_INVALID_ARGUMENT);
    }
    expect(host.grantGeneration()).toBe(0);
  });

  test.prop([fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { maxLength: 50 })])(
    'any sequence of set attempts leaves the maximum, and each attempt succeeds exactly when it is a new maximum',
    (attempts) => {
      const host = memoryHost();
      let max = 0;
      for (const generation of attempts) {
        expect(host.setGrantGeneration(generation)).toBe(generation > max);
        max = Math.max(max, generation);
      }
      expect(host.grantGeneration()).toBe(max);
    },
  );

  it('two connections to one file, alternating, still only move it forward, and it survives reopening', () => {
    const filePath = path.join(tempDir, 'generation.db');
    const dbA = openStateDb(filePath);
    const dbB = openStateDb(filePath);
    const hostA = new HostState(dbA);
    const hostB = new HostState(dbB);
    expect(hostA.setGrantGeneration(10)).toBe(true);
    expect(hostB.setGrantGeneration(9)).toBe(false);
    expect(hostB.setGrantGeneration(12)).toBe(true);
    expect(hostA.setGrantGeneration(11)).toBe(false);
    expect(hostA.grantGeneration()).toBe(12);
    dbA.close();
    dbB.close();
    const reopened = openStateDb(filePath);
    expect(new HostState(reopened).grantGeneration()).toBe(12);
    reopened.close();
  });
});
