// LVs a new read shares with a layout its caller holds already.
//
// Why: a host daemon re-reads metadata after every master commit while its allocator
// still holds the layout of the previous read, and a commit changes a few LVs of
// thousands. Built afresh, every LV exists twice until the re-read ends (10,000 LVs: about
// 5 MB more, at the moment the daemon's memory peaks, and V8 sizes the next collection's
// threshold from what was alive then: issue 14). An LV found equal, field for field, to
// the held one of its name is that object instead; the one just read dies young.
//
// Sharing is safe because layouts are never changed in place (applyChanges and the
// allocator make new ones), so an LV object means the same thing in both.

import type { LvLayout, Segment } from '../metadata/vgModel.js';
import { compareUtf8 } from './utf8Order.js';

const sameStrings = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((item, i) => item === b[i]);

function sameSegment(a: Segment, b: Segment): boolean {
  return (
    a.logicalStart === b.logicalStart &&
    a.extentCount === b.extentCount &&
    a.type === b.type &&
    a.stripes.length === b.stripes.length &&
    a.stripes.every((stripe, i) => stripe.pv === b.stripes[i]!.pv && stripe.firstExtent === b.stripes[i]!.firstExtent)
  );
}

/** Whether two LVs carry the same layout: what an LvLayout holds, compared field for field. */
export function sameLv(a: LvLayout, b: LvLayout): boolean {
  return (
    a.name === b.name &&
    a.uuid === b.uuid &&
    a.activationSkip === b.activationSkip &&
    sameStrings(a.tags, b.tags) &&
    a.segments.length === b.segments.length &&
    a.segments.every((segment, i) => sameSegment(segment, b.segments[i]!))
  );
}

/**
 * The LV of `held` named `name`, found by halving: reports list LVs in lvm's order (strcmp
 * of the names, compareUtf8), so no index of 10,000 names is built at the peak. A list in
 * another order only finds fewer LVs: a name is always checked before it is taken.
 */
function lvNamed(held: readonly LvLayout[], name: string): LvLayout | undefined {
  let low = 0;
  let high = held.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const order = compareUtf8(held[middle]!.name, name);
    if (order === 0) return held[middle];
    if (order < 0) low = middle + 1;
    else high = middle;
  }
  return undefined;
}

/** What keeps `lv`: the LV of `held` equal to it (sameLv) when there is one, else `lv` itself. */
export function lvsSharedWith(held: readonly LvLayout[] | undefined): (lv: LvLayout) => LvLayout {
  if (held === undefined || held.length === 0) return (lv) => lv;
  return (lv) => {
    const before = lvNamed(held, lv.name);
    return before !== undefined && sameLv(before, lv) ? before : lv;
  };
}
