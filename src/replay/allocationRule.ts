// The one rule for what a valid allocation is, shared by the host that writes an
// allocate record and the master that replays it. A host that acknowledged a record
// replay then refused would have told a guest its disk grew when it did not (I3),
// so the host checks exactly what replay checks, with the same code, before it
// writes anything; replay checks again, because a record is only as good as the
// host that wrote it.
//
//   the target must be a thin LV          (rings, pools and stock LVs never grow this way)
//   the host must own it                  (one extender per LV, I8)
//   the LV must not pass its virtual size (thinlv_virtual_bytes)
//   the host must append where replay will (extentCountAfter = size before + extents)

import type { ThinlvVg } from '../format/thinlvVg.js';

export interface AllocationProblem {
  /** A stable error code, as the host reports it to its client. */
  readonly code: 'NOT_THIN_LV' | 'LV_NOT_OWNED' | 'VIRTUAL_SIZE_EXCEEDED' | 'SIZE_MISMATCH';
  readonly reason: string;
}

export interface AllocationRequest {
  readonly host: string;
  readonly lv: string;
  /** The LV's size in extents before this allocation, as metadata plus replayed records say. */
  readonly extentCountBefore: number;
  readonly extentCount: number;
  /** What the record says the LV's size will be. */
  readonly extentCountAfter: number;
  /** Who owns the LV at this point (replay tracks claims and releases as it goes). */
  readonly owner: string | undefined;
  readonly extentSizeBytes: number;
}

/** Extents a thin LV of `virtualBytes` may hold: its virtual size rounded up to whole extents. */
export const virtualExtentCount = (virtualBytes: number, extentSizeBytes: number): number => Math.ceil(virtualBytes / extentSizeBytes);

/** Why `request` is not a valid allocation in `thinlv`, or undefined when it is. */
export function allocationProblem(thinlv: ThinlvVg, request: AllocationRequest): AllocationProblem | undefined {
  const thin = thinlv.thinLvs.get(request.lv);
  if (thin === undefined) {
    return { code: 'NOT_THIN_LV', reason: `${request.lv} is not a thin LV (no thinlv_virtual_bytes tag, or one of thinlv's own LVs)` };
  }
  if (request.owner !== request.host) {
    const holder = request.owner === undefined ? 'no host owns it' : `host ${request.owner} owns it`;
    return { code: 'LV_NOT_OWNED', reason: `host ${request.host} does not own ${request.lv} (${holder}); a host extends only LVs it holds` };
  }
  const limit = virtualExtentCount(thin.virtualBytes, request.extentSizeBytes);
  if (request.extentCountAfter > limit) {
    return {
      code: 'VIRTUAL_SIZE_EXCEEDED',
      reason: `${request.lv} would hold ${request.extentCountAfter} extents, past its virtual size of ${thin.virtualBytes} bytes (${limit} extents); raise it with "thinlv lvresize -V"`,
    };
  }
  if (request.extentCountBefore + request.extentCount !== request.extentCountAfter) {
    return {
      code: 'SIZE_MISMATCH',
      reason: `${request.lv} holds ${request.extentCountBefore} extents, so ${request.extentCount} more make ${request.extentCountBefore + request.extentCount}, not the ${request.extentCountAfter} the record says`,
    };
  }
  return undefined;
}
