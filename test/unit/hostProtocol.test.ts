import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import {
  MAX_ID_CHARS,
  MAX_LINE_BYTES,
  MAX_MESSAGE_CHARS,
  MAX_REPLY_BYTES,
  PROTOCOL_VERSION,
  errorResponse,
  formatRequest,
  formatResponse,
  invalidResultReason,
  parseRequest,
  parseResponse,
  successResponse,
  type Operation,
  type ParsedRequest,
  type Request,
  type Response,
} from '../../src/host/protocol.js';
import { invalidNameReason } from '../../src/metadata/names.js';

const line = (object: unknown): string => JSON.stringify(object);

function expectError(parsed: ParsedRequest, code: string, id?: string): void {
  expect(parsed.ok, JSON.stringify(parsed)).toBe(false);
  if (parsed.ok) return;
  expect(parsed.error.code).toBe(code);
  expect(parsed.error.message.length).toBeGreaterThan(0);
  expect(parsed.id).toBe(id);
}

function expectRequest(parsed: ParsedRequest): Request {
  if (!parsed.ok) throw new Error(`expected a request, got ${JSON.stringify(parsed)}`);
  return parsed.request;
}

describe('parseRequest accepts the documented requests', () => {
  test('extend to an absolute size', () => {
    expect(expectRequest(parseRequest(line({ v: 1, id: 'r1', op: 'extend', lv: 'vm-disk_1', sizeBytes: 4194304 })))).toEqual({
      id: 'r1',
      op: 'extend',
      lv: 'vm-disk_1',
      sizeBytes: 4194304,
    });
  });
  test('extend by an increment', () => {
    expect(expectRequest(parseRequest(line({ v: 1, id: 'r2', op: 'extend', lv: 'lv', incrementBytes: 1 })))).toEqual({
      id: 'r2',
      op: 'extend',
      lv: 'lv',
      incrementBytes: 1,
    });
  });
  test('activate, deactivate and status', () => {
    expect(expectRequest(parseRequest(line({ v: 1, id: 'a', op: 'activate', lv: 'lv' })))).toEqual({ id: 'a', op: 'activate', lv: 'lv' });
    expect(expectRequest(parseRequest(line({ v: 1, id: 'd', op: 'deactivate', lv: 'lv' })))).toEqual({ id: 'd', op: 'deactivate', lv: 'lv' });
    expect(expectRequest(parseRequest(line({ v: 1, id: 's', op: 'status' })))).toEqual({ id: 's', op: 'status' });
  });
  test('a deactivate may ask for a deflate: a positive whole number of bytes, round-tripped by formatRequest', () => {
    const request = expectRequest(parseRequest(line({ v: 1, id: 'd', op: 'deactivate', lv: 'lv', deflateToBytes: 8388608 })));
    expect(request).toEqual({ id: 'd', op: 'deactivate', lv: 'lv', deflateToBytes: 8388608 });
    expect(expectRequest(parseRequest(formatRequest(request)))).toEqual(request);
    for (const bad of [0, -1, 1.5, '8M', null]) {
      expect(parseRequest(line({ v: 1, id: 'd', op: 'deactivate', lv: 'lv', deflateToBytes: bad }))).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    }
    expect(parseRequest(line({ v: 1, id: 'a', op: 'activate', lv: 'lv', deflateToBytes: 1 }))).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
  });
  test('field order and surrounding whitespace do not matter', () => {
    expect(expectRequest(parseRequest(' {"op":"status","id":"x","v":1} \r'))).toEqual({ id: 'x', op: 'status' });
  });
  test('the largest safe integer is a valid size', () => {
    expect(expectRequest(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv', sizeBytes: Number.MAX_SAFE_INTEGER })))).toMatchObject({
      sizeBytes: Number.MAX_SAFE_INTEGER,
    });
  });
  test('ids of 1 and MAX_ID_CHARS printable ASCII characters are accepted', () => {
    expect(expectRequest(parseRequest(line({ v: 1, id: '!', op: 'status' }))).id).toBe('!');
    const longId = '~'.repeat(MAX_ID_CHARS);
    expect(expectRequest(parseRequest(line({ v: 1, id: longId, op: 'status' }))).id).toBe(longId);
    expect(expectRequest(parseRequest(line({ v: 1, id: '"\\{}', op: 'status' }))).id).toBe('"\\{}');
  });
});

