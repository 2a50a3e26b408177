// One pass of the master: replay every host's journal into LVM metadata and
// refill pools, as ONE metadata commit.
//
//   1. read the VG (vgcfgbackup) and thinlv's layout from it
//   2. read each host's journal from its applied seq + 1           (no writes yet)
//   3. plan replay, then plan refills on the VG as replay leaves it  (pure)
//   4. commit all of it at once, with the new applied seqs and grant generations as tags
//   5. advance each journal's consumer pointer                     -> hosts may reuse ring space
//   6. write a grant record (pool snapshot) to each refilled host's grants ring
//   7. ask hosts holding far more than their share to return some
//
// A crash between any two steps is harmless:
//   - before 4: nothing was written; the next pass does the same work.
//   - between 4 and 5: the records are applied and the cursor says so; the next
//     pass reads from the cursor, so it re-reads nothing (the ring still holds the
//     records, and the reader skips those at or below the cursor) and step 5 catches up.
//   - between 4 and 6: the grant is in metadata with its generation; every master
//     process re-sends each host's current grant on its first pass, and a host
//     ignores a generation it already has.
// A second master elsewhere cannot double-apply: its commit from a stale seqno
// is refused, and it re-reads (and then sees the advanced cursors) before retrying.

import { openRingReader, openRingWriter, type BlockRegion, type RingReader } from '../../journal/index.js';
import { CommitError, ErrorCode } from '../errors.js';
import type { FaultPoints } from '../faults.js';
import { hostLvNames, readThinlvVg, type ThinlvVg } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata, systemIdentity } from '../lvm/commitBatch.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import type { Logger } from '../log.js';
import { applyChanges, type MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import type { VgMetadata } from '../metadata/vgModel.js';
import { planRefill } from '../pool/planRefill.js';
import { decodeJournalRecord, encodeGrantRecord } from '../records/records.js';
import { planReplay, poolOf, toUuidRanges, type JournalRecordBytes, type ReplayPlan } from '../replay/planReplay.js';
import { ringLocation, type RegionOpener, type RingLocation } from '../rings/ringRegions.js';

/** Records replayed per host per pass; the rest wait for the next pass (which starts at once). */
export const MAX_RECORDS_PER_HOST_PER_PASS = 4096;
/** Commits refused for a stale seqno are retried (re-reading the VG) this many times. */
export const MAX_STALE_RETRIES = 5;

/** The history sink (SQLite on the master); optional, since history never decides anything. */
export interface PassHistory {
  recordReplay(row: {
    atMs: number;
    host: string;
    recordCount: number;
    extentCount: number;
    rejectedCount: number;
    appliedSeq: number;
    vgSeqno: number;
    vgFreeExtentsAfter: number;
  }): void;
  recordGrant(row: { atMs: number; host: string; generation: number; extentCount: number; vgSeqno: number; vgFreeExtentsAfter: number }): void;
}

export interface MasterDeps {
  readonly lvm: LvmRunner;
  readonly regions: RegionOpener;
  readonly log: Logger;
  readonly faults: FaultPoints;
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number) => Promise<void>;
  readonly history?: PassHistory | undefined;
}

export interface PassResult {
  readonly seqnoBefore: number;
  readonly seqnoAfter: number;
  readonly committed: boolean;
  readonly replayedRecordCount: number;
  readonly rejectedRecordCount: number;
  readonly grantedHosts: readonly string[];
  /** True when some journal had more records than one pass takes: run another pass now. */
  readonly moreWaiting: boolean;
}

/** A host's journal reader kept open between passes, with what identifies its ring. */
interface KeptJournal {
  readonly key: string;
  readonly region: BlockRegion;
  readonly reader: RingReader;
  /** The last seq a pass or a poll has seen in this journal: a poll reads past it only. */
  lastSeenSeq: number;
}

const journalKey = (location: RingLocation): string => `${location.ringId}@${location.device}:${location.offsetBytes}+${location.lengthBytes}`;

/**
 * State a master process keeps between passes: which hosts still need their current
 * grant (re)sent, and, for the master daemon, each host's journal reader. Opening a
 * reader surveys the whole ring (16 MiB per host), so a daemon passing every few
 * seconds would otherwise read the journals end to end each time. A kept reader is
 * dropped when its pass fails, when its host or ring changes, and at close().
 * Grants writers are never kept: the next writer must find the tail on disk, which is
 * what keeps two masters started by mistake from writing over each other's grants.
 */
export class MasterSession {
  private readonly grantsToSend = new Set<string>();
  private firstPass = true;
  private readonly journals = new Map<string, KeptJournal>();

