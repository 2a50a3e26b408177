// One pass of the master: replay every host's journal into LVM metadata and
// refill pools, as ONE metadata commit.
//
//   1. read the VG (vgcfgbackup) and thinlv's layout from it
//   2. read each host's journal from its applied seq + 1           (no writes yet)
//   3. plan replay, then plan refills on the VG as replay leaves it  (pure)
//   4. commit all of it at once, with the new applied seqs and grant generations as tags
//   5. advance each journal's consumer pointer                     -> hosts may reuse ring space
//   6. write a grant record (pool snapshot) to each refilled host's grants ring
//   7. ask hosts holding far more than their share to return some, and tell each host
//      whose new demand the pass could not cover why (a shortage record)
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
// Its journal reads can be stale too (a cursor already past the applied seq it read, a
// host's ring replaced since), and it re-reads the same way.

import { isJournalError, openRingReader, type BlockRegion, type ReadResult, type RingReader } from '../../journal/index.js';
import { CommitError, ErrorCode } from '../errors.js';
import type { FaultPoints } from '../faults.js';
import { hostLvNames, readThinlvVg, type ThinlvVg } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata, systemIdentity } from '../lvm/commitBatch.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import type { Logger } from '../log.js';
import { applyChanges, type MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import type { VgMetadata } from '../metadata/vgModel.js';
import { planRefill, type RefillPlan } from '../pool/planRefill.js';
import { appendToGrantsRing, grantOnRing } from './grantsRing.js';
import { MasterSession } from './masterSession.js';
import { MAX_RANGES_PER_RECORD, encodeGrantRecord, type PvExtentRange } from '../records/records.js';
import { planReplay, poolOf, toUuidRanges, type JournalRecordBytes, type ReplayPlan } from '../replay/planReplay.js';
import { ringLocation, type RegionOpener, type RingLocation } from '../rings/ringRegions.js';

/** Records replayed per host per pass; the rest wait for the next pass (which starts at once). */
export const MAX_RECORDS_PER_HOST_PER_PASS = 4096;
/** Commits refused for a stale seqno are retried (re-reading the VG) this many times. */
export const MAX_STALE_RETRIES = 5;

export { MasterSession };

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
  /** The extents each user LV gained by this pass's replay (for "top growers"). */
  recordLvGrowth(atMs: number, growth: readonly { lv: string; extentCount: number }[]): void;
}

export interface MasterDeps {
  readonly lvm: LvmRunner;
  readonly regions: RegionOpener;
  readonly log: Logger;
  readonly faults: FaultPoints;
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number) => Promise<void>;
  readonly history?: PassHistory | undefined;
  readonly observer?: PassObserver | undefined;
}