describe('parseRequest refuses', () => {
  test('a line that is not JSON with BAD_JSON and no id', () => {
    expectError(parseRequest(''), 'BAD_JSON');
    expectError(parseRequest('{"v":1,"id":"x","op":"status"'), 'BAD_JSON');
    expectError(parseRequest('status'), 'BAD_JSON');
  });
  test('JSON that is not an object with BAD_REQUEST', () => {
    for (const value of ['[]', '1', '"status"', 'null', 'true', '[{"v":1,"id":"x","op":"status"}]']) expectError(parseRequest(value), 'BAD_REQUEST');
  });
  test('a line over MAX_LINE_BYTES, counted in UTF-8 bytes, with LINE_TOO_LONG', () => {
    const padding = (length: number): string => 'a'.repeat(length);
    const base = line({ v: 1, id: 'x', op: 'status' });
    expect(parseRequest(base + ' '.repeat(MAX_LINE_BYTES - base.length)).ok).toBe(true);
    expectError(parseRequest(base + ' '.repeat(MAX_LINE_BYTES - base.length + 1)), 'LINE_TOO_LONG');
    // 2,000 two-byte characters are 4,000 bytes: with the rest, over the limit although under 4,096 characters.
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'status', pad: 'é'.repeat(2000) }) + padding(100)), 'LINE_TOO_LONG');
  });
  test('a missing or malformed version with BAD_REQUEST, another version with UNSUPPORTED_VERSION', () => {
    expectError(parseRequest(line({ id: 'x', op: 'status' })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: '1', id: 'x', op: 'status' })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1.5, id: 'x', op: 'status' })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: null, id: 'x', op: 'status' })), 'BAD_REQUEST', 'x');
    const v2 = parseRequest(line({ v: 2, id: 'x', op: 'status', future: true }));
    expectError(v2, 'UNSUPPORTED_VERSION', 'x');
    expect(!v2.ok && v2.error.data).toEqual({ supportedVersions: [PROTOCOL_VERSION] });
    expectError(parseRequest(line({ v: 0, op: 'status' })), 'UNSUPPORTED_VERSION');
  });
  test('a missing or invalid id with BAD_REQUEST and no id', () => {
    expectError(parseRequest(line({ v: 1, op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: '', op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: 'x'.repeat(MAX_ID_CHARS + 1), op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: 'has space', op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: 'tab\t', op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: 'é', op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: 7, op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: null, op: 'status' })), 'BAD_REQUEST');
    expectError(parseRequest(line({ v: 1, id: ['x'], op: 'status' })), 'BAD_REQUEST');
  });
  test('a missing or non-string op with BAD_REQUEST, an unknown one with UNKNOWN_OP', () => {
    expectError(parseRequest(line({ v: 1, id: 'x' })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 3 })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'resize', lv: 'lv' })), 'UNKNOWN_OP', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'Status' })), 'UNKNOWN_OP', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'toString' })), 'UNKNOWN_OP', 'x');
  });
  test('unknown fields, so that typos are caught', () => {
    const typo = parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv', sizebytes: 10 }));
    expectError(typo, 'BAD_REQUEST', 'x');
    expect(!typo.ok && typo.error.data).toEqual({ field: 'sizebytes' });
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'status', lv: 'lv' })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'activate', lv: 'lv', sizeBytes: 1 })), 'BAD_REQUEST', 'x');
    expectError(parseRequest('{"v":1,"id":"x","op":"status","__proto__":{"polluted":true}}'), 'BAD_REQUEST', 'x');
    expect(Object.prototype).not.toHaveProperty('polluted');
  });
  test('an activate, deactivate or extend without a valid LV name', () => {
    for (const op of ['activate', 'deactivate'] as const) {
      expectError(parseRequest(line({ v: 1, id: 'x', op })), 'BAD_REQUEST', 'x');
      expectError(parseRequest(line({ v: 1, id: 'x', op, lv: 5 })), 'BAD_REQUEST', 'x');
    }
    for (const lv of ['', '-lv', 'a/b', 'a b', '..', 'snapshot1', 'x_tmeta', 'é', 'x'.repeat(128)]) {
      expect(invalidNameReason(lv, 'LV')).toBeDefined();
      expectError(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv, sizeBytes: 1 })), 'BAD_REQUEST', 'x');
    }
    expect(parseRequest(line({ v: 1, id: 'x', op: 'activate', lv: 'x'.repeat(127) })).ok).toBe(true);
  });
  test('an extend with none or two of sizeBytes, incrementBytes, sizeExtents and incrementExtents', () => {
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv' })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv', sizeBytes: 1, incrementBytes: 1 })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv', incrementExtents: 1, incrementBytes: 1 })), 'BAD_REQUEST', 'x');
    expectError(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv', sizeExtents: 1, incrementExtents: 1 })), 'BAD_REQUEST', 'x');
  });
  test('an extend in extents is read as such, and goes on the wire as it came', () => {
    for (const kind of ['sizeExtents', 'incrementExtents'] as const) {
      const request = expectRequest(parseRequest(line({ v: 1, id: 'r3', op: 'extend', lv: 'lv', [kind]: 7 })));
      expect(request).toEqual({ id: 'r3', op: 'extend', lv: 'lv', [kind]: 7 });
      expect(JSON.parse(formatRequest(request))).toEqual({ v: 1, id: 'r3', op: 'extend', lv: 'lv', [kind]: 7 });
    }
  });
  test('sizes that are not positive safe integers', () => {
    for (const key of ['sizeBytes', 'incrementBytes', 'sizeExtents', 'incrementExtents']) {
      for (const value of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 1, '10', null, [1], { n: 1 }, true]) {
        expectError(parseRequest(line({ v: 1, id: 'x', op: 'extend', lv: 'lv', [key]: value })), 'BAD_REQUEST', 'x');
      }
      expectError(parseRequest(`{"v":1,"id":"x","op":"extend","lv":"lv","${key}":1e400}`), 'BAD_REQUEST', 'x');
      expectError(parseRequest(`{"v":1,"id":"x","op":"extend","lv":"lv","${key}":-0}`), 'BAD_REQUEST', 'x');
    }
  });
  test('error messages quote at most a short piece of what was sent', () => {
    const parsed = parseRequest(line({ v: 1, id: 'x', op: 'q'.repeat(3000) }));
    expectError(parsed, 'UNKNOWN_OP', 'x');
    expect(!parsed.ok && parsed.error.message.length).toBeLessThan(200);
  });
});

