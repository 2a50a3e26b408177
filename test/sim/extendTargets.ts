// Which active LVs the workload may ask a host to grow: a storage manager stops growing an
// LV at its virtual size (each refused extend costs the host a metadata read), and a VM's
// disk driver waits for its extends (at most a few queued per LV and host).
//
// The virtual size is the one in metadata; a host that read it before an lvresize -V may
// refuse for a while (it re-reads at most once a VIRTUAL_SIZE_RECHECK_MS): its client
// then waits that long before asking again, instead of every wave of a burst asking.
//
// Taken once per wave of a burst: a host's view of its LVs changes only as extends return,
// which they do between waves (the simulator drains microtasks), never inside one. Asking
// every host for the layout of every active LV at each extend cost a sixth of a run.

import type { SimHost } from './simHost.js';

/** Most extents an ordinary extend asks for (larger ones are the rare "big" extends). */
export const SMALL_EXTEND_MAX_EXTENTS = 2;

interface ActiveLv {
  readonly lv: string;
  /** Extents the host holds for the LV: metadata plus its unreplayed records. */
  readonly extentCount: number;
  readonly virtualExtents: number;
}

export class ExtendTargets {
  private readonly byHost: Map<SimHost, ActiveLv[]>;

  constructor(
    hosts: readonly SimHost[],
    virtualExtentsOf: (lv: string) => number,
    private readonly maxQueuedPerLv: number,
    /** The host refused to grow the LV past its virtual size a moment ago: its client waits. */
    private readonly paused: (host: SimHost, lv: string) => boolean,
  ) {
    this.byHost = new Map(hosts.map((host) => [host, activeLvsOf(host, virtualExtentsOf)]));
  }

  /** Some host has an active LV with room for one more extend (queued ones not counted). */
  anyRoom(): boolean {
    return [...this.byHost.values()].some((lvs) => lvs.some((a) => a.extentCount + SMALL_EXTEND_MAX_EXTENTS <= a.virtualExtents));
  }

  /** `host`'s active LVs that may take one more extend now: room in the queue, and below the virtual size for it and the queued ones. */
  roomy(host: SimHost): string[] {
    return (this.byHost.get(host) ?? [])
      .filter((a) => {
        const queued = host.pendingByLv.get(a.lv) ?? 0;
        return queued < this.maxQueuedPerLv && a.extentCount + SMALL_EXTEND_MAX_EXTENTS * (queued + 1) <= a.virtualExtents && !this.paused(host, a.lv);
      })
      .map((a) => a.lv);
  }
}

function activeLvsOf(host: SimHost, virtualExtentsOf: (lv: string) => number): ActiveLv[] {
  const out: ActiveLv[] = [];
  for (const lv of host.allocator.status().activeLvs) {
    try {
      // The allocator's cached layout (its next extend of the LV uses the same): copying each
      // LV's segments here, every wave, grew with the segment count and cost a tenth of a run.
      out.push({ lv, extentCount: host.allocator.extentCountOf(lv), virtualExtents: virtualExtentsOf(lv) });
    } catch {
      // An LV the host cannot lay out now is not one to extend.
    }
  }
  return out;
}
