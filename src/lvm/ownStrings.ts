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

/** Copies strings, once per distinct value. */
export class StringTable {
  private readonly strings = new Map<string, string>();

  shared(text: string): string {
    let own = this.strings.get(text);
    if (own === undefined) this.strings.set(text, (own = ownCopy(text)));
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
  return { name: ownCopy(lv.name), uuid: ownCopy(lv.uuid), tags: lv.tags.map((tag) => table.shared(tag)), activationSkip: lv.activationSkip, segments: lv.segments.map(segmentOf) };
}