// ---- Properties -------------------------------------------------------------------------

/** An independent reading of the documented rules, to check parseRequest against. */
function isValidBySpec(object: Record<string, unknown>): boolean {
  const allowed: Record<string, readonly string[]> = {
    extend: ['v', 'id', 'op', 'lv', 'sizeBytes', 'incrementBytes', 'sizeExtents', 'incrementExtents'],
    activate: ['v', 'id', 'op', 'lv'],
    deactivate: ['v', 'id', 'op', 'lv', 'deflateToBytes'],
    status: ['v', 'id', 'op'],
  };
  const { v, id, op, lv } = object;
  if (v !== 1 || typeof id !== 'string' || !/^[!-~]{1,64}$/.test(id) || typeof op !== 'string') return false;
  const fields = Object.hasOwn(allowed, op) ? allowed[op] : undefined;
  if (fields === undefined || !Object.keys(object).every((key) => fields.includes(key))) return false;
  if (op === 'status') return true;
  if (typeof lv !== 'string' || invalidNameReason(lv, 'LV') !== undefined) return false;
  const positive = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
  if (op === 'deactivate') return object['deflateToBytes'] === undefined || positive(object['deflateToBytes']);
  if (op !== 'extend') return true;
  const sizes = [object['sizeBytes'], object['incrementBytes'], object['sizeExtents'], object['incrementExtents']].filter((value) => value !== undefined);
  return sizes.length === 1 && typeof sizes[0] === 'number' && Number.isSafeInteger(sizes[0]) && sizes[0] > 0;
}

