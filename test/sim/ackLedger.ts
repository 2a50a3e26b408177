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
//
// Passes also settle the ledger as they end (settle()): a host removal replays its
// journal and removes it in one step, so what the checker reads after that step no
// longer shows which records were replayed. A deflate cuts an LV on purpose (the
// simulator sees the commit, and the deflate record or master deflate behind it): the
// extents it gives back leave the ledger, those of acknowledged extends whose records
// that commit did not apply stay, so a deflate that cut another host's extends fails.

import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { ackExtents, type Ack, checkAckExtent, checkAckRanges, InvariantViolation, Layouts, physicalAt, thinlvOf, type UnreplayedOnDisk } from './checks.js';

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

  /**
   * After a commit `vg`: acknowledged extends whose records it holds as applied, and that
   * sit where the host put them in metadata alone (but for the extents a deflate of that
   * commit cut, `cut`: LV uuid -> extents kept), are retired. Others stay pending: the
   * check after the step says what is wrong with them.
   */
  settle(vg: VgMetadata, cut: ReadonlyMap<string, number>): void {
    const hosts = thinlvOf(vg).hosts;
    const layouts = new Layouts(vg, new Map());
    const keep: Ack[] = [];
    for (const ack of this.pending) {
      const info = hosts.get(ack.host);
      if (info === undefined || info.journalLv.uuid !== ack.journalRingId || ack.seq > info.appliedSeq || !layouts.has(ack.lvUuid)) {
        keep.push(ack);
        continue;
      }
      const kept = cut.get(ack.lvUuid) ?? Number.POSITIVE_INFINITY;
      const extents = ackExtents(ack).filter((e) => e.logical < kept);
      const layout = layouts.of(ack.lvUuid)!;
      if (extents.some(({ logical, want }) => physicalAt(layout, logical) !== want)) {
        keep.push(ack);
        continue;
      }
      this.retire(ack, extents);
    }
    this.pending = keep;
    for (const [lvUuid, kept] of cut) this.truncate(lvUuid, kept);
  }

  /** An LV cut to `keptExtentCount` on purpose: replayed extents past it are not owed any more. */
  truncate(lvUuid: string, keptExtentCount: number): void {
    const lv = this.replayed.get(lvUuid);
    if (lv === undefined) return;
    for (const logical of [...lv.extents.keys()]) if (logical >= keptExtentCount) lv.extents.delete(logical);
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
      checkAckRanges(ack, layout);
      if (replayed) this.retire(ack, ackExtents(ack));
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
