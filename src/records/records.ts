// The payloads thinlv puts in its rings. The journal library treats payloads as
// opaque bytes; this module gives them meaning, for the host (writer of the
// journal, reader of grants) and the master (the other way round).
//
// Physical extents are named by PV *uuid*, never by device path: on a SAN the
// same LUN is /dev/sdb on one host and /dev/sdc on another.
//
//   journal ring (host -> master)
//     allocate  {lv, lvUuid, ranges, extentCountAfter}  extents moved from the host's
//                                                        free LV to the end of lv
//     return    {ranges}                                extents handed back to VG free space
//     activity  {activeLvCount}                         LVs active on the host now (host
//                                                        removal refuses a host that has any)
//     claim     {lv, lvUuid}                            asks to become the LV's one extender
//                                                        (the master grants it by tagging the LV
//                                                        thinlv_owner=<host> when nobody owns it)
//     release   {lv, lvUuid}                            gives that ownership back (deactivation,
//                                                        or the end of a one-off extend)
//     demand    {extentCount}                           the host's waiting extends need this
//                                                        many extents and its pool holds fewer:
//                                                        the next pass grants at least that much;
//                                                        0 when they gave up (timeout, client gone)
//     deflate   {lv, lvUuid, extentCount}               after a release: give back lv's extents
//                                                        past its first extentCount (>= 1) to VG
//                                                        free space; the master applies it only if
//                                                        nobody holds lv once the pass's releases
//                                                        are in (`thinlv lvchange -an --deflate`)
//   grants ring (master -> host)
//     grant     {generation, appliedSeq, freeRanges}     the host's whole free LV as of
//                                                        generation, after replay through
//                                                        appliedSeq (see DESIGN: a re-sent
//                                                        grant is harmless because it is a
//                                                        snapshot, not a delta). At most
//                                                        MAX_RANGES_PER_RECORD ranges: a pool in
//                                                        more pieces is sent as its largest ones,
//                                                        which is safe (the host uses a subset of
//                                                        its free LV) and wastes only the smallest
//                                                        pieces until the host's next start
//     returnRequest {generation, extentCount}           please return this many extents
//     shortage  {reason, demandExtentCount,             the pass could not grant all the host
//                grantedExtentCount, vgFreeExtentCount,  waits for: 'vg-full' (nothing left above
//                reserveExtentCount}                     the reserve) or 'shared' (hosts waiting at
//                                                        once shared what was left); the host's
//                                                        extends keep waiting and, when they give
//                                                        up, say why
//     stop      {reason, ownerId}                       the host is being removed: the daemon
//                                                        session holding the lease as ownerId
//                                                        stops serving, writes nothing more and
//                                                        releases the lease (host remove waits for
//                                                        that); a later session ignores it
//
// Encoding: UTF-8 JSON with a format version `v`; decoding validates every
// field by hand and answers a typed error instead of throwing, so a corrupt or
// newer record is rejected and counted, never half-applied.

export const RECORD_FORMAT_VERSION = 1;
/** Bound on ranges in one record; a request needing more is split by the caller. */
export const MAX_RANGES_PER_RECORD = 512;

export interface PvExtentRange {
  readonly pvUuid: string;
  readonly firstExtent: number;
  readonly extentCount: number;
}

export type JournalRecord =
  | {
      readonly kind: 'allocate';
      readonly lv: string;
      readonly lvUuid: string;
      readonly ranges: readonly PvExtentRange[];
      /** The LV's size in extents once these ranges are appended; lets replay detect a mismatch. */
      readonly extentCountAfter: number;
    }
  | { readonly kind: 'return'; readonly ranges: readonly PvExtentRange[] }
  /** How many LVs the host has active now; journaled on every activate and deactivate. */
  | { readonly kind: 'activity'; readonly activeLvCount: number }
  /** Ownership of a thin LV: only its owner extends it (I8); see src/replay/planReplay.ts. */
  | { readonly kind: 'claim' | 'release'; readonly lv: string; readonly lvUuid: string }
  /** Extents the host's waiting extends need in all; its pool holds fewer. Moves nothing. */
  | { readonly kind: 'demand'; readonly extentCount: number }
  /** Keep the LV's first extentCount extents (>= 1), give the rest back; see the table above. */
  | { readonly kind: 'deflate'; readonly lv: string; readonly lvUuid: string; readonly extentCount: number };

