// What the master publishes about itself after every pass, in thinlv_status on the LUN
// (bytes: src/rings/statusBlock.ts), so `thinlv status`, `thinlv hosts` and `thinlv free`
// on any host can say whether the master runs, where, how its passes go, how fast the
// VG fills and which LVs grow most. A report only: nothing decides anything from it, so
// a failed write is logged and the pass goes on.
//
// Times are the master machine's wall clock (ms since the epoch). A reader on another
// machine compares them with its own clock, so clock skew between the two shows up as
// age; `thinlv status` allows for a few seconds of it.

import { hostname } from 'node:os';
import type { BlockRegion } from '../../journal/index.js';
import { ErrorCode, ThinlvError } from '../errors.js';
import { STATUS_LV, readThinlvVg } from '../format/thinlvVg.js';
import type { Logger } from '../log.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { extentSizeBytes, type VgMetadata } from '../metadata/vgModel.js';
import { decodeLeaseBlock, LEASE_BLOCK_BYTES } from '../ownership/leaseBlock.js';
import { leaseLocation, openLeaseRegion, statusLocation, type RegionOpener } from '../rings/ringRegions.js';
import { STATUS_REGION_BYTES, readStatusRegion, writeStatusRegion } from '../rings/statusBlock.js';
import type { LvGrowth } from '../state/masterState.js';
import type { MasterSession } from './masterSession.js';
import type { PassResult } from './replayPass.js';

export const MASTER_STATUS_VERSION = 1;
/** Growth windows the master publishes: the last hour and the last day. */
export const GROWTH_WINDOWS = [
  { name: 'hour', windowMs: 3_600_000 },
  { name: 'day', windowMs: 86_400_000 },
] as const;
/** LVs listed per growth window. */
export const TOP_GROWERS = 5;
/**
 * The status is written where the last successful pass's metadata puts thinlv_status.
 * Metadata older than this (passes failing for a while) may no longer say where that
 * is, so nothing is written from it (or from 3 master intervals, if longer): readers
 * then see the master fall silent, which `thinlv status` reports.
 */
export const MAX_STATUS_METADATA_AGE_MS = 10_000;
/** History queries run at most this often after a pass that replayed something, and at least this often otherwise. */
export const GROWTH_MIN_REFRESH_MS = 1_000;
export const GROWTH_MAX_REFRESH_MS = 10_000;

export interface GrowthWindow {
  readonly name: 'hour' | 'day';
  readonly windowMs: number;
  /** How much of the window the master's history covers (it may be younger than the window). */
  readonly coveredMs: number;
  /** Extents replayed into LVs in the covered part of the window. */
  readonly extentCount: number;
  readonly topLvs: readonly LvGrowth[];
}

export interface HostStatus {
  readonly host: string;
  /** Pool and low-water as the last pass planned them (metadata less the journal, rate-sized). */
  readonly poolExtents: number | null;
  readonly lowWaterExtents: number | null;
  /** Extents the host's waiting extends asked for and no grant has covered yet. */
  readonly demandExtents: number;
  /** The last journal seq the master has seen, and when it last saw it advance. */
  readonly journalSeq: number | null;
  readonly journalAdvancedAtMs: number | null;
  /** The host daemon's lease as the master last read it, and when its counter last moved. */
  readonly lease: { readonly state: 'held' | 'released'; readonly holder: string; readonly counter: number; readonly renewedAtMs: number } | null;
}

/** The published status; add fields, never rename (readers of older and newer masters meet). */
export interface MasterStatus {
  readonly version: typeof MASTER_STATUS_VERSION;
  readonly vg: string;
  readonly masterHost: string;
  readonly pid: number;
  readonly startedAtMs: number;
  readonly writtenAtMs: number;
  /** When this master stopped (SIGTERM, --once done, a fatal error); null while it runs. */
  readonly stoppedAtMs: number | null;
  readonly intervalMs: number;
  readonly passCount: number;
  readonly failedPassCount: number;
  readonly lastPass: { readonly atMs: number; readonly durationMs: number; readonly ok: boolean; readonly seqno: number | null; readonly replayedRecords: number } | null;
  readonly lastSuccessAtMs: number | null;
  readonly lastError: { readonly atMs: number; readonly code: string; readonly message: string } | null;
  /** null when the master keeps no history (--no-history). */
  readonly growth: { readonly historySinceMs: number; readonly windows: readonly GrowthWindow[] } | null;
  readonly hosts: readonly HostStatus[];
}

/** The history the publisher reads (MasterState). */
export interface GrowthHistory {
  historySinceMs(nowMs: number): number;
  allocationRate(window: { sinceMs: number; nowMs: number }): { extentCount: number };
  topGrowers(window: { sinceMs: number; nowMs: number; limit: number }): LvGrowth[];
}