const anyJsonValue = fc.jsonValue({ maxDepth: 2 });
const nearValue = {
  v: fc.oneof(fc.constant(1), fc.constant(1), fc.constantFrom(0, 2, -1, 1.5, '1', null), anyJsonValue),
  id: fc.oneof(fc.stringMatching(/^[!-~]{1,64}$/), fc.constantFrom('', ' ', 'x'.repeat(65), 'a b', 'é'), fc.string(), anyJsonValue),
  op: fc.oneof(fc.constantFrom('extend', 'activate', 'deactivate', 'status'), fc.constantFrom('Extend', 'grow', 'hasOwnProperty', ''), anyJsonValue),
  lv: fc.oneof(fc.stringMatching(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,20}$/), fc.constantFrom('-x', 'snapshot', 'a_rimage', '..', 'a/b', ''), fc.string(), anyJsonValue),
  sizeBytes: fc.oneof(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, -1, 0.5, 2 ** 53, '5'), anyJsonValue),
  incrementBytes: fc.oneof(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, -4096, 1e300), anyJsonValue),
  sizeExtents: fc.oneof(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, -1, 2.5), anyJsonValue),
  incrementExtents: fc.oneof(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, -1, '1'), anyJsonValue),
  sizebytes: fc.integer(),
  extra: anyJsonValue,
  ['__proto__']: anyJsonValue,
};
// fc.record makes "__proto__" an own key, so the prototype-pollution case is generated too.
const independentFields: fc.Arbitrary<Record<string, unknown>> = fc.record(nearValue, { requiredKeys: [] });
// Independent fields are rarely all valid at once, so also start from a valid request
// and break at most one field: drop it, replace it with a near or random value, or add one.
const validId = fc.stringMatching(/^[!-~]{1,64}$/);
const validLv = fc.stringMatching(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,20}$/).filter((lv) => invalidNameReason(lv, 'LV') === undefined);
const validSize = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const validObject: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ v: fc.constant(1), id: validId, op: fc.constant('status') }),
  fc.record({ v: fc.constant(1), id: validId, op: fc.constantFrom('activate', 'deactivate'), lv: validLv }),
  fc.record({ v: fc.constant(1), id: validId, op: fc.constant('extend'), lv: validLv, sizeBytes: validSize }),
  fc.record({ v: fc.constant(1), id: validId, op: fc.constant('extend'), lv: validLv, incrementBytes: validSize }),
  fc.record({ v: fc.constant(1), id: validId, op: fc.constant('extend'), lv: validLv, sizeExtents: validSize }),
  fc.record({ v: fc.constant(1), id: validId, op: fc.constant('extend'), lv: validLv, incrementExtents: validSize }),
);
const oneFieldBroken = fc
  .tuple(validObject, fc.constantFrom('keep', 'drop', 'replace', 'add'), fc.constantFrom(...Object.keys(nearValue)), fc.jsonValue({ maxDepth: 2 }))
  .chain(([object, mutation, name, randomValue]) => {
    const values = Object.hasOwn(nearValue, name) ? nearValue[name as keyof typeof nearValue] : fc.constant(randomValue);
    return fc.tuple(fc.constant(object), fc.constant(mutation), fc.constant(name), fc.oneof(values, fc.constant(randomValue)));
  })
  .map(([object, mutation, name, value]) => {
    const copy: Record<string, unknown> = { ...object };
    if (mutation === 'drop') delete copy[name];
    if (mutation === 'replace' || mutation === 'add') Object.defineProperty(copy, name, { value, enumerable: true, writable: true, configurable: true });
    return copy;
  });
const nearRequest: fc.Arbitrary<Record<string, unknown>> = fc.oneof(independentFields, oneFieldBroken);

describe('parseRequest properties', () => {
  test('the generator of near-valid requests yields both valid and invalid ones in fair numbers', () => {
    const sample = fc.sample(nearRequest, { numRuns: 2000, seed: 42 });
    const validCount = sample.filter(isValidBySpec).length;
    expect(validCount).toBeGreaterThan(300);
    expect(validCount).toBeLessThan(1700);
  });

  test.prop([fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json(), nearRequest.map((object) => JSON.stringify(object)))], { numRuns: 3000 })(
    'never throws; a request it accepts formats to a line that parses to the same request',
    (text) => {
      const parsed = parseRequest(text);
      if (parsed.ok) {
        const wire = formatRequest(parsed.request);
        expect(wire.endsWith('\n')).toBe(true);
        expect(wire.slice(0, -1)).not.toContain('\n');
        expect(parseRequest(wire.slice(0, -1))).toEqual(parsed);
      } else {
        expect(typeof parsed.error.code).toBe('string');
        expect(parsed.id === undefined || typeof parsed.id === 'string').toBe(true);
      }
    },
  );

  test.prop([nearRequest], { numRuns: 3000 })('accepts exactly the objects the documented rules allow', (object) => {
    const parsed = parseRequest(JSON.stringify(object));
    expect(parsed.ok).toBe(isValidBySpec(object));
    if (!parsed.ok && typeof object['id'] === 'string' && /^[!-~]{1,64}$/.test(object['id']) && parsed.error.code !== 'BAD_JSON') {
      // The reply to a refused request carries its id whenever the id itself is valid.
      expect(parsed.id).toBe(object['id']);
    }
  });
});

