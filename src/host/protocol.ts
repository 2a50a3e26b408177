// The host daemon's socket protocol, version 1: pure parsing and formatting, no I/O.
//
// TRANSPORT
//   A Unix stream socket owned by root, mode 0600 (`thinlv host run VG HOST` creates it).
//   Each message is one line of UTF-8 JSON ending in "\n" (a "\r" just before it is
//   dropped). A line may hold at most MAX_LINE_BYTES (4096) bytes, newline excluded.
//   Blank lines are ignored and get no reply. A client may send several requests
//   without waiting: every request gets exactly one reply, replies come in the order
//   their requests finish (not the order they were sent), and each carries the id of
//   its request. A client may half-close its side after its last request and still
//   read the replies, except that an extend still waiting for a grant then ends with
//   CANCELLED: a client that goes away (a killed `thinlv lvextend`) looks the same
//   from here, and its wait must not leave a demand behind. Keep the sending side
//   open while waiting for an extend that may need the master.
//
// REQUESTS (every field is required unless marked optional; any other field is refused)
//   {"v":1,"id":ID,"op":"extend","lv":LV,"sizeBytes":N}       grow LV to at least N bytes
//   {"v":1,"id":ID,"op":"extend","lv":LV,"incrementBytes":N}  grow LV by N bytes
//   {"v":1,"id":ID,"op":"extend","lv":LV,"sizeExtents":N}     ... to at least N extents
//   {"v":1,"id":ID,"op":"extend","lv":LV,"incrementExtents":N}  ... by N extents
//        (the extent forms added later in version 1: `lvextend -l` asked the daemon's
//        status for the extent size first, a second round trip per extend)
//   {"v":1,"id":ID,"op":"activate","lv":LV}                   activate LV on this host
//   {"v":1,"id":ID,"op":"deactivate","lv":LV}                 deactivate LV on this host
//   {"v":1,"id":ID,"op":"deactivate","lv":LV,"deflateToBytes":N}  ... then give back its
//        extents past N bytes through the master (added later in version 1)
//   {"v":1,"id":ID,"op":"status"}                             report the host's pool
//   Every op takes an optional "vg":NAME; a daemon serving another VG refuses the
//   request with WRONG_VG, so a client that names the VG it means is never served by
//   the wrong daemon (a socket path mixed up between VGs).
//
//   v    the integer 1 (PROTOCOL_VERSION). Another integer gets UNSUPPORTED_VERSION.
//   id   a string of 1 to MAX_ID_CHARS (64) printable ASCII characters, no space
//        (0x21-0x7E), chosen by the client; ids of requests in flight on one connection
//        must differ (DUPLICATE_ID otherwise).
//   lv   an LVM LV name (A-Z a-z 0-9 + _ . -, at most 127 characters, not starting with
//        "-", no reserved prefix or suffix: src/metadata/names.ts).
//   extend takes exactly one of sizeBytes, incrementBytes, sizeExtents and
//        incrementExtents: a positive integer no larger than 2^53 - 1 (in extents, so
//        many that the bytes are too, else BAD_REQUEST). The new size is rounded up to
//        whole extents. The size forms are safe to resend after a lost reply (growing to
//        a size already reached grants nothing); the increments are not: a client that
//        cannot tell whether its request was applied should resend as a size.
//
// REPLIES
//   {"v":1,"id":ID,"ok":true,"result":RESULT}
//   {"v":1,"id":ID|null,"ok":false,"error":{"code":CODE,"message":TEXT,"data":{...}}}
//
//   id is null when the request's id could not be read (bad JSON, a line too long, a
//   missing or invalid id) or the reply answers no request (TOO_MANY_CONNECTIONS).
//   "data" is optional. A reply line holds at most MAX_REPLY_BYTES bytes.
//   RESULT, by op:
//     extend               {"lv":LV,"extentsGranted":N,"sizeBytes":N,"extentSizeBytes":N}
//                          extentsGranted (>= 0) is what this request added; sizeBytes the
//                          LV's size after it.
//     activate/deactivate  {"lv":LV,"active":BOOL}   the LV's state after the request
//                          deactivate with deflateToBytes adds "deflate":{"seq":N,
//                          "targetBytes":N,"replayed":BOOL,"sizeBytes":N,"heldBy":HOST|null}:
//                          the deflate record's seq; the size it asks for (whole extents);
//                          whether the master replayed it within the daemon's
//                          claim wait; the LV's allocated size in metadata then; who held it
//                          then (a held LV is not deflated)
//     status               {"vg":NAME,"host":NAME,"poolExtentCount":N,"lowWaterExtents":N,
//                           "unreplayedRecordCount":N,"lastGrantGeneration":N,
//                           "deviceMapperPresent":BOOL,"extentSizeBytes":N,
//                           "activeLvs":[LV,...]}   (activeLvs: added later in version 1)
//   Clients must ignore reply fields they do not know: new fields may be added to
//   version 1 replies; removing or changing a field means a new version.
//
// ERROR CODES (stable strings; clients treat an unknown code as a failure)
//   Protocol: BAD_JSON, BAD_REQUEST, UNSUPPORTED_VERSION, UNKNOWN_OP, DUPLICATE_ID,
//             LINE_TOO_LONG (the server then closes the connection),
//             TOO_MANY_IN_FLIGHT (retry later; data.scope is "connection" or "server"),
//             TOO_MANY_CONNECTIONS (the server then closes the connection),
//             SHUTTING_DOWN (the daemon is stopping; retry against its successor).
//   Daemon:   OUT_OF_SPACE, LV_NOT_FOUND, SHRINK_REFUSED, INTERNAL (see the daemon's
//             log), and other codes of thinlv's error catalogue (src/errors.ts).
//
// LIMITS the server enforces (src/host/socketServer.ts): connections, requests in flight
// per connection and in total, line length, idle time. Idle connections are closed.

