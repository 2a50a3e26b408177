// Journal record payloads as src/records/RECORDS.md specifies them: UTF-8 JSON with
// "v": 1 and a "kind"; ranges are [pvUuid, firstExtent, extentCount].

export interface Range {
  readonly pvUuid: string;
  readonly firstExtent: number;
  readonly extentCount: number;
}

export type JournalPayload =
  | { readonly kind: 'allocate'; readonly lv: string; readonly lvUuid: string; readonly ranges: readonly Range[]; readonly extentCountAfter: number }
  | { readonly kind: 'return'; readonly ranges: readonly Range[] }
  | { readonly kind: 'activity' | 'claim' | 'release' | 'demand' | 'deflate' };

const isCount = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;

function ranges(value: unknown, allowEmpty: boolean): Range[] | string {
  if (!Array.isArray(value) || (!allowEmpty && value.length === 0) || value.length > 512) return 'bad range list';
  const result: Range[] = [];
  for (const item of value as unknown[]) {
    if (!Array.isArray(item) || item.length !== 3) return 'a range is not [pvUuid, firstExtent, extentCount]';
    const [pvUuid, firstExtent, extentCount] = item as unknown[];
    if (typeof pvUuid !== 'string' || pvUuid.length === 0 || !isCount(firstExtent, 0) || !isCount(extentCount, 1)) return 'bad range';
    result.push({ pvUuid, firstExtent, extentCount });
  }
  return result;
}

/** The payload, or why it does not decode. */
export function decodeJournalPayload(bytes: Uint8Array): JournalPayload | string {
  let object: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not a JSON object';
    object = parsed as Record<string, unknown>;
  } catch {
    return 'not UTF-8 JSON';
  }
  if (object['v'] !== 1) return `payload version ${JSON.stringify(object['v'])}`;
  switch (object['kind']) {
    case 'allocate': {
      const list = ranges(object['ranges'], false);
      if (typeof list === 'string') return list;
      if (!isText(object['lv']) || !isText(object['lvUuid']) || !isCount(object['extentCountAfter'], 1)) return 'bad allocate fields';
      return { kind: 'allocate', lv: object['lv'], lvUuid: object['lvUuid'], ranges: list, extentCountAfter: object['extentCountAfter'] };
    }
    case 'return': {
      const list = ranges(object['ranges'], false);
      return typeof list === 'string' ? list : { kind: 'return', ranges: list };
    }
    case 'activity':
      return isCount(object['activeLvCount'], 0) ? { kind: 'activity' } : 'bad activity';
    case 'claim':
    case 'release':
      return isText(object['lv']) && isText(object['lvUuid']) ? { kind: object['kind'] } : `bad ${object['kind']}`;
    case 'demand':
      return isCount(object['extentCount'], 0) ? { kind: 'demand' } : 'bad demand';
    case 'deflate':
      // Moves nothing until a pass applies it (and only if nobody holds the LV then).
      return isText(object['lv']) && isText(object['lvUuid']) && isCount(object['extentCount'], 1) ? { kind: 'deflate' } : 'bad deflate';
    default:
      return `unknown kind ${JSON.stringify(object['kind'])}`;
  }
}

/** Encodes an allocate record (for tests that plant one). */
export function encodeAllocate(lv: string, lvUuid: string, list: readonly Range[], extentCountAfter: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: 1, kind: 'allocate', lv, lvUuid, ranges: list.map((r) => [r.pvUuid, r.firstExtent, r.extentCount]), extentCountAfter }));
}

/** A grant record's generation, or undefined for another kind of grants-ring record (RECORDS.md). */
export function grantGenerationOf(bytes: Uint8Array): number | undefined | string {
  let object: Record<string, unknown>;
  try {
    object = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch {
    return 'not UTF-8 JSON';
  }
  if (typeof object !== 'object' || object === null || object['v'] !== 1) return 'not a version-1 payload';
  if (object['kind'] !== 'grant') return undefined;
  return isCount(object['generation'], 1) && ranges(object['freeRanges'], true) instanceof Array ? object['generation'] : 'bad grant';
}