/** The change that creates thinlv_status when it is missing; undefined when it exists. */
export function createStatusLvChange(vg: VgMetadata): MetadataChange | undefined {
  if (readThinlvVg(vg).statusLv !== undefined) return undefined;
  const extentCount = Math.max(1, Math.ceil(STATUS_REGION_BYTES / extentSizeBytes(vg)));
  const run = computeFreeExtents(vg).ranges().find((r) => r.extentCount >= extentCount);
  if (run === undefined) {
    throw new ThinlvError(ErrorCode.insufficientExtents, `VG ${vg.name} has no run of ${extentCount} free contiguous extents for ${STATUS_LV}, where the master publishes its status; free space first`, { vg: vg.name, extentCount });
  }
  return { kind: 'createLv', name: STATUS_LV, ranges: [{ pv: run.pv, firstExtent: run.firstExtent, extentCount }], activationSkip: true };
}

export interface PassOutcome {
  readonly atMs: number;
  readonly durationMs: number;
  readonly result?: PassResult;
  readonly error?: unknown;
}

export interface PublisherDeps {
  readonly regions: RegionOpener;
  readonly log: Logger;
  readonly nowMs: () => number;
  readonly history: GrowthHistory | undefined;
}

/** Writes the master's status after each pass. One per master process. */
export class StatusPublisher {
  private region: { readonly key: string; readonly region: BlockRegion } | undefined;
  private counter = 0;
  private passCount = 0;
  private failedPassCount = 0;
  private lastPass: MasterStatus['lastPass'] = null;
  private lastSuccessAtMs: number | null = null;
  private lastError: MasterStatus['lastError'] = null;
  private growth: { atMs: number; value: MasterStatus['growth'] } | undefined;
  private replayedSinceGrowth = false;
  private stoppedAtMs: number | null = null;
  private writing: Promise<void> = Promise.resolve();
  private queued = false;
  private halted = false;
  private readonly journals = new Map<string, { seq: number; atMs: number }>();
  private readonly leases = new Map<string, { counter: number; atMs: number }>();
  private readonly startedAtMs: number;

  constructor(
    private readonly deps: PublisherDeps,
    private readonly identity: { readonly vg: string; readonly intervalMs: number },
  ) {
    this.startedAtMs = deps.nowMs();
  }

  /** Takes in a pass's outcome and writes the status; never throws (a report must not stop the master). */
  publish(session: MasterSession, outcome: PassOutcome): void {
    this.notePass(outcome);
    // In the background, one write at a time: a pass never waits for a report. A pass
    // that ends while a write is queued is carried by that write.
    if (this.queued) return;
    this.queued = true;
    this.writing = this.writing.then(async () => {
      this.queued = false;
      await this.write(session);
    });
  }

  /**
   * A broken invariant: the master stops before it writes anything else, so no status
   * either (readers see it fall silent). Writes already queued find the publisher halted.
   */
  halt(): void {
    this.halted = true;
  }

  /** Resolves once every write queued so far is done. */
  settled(): Promise<void> {
    return this.writing;
  }

  private async write(session: MasterSession): Promise<void> {
    const last = session.lastPass;
    const maxAgeMs = Math.max(MAX_STATUS_METADATA_AGE_MS, 3 * this.identity.intervalMs);
    if (this.halted || last === undefined || this.deps.nowMs() - last.atMs > maxAgeMs) return;
    const vg = last.metadata;
    try {
      const status = await this.compose(vg, session);
      const region = await this.regionFor(vg);
      this.counter += 1;
      await writeStatusRegion(region, this.counter, status);
    } catch (error) {
      this.deps.log.warn({ vg: this.identity.vg, err: error }, 'could not publish the master status (reports only; replay goes on)');
      await this.close();
    }
  }

  /** Publishes that this master stopped, so reports say so at once rather than after it falls silent. */
  async stopped(session: MasterSession): Promise<void> {
    await this.writing;
    this.stoppedAtMs = this.deps.nowMs();
    await this.write(session);
    await this.close();
  }

  async close(): Promise<void> {
    const open = this.region;
    this.region = undefined;
    await open?.region.close().catch(() => undefined);
  }

  private notePass(outcome: PassOutcome): void {
    this.passCount += 1;
    if ((outcome.result?.replayedRecordCount ?? 0) > 0) this.replayedSinceGrowth = true;
    const ok = outcome.error === undefined;
    if (ok) this.lastSuccessAtMs = outcome.atMs + outcome.durationMs;
    else {
      this.failedPassCount += 1;
      const code = outcome.error instanceof ThinlvError ? outcome.error.code : ((outcome.error as { code?: unknown })?.code as string | undefined) ?? 'ERROR';
      this.lastError = { atMs: outcome.atMs, code: String(code), message: outcome.error instanceof Error ? outcome.error.message : String(outcome.error) };
    }
    this.lastPass = { atMs: outcome.atMs, durationMs: outcome.durationMs, ok, seqno: outcome.result?.seqnoAfter ?? null, replayedRecords: outcome.result?.replayedRecordCount ?? 0 };
  }

