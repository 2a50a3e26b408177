// What a master process keeps between passes (in memory; a restart starts afresh and
// loses nothing that matters, since hosts repeat their demands while they wait):
//
//   journal readers  (the daemon) one per host, so a pass reads only what is new
//   grants due       hosts whose current grant must be (re)sent
//   demands          the last demand each host journaled, until a grant covers it or
//                    the host says it stopped waiting (demand 0)
//   allocation rate  extents each host allocated over the last rate window (default
//                    RATE_WINDOW_MS; `thinlv master --rate-window-ms`), which
//                    sizes its grants to two master intervals of its consumption
//   pools            each host's pool and low-water after the last pass, so a poll
//                    between passes can tell that a host just went below low-water
//   last commit      the metadata the last commit read back: a pass within
//                    RECENT_COMMIT_MS starts from it instead of reading the VG again
//                    (the commit's own seqno check catches anyone who wrote since)
//
// Between passes the daemon polls (passWanted) each kept journal past what it has
// seen: one 4 KiB block per host when nothing is new. A demand, or allocations that
// take a pool below its low-water, start a pass at once.

import type { BlockRegion, RingReader } from '../../journal/index.js';
import type { ThinlvVg } from '../format/thinlvVg.js';
import { decodeJournalRecord, rangesOf } from '../records/records.js';
import type { VgMetadata } from '../metadata/vgModel.js';
import type { RingLocation } from '../rings/ringRegions.js';

/** How far back a host's allocation rate looks, by default. */
export const RATE_WINDOW_MS = 30_000;
/**
 * How long the metadata of this session's last commit may stand in for a read of the VG.
 * Short, because a pass that commits nothing never learns it was stale: a host added
 * meanwhile waits this much longer for its first grant.
 */
export const RECENT_COMMIT_MS = 1_000;

/** A host's journal reader kept open between passes, with what identifies its ring. */
interface KeptJournal {
  readonly key: string;
  readonly region: BlockRegion;
  readonly reader: RingReader;
  /** The last seq a pass or a poll has seen in this journal: a poll reads past it only. */
  lastSeenSeq: number;
  /** Extents allocated in records a poll saw since the last pass. */
  allocatedSincePass: number;
}

interface PoolLevel {
  readonly extentCount: number;
  readonly lowWater: number;
}

const journalKey = (location: RingLocation): string => `${location.ringId}@${location.device}:${location.offsetBytes}+${location.lengthBytes}`;

/**
 * State a master process keeps between passes. Opening a reader surveys the whole
 * ring (16 MiB per host), so a daemon passing every few seconds would otherwise read
 * the journals end to end each time. A kept reader is dropped when its pass fails,
 * when its host or ring changes, and at close(). Grants writers are never kept: the
 * next writer must find the tail on disk, which is what keeps two masters started by
 * mistake from writing over each other's grants.
 */
export class MasterSession {
  private readonly grantsToSend = new Set<string>();
  private firstPass = true;
  private readonly journals = new Map<string, KeptJournal>();
  private readonly demands = new Map<string, number>();
  private readonly allocations = new Map<string, { atMs: number; extents: number }[]>();
  private readonly pools = new Map<string, PoolLevel>();
  private lastCommit: { readonly vgName: string; readonly metadata: VgMetadata; readonly atMs: number } | undefined;
  /** The VG as the last successful pass left it, and when (for the master's published status). */
  lastPass: { readonly metadata: VgMetadata; readonly atMs: number } | undefined;

  /**
   * keepJournalsOpen: keep journal readers between passes (the daemon); call close()
   * when done. intervalMs: the daemon's interval between passes (sizes rate targets).
   */
  constructor(private readonly options: { readonly keepJournalsOpen?: boolean; readonly intervalMs?: number; readonly rateWindowMs?: number } = {}) {}

  get keepsJournals(): boolean {
    return this.options.keepJournalsOpen === true;
  }

  /** The kept reader of `host` if it is for the ring at `location`; a stale one is closed. */
  async keptJournal(host: string, location: RingLocation): Promise<RingReader | undefined> {
    const kept = this.journals.get(host);
    if (kept === undefined) return undefined;
    if (kept.key === journalKey(location)) return kept.reader;
    await this.forget(host);
    return undefined;
  }

  keepJournal(host: string, location: RingLocation, region: BlockRegion, reader: RingReader): void {
    this.journals.set(host, { key: journalKey(location), region, reader, lastSeenSeq: reader.consumedSeq, allocatedSincePass: 0 });
  }

  /** Notes how far a pass read the host's journal, so polls start after it. */
  noteSeen(host: string, lastSeq: number): void {
    const kept = this.journals.get(host);
    if (kept === undefined) return;
    kept.lastSeenSeq = Math.max(kept.lastSeenSeq, lastSeq);
    kept.allocatedSincePass = 0;
  }

