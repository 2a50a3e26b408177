// Where an ordinary (fully allocated) LV created by the lvm-compatible lvcreate goes: where
// stock lvm's "normal" allocation would put it on a VG of linear LVs. Measured on LVM
// 2.03.16: a new LV takes the first free run (PV order, then lowest extent) that holds it
// whole, even when a longer run comes later; only when no run is long enough is it split,
// and then thinlv takes the longest runs first (chooseExtents), so it has few segments.
// Pure: no I/O.

import { chooseExtents } from '../extent/chooseExtents.js';
import type { ExtentSet } from '../extent/extentSet.js';
import type { PhysicalRange } from '../extent/types.js';

export type Placement = { readonly ok: true; readonly ranges: readonly PhysicalRange[] } | { readonly ok: false; readonly availableExtentCount: number };

/** `extentCount` extents of `free` for a new LV, contiguous where one free run holds them. */
export function placeNewLv(free: ExtentSet, extentCount: number): Placement {
  if (!Number.isSafeInteger(extentCount) || extentCount < 1) throw new RangeError(`a new LV needs a positive whole number of extents, got ${extentCount}`);
  const fitting = free.ranges().find((range) => range.extentCount >= extentCount);
  if (fitting !== undefined) return { ok: true, ranges: [{ pv: fitting.pv, firstExtent: fitting.firstExtent, extentCount }] };
  const chosen = chooseExtents(free, [], extentCount);
  return chosen.ok ? { ok: true, ranges: chosen.ranges } : { ok: false, availableExtentCount: chosen.availableExtentCount };
}