/** The extents a journal record moves: an allocation's or a return's ranges, none for the others. */
export const rangesOf = (record: JournalRecord): readonly PvExtentRange[] => (record.kind === 'allocate' || record.kind === 'return' ? record.ranges : []);

export type GrantRecord =
  | { readonly kind: 'grant'; readonly generation: number; readonly appliedSeq: number; readonly freeRanges: readonly PvExtentRange[] }
  | { readonly kind: 'returnRequest'; readonly generation: number; readonly extentCount: number }
  | { readonly kind: 'stop'; readonly reason: string; readonly ownerId: string }
  | ShortageRecord;

export const SHORTAGE_REASONS = ['vg-full', 'shared'] as const;
export type ShortageReason = (typeof SHORTAGE_REASONS)[number];

export interface ShortageRecord {
  readonly kind: 'shortage';
  readonly reason: ShortageReason;
  readonly demandExtentCount: number;
  readonly grantedExtentCount: number;
  readonly vgFreeExtentCount: number;
  readonly reserveExtentCount: number;
}

export type DecodeResult<T> = { readonly ok: true; readonly record: T } | { readonly ok: false; readonly reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

type Json = Record<string, unknown>;

class DecodeFailure extends Error {}
const fail = (reason: string): never => {
  throw new DecodeFailure(reason);
};

function field(object: Json, key: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(object, key)) fail(`"${key}" is missing`);
  return object[key];
}

function count(object: Json, key: string, minimum: number): number {
  const value = field(object, key);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum) fail(`"${key}" must be a whole number >= ${minimum}`);
  return value as number;
}

function text(object: Json, key: string): string {
  const value = field(object, key);
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) fail(`"${key}" must be a non-empty string of at most 256 characters`);
  return value as string;
}

function ranges(object: Json, key: string, allowEmpty: boolean): PvExtentRange[] {
  const value = field(object, key);
  if (!Array.isArray(value)) fail(`"${key}" must be a list`);
  const list = value as unknown[];
  if (!allowEmpty && list.length === 0) fail(`"${key}" is empty`);
  if (list.length > MAX_RANGES_PER_RECORD) fail(`"${key}" holds ${list.length} ranges, more than ${MAX_RANGES_PER_RECORD}`);
  return list.map((item, index) => {
    if (!Array.isArray(item) || item.length !== 3) fail(`${key}[${index}] must be [pvUuid, firstExtent, extentCount]`);
    const [pvUuid, firstExtent, extentCount] = item as unknown[];
    if (typeof pvUuid !== 'string' || pvUuid.length === 0) fail(`${key}[${index}] has no PV uuid`);
    if (typeof firstExtent !== 'number' || !Number.isSafeInteger(firstExtent) || firstExtent < 0) fail(`${key}[${index}] has a bad first extent`);
    if (typeof extentCount !== 'number' || !Number.isSafeInteger(extentCount) || extentCount < 1) fail(`${key}[${index}] has a bad extent count`);
    return { pvUuid: pvUuid as string, firstExtent: firstExtent as number, extentCount: extentCount as number };
  });
}

const rangesJson = (list: readonly PvExtentRange[]): [string, number, number][] => list.map((r) => [r.pvUuid, r.firstExtent, r.extentCount]);

function decodeObject(bytes: Uint8Array): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    fail('not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('not a JSON object');
  const object = parsed as Json;
  const version = field(object, 'v');
  if (version !== RECORD_FORMAT_VERSION) fail(`record format version ${JSON.stringify(version)}, this thinlv reads ${RECORD_FORMAT_VERSION}`);
  return object;
}

function guarded<T>(decode: () => T): DecodeResult<T> {
  try {
    return { ok: true, record: decode() };
  } catch (error) {
    if (error instanceof DecodeFailure) return { ok: false, reason: error.message };
    throw error;
  }
}

