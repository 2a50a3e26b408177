// The VG layout the host daemon keeps between metadata reads: a copy of the report it
// read, holding only what the allocator uses, in memory of its own.
//
// Why a copy: V8 cuts a substring of 13 characters or more as a slice that points into
// the string it was cut from, so a report parsed from a metadata text (diskMetadata.ts)
// keeps that whole text alive through any LV uuid or tag it holds: megabytes at 10,000
// LVs, for as long as the daemon holds the report. The copy's strings are its own, and
// the ones that repeat on every LV (tags, PV paths, segment types) are one string each.
// What the allocator does not use (the report's free-range list and space figures) is
// left out.

import { isOwnReport } from '../lvm/diskMetadata.js';
import { ownCopy, ownLvLayout, StringTable } from '../lvm/ownStrings.js';
import type { PvLayout, VgLayout } from '../metadata/vgModel.js';

function pvOf(pv: PvLayout, table: StringTable): PvLayout {
  return { device: table.shared(pv.device), uuid: ownCopy(pv.uuid), peStartSectors: pv.peStartSectors, peCount: pv.peCount };
}

/**
 * The layout of `vg` (a report as read) in memory of its own, for keeping. A report read
 * from the PVs here (diskMetadata.ts) already is: its LVs are kept as they are, rather
 * than copied at the moment the daemon's memory peaks (a second 6 MB at 10,000 LVs).
 */
export function heldLayout(vg: VgLayout): VgLayout {
  if (isOwnReport(vg)) {
    const pvs = vg.pvs.map((pv) => ({ device: pv.device, uuid: pv.uuid, peStartSectors: pv.peStartSectors, peCount: pv.peCount }));
    return { name: vg.name, uuid: vg.uuid, seqno: vg.seqno, extentSizeSectors: vg.extentSizeSectors, tags: vg.tags, pvs, lvs: vg.lvs };
  }
  const table = new StringTable();
  return {
    name: ownCopy(vg.name),
    uuid: ownCopy(vg.uuid),
    seqno: vg.seqno,
    extentSizeSectors: vg.extentSizeSectors,
    tags: vg.tags.map((tag) => table.shared(tag)),
    pvs: vg.pvs.map((pv) => pvOf(pv, table)),
    lvs: vg.lvs.map((lv) => ownLvLayout(lv, table)),
  };
}
