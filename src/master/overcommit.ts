// The overcommit guard rail of `thinlv lvcreate` and `thinlv lvresize -V`, as LVM has for
// its own thin pools ("Sum of all thin volume sizes exceeds the size of thin pool"):
//
//   total virtual size of the VG's thin LVs, after the change, against the VG's size
//     above 1x                                   -> a warning (the change goes ahead)
//     above the VG's limit (tag                  -> OVERCOMMIT_LIMIT, nothing written,
//       thinlv_overcommit_limit_percent=N;          unless --force
//       none when absent)
// A change that lowers the total is never refused.

import { ThinlvError } from '../errors.js';
import { TAG, numericTag } from '../format/thinlvVg.js';
import { extentSizeBytes, type VgMetadata } from '../metadata/vgModel.js';

export interface OvercommitOutcome {
  readonly virtualBytesAfter: number;
  readonly vgBytes: number;
  /** Virtual / physical after the change. */
  readonly ratio: number;
  readonly warning: string | undefined;
}

const gib = (bytes: number): string => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;

/**
 * Checks a change of `lvName`'s virtual size to `virtualBytes` (a new LV when it has
 * none). Throws OVERCOMMIT_LIMIT past the VG's limit unless `force`.
 */
export function checkOvercommit(vg: VgMetadata, thinVirtualBytes: ReadonlyMap<string, number>, lvName: string, virtualBytes: number, force: boolean): OvercommitOutcome {
  const before = [...thinVirtualBytes.values()].reduce((sum, bytes) => sum + bytes, 0);
  const after = before - (thinVirtualBytes.get(lvName) ?? 0) + virtualBytes;
  const vgBytes = vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0) * extentSizeBytes(vg);
  const ratio = after / vgBytes;
  const limitPercent = numericTag(vg.tags, TAG.overcommitLimitPercent, `VG ${vg.name}`);
  const sizes = `thin volume sizes (${gib(after)}) against the size of VG ${vg.name} (${gib(vgBytes)}): ${ratio.toFixed(2)}x`;
  if (limitPercent !== undefined && ratio * 100 > limitPercent && after > before && !force) {
    throw new ThinlvError('OVERCOMMIT_LIMIT', `${sizes}, past the VG's limit of ${(limitPercent / 100).toFixed(2)}x (tag ${TAG.overcommitLimitPercent}${limitPercent}); nothing was changed: free space, raise the limit, or pass --force`, {
      vg: vg.name,
      virtualBytes: after,
      vgBytes,
      limitPercent,
    });
  }
  const warning = ratio > 1 && after > before ? `WARNING: Sum of all ${sizes} overcommitted.` : undefined;
  return { virtualBytesAfter: after, vgBytes, ratio, warning };
}