import { invalidNameReason } from '../metadata/names.js';

export const PROTOCOL_VERSION = 1;
/** Longest request line, in bytes of UTF-8, newline excluded. */
export const MAX_LINE_BYTES = 4096;
export const MAX_ID_CHARS = 64;
/** Longest reply line, newline included; a reply that would be longer loses its error data. */
export const MAX_REPLY_BYTES = 16_384;
/** Error messages are cut to this many characters so a reply stays within MAX_REPLY_BYTES. */
export const MAX_MESSAGE_CHARS = 1024;
/** Values quoted back in error messages are cut to this many characters. */
const MAX_QUOTED_CHARS = 64;

export const ProtocolErrorCode = {
  badJson: 'BAD_JSON',
  badRequest: 'BAD_REQUEST',
  unsupportedVersion: 'UNSUPPORTED_VERSION',
  unknownOp: 'UNKNOWN_OP',
  duplicateId: 'DUPLICATE_ID',
  lineTooLong: 'LINE_TOO_LONG',
  tooManyInFlight: 'TOO_MANY_IN_FLIGHT',
  tooManyConnections: 'TOO_MANY_CONNECTIONS',
  shuttingDown: 'SHUTTING_DOWN',
  outOfSpace: 'OUT_OF_SPACE',
  lvNotFound: 'LV_NOT_FOUND',
  shrinkRefused: 'SHRINK_REFUSED',
  internal: 'INTERNAL',
} as const;

export const OPERATIONS = ['extend', 'activate', 'deactivate', 'status'] as const;
export type Operation = (typeof OPERATIONS)[number];

interface RequestBase {
  readonly id: string;
  /** The VG the client means; the daemon refuses a request naming another (WRONG_VG). */
  readonly vg?: string;
}
/** What an extend asks for: exactly one of these fields. */
export const EXTEND_AMOUNTS = ['sizeBytes', 'incrementBytes', 'sizeExtents', 'incrementExtents'] as const;
export type ExtendAmount = (typeof EXTEND_AMOUNTS)[number];
type Only<K extends ExtendAmount> = { readonly [P in K]: number } & { readonly [P in Exclude<ExtendAmount, K>]?: never };
export type ExtendRequest = RequestBase & { readonly op: 'extend'; readonly lv: string } & (Only<'sizeBytes'> | Only<'incrementBytes'> | Only<'sizeExtents'> | Only<'incrementExtents'>);