/** What a pass read and left, for metrics (src/metrics/masterMetrics.ts); optional, since metrics never decide anything. */
export interface PassObserver {
  /** Runs a whole pass (its retries included): to time it and count how it ended. */
  timePass(pass: () => Promise<PassResult>): Promise<PassResult>;
  passDone(pass: {
    /** The VG as the pass left it (what it committed, or what it read when it committed nothing). */
    readonly vg: VgMetadata;
    readonly didCommit: boolean;
    /** Each host's records after its applied seq, as the pass read them. */
    readonly records: ReadonlyMap<string, readonly JournalRecordBytes[]>;
    readonly replay: ReplayPlan;
    readonly refill: RefillPlan;
  }): void;
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

interface OpenJournals {
  readonly readers: Map<string, RingReader>;
  readonly regions: BlockRegion[];
  readonly records: Map<string, JournalRecordBytes[]>;
  readonly moreWaiting: boolean;
}

/**
 * Journals a pass reads at once. When nothing is new each is one small direct read, so
 * an idle pass costs about hosts / this many device round trips instead of one per host.
 * Bounded so that 64 hosts opening fresh readers (a new session) do not hold 64 reads of
 * a record window each in flight, nor 64 file descriptors opening at once.
 */
export const MAX_PARALLEL_JOURNAL_READS = 16;

/** One host's journal as a pass read it, or why it could not. */
type HostJournalRead =
  | { readonly ok: true; readonly host: string; readonly reader: RingReader; readonly ownRegion: BlockRegion | undefined; readonly result: ReadResult }
  | { readonly ok: false; readonly host: string; readonly error: unknown };

/**
 * Reads each host's records after its applied seq, several hosts at a time. `regions`
 * are the ones this pass opened and must close; readers the session keeps are not
 * among them. Reading is side-effect free on disk, so the order of the reads does not
 * matter; the maps are filled in host order all the same, so that a pass plans the same
 * way whatever order the reads completed in.
 */
async function readJournals(deps: MasterDeps, session: MasterSession, vg: VgMetadata, thinlv: ThinlvVg): Promise<OpenJournals> {
  await session.keepOnly(new Set(thinlv.hosts.keys()));
  const hosts = [...thinlv.hosts.values()];
  const reads = await mapBounded(hosts, MAX_PARALLEL_JOURNAL_READS, (host) => readHostJournal(deps, session, vg, host.host, host.appliedSeq));
  const readers = new Map<string, RingReader>();
  const regions: BlockRegion[] = [];
  const records = new Map<string, JournalRecordBytes[]>();
  let moreWaiting = false;
  let failure: { error: unknown } | undefined;
  for (const read of reads) {
    if (!read.ok) {
      await session.forget(read.host);
      failure ??= { error: read.error };
      continue;
    }
    if (read.ownRegion !== undefined) regions.push(read.ownRegion);
    readers.set(read.host, read.reader);
    session.noteSeen(read.host, read.result.lastSeq);
    if (read.result.records.length > 0) records.set(read.host, read.result.records);
    if (read.result.stopReason === 'max-records') moreWaiting = true;
  }
  if (failure !== undefined) {
    await closeRegions(regions);
    throw failure.error;
  }
  return { readers, regions, records, moreWaiting };
}

/** Opens (or takes the session's kept) reader of one host's journal and reads past its applied seq. */
async function readHostJournal(deps: MasterDeps, session: MasterSession, vg: VgMetadata, host: string, appliedSeq: number): Promise<HostJournalRead> {
  let ownRegion: BlockRegion | undefined;
  try {
    const location = ringLocation(vg, hostLvNames(host).journal);
    let reader = await session.keptJournal(host, location);
    if (reader === undefined) {
      const region = await deps.regions.open(location);
      try {
        reader = await openRingReader(region, { ringId: location.ringId });
      } catch (error) {
        await region.close();
        throw error;
      }
      if (session.keepsJournals) session.keepJournal(host, location, region, reader);
      else ownRegion = region;
    }
    const result = await reader.read({ fromSeq: appliedSeq + 1, maxRecords: MAX_RECORDS_PER_HOST_PER_PASS });
    return { ok: true, host, reader, ownRegion, result };
  } catch (error) {
    await ownRegion?.close().catch(() => undefined);
    return { ok: false, host, error };
  }
}

/** `work` over `items`, at most `limit` at a time; results in the order of `items`. */
async function mapBounded<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function closeRegions(regions: readonly BlockRegion[]): Promise<void> {
  for (const region of regions) await region.close();
}

/**
 * A pool in more pieces than one record names is sent as its largest pieces, in disk
 * order. That is safe: the host uses a subset of its own free LV, and the pieces left
 * out stay in that LV (the host reads all of it at its next start).
 */
export function largestRanges(ranges: readonly PvExtentRange[], limit: number): PvExtentRange[] {
  if (ranges.length <= limit) return [...ranges];
  const kept = new Set([...ranges].sort((a, b) => b.extentCount - a.extentCount).slice(0, limit));
  return ranges.filter((r) => kept.has(r));
}

/** Writes the host's grant: its whole pool at the current generation, and the seq it reflects. */
async function writeGrant(deps: MasterDeps, vg: VgMetadata, thinlv: ThinlvVg, host: string): Promise<void> {
  const info = thinlv.hosts.get(host);
  if (info === undefined || info.grantGeneration === 0) return;
  const freeRanges = largestRanges(toUuidRanges(vg, poolOf(vg, host).ranges()), MAX_RANGES_PER_RECORD);
  await appendToGrantsRing(deps, vg, host, encodeGrantRecord({ kind: 'grant', generation: info.grantGeneration, appliedSeq: info.appliedSeq, freeRanges }));
}

async function writeReturnRequest(deps: MasterDeps, vg: VgMetadata, thinlv: ThinlvVg, host: string, extentCount: number): Promise<void> {
  const info = thinlv.hosts.get(host);
  if (info === undefined) return;
  await appendToGrantsRing(deps, vg, host, encodeGrantRecord({ kind: 'returnRequest', generation: Math.max(1, info.grantGeneration), extentCount }));
}

/**
 * Settles the pass's demands: a covered one is forgotten; a demand journaled since the
 * last pass that the plan does not cover is answered with a shortage record, so the
 * host's waiting extends can say why when they give up (a demand remembered from an
 * earlier pass was answered then). Best effort: the extends wait either way.
 */
async function answerDemands(deps: MasterDeps, session: MasterSession, vg: VgMetadata, replay: ReplayPlan, refill: RefillPlan): Promise<void> {
  for (const host of refill.coveredDemands) session.demandCovered(host);
  session.notePools(refill.poolLevels);
  const fresh = new Set(replay.hosts.filter((h) => (h.demandExtentCount ?? 0) > 0).map((h) => h.host));
  const vgFreeExtentCount = refill.vgFreeExtentCountAfter;
  for (const shortage of refill.shortages) {
    if (!fresh.has(shortage.host)) continue;
    deps.log.warn({ ...shortage, vgFreeExtentCount, reserveExtentCount: refill.reserveExtentCount }, 'a host waits for more extents than the VG can grant now');
    const record = encodeGrantRecord({ kind: 'shortage', ...shortage, vgFreeExtentCount, reserveExtentCount: refill.reserveExtentCount });
    await appendToGrantsRing(deps, vg, shortage.host, record).catch((error: unknown) => {
      deps.log.warn({ host: shortage.host, err: error }, 'could not write shortage record');
    });
  }
}

/** Steps 6 and 7: grant records, return requests and shortages, on the committed metadata. */
async function sendToHosts(deps: MasterDeps, session: MasterSession, committed: VgMetadata, replay: ReplayPlan, refill: RefillPlan): Promise<void> {
  const committedThinlv = readThinlvVg(committed);
  const grantsDue = session.hostsNeedingGrant(committedThinlv);
  const newGrants = new Set(refill.grants.map((grant) => grant.host));
  for (const host of newGrants) grantsDue.add(host);
  for (const host of [...grantsDue]) {
    try {
      const generation = committedThinlv.hosts.get(host)?.grantGeneration ?? 0;
      const onRing = !newGrants.has(host) && generation > 0 && (await grantOnRing(deps, committed, host, generation));
      if (!onRing) await writeGrant(deps, committed, committedThinlv, host);
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
  await answerDemands(deps, session, committed, replay, refill);
}

/** Feeds the history sink (reports only; never decides anything). */
function recordHistory(deps: MasterDeps, atMs: number, committed: VgMetadata, replay: ReplayPlan, refill: RefillPlan): void {
  if (deps.history === undefined) return;
  const vgFreeExtentsAfter = computeFreeExtents(committed).extentCount;
  for (const host of replay.hosts) {
    deps.history.recordReplay({
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
    deps.history.recordGrant({ atMs, host: grant.host, generation: grant.generation, extentCount: grant.extentCount, vgSeqno: committed.seqno, vgFreeExtentsAfter });
  }
  deps.history.recordLvGrowth(atMs, lvGrowth(replay));
}

/** Extents each LV gained from host pools in `replay`. */
export function lvGrowth(replay: ReplayPlan): { lv: string; extentCount: number }[] {
  const gained = new Map<string, number>();
  for (const change of replay.changes) {
    if (change.kind !== 'moveRanges') continue;
    const extents = change.ranges.reduce((sum, r) => sum + r.extentCount, 0);
    gained.set(change.toLv, (gained.get(change.toLv) ?? 0) + extents);
  }
  return [...gained].filter(([, extentCount]) => extentCount > 0).map(([lv, extentCount]) => ({ lv, extentCount }));
}

/**
 * What a pass's journal reads depend on: each host's journal ring (identity and place)
 * and its applied seq. Undefined when a ring cannot be located (the read reports why).
 */
function journalReadKey(vg: VgMetadata, thinlv: ThinlvVg): string | undefined {
  try {
    return JSON.stringify([...thinlv.hosts.values()].map((host) => [host.host, host.appliedSeq, ringLocation(vg, hostLvNames(host.host).journal)]));
  } catch {
    return undefined;
  }
}

/**
 * Whether a journal read failed in a way another master's or an operator's commit since
 * the pass read the VG explains, so that the pass re-reads it:
 *   - the ring is consumed past the applied seq the pass read: a consumer moves only after
 *     a commit that applied those records, so another master committed in between;
 *   - another ring (or none) is where the VG said the host's journal is: the host was
 *     removed, and maybe re-added at the same extents, in between.
 * That is a stale read, as a refused seqno is. It persists only if the metadata itself is
 * wrong (say, an old backup restored by hand), and then the retries end with the
 * journal's own error.
 */
function journalChangedSinceRead(error: unknown): boolean {
  return isJournalError(error) && ['SEQ_ALREADY_CONSUMED', 'RING_ID_MISMATCH', 'NOT_A_RING'].includes(error.code);
}

/** Runs one pass. Operating errors (lvm, rings) propagate; the daemon logs them and tries again next interval. */
export function runPass(deps: MasterDeps, session: MasterSession, vgName: string): Promise<PassResult> {
  const pass = () => replayAndRefill(deps, session, vgName);
  return deps.observer === undefined ? pass() : deps.observer.timePass(pass);
}

async function replayAndRefill(deps: MasterDeps, session: MasterSession, vgName: string): Promise<PassResult> {
  let readOnCachedVg: { readonly key: string; readonly journals: OpenJournals } | undefined;
  for (let attempt = 0; ; attempt++) {
    // A pass right after this session's own commit starts from what that commit read back
    // (one lvm call less): if anyone wrote since, the commit's seqno check refuses it and
    // the retry reads afresh. A pass that would commit nothing re-reads (below).
    const cached = attempt === 0 ? session.recentCommit(vgName, deps.nowMs()) : undefined;
    // Otherwise the last pass's metadata when the PVs' headers say it is still the VG's
    // (nothing parsed), else a full read.
    const vg = cached ?? (await readVgMetadata(deps.lvm, vgName, { unlessUnchanged: session.lastPass?.metadata }));
    const thinlv = readThinlvVg(vg);
    await deps.faults.hit('master.afterRead');
    // After that re-read, the journals read on the cached metadata still hold if the VG
    // names the same rings and applied seqs: a journal read depends on nothing else.
    const key = journalReadKey(vg, thinlv);
    const reused = key !== undefined && readOnCachedVg?.key === key ? readOnCachedVg.journals : undefined;
    readOnCachedVg = undefined;
    let journals: OpenJournals;
    try {
      journals = reused ?? (await readJournals(deps, session, vg, thinlv));
    } catch (error) {
      // Read against this session's last commit, any journal may have changed since: read the VG.
      if (!(cached !== undefined || journalChangedSinceRead(error)) || attempt >= MAX_STALE_RETRIES) throw error;
      deps.log.warn({ vg: vgName, attempt, error: String(error) }, 'journal read on metadata that may be stale: re-reading the VG');
      continue;
    }
    const { readers, regions, records, moreWaiting } = journals;
    let passFailed = true;
    try {
      const replay: ReplayPlan = planReplay(vg, thinlv, records);
      const afterReplay = applyChanges(vg, replay.changes, systemIdentity);
      const atMs = deps.nowMs();
      session.noteDemands(replay.hosts);
      const refill = planRefill(afterReplay, thinlv, { demands: session.waitingDemands(), rateTargets: session.rateTargets(atMs) });
      const changes: MetadataChange[] = [...replay.changes, ...refill.changes];
      for (const denied of replay.deniedClaims) deps.log.info({ ...denied }, 'claim denied: the LV is held by another host or gone');
      for (const deflate of replay.deflates) deps.log.info({ ...deflate }, deflate.applied ? 'LV deflated' : 'deflate skipped');
      for (const host of replay.hosts) {
        for (const rejected of host.rejected) {
          deps.log.warn({ host: rejected.host, seq: rejected.seq, code: rejected.code, reason: rejected.reason }, 'journal record rejected, not applied');
        }
      }

      if (changes.length === 0 && cached !== undefined) {
        // No commit will check the cached metadata, and grants are written from it: read the VG.
        passFailed = false;
        // Kept readers only: regions this attempt opened are closed below.
        if (key !== undefined && regions.length === 0) readOnCachedVg = { key, journals: { readers, regions, records, moreWaiting } };
        continue;
      }
      let committed = vg;
      if (changes.length > 0) {
        try {
          const planned = refill.changes.length === 0 ? afterReplay : applyChanges(afterReplay, refill.changes, systemIdentity);
          committed = (await commitBatch(deps.lvm, vg, changes, { faults: deps.faults, planned })).metadata;
          session.noteCommit(vgName, committed, deps.nowMs());
        } catch (error) {
          session.forgetCommit();
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
      session.noteAllocations(atMs, replay.hosts);

      // Step 5: safe to repeat; consuming through a seq already consumed is a no-op.
      for (const host of replay.hosts) await readers.get(host.host)?.consume(host.appliedSeqAfter);
      await deps.faults.hit('master.afterConsume');

      await sendToHosts(deps, session, committed, replay, refill);
      recordHistory(deps, atMs, committed, replay, refill);
      deps.observer?.passDone({ vg: committed, didCommit: committed !== vg, records, replay, refill });
      const result: PassResult = {
        seqnoBefore: vg.seqno,
        seqnoAfter: committed.seqno,
        committed: committed !== vg,
        replayedRecordCount: replay.hosts.reduce((sum, h) => sum + h.appliedRecordCount + h.rejected.length, 0),
        rejectedRecordCount: replay.hosts.reduce((sum, h) => sum + h.rejected.length, 0),
        grantedHosts: refill.grants.map((g) => g.host),
        moreWaiting,
      };
      session.lastPass = { metadata: committed, atMs: deps.nowMs() };
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
