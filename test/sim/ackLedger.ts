// I3 for every extend a host acknowledged: its extents are in metadata plus unreplayed
// records exactly once, at the logical position the host used, through any crash,
// until its LV is removed on purpose.
//
//   pending   acknowledged, record not yet replayed: checked after every step against
//             metadata plus the unreplayed records
//   replayed  the record is in metadata: kept per LV as "logical extent -> pv:pe" (one
//             entry per extent, not per extend, so a long run's checks stay as big as the
//             VG, not as the run), checked at every full check; two extends that claim
//             one logical extent of an LV fail at once
//
// An LV that is gone fails the check unless the simulator tried to remove it, and then
// only once every acknowledged record of it was replayed.

import { ackExtents, type Ack, checkAckExtent, InvariantViolation, type Layouts, type UnreplayedOnDisk } from './checks.js';

interface ReplayedLv {
  readonly lv: string;
  readonly extents: Map<number, { readonly want: string; readonly ack: Ack }>;
}

export class AckLedger {
  private pending: Ack[] = [];
  private readonly replayed = new Map<string, ReplayedLv>();

  add(ack: Ack): void {
    this.pending.push(ack);
  }

  /** Checks pending acknowledgements (and with `full`, replayed ones); throws InvariantViolation. */
  check(layouts: Layouts, unreplayed: ReadonlyMap<string, UnreplayedOnDisk>, removalAttempted: ReadonlySet<string>, full: boolean): void {
    this.checkPending(layouts, unreplayed, removalAttempted);
    if (full) this.checkReplayed(layouts, removalAttempted);
  }

  private checkPending(layouts: Layouts, unreplayed: ReadonlyMap<string, UnreplayedOnDisk>, removalAttempted: ReadonlySet<string>): void {
    const keep: Ack[] = [];
    for (const ack of this.pending) {
      const onDisk = unreplayed.get(ack.host);
      const replayed = onDisk !== undefined && onDisk.journalRingId === ack.journalRingId && ack.seq <= onDisk.appliedSeq;
      if (!layouts.has(ack.lvUuid)) {
        if (removalAttempted.has(ack.lvUuid) && replayed) continue;
        lost(ack, `the LV is gone${replayed ? '' : ' and the record was never replayed'}`);
      }
      if (onDisk === undefined || onDisk.journalRingId !== ack.journalRingId) {
        throw new InvariantViolation(`I3: acknowledged extend ${ack.host} seq ${ack.seq} of ${ack.lv}: its host's journal is gone before the record was replayed`);
      }
      const layout = layouts.of(ack.lvUuid)!;
      const extents = ackExtents(ack);
      for (const { logical, want } of extents) checkAckExtent(ack, layout, logical, want);
      if (replayed) this.retire(ack, extents);
      else keep.push(ack);
    }
    this.pending = keep;
  }

  private retire(ack: Ack, extents: readonly { logical: number; want: string }[]): void {
    let lv = this.replayed.get(ack.lvUuid);
    if (lv === undefined) {
      lv = { lv: ack.lv, extents: new Map() };
      this.replayed.set(ack.lvUuid, lv);
    }
    for (const { logical, want } of extents) {
      const earlier = lv.extents.get(logical);
      if (earlier !== undefined && earlier.want !== want) {
        throw new InvariantViolation(
          `I3: acknowledged extends ${earlier.ack.host} seq ${earlier.ack.seq} and ${ack.host} seq ${ack.seq} of ${ack.lv} both hold logical extent ${logical} (${earlier.want}, ${want})`,
        );
      }
      lv.extents.set(logical, { want, ack });
    }
  }

  private checkReplayed(layouts: Layouts, removalAttempted: ReadonlySet<string>): void {
    for (const [lvUuid, lv] of this.replayed) {
      const layout = layouts.of(lvUuid);
      if (layout === undefined) {
        if (removalAttempted.has(lvUuid)) {
          this.replayed.delete(lvUuid);
          continue;
        }
        lost(lv.extents.values().next().value!.ack, 'the LV is gone');
      }
      for (const [logical, { want, ack }] of lv.extents) checkAckExtent(ack, layout, logical, want);
    }
  }
}

function lost(ack: Ack, why: string): never {
  throw new InvariantViolation(`I3: acknowledged extend ${ack.host} seq ${ack.seq} of ${ack.lv} is lost: ${why}`);
}