/** The one amount an extend request carries. */
export function extendAmountOf(request: ExtendRequest): { readonly kind: ExtendAmount; readonly value: number } {
  const kind = EXTEND_AMOUNTS.find((name) => request[name] !== undefined)!;
  return { kind, value: request[kind]! };
}
export interface ActivationRequest extends RequestBase {
  readonly op: 'activate' | 'deactivate';
  readonly lv: string;
  /** deactivate only: give back the LV's extents past this many bytes (rounded up to whole extents, at least one). */
  readonly deflateToBytes?: number;
}
export interface StatusRequest extends RequestBase {
  readonly op: 'status';
}
export type Request = ExtendRequest | ActivationRequest | StatusRequest;

export interface ExtendResult {
  readonly lv: string;
  readonly extentsGranted: number;
  readonly sizeBytes: number;
  /** The VG's extent size, so a client can report sizes in extents as lvm does. */
  readonly extentSizeBytes: number;
}
export interface ActivationResult {
  readonly lv: string;
  readonly active: boolean;
  readonly deflate?: DeflateResult;
}
export interface DeflateResult {
  readonly seq: number;
  /** The allocated size the deflate keeps: deflateToBytes rounded up to whole extents. */
  readonly targetBytes: number;
  /** Whether the master replayed the deflate while the daemon waited; sizeBytes and heldBy are metadata's then. */
  readonly replayed: boolean;
  readonly sizeBytes: number;
  readonly heldBy: string | null;
}
export interface StatusResult {
  readonly vg: string;
  readonly host: string;
  readonly poolExtentCount: number;
  readonly lowWaterExtents: number;
  readonly unreplayedRecordCount: number;
  readonly lastGrantGeneration: number;
  readonly deviceMapperPresent: boolean;
  readonly extentSizeBytes: number;
  /** The LVs active on this host, by name; absent from daemons older than the field. */
  readonly activeLvs?: readonly string[];
}
export interface ResultByOp {
  readonly extend: ExtendResult;
  readonly activate: ActivationResult;
  readonly deactivate: ActivationResult;
  readonly status: StatusResult;
}
export type Result = ResultByOp[Operation];

export interface ErrorBody {
  readonly code: string;
  readonly message: string;
  readonly data?: Readonly<Record<string, unknown>>;
}
export interface SuccessResponse<R extends Result = Result> {
  readonly id: string;
  readonly ok: true;
  readonly result: R;
}
export interface ErrorResponse {
  readonly id: string | null;
  readonly ok: false;
  readonly error: ErrorBody;
}
export type Response<R extends Result = Result> = SuccessResponse<R> | ErrorResponse;

export type ParsedRequest =
  | { readonly ok: true; readonly request: Request }
  | { readonly ok: false; readonly error: ErrorBody; readonly id?: string };

export type ParsedResponse = { readonly ok: true; readonly response: Response } | { readonly ok: false; readonly reason: string };

const ID_PATTERN = /^[\x21-\x7e]+$/;
const FIELDS_BY_OP: Readonly<Record<Operation, readonly string[]>> = {
  extend: ['v', 'id', 'op', 'vg', 'lv', ...EXTEND_AMOUNTS],
  activate: ['v', 'id', 'op', 'vg', 'lv'],
  deactivate: ['v', 'id', 'op', 'vg', 'lv', 'deflateToBytes'],
  status: ['v', 'id', 'op', 'vg'],
};

type JsonObject = { readonly [key: string]: unknown };

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isOperation(value: unknown): value is Operation {
  return OPERATIONS.some((op) => op === value);
}