export function encodeJournalRecord(record: JournalRecord): Uint8Array {
  const json =
    record.kind === 'allocate'
      ? { v: RECORD_FORMAT_VERSION, kind: record.kind, lv: record.lv, lvUuid: record.lvUuid, ranges: rangesJson(record.ranges), extentCountAfter: record.extentCountAfter }
      : record.kind === 'return'
        ? { v: RECORD_FORMAT_VERSION, kind: record.kind, ranges: rangesJson(record.ranges) }
        : record.kind === 'activity'
          ? { v: RECORD_FORMAT_VERSION, kind: record.kind, activeLvCount: record.activeLvCount }
          : record.kind === 'demand'
            ? { v: RECORD_FORMAT_VERSION, kind: record.kind, extentCount: record.extentCount }
            : record.kind === 'deflate'
              ? { v: RECORD_FORMAT_VERSION, kind: record.kind, lv: record.lv, lvUuid: record.lvUuid, extentCount: record.extentCount }
              : { v: RECORD_FORMAT_VERSION, kind: record.kind, lv: record.lv, lvUuid: record.lvUuid };
  const bytes = encoder.encode(JSON.stringify(json));
  // Pair assertion: what we write must read back as what we meant.
  const back = decodeJournalRecord(bytes);
  if (!back.ok) throw new Error(`encodeJournalRecord produced an undecodable record: ${back.reason}`);
  return bytes;
}

export function decodeJournalRecord(bytes: Uint8Array): DecodeResult<JournalRecord> {
  return guarded(() => {
    const object = decodeObject(bytes);
    const kind = field(object, 'kind');
    if (kind === 'allocate') {
      return { kind, lv: text(object, 'lv'), lvUuid: text(object, 'lvUuid'), ranges: ranges(object, 'ranges', false), extentCountAfter: count(object, 'extentCountAfter', 1) };
    }
    if (kind === 'return') return { kind, ranges: ranges(object, 'ranges', false) };
    if (kind === 'activity') return { kind, activeLvCount: count(object, 'activeLvCount', 0) };
    if (kind === 'claim' || kind === 'release') return { kind, lv: text(object, 'lv'), lvUuid: text(object, 'lvUuid') };
    if (kind === 'demand') return { kind, extentCount: count(object, 'extentCount', 0) };
    if (kind === 'deflate') return { kind, lv: text(object, 'lv'), lvUuid: text(object, 'lvUuid'), extentCount: count(object, 'extentCount', 1) };
    return fail(`unknown journal record kind ${JSON.stringify(kind)}`);
  });
}

export function encodeGrantRecord(record: GrantRecord): Uint8Array {
  const json =
    record.kind === 'grant'
      ? { v: RECORD_FORMAT_VERSION, kind: record.kind, generation: record.generation, appliedSeq: record.appliedSeq, freeRanges: rangesJson(record.freeRanges) }
      : record.kind === 'returnRequest'
        ? { v: RECORD_FORMAT_VERSION, kind: record.kind, generation: record.generation, extentCount: record.extentCount }
        : record.kind === 'stop'
          ? { v: RECORD_FORMAT_VERSION, kind: record.kind, reason: record.reason, ownerId: record.ownerId }
          : { v: RECORD_FORMAT_VERSION, ...record };
  const bytes = encoder.encode(JSON.stringify(json));
  const back = decodeGrantRecord(bytes);
  if (!back.ok) throw new Error(`encodeGrantRecord produced an undecodable record: ${back.reason}`);
  return bytes;
}

export function decodeGrantRecord(bytes: Uint8Array): DecodeResult<GrantRecord> {
  return guarded(() => {
    const object = decodeObject(bytes);
    const kind = field(object, 'kind');
    if (kind === 'grant') {
      return { kind, generation: count(object, 'generation', 1), appliedSeq: count(object, 'appliedSeq', 0), freeRanges: ranges(object, 'freeRanges', true) };
    }
    if (kind === 'returnRequest') return { kind, generation: count(object, 'generation', 1), extentCount: count(object, 'extentCount', 1) };
    if (kind === 'stop') return { kind, reason: text(object, 'reason'), ownerId: text(object, 'ownerId') };
    if (kind === 'shortage') return decodeShortage(object);
    return fail(`unknown grant record kind ${JSON.stringify(kind)}`);
  });
}

function decodeShortage(object: Json): ShortageRecord {
  const reason = field(object, 'reason');
  if (!SHORTAGE_REASONS.includes(reason as ShortageReason)) fail(`"reason" must be one of ${SHORTAGE_REASONS.join(', ')}`);
  return {
    kind: 'shortage',
    reason: reason as ShortageReason,
    demandExtentCount: count(object, 'demandExtentCount', 1),
    grantedExtentCount: count(object, 'grantedExtentCount', 0),
    vgFreeExtentCount: count(object, 'vgFreeExtentCount', 0),
    reserveExtentCount: count(object, 'reserveExtentCount', 0),
  };
}
