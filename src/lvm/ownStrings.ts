// Strings that share no memory with the text they were cut from.
//
// V8 cuts a substring of 13 characters or more as a slice that points into the string it
// was cut from, so a model read from a metadata text (megabytes at 10,000 LVs) keeps the
// whole text alive through any LV uuid or tag it holds, for as long as it is held. A copy
// made here is a string of its own; the ones that repeat on every LV (tags, PV devices,
// segment types) are one string each through a StringTable.

import type { LvLayout, Segment } from '../metadata/vgModel.js';

/** V8 copies substrings shorter than this instead of slicing them (SlicedString::kMinLength). */
const SLICE_MIN_CHARS = 13;

/** A string equal to `text` that shares no memory with the string it was cut from. */
export function ownCopy(text: string): string {
  if (text.length < SLICE_MIN_CHARS) return text;
  const copy = Buffer.from(text, 'utf8').toString('utf8');
  // UTF-8 cannot carry a lone surrogate: such a string is copied through JSON, which can.
  return copy === text ? copy : (JSON.parse(JSON.stringify(text)) as string);
}

/**
 * Distinct lists one table shares. Past this many a list is copied for each caller, so a
 * table stays small on a VG whose LVs all carry different tags.
 */
export const MAX_SHARED_LISTS = 4096;

/** Copies strings, once per distinct value; and lists of them (sharedList). */
export class StringTable {
  private readonly strings = new Map<string, string>();
  private readonly lists = new Map<string, readonly string[]>();

  shared(text: string): string {
    let own = this.strings.get(text);
    if (own === undefined) this.strings.set(text, (own = ownCopy(text)));
    return own;
  }

  /**
   * `items` as a frozen list of shared strings, one list per distinct value: on a pool every
   * LV of one host and one size carries the same tags, and 10,000 copies of a two-tag list
   * are 0.6 MB of a host daemon's layout (issue 14). Frozen, since every holder sees it.
   */
  sharedList(items: readonly string[]): readonly string[] {
    const key = JSON.stringify(items);
    let own = this.lists.get(key);
    if (own === undefined) {
      own = Object.freeze(items.map((item) => this.shared(item)));
      if (this.lists.size < MAX_SHARED_LISTS) this.lists.set(key, own);
    }
    return own;
  }
}

/**
 * The layout of `lv` (an LV of a report or a parsed model: what it carries beyond the layout
 * is left out) in strings of its own; those that repeat on every LV through `table`.
 */
export function ownLvLayout(lv: LvLayout, table: StringTable): LvLayout {
  const segmentOf = (segment: Segment): Segment => ({
    logicalStart: segment.logicalStart,
    extentCount: segment.extentCount,
    type: table.shared(segment.type),
    stripes: segment.stripes.map((stripe) => ({ pv: table.shared(stripe.pv), firstExtent: stripe.firstExtent })),
  });
  return { name: ownCopy(lv.name), uuid: ownCopy(lv.uuid), tags: table.sharedList(lv.tags), activationSkip: lv.activationSkip, segments: lv.segments.map(segmentOf) };
}