// ---- Replies ----------------------------------------------------------------------------

describe('formatResponse', () => {
  test('writes the documented success and error shapes', () => {
    expect(formatResponse(successResponse('r1', { lv: 'lv', extentsGranted: 2, sizeBytes: 8388608, extentSizeBytes: 4194304 }))).toBe(
      '{"v":1,"id":"r1","ok":true,"result":{"lv":"lv","extentsGranted":2,"sizeBytes":8388608,"extentSizeBytes":4194304}}\n',
    );
    expect(formatResponse(errorResponse(null, 'BAD_JSON', 'request line is not valid JSON'))).toBe(
      '{"v":1,"id":null,"ok":false,"error":{"code":"BAD_JSON","message":"request line is not valid JSON"}}\n',
    );
    expect(formatResponse(errorResponse('r2', 'OUT_OF_SPACE', 'pool empty', { poolExtentCount: 0 }))).toBe(
      '{"v":1,"id":"r2","ok":false,"error":{"code":"OUT_OF_SPACE","message":"pool empty","data":{"poolExtentCount":0}}}\n',
    );
  });
  test('error data that cannot be serialised is dropped, and the reply says so', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    for (const data of [cyclic, { big: 10n }, { huge: 'x'.repeat(MAX_REPLY_BYTES) }]) {
      const reply = JSON.parse(formatResponse(errorResponse('r', 'INTERNAL', 'boom', data)));
      expect(reply).toEqual({ v: 1, id: 'r', ok: false, error: { code: 'INTERNAL', message: 'boom (error data dropped: it could not be sent)' } });
    }
  });
  test('a success result that cannot be serialised becomes an INTERNAL error', () => {
    const reply = JSON.parse(formatResponse({ id: 'r', ok: true, result: { lv: 'lv', active: true, extra: 1n } as never }));
    expect(reply).toMatchObject({ id: 'r', ok: false, error: { code: 'INTERNAL' } });
  });
  test('a long message is cut to MAX_MESSAGE_CHARS', () => {
    const reply = JSON.parse(formatResponse(errorResponse('r', 'X', '\n'.repeat(5000))));
    expect(reply.error.message).toBe('\n'.repeat(MAX_MESSAGE_CHARS));
  });

  const anyResponse: fc.Arbitrary<Response> = fc.oneof(
    fc.record({
      id: fc.string({ unit: 'binary', maxLength: 80 }),
      ok: fc.constant(true as const),
      result: fc.oneof(
        fc.record({ lv: fc.string({ unit: 'binary' }), extentsGranted: fc.double(), sizeBytes: fc.integer(), extentSizeBytes: fc.integer() }),
        fc.record({ lv: fc.string(), active: fc.boolean() }),
        fc.record({
          vg: fc.string(),
          host: fc.string({ unit: 'binary' }),
          poolExtentCount: fc.nat(),
          lowWaterExtents: fc.nat(),
          unreplayedRecordCount: fc.nat(),
          lastGrantGeneration: fc.nat(),
          deviceMapperPresent: fc.boolean(),
          extentSizeBytes: fc.integer(),
        }),
      ),
    }),
    fc.record(
      {
        id: fc.option(fc.string({ unit: 'binary', maxLength: 80 })),
        ok: fc.constant(false as const),
        error: fc.record(
          {
            code: fc.string({ unit: 'binary', maxLength: 100 }),
            message: fc.string({ unit: 'binary', maxLength: 3000 }),
            data: fc.dictionary(fc.string({ unit: 'binary' }), fc.oneof(fc.jsonValue(), fc.bigInt(), fc.string({ unit: 'binary', maxLength: 20_000 }))),
          },
          { requiredKeys: ['code', 'message'] },
        ),
      },
    ),
  );

  test.prop([anyResponse], { numRuns: 1000 })('always writes one line of valid JSON within MAX_REPLY_BYTES', (response) => {
    const text = formatResponse(response);
    expect(text.endsWith('\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    expect(Buffer.byteLength(text, 'utf8')).toBeLessThanOrEqual(MAX_REPLY_BYTES);
    const parsed: unknown = JSON.parse(text);
    expect(parsed).toMatchObject({ v: PROTOCOL_VERSION, ok: response.ok });
  });
});

describe('parseResponse', () => {
  const status = {
    vg: 'vg1',
    host: 'h1',
    poolExtentCount: 10,
    lowWaterExtents: 4,
    unreplayedRecordCount: 2,
    lastGrantGeneration: 7,
    deviceMapperPresent: true,
    extentSizeBytes: 4194304,
  };
  test('reads back what formatResponse writes, for every op', () => {
    const cases: [Operation, Response][] = [
      ['extend', successResponse('a', { lv: 'lv', extentsGranted: 0, sizeBytes: 4096, extentSizeBytes: 4096 })],
      ['activate', successResponse('b', { lv: 'lv', active: true })],
      ['deactivate', successResponse('c', { lv: 'lv', active: false })],
      ['deactivate', successResponse('c', { lv: 'lv', active: false, deflate: { seq: 7, targetBytes: 8388608, replayed: true, sizeBytes: 8388608, heldBy: null } })],
      ['status', successResponse('d', status)],
      ['status', errorResponse(null, 'LINE_TOO_LONG', 'too long', { maxLineBytes: 4096 })],
      ['extend', errorResponse('e', 'OUT_OF_SPACE', 'empty')],
    ];
    for (const [op, response] of cases) {
      expect(parseResponse(formatResponse(response).trimEnd(), op)).toEqual({ ok: true, response });
    }
  });
  test('ignores reply fields it does not know', () => {
    const parsed = parseResponse(line({ v: 1, id: 'a', ok: true, result: { ...status, activeLvCount: 3 }, extra: 1 }), 'status');
    expect(parsed).toEqual({ ok: true, response: successResponse('a', status) });
  });
  test('refuses malformed replies', () => {
    const bad: [Operation, string][] = [
      ['status', 'nope'],
      ['status', '[]'],
      ['status', line({ v: 2, id: 'a', ok: true, result: status })],
      ['status', line({ v: 1, id: 'a', ok: 'yes', result: status })],
      ['status', line({ v: 1, id: null, ok: true, result: status })],
      ['status', line({ v: 1, id: 'a', ok: true, result: { ...status, poolExtentCount: -1 } })],
      ['extend', line({ v: 1, id: 'a', ok: true, result: status })],
      ['activate', line({ v: 1, id: 'a', ok: true, result: { lv: 'lv', active: 'yes' } })],
      ['status', line({ v: 1, id: 'a', ok: false })],
      ['status', line({ v: 1, id: 'a', ok: false, error: { code: '', message: 'm' } })],
      ['status', line({ v: 1, id: 'a', ok: false, error: { code: 'X', message: 1 } })],
      ['status', line({ v: 1, id: 'a', ok: false, error: { code: 'X', message: 'm', data: [] } })],
      ['status', line({ v: 1, id: 5, ok: false, error: { code: 'X', message: 'm' } })],
    ];
    for (const [op, text] of bad) expect(parseResponse(text, op).ok, text).toBe(false);
  });
  test('invalidResultReason names the field that is wrong', () => {
    expect(invalidResultReason('extend', { lv: 'lv', extentsGranted: 1, sizeBytes: 0 })).toMatch(/sizeBytes/);
    expect(invalidResultReason('status', { ...status, deviceMapperPresent: 1 })).toMatch(/deviceMapperPresent/);
    expect(invalidResultReason('activate', null)).toMatch(/object/);
    expect(invalidResultReason('deactivate', { lv: 'lv', active: false })).toBeUndefined();
  });
});