  /** keepJournalsOpen: keep journal readers between passes (the daemon); call close() when done. */
  constructor(private readonly options: { readonly keepJournalsOpen?: boolean } = {}) {}

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
    this.journals.set(host, { key: journalKey(location), region, reader, lastSeenSeq: reader.consumedSeq });
  }

  /** Notes how far a pass read the host's journal, so polls start after it. */
  noteSeen(host: string, lastSeq: number): void {
    const kept = this.journals.get(host);
    if (kept !== undefined) kept.lastSeenSeq = Math.max(kept.lastSeenSeq, lastSeq);
  }

  /**
   * Between passes: reads each kept journal past what was seen (one block per host when
   * nothing is new, since a reader resumes after the last record it saw) and says
   * whether a host now waits for extents (a demand record), so the daemon passes at once
   * instead of at its next interval. Read-only: a failure here is left to the next pass.
   */
  async demandWaiting(): Promise<boolean> {
    let waiting = false;
    for (const kept of this.journals.values()) {
      try {
        const { records, lastSeq } = await kept.reader.read({ fromSeq: Math.max(kept.lastSeenSeq, kept.reader.consumedSeq) + 1 });
        kept.lastSeenSeq = Math.max(kept.lastSeenSeq, lastSeq);
        if (records.some((r) => isDemand(r.payload))) waiting = true;
      } catch {
        // The next pass reads the same journal and reports what is wrong with it.
      }
    }
    return waiting;
  }

  /** Closes readers of hosts no longer in the VG. */
  async keepOnly(hosts: ReadonlySet<string>): Promise<void> {
    for (const host of [...this.journals.keys()]) if (!hosts.has(host)) await this.forget(host);
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

interface OpenJournals {
  readonly readers: Map<string, RingReader>;
  readonly regions: BlockRegion[];
  readonly records: Map<string, JournalRecordBytes[]>;
  readonly moreWaiting: boolean;
}

/**
 * Reads each host's records after its applied seq. `regions` are the ones this pass
 * opened and must close; readers the session keeps are not among them.
 */
async function readJournals(deps: MasterDeps, session: MasterSession, vg: VgMetadata, thinlv: ThinlvVg): Promise<OpenJournals> {
  const readers = new Map<string, RingReader>();
  const regions: BlockRegion[] = [];
  const records = new Map<string, JournalRecordBytes[]>();
  let moreWaiting = false;
  await session.keepOnly(new Set(thinlv.hosts.keys()));
  for (const host of thinlv.hosts.values()) {
    const name = hostLvNames(host.host).journal;
    const location = ringLocation(vg, name);
    try {
      let reader = await session.keptJournal(host.host, location);
      if (reader === undefined) {
        const region = await deps.regions.open(location);
        try {
          reader = await openRingReader(region, { ringId: location.ringId });
        } catch (error) {
          await region.close();
          throw error;
        }
        if (session.keepsJournals) session.keepJournal(host.host, location, region, reader);
        else regions.push(region);
      }
      const result = await reader.read({ fromSeq: host.appliedSeq + 1, maxRecords: MAX_RECORDS_PER_HOST_PER_PASS });
      readers.set(host.host, reader);
      session.noteSeen(host.host, result.lastSeq);
      if (result.records.length > 0) records.set(host.host, result.records);
      if (result.stopReason === 'max-records') moreWaiting = true;
    } catch (error) {
      await session.forget(host.host);
      await closeRegions(regions);
      throw error;
    }
  }
  return { readers, regions, records, moreWaiting };
}

async function closeRegions(regions: readonly BlockRegion[]): Promise<void> {
  for (const region of regions) await region.close();
}

/** Appends one record to the host's grants ring, then closes the writer and its region. */
export async function appendToGrantsRing(deps: MasterDeps, vg: VgMetadata, host: string, payload: Uint8Array): Promise<void> {
  const location = ringLocation(vg, hostLvNames(host).grants);
  const region = await deps.regions.open(location);
  try {
    const writer = await openRingWriter(region, { ringId: location.ringId });
    try {
      await writer.append(payload);
    } finally {
      await writer.close();
    }
  } finally {
    await region.close();
  }
}

/** Writes the host's grant: its whole pool at the current generation, and the seq it reflects. */
async function writeGrant(deps: MasterDeps, vg: VgMetadata, thinlv: ThinlvVg, host: string): Promise<void> {
  const info = thinlv.hosts.get(host);
  if (info === undefined || info.grantGeneration === 0) return;
  const freeRanges = toUuidRanges(vg, poolOf(vg, host).ranges());
  await appendToGrantsRing(deps, vg, host, encodeGrantRecord({ kind: 'grant', generation: info.grantGeneration, appliedSeq: info.appliedSeq, freeRanges }));
}

async function writeReturnRequest(deps: MasterDeps, vg: VgMetadata, thinlv: ThinlvVg, host: string, extentCount: number): Promise<void> {
  const info = thinlv.hosts.get(host);
  if (info === undefined) return;
  await appendToGrantsRing(deps, vg, host, encodeGrantRecord({ kind: 'returnRequest', generation: Math.max(1, info.grantGeneration), extentCount }));
}

function isDemand(payload: Uint8Array): boolean {
  const decoded = decodeJournalRecord(payload);
  return decoded.ok && decoded.record.kind === 'demand';
}

/** Runs one pass. Operating errors (lvm, rings) propagate; the daemon logs them and tries again next interval. */
export async function runPass(deps: MasterDeps, session: MasterSession, vgName: string): Promise<PassResult> {
  for (let attempt = 0; ; attempt++) {
    const vg = await readVgMetadata(deps.lvm, vgName);
    const thinlv = readThinlvVg(vg);
    await deps.faults.hit('master.afterRead');
    const { readers, regions, records, moreWaiting } = await readJournals(deps, session, vg, thinlv);
    let passFailed = true;
    try {
      const replay: ReplayPlan = planReplay(vg, thinlv, records);
      const afterReplay = applyChanges(vg, replay.changes, systemIdentity);
      const demands = new Map(replay.hosts.filter((h) => h.demandExtentCount > 0).map((h) => [h.host, h.demandExtentCount]));
      const refill = planRefill(afterReplay, thinlv, demands);
      const changes: MetadataChange[] = [...replay.changes, ...refill.changes];
      for (const denied of replay.deniedClaims) deps.log.info({ ...denied }, 'claim denied: the LV is held by another host or gone');
      for (const host of replay.hosts) {
        for (const rejected of host.rejected) {
          deps.log.warn({ host: rejected.host, seq: rejected.seq, code: rejected.code, reason: rejected.reason }, 'journal record rejected, not applied');
        }
      }

      let committed = vg;
      if (changes.length > 0) {
        try {
          committed = (await commitBatch(deps.lvm, vg, changes, { faults: deps.faults })).metadata;
        } catch (error) {
          if (error instanceof CommitError && error.code === ErrorCode.staleSeqno && attempt < MAX_STALE_RETRIES) {
            deps.log.warn({ vg: vgName, attempt }, 'VG changed underneath the pass; re-reading and retrying');
            passFailed = false; // nothing was consumed: the readers are still right
            continue;
          }
          throw error;
        }
        deps.log.info({ vg: vgName, seqno: committed.seqno, changeCount: changes.length }, 'pass committed');
      }
      await deps.faults.hit('master.afterCommit');

      // Step 5: safe to repeat; consuming through a seq already consumed is a no-op.
      for (const host of replay.hosts) await readers.get(host.host)?.consume(host.appliedSeqAfter);
      await deps.faults.hit('master.afterConsume');

      const committedThinlv = readThinlvVg(committed);
      const grantsDue = session.hostsNeedingGrant(committedThinlv);
      for (const grant of refill.grants) grantsDue.add(grant.host);
      for (const host of [...grantsDue]) {
        try {
          await writeGrant(deps, committed, committedThinlv, host);
          grantsDue.delete(host);
          await deps.faults.hit('master.afterGrant');
        } catch (error) {
          deps.log.error({ host, err: error }, 'could not write grant record; will retry next pass');
        }
      }
      for (const request of refill.returnRequests) {
        await writeReturnRequest(deps, committed, committedThinlv, request.host, request.extentCount).catch((error: unknown) => {
          deps.log.warn({ host: request.host, err: error }, 'could not write return request');
        });
      }

      const atMs = deps.nowMs();
      const vgFreeExtentsAfter = computeFreeExtents(committed).extentCount;
      for (const host of replay.hosts) {
        deps.history?.recordReplay({
          atMs,
          host: host.host,
          recordCount: host.appliedRecordCount,
          extentCount: host.movedExtentCount,
          rejectedCount: host.rejected.length,
          appliedSeq: host.appliedSeqAfter,
          vgSeqno: committed.seqno,
          vgFreeExtentsAfter,
        });
      }
      for (const grant of refill.grants) {
        deps.history?.recordGrant({ atMs, host: grant.host, generation: grant.generation, extentCount: grant.extentCount, vgSeqno: committed.seqno, vgFreeExtentsAfter });
      }
      const result: PassResult = {
        seqnoBefore: vg.seqno,
        seqnoAfter: committed.seqno,
        committed: committed !== vg,
        replayedRecordCount: replay.hosts.reduce((sum, h) => sum + h.appliedRecordCount + h.rejected.length, 0),
        rejectedRecordCount: replay.hosts.reduce((sum, h) => sum + h.rejected.length, 0),
        grantedHosts: refill.grants.map((g) => g.host),
        moreWaiting,
      };
      passFailed = false;
      return result;
    } finally {
      await closeRegions(regions);
      // A failed pass may leave a reader whose view is off (say, a consume that failed):
      // the next pass opens fresh ones.
      if (passFailed) await session.close();
    }
  }
}