  /**
   * Between passes: reads each kept journal past what was seen and says whether a pass
   * should start now: a host waits for extents (a demand record), or its allocations
   * since the last pass took its pool below low-water. Read-only: a failure here is
   * left to the next pass.
   */
  async passWanted(): Promise<boolean> {
    let wanted = false;
    for (const [host, kept] of this.journals) {
      try {
        const { records, lastSeq } = await kept.reader.read({ fromSeq: Math.max(kept.lastSeenSeq, kept.reader.consumedSeq) + 1 });
        kept.lastSeenSeq = Math.max(kept.lastSeenSeq, lastSeq);
        const pool = this.pools.get(host);
        const wasAbove = pool !== undefined && pool.extentCount - kept.allocatedSincePass >= pool.lowWater;
        for (const record of records) {
          const decoded = decodeJournalRecord(record.payload);
          if (!decoded.ok) continue;
          if (decoded.record.kind === 'demand' && decoded.record.extentCount > 0) wanted = true;
          kept.allocatedSincePass += rangesOf(decoded.record).reduce((sum, r) => sum + r.extentCount, 0);
        }
        // Only a crossing starts a pass: a pool the last pass left below low-water (the VG
        // is short) would otherwise start one at every poll.
        if (wasAbove && pool.extentCount - kept.allocatedSincePass < pool.lowWater) wanted = true;
      } catch {
        // The next pass reads the same journal and reports what is wrong with it.
      }
    }
    return wanted;
  }

  /** Takes in a pass's replay: the hosts' new demands (0: stopped waiting). Safe to repeat. */
  noteDemands(hosts: readonly { host: string; demandExtentCount: number | undefined }[]): void {
    for (const { host, demandExtentCount } of hosts) {
      if (demandExtentCount === 0) this.demands.delete(host);
      else if (demandExtentCount !== undefined) this.demands.set(host, demandExtentCount);
    }
  }

  /** Takes in a committed pass's allocations, for the hosts' rates. */
  noteAllocations(atMs: number, hosts: readonly { host: string; movedExtentCount: number }[]): void {
    for (const { host, movedExtentCount } of hosts) {
      const list = (this.allocations.get(host) ?? []).filter((a) => a.atMs > atMs - this.rateWindowMs());
      if (movedExtentCount > 0) list.push({ atMs, extents: movedExtentCount });
      this.allocations.set(host, list);
    }
  }

  /** Demands still waiting, for the pass's refill plan. */
  waitingDemands(): ReadonlyMap<string, number> {
    return this.demands;
  }

  /** A grant covered the host's demand: it is no longer planned for. */
  demandCovered(host: string): void {
    this.demands.delete(host);
  }

  /** Extents each host allocates in two master intervals, at its rate over the rate window. */
  rateTargets(atMs: number): Map<string, number> {
    const intervalMs = this.options.intervalMs ?? 0;
    const windowMs = this.rateWindowMs();
    const targets = new Map<string, number>();
    if (intervalMs <= 0 || windowMs <= 0) return targets;
    for (const [host, list] of this.allocations) {
      const extents = list.filter((a) => a.atMs > atMs - windowMs).reduce((sum, a) => sum + a.extents, 0);
      if (extents > 0) targets.set(host, Math.ceil((extents * 2 * intervalMs) / windowMs));
    }
    return targets;
  }

  private rateWindowMs(): number {
    return this.options.rateWindowMs ?? RATE_WINDOW_MS;
  }

  /** The metadata this session's last commit read back, if it is for `vgName` and recent. */
  recentCommit(vgName: string, nowMs: number): VgMetadata | undefined {
    const last = this.lastCommit;
    return last !== undefined && last.vgName === vgName && nowMs - last.atMs < RECENT_COMMIT_MS ? last.metadata : undefined;
  }

  noteCommit(vgName: string, metadata: VgMetadata, atMs: number): void {
    this.lastCommit = { vgName, metadata, atMs };
  }

  forgetCommit(): void {
    this.lastCommit = undefined;
  }

  /** What this session knows of `host` between passes, for the master's published status. */
  hostView(host: string): { lastSeenSeq: number | undefined; poolExtentCount: number | undefined; lowWaterExtents: number | undefined; demandExtentCount: number } {
    const pool = this.pools.get(host);
    return { lastSeenSeq: this.journals.get(host)?.lastSeenSeq, poolExtentCount: pool?.extentCount, lowWaterExtents: pool?.lowWater, demandExtentCount: this.demands.get(host) ?? 0 };
  }

  /** Records each host's pool and low-water as the pass left them. */
  notePools(levels: ReadonlyMap<string, PoolLevel>): void {
    this.pools.clear();
    for (const [host, level] of levels) this.pools.set(host, level);
  }

  /** Closes readers of hosts no longer in the VG, and forgets their demands and rates. */
  async keepOnly(hosts: ReadonlySet<string>): Promise<void> {
    for (const host of [...this.journals.keys()]) if (!hosts.has(host)) await this.forget(host);
    for (const map of [this.demands, this.allocations, this.pools]) for (const host of [...map.keys()]) if (!hosts.has(host)) map.delete(host);
  }

  async forget(host: string): Promise<void> {
    const kept = this.journals.get(host);
    if (kept === undefined) return;
    this.journals.delete(host);
    await kept.region.close().catch(() => undefined);
  }

  /** Closes every kept reader. */
  async close(): Promise<void> {
    for (const host of [...this.journals.keys()]) await this.forget(host);
  }

  /** Hosts whose current grant must be written to their grants ring this pass. */
  hostsNeedingGrant(thinlv: ThinlvVg): Set<string> {
    if (this.firstPass) {
      for (const host of thinlv.hosts.values()) if (host.grantGeneration > 0) this.grantsToSend.add(host.host);
      this.firstPass = false;
    }
    return this.grantsToSend;
  }
}