  private async compose(vg: VgMetadata, session: MasterSession): Promise<MasterStatus> {
    const nowMs = this.deps.nowMs();
    const hosts: HostStatus[] = [];
    for (const host of [...readThinlvVg(vg).hosts.keys()].sort()) hosts.push(await this.hostStatus(vg, session, host, nowMs));
    return {
      version: MASTER_STATUS_VERSION,
      vg: this.identity.vg,
      masterHost: hostname(),
      pid: process.pid,
      startedAtMs: this.startedAtMs,
      writtenAtMs: nowMs,
      stoppedAtMs: this.stoppedAtMs,
      intervalMs: this.identity.intervalMs,
      passCount: this.passCount,
      failedPassCount: this.failedPassCount,
      lastPass: this.lastPass,
      lastSuccessAtMs: this.lastSuccessAtMs,
      lastError: this.lastError,
      growth: this.growthSummary(nowMs),
      hosts,
    };
  }

  private async hostStatus(vg: VgMetadata, session: MasterSession, host: string, nowMs: number): Promise<HostStatus> {
    const view = session.hostView(host);
    const seen = this.journals.get(host);
    if (view.lastSeenSeq !== undefined && (seen === undefined || view.lastSeenSeq > seen.seq)) this.journals.set(host, { seq: view.lastSeenSeq, atMs: nowMs });
    const journal = this.journals.get(host);
    return {
      host,
      poolExtents: view.poolExtentCount ?? null,
      lowWaterExtents: view.lowWaterExtents ?? null,
      demandExtents: view.demandExtentCount,
      journalSeq: journal?.seq ?? null,
      journalAdvancedAtMs: journal?.atMs ?? null,
      lease: await this.observeLease(vg, host, nowMs),
    };
  }

  /** The host's lease block, and when the master last saw its counter move. */
  private async observeLease(vg: VgMetadata, host: string, nowMs: number): Promise<HostStatus['lease']> {
    let region: BlockRegion | undefined;
    try {
      region = await openLeaseRegion(this.deps.regions, leaseLocation(vg, host));
      const block = decodeLeaseBlock(await region.read(0, LEASE_BLOCK_BYTES));
      if (block.kind !== 'lease') return null;
      const last = this.leases.get(host);
      if (last === undefined || last.counter !== block.counter) this.leases.set(host, { counter: block.counter, atMs: nowMs });
      return { state: block.state, holder: block.holder, counter: block.counter, renewedAtMs: this.leases.get(host)!.atMs };
    } catch (error) {
      this.deps.log.debug({ host, err: error }, 'could not read the host lease for the status');
      return null;
    } finally {
      await region?.close();
    }
  }

  private growthSummary(nowMs: number): MasterStatus['growth'] {
    const history = this.deps.history;
    if (history === undefined) return null;
    const ageMs = this.growth === undefined ? Infinity : nowMs - this.growth.atMs;
    if (this.growth !== undefined && ageMs < (this.replayedSinceGrowth ? GROWTH_MIN_REFRESH_MS : GROWTH_MAX_REFRESH_MS)) return this.growth.value;
    this.replayedSinceGrowth = false;
    const historySinceMs = history.historySinceMs(nowMs);
    const windows = GROWTH_WINDOWS.map(({ name, windowMs }) => {
      const sinceMs = Math.max(historySinceMs, nowMs - windowMs);
      const coveredMs = Math.max(0, nowMs - sinceMs);
      if (coveredMs === 0) return { name, windowMs, coveredMs, extentCount: 0, topLvs: [] };
      return { name, windowMs, coveredMs, extentCount: history.allocationRate({ sinceMs, nowMs }).extentCount, topLvs: history.topGrowers({ sinceMs, nowMs, limit: TOP_GROWERS }) };
    });
    const value = { historySinceMs, windows };
    this.growth = { atMs: nowMs, value };
    return value;
  }

  /** The open status region, reopened when the LV moved; a new region continues the counter found on disk. */
  private async regionFor(vg: VgMetadata): Promise<BlockRegion> {
    const location = statusLocation(vg);
    const key = `${location.ringId}@${location.device}:${location.offsetBytes}`;
    if (this.region?.key === key) return this.region.region;
    await this.close();
    const region = await this.deps.regions.open(location);
    const found = await readStatusRegion(region);
    this.counter = Math.max(this.counter, found.kind === 'status' ? found.counter : 0);
    this.region = { key, region };
    return region;
  }
}