/** Own property only: a request's `{"toString":..}` or a missing key must not read Object.prototype. */
function field(object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function isPositiveSafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Why `id` is not a valid request id, or undefined when it is. */
export function invalidIdReason(id: unknown): string | undefined {
  if (typeof id !== 'string') return '"id" must be a string';
  if (id.length === 0 || id.length > MAX_ID_CHARS) return `"id" must be 1 to ${MAX_ID_CHARS} characters, got ${id.length}`;
  if (!ID_PATTERN.test(id)) return '"id" may only contain printable ASCII characters without space (0x21-0x7E)';
  return undefined;
}

function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS)}...` : text;
}

function refuse(code: string, message: string, id: string | undefined, data?: Readonly<Record<string, unknown>>): ParsedRequest {
  const error: ErrorBody = data === undefined ? { code, message } : { code, message, data };
  return id === undefined ? { ok: false, error } : { ok: false, error, id };
}

/**
 * Reads one request line (without its newline). Never throws: a line that is not a
 * valid version 1 request yields an error with a stable code, plus the request's id
 * when that much could be read, so the reply can carry it.
 */
export function parseRequest(line: string): ParsedRequest {
  if (Buffer.byteLength(line, 'utf8') > MAX_LINE_BYTES) {
    return refuse(ProtocolErrorCode.lineTooLong, `request line is longer than ${MAX_LINE_BYTES} bytes`, undefined, { maxLineBytes: MAX_LINE_BYTES });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    const detail = error instanceof Error ? `: ${error.message.slice(0, MAX_MESSAGE_CHARS / 2)}` : '';
    return refuse(ProtocolErrorCode.badJson, `request line is not valid JSON${detail}`, undefined);
  }
  if (!isJsonObject(parsed)) return refuse(ProtocolErrorCode.badRequest, 'request must be a JSON object', undefined);

  const rawId = field(parsed, 'id');
  const idReason = invalidIdReason(rawId);
  const id = idReason === undefined && typeof rawId === 'string' ? rawId : undefined;

  // The version comes first: a request from a newer client may be shaped differently.
  const version = field(parsed, 'v');
  if (version === undefined) return refuse(ProtocolErrorCode.badRequest, `request has no "v" (protocol version; this daemon speaks ${PROTOCOL_VERSION})`, id);
  if (typeof version !== 'number' || !Number.isSafeInteger(version)) {
    return refuse(ProtocolErrorCode.badRequest, `"v" must be an integer, got ${quote(version)}`, id);
  }
  if (version !== PROTOCOL_VERSION) {
    return refuse(ProtocolErrorCode.unsupportedVersion, `protocol version ${version} is not supported; this daemon speaks version ${PROTOCOL_VERSION}`, id, {
      supportedVersions: [PROTOCOL_VERSION],
    });
  }
  if (id === undefined) return refuse(ProtocolErrorCode.badRequest, idReason ?? '"id" is invalid', undefined);

  const op = field(parsed, 'op');
  if (op === undefined) return refuse(ProtocolErrorCode.badRequest, 'request has no "op"', id);
  if (typeof op !== 'string') return refuse(ProtocolErrorCode.badRequest, `"op" must be a string, got ${quote(op)}`, id);
  if (!isOperation(op)) {
    return refuse(ProtocolErrorCode.unknownOp, `unknown op ${quote(op)}; known: ${OPERATIONS.join(', ')}`, id, { operations: [...OPERATIONS] });
  }

  // Refusing unknown fields catches typos ("sizebytes") that would otherwise be ignored.
  const allowed = FIELDS_BY_OP[op];
  const unknownField = Object.keys(parsed).find((key) => !allowed.includes(key));
  if (unknownField !== undefined) {
    return refuse(ProtocolErrorCode.badRequest, `unknown field ${quote(unknownField)} for op ${op}; allowed: ${allowed.join(', ')}`, id, {
      field: unknownField.slice(0, MAX_QUOTED_CHARS),
    });
  }
  const vg = field(parsed, 'vg');
  if (vg !== undefined) {
    const vgReason = typeof vg === 'string' ? invalidNameReason(vg, 'VG') : '"vg" must be a string';
    if (vgReason !== undefined) return refuse(ProtocolErrorCode.badRequest, vgReason.slice(0, MAX_MESSAGE_CHARS), id);
  }
  const base = vg === undefined ? { id } : { id, vg: vg as string };
  if (op === 'status') return { ok: true, request: { ...base, op } };

  const lv = field(parsed, 'lv');
  if (typeof lv !== 'string') return refuse(ProtocolErrorCode.badRequest, `op ${op} needs "lv", a string`, id);
  const lvReason = invalidNameReason(lv, 'LV');
  if (lvReason !== undefined) return refuse(ProtocolErrorCode.badRequest, lvReason.slice(0, MAX_MESSAGE_CHARS), id);
  if (op === 'activate') return { ok: true, request: { ...base, op, lv } };
  if (op === 'deactivate') {
    const deflateToBytes = field(parsed, 'deflateToBytes');
    if (deflateToBytes === undefined) return { ok: true, request: { ...base, op, lv } };
    if (!isPositiveSafeInteger(deflateToBytes)) return refuse(ProtocolErrorCode.badRequest, `"deflateToBytes" must be a positive integer below 2^53, got ${quote(deflateToBytes)}`, id);
    return { ok: true, request: { ...base, op, lv, deflateToBytes } };
  }

  const given = EXTEND_AMOUNTS.filter((name) => field(parsed, name) !== undefined);
  if (given.length !== 1) {
    return refuse(ProtocolErrorCode.badRequest, `op extend needs exactly one of ${EXTEND_AMOUNTS.map((name) => `"${name}"`).join(', ')}`, id);
  }
  const kind = given[0]!;
  const value = field(parsed, kind);
  if (!isPositiveSafeInteger(value)) return refuse(ProtocolErrorCode.badRequest, `"${kind}" must be a positive integer below 2^53, got ${quote(value)}`, id);
  return { ok: true, request: { ...base, op, lv, [kind]: value } as ExtendRequest };
}

/** One request line, newline-terminated; fields are copied one by one so no stray property leaks onto the wire. */
export function formatRequest(request: Request): string {
  const wire: Record<string, unknown> = { v: PROTOCOL_VERSION, id: request.id, op: request.op };
  if (request.vg !== undefined) wire['vg'] = request.vg;
  if (request.op !== 'status') wire['lv'] = request.lv;
  if (request.op === 'deactivate' && request.deflateToBytes !== undefined) wire['deflateToBytes'] = request.deflateToBytes;
  if (request.op === 'extend') {
    const { kind, value } = extendAmountOf(request);
    wire[kind] = value;
  }
  return `${JSON.stringify(wire)}\n`;
}

/** Why `result` is not a valid result for `op`, or undefined when it is. Extra fields are allowed. */
export function invalidResultReason(op: Operation, result: unknown): string | undefined {
  if (!isJsonObject(result)) return 'result must be an object';
  const need = (key: string, ok: (value: unknown) => boolean, what: string): string | undefined =>
    ok(field(result, key)) ? undefined : `result of ${op} needs "${key}", ${what}, got ${quote(field(result, key))}`;
  const isString = (value: unknown): boolean => typeof value === 'string' && value.length > 0;
  const isBoolean = (value: unknown): boolean => typeof value === 'boolean';
  switch (op) {
    case 'extend':
      return (
        need('lv', isString, 'a name') ??
        need('extentsGranted', isCount, 'a count') ??
        need('sizeBytes', isPositiveSafeInteger, 'a positive integer') ??
        need('extentSizeBytes', isPositiveSafeInteger, 'a positive integer')
      );
    case 'activate':
    case 'deactivate':
      return need('lv', isString, 'a name') ?? need('active', isBoolean, 'a boolean');
    case 'status':
      return (
        need('vg', isString, 'a name') ??
        need('host', isString, 'a name') ??
        need('poolExtentCount', isCount, 'a count') ??
        need('lowWaterExtents', isCount, 'a count') ??
        need('unreplayedRecordCount', isCount, 'a count') ??
        need('lastGrantGeneration', isCount, 'a count') ??
        need('deviceMapperPresent', isBoolean, 'a boolean') ??
        need('extentSizeBytes', isPositiveSafeInteger, 'a positive integer')
      );
  }
}

function readResult(op: Operation, result: JsonObject): Result | undefined {
  if (invalidResultReason(op, result) !== undefined) return undefined;
  const lv = field(result, 'lv');
  switch (op) {
    case 'extend': {
      const extentsGranted = field(result, 'extentsGranted');
      const extentSizeBytes = field(result, 'extentSizeBytes');
      const sizeBytes = field(result, 'sizeBytes');
      if (typeof lv !== 'string' || typeof extentsGranted !== 'number' || typeof sizeBytes !== 'number' || typeof extentSizeBytes !== 'number') return undefined;
      return { lv, extentsGranted, sizeBytes, extentSizeBytes };
    }
    case 'activate':
    case 'deactivate': {
      const active = field(result, 'active');
      if (typeof lv !== 'string' || typeof active !== 'boolean') return undefined;
      const deflate = readDeflate(field(result, 'deflate'));
      return deflate === undefined ? { lv, active } : { lv, active, deflate };
    }
    case 'status': {
      const [vg, host, pool, lowWater, unreplayed, generation, dm, extentSize] = [
        'vg', 'host', 'poolExtentCount', 'lowWaterExtents', 'unreplayedRecordCount', 'lastGrantGeneration', 'deviceMapperPresent', 'extentSizeBytes',
      ].map((key) => field(result, key));
      if (typeof vg !== 'string' || typeof host !== 'string' || typeof dm !== 'boolean') return undefined;
      if (typeof pool !== 'number' || typeof lowWater !== 'number' || typeof unreplayed !== 'number' || typeof generation !== 'number' || typeof extentSize !== 'number') return undefined;
      const active = field(result, 'activeLvs');
      const activeLvs = Array.isArray(active) && active.every((name) => typeof name === 'string') ? { activeLvs: active as string[] } : {};
      return {
        vg, host, poolExtentCount: pool, lowWaterExtents: lowWater, unreplayedRecordCount: unreplayed, lastGrantGeneration: generation, deviceMapperPresent: dm, extentSizeBytes: extentSize, ...activeLvs,
      };
    }
  }
}

/**
 * Reads one reply line (without its newline) to a request of `op`. Fields the protocol
 * does not know are dropped (clients must ignore them); a malformed reply yields a reason.
 */
export function parseResponse(line: string, op: Operation): ParsedResponse {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'reply is not valid JSON' };
  }
  if (!isJsonObject(parsed)) return { ok: false, reason: 'reply is not a JSON object' };
  const version = field(parsed, 'v');
  if (version !== PROTOCOL_VERSION) return { ok: false, reason: `reply has protocol version ${quote(version)}, expected ${PROTOCOL_VERSION}` };
  const id = field(parsed, 'id');
  const ok = field(parsed, 'ok');
  if (ok === true) {
    if (typeof id !== 'string' || invalidIdReason(id) !== undefined) return { ok: false, reason: `success reply has an invalid id ${quote(id)}` };
    const result = field(parsed, 'result');
    if (!isJsonObject(result)) return { ok: false, reason: 'success reply has no result object' };
    const read = readResult(op, result);
    if (read === undefined) return { ok: false, reason: invalidResultReason(op, result) ?? `invalid result for ${op}` };
    return { ok: true, response: { id, ok: true, result: read } };
  }
  if (ok === false) {
    const errorId = id === null ? null : typeof id === 'string' && invalidIdReason(id) === undefined ? id : undefined;
    if (errorId === undefined) return { ok: false, reason: `error reply has an invalid id ${quote(id)}` };
    const error = field(parsed, 'error');
    if (!isJsonObject(error)) return { ok: false, reason: 'error reply has no error object' };
    const code = field(error, 'code');
    const message = field(error, 'message');
    const data = field(error, 'data');
    if (typeof code !== 'string' || code.length === 0) return { ok: false, reason: 'error reply has no code' };
    if (typeof message !== 'string') return { ok: false, reason: 'error reply has no message' };
    if (data !== undefined && !isJsonObject(data)) return { ok: false, reason: 'error reply data is not an object' };
    const body: ErrorBody = data === undefined ? { code, message } : { code, message, data };
    return { ok: true, response: { id: errorId, ok: false, error: body } };
  }
  return { ok: false, reason: `reply has no boolean "ok", got ${quote(ok)}` };
}

function stringifyOrUndefined(value: unknown): string | undefined {
  try {
    const text = JSON.stringify(value);
    return typeof text === 'string' ? text : undefined;
  } catch {
    // BigInt, a cycle or a throwing toJSON in error data: the caller falls back.
    return undefined;
  }
}

/**
 * One reply line, newline-terminated, valid JSON and at most MAX_REPLY_BYTES long,
 * whatever `response` holds: a message is cut to MAX_MESSAGE_CHARS, and error data
 * that cannot be serialised or does not fit is dropped (the message says so).
 * JSON.stringify escapes control characters and lone surrogates, so the line holds
 * no newline but its last character.
 */
export function formatResponse(response: Response): string {
  if (response.ok) {
    const line = stringifyOrUndefined({ v: PROTOCOL_VERSION, id: response.id, ok: true, result: response.result });
    if (line !== undefined && Buffer.byteLength(line, 'utf8') < MAX_REPLY_BYTES) return `${line}\n`;
    return formatResponse({
      id: response.id,
      ok: false,
      error: { code: ProtocolErrorCode.internal, message: 'the daemon produced a result that cannot be sent; see its log' },
    });
  }
  const id = typeof response.id === 'string' ? response.id.slice(0, MAX_ID_CHARS) : null;
  const code = String(response.error.code).slice(0, MAX_QUOTED_CHARS);
  const message = String(response.error.message).slice(0, MAX_MESSAGE_CHARS);
  const { data } = response.error;
  if (data !== undefined) {
    const line = stringifyOrUndefined({ v: PROTOCOL_VERSION, id, ok: false, error: { code, message, data } });
    if (line !== undefined && Buffer.byteLength(line, 'utf8') < MAX_REPLY_BYTES) return `${line}\n`;
  }
  const note = data === undefined ? '' : ' (error data dropped: it could not be sent)';
  // Cannot throw: only strings and null, and at most ~64 + 64 + 1024 characters of 6-byte escapes.
  return `${JSON.stringify({ v: PROTOCOL_VERSION, id, ok: false, error: { code, message: message + note } })}\n`;
}

/** A success reply. */
export function successResponse<R extends Result>(id: string, result: R): SuccessResponse<R> {
  return { id, ok: true, result };
}

/** An error reply; `id` is null when the request's id is unknown. */
export function errorResponse(id: string | null, code: string, message: string, data?: Readonly<Record<string, unknown>>): ErrorResponse {
  return { id, ok: false, error: data === undefined ? { code, message } : { code, message, data } };
}

/** A deactivate reply's deflate outcome, when it carries a well-formed one. */
function readDeflate(value: unknown): DeflateResult | undefined {
  if (!isJsonObject(value)) return undefined;
  const [seq, targetBytes, replayed, sizeBytes, heldBy] = ['seq', 'targetBytes', 'replayed', 'sizeBytes', 'heldBy'].map((key) => field(value, key));
  if (!isCount(seq) || !isCount(targetBytes) || typeof replayed !== 'boolean' || !isCount(sizeBytes) || (heldBy !== null && typeof heldBy !== 'string')) return undefined;
  return { seq, targetBytes, replayed, sizeBytes, heldBy };
}
