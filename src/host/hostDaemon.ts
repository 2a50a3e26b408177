// `thinlv host run VG HOST`: the host allocator daemon, one per host per VG.
//
//   start   1. read the VG read-only (lvm fullreport --readonly: a host never writes
//              metadata and never runs an lvm command that could "repair" it)
//           2. take the local lock (a second daemon for this VG and host on this
//              machine is refused at once), then the host's lease on the LUN (a
//              daemon for the same host on another machine is refused, or, if that
//              one died, waited out): nothing is written before both are held
//           3. open its journal ring: the writer finds the tail; a reader collects the
//              records after the applied seq (what the master has not replayed yet)
//           4. open its SQLite state, keyed by the journal LV's uuid (a removed and
//              re-added host starts clean): last grant generation, active LVs
//           5. rebuild the pool (free LV less unreplayed records), reload the tables
//              of LVs active before a restart, then serve the socket
//   loop    read the grants ring (apply newer generations, honour return requests,
//           stop when the master removes the host), re-read metadata now and then
//   stop    SIGTERM, a stop record, removal seen in metadata, or the lease lost:
//           stop serving, finish in-flight requests, close the journal, and release
//           the lease (unless lost) so the next holder need not wait

import { hostname } from 'node:os';
import { MAX_FULL_WAIT_MS, openRingReader, openRingWriter, type BlockRegion, type RingWriter } from '../../journal/index.js';
import { ThinlvError } from '../errors.js';
import type { DeviceMapper } from '../dm/deviceMapper.js';
import { dmName } from '../dm/deviceMapper.js';
import { formatDmTable } from '../extent/dmTable.js';
import type { HeldLock } from '../fileLock.js';
import { hostLvNames, readThinlvVg } from '../format/thinlvVg.js';
import { readVgReport, vgTextKey } from '../lvm/readVgReport.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import type { Logger } from '../log.js';
import { linearSegments, type VgLayout } from '../metadata/vgModel.js';
import { acquireLease, acquireLocalHostLock, DEFAULT_LEASE_RENEW_MS, type HeldLease } from '../ownership/index.js';
import { leaseLocation, openLeaseRegion, ringLocation, type RegionOpener, type RingLocation } from '../rings/ringRegions.js';
import type { HostState } from '../state/hostState.js';
import type { FaultPoints } from '../faults.js';
import { withJournalWriteFaults } from './journalWriteFaults.js';
import { HostAllocator, type UnreplayedRecord } from './allocator.js';
import { FollowedRing } from './followedRing.js';
import { grantFollower } from './grantFollower.js';
import { heldLayout } from './heldLayout.js';
import { metadataRefresher } from './metadataRefresh.js';
import { hostRequestHandler } from './hostRequests.js';
import { leasedJournal } from './leasedJournal.js';
import { leasedDeviceMapper } from './leasedDeviceMapper.js';
import { startSocketServer, type RequestHandler, type SocketServer } from './socketServer.js';
import { unreplayedRecords } from './unreplayedRecords.js';

export { DEFAULT_SOCKET_DIR, defaultSocketPath } from './socketPath.js';
/** How often the grants ring is read; each read is a direct read of the ring, so not too often. */
export const DEFAULT_GRANT_POLL_MS = 250;
/** While an extend waits for a grant, the grants ring is read this often: the grant is the extend's answer. */
export const WAITING_GRANT_POLL_MS = 20;
/** Metadata is re-read now and then to drop replayed records from the pending lists (an unknown LV triggers a read at once). */
export const DEFAULT_METADATA_REFRESH_MS = 30_000;

export interface HostDaemonDeps {
  readonly lvm: LvmRunner;
  readonly regions: RegionOpener;
  readonly dm: DeviceMapper;
  readonly deviceMapperPresent: boolean;
  /** Opens the host's SQLite state for the journal ring with this identity (its LV uuid). */
  readonly openState: (ringIdentity: string) => HostState;
  readonly log: Logger;
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number) => Promise<void>;
  readonly faults?: FaultPoints;
  readonly observer?: HostObserver | undefined;
}

/** What metrics watch (src/metrics/hostMetrics.ts); optional, since metrics never decide anything. */
export interface HostObserver {
  /** The socket's request handler, wrapped to time extends and count errors. */
  observeRequests(handler: RequestHandler): RequestHandler;
  /** The allocator whose pool and waiting extends are read at each scrape. */
  watchAllocator(allocator: HostAllocator): void;
}

export interface HostDaemonOptions {
  readonly vg: string;
  readonly host: string;
  readonly socketPath: string;
  readonly outOfSpaceWaitMs: number;
  readonly claimWaitMs?: number | undefined;
  readonly grantPollMs?: number;
  readonly metadataRefreshMs?: number;
  readonly leaseRenewMs?: number | undefined;
  /** Where the one-daemon-per-host lock lives (tests only; the default is fixed). */
  readonly localLockDir?: string | undefined;
}

/** Why a daemon stopped by itself; `error` set when that is a failure. */
export interface DaemonStop {
  readonly reason: string;
  readonly error?: ThinlvError;
}

export interface RunningHostDaemon {
  readonly allocator: HostAllocator;
  readonly server: SocketServer;
  /** Resolves when the daemon decides to stop by itself (removed, lease lost); then call stop(). */
  readonly stopped: Promise<DaemonStop>;
  stop(): Promise<void>;
}

/**
 * The VG as the daemon keeps it (heldLayout.ts): the report is dropped as soon as it is
 * copied. A re-read shares the LVs that did not change with the layout in use (`held`),
 * so the daemon never holds two of each LV while the old layout is still in use.
 */
async function readHeldLayout(deps: HostDaemonDeps, vgName: string, held?: VgLayout): Promise<VgLayout> {
  return heldLayout(await readVgReport(deps.lvm, vgName, held === undefined ? {} : { sharingWith: held.lvs }));
}

async function readLayout(deps: HostDaemonDeps, vgName: string, host: string) {
  const vg = await readHeldLayout(deps, vgName);
  const thinlv = readThinlvVg(vg);
  const info = thinlv.hosts.get(host);
  if (info === undefined) {
    throw new ThinlvError('UNKNOWN_HOST', `host ${host} is not a member of ${vgName}: run "thinlv host add ${vgName} ${host}" on the master`, { vg: vgName, host });
  }
  return { vg, thinlv, info };
}

/** Re-reads of metadata at start-up while the master keeps committing past them. */
const MAX_START_METADATA_READS = 10;

/**
 * The host's unreplayed records, with metadata at least as new as the journal's
 * consumer pointer (see unreplayedRecords): re-read while the master commits.
 */
async function readUnreplayed(deps: HostDaemonDeps, options: HostDaemonOptions, first: Awaited<ReturnType<typeof readLayout>>, journal: { region: BlockRegion; ringId: string; lastSeq: number }) {
  let layout = first;
  for (let read = 1; ; read++) {
    if (layout.info.journalLv.uuid !== journal.ringId) {
      throw new ThinlvError('HOST_REMOVED', `host ${options.host} was removed from ${options.vg} (and perhaps added again) while this daemon started`, { vg: options.vg, host: options.host });
    }
    const unreplayed = await unreplayedRecords(journal.region, journal.ringId, layout.info.appliedSeq, journal.lastSeq);
    if (unreplayed !== undefined) return { ...layout, unreplayed };
    if (read >= MAX_START_METADATA_READS) {
      throw new ThinlvError('HOST_START_FAILED', `the master kept replaying this host's journal past each metadata read (${read} reads); try again`, { vg: options.vg, host: options.host });
    }
    layout = await readLayout(deps, options.vg, options.host);
  }
}

function freeRangesOf(vg: VgLayout, host: string) {
  const free = vg.lvs.find((lv) => lv.name === hostLvNames(host).free);
  return free ? (linearSegments(free) ?? []) : [];
}

/** What start-up opened, closed in reverse order by stop() or by a failed start. */
class Resources {
  private readonly closers: (() => Promise<void> | void)[] = [];
  add(close: () => Promise<void> | void): void {
    this.closers.push(close);
  }
  async closeAll(): Promise<void> {
    for (const close of this.closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    this.closers.length = 0;
  }
}

async function openRegion(deps: HostDaemonDeps, location: RingLocation, resources: Resources): Promise<BlockRegion> {
  const region = await deps.regions.open(location);
  resources.add(() => region.close());
  return region;
}

/** Steps 2 of start-up: the local lock, then the lease; both released by `resources`. */
async function takeOwnership(deps: HostDaemonDeps, options: HostDaemonOptions, vg: VgLayout, resources: Resources): Promise<HeldLease> {
  const lock: HeldLock = await acquireLocalHostLock(options.vg, options.host, options.localLockDir);
  resources.add(() => lock.release());
  const location = leaseLocation(vg, options.host);
  const region = await openLeaseRegion(deps.regions, location);
  resources.add(() => region.close());
  // Lease timing must not jump with the wall clock (NTP steps): a monotonic clock.
  const leaseEffects = { region, nowMs: () => performance.now(), sleepMs: deps.sleepMs, log: (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => deps.log[level](data ?? {}, message) };
  deps.log.info({ vg: options.vg, host: options.host }, 'taking the host lease (waits out any previous holder)');
  const lease = await acquireLease(leaseEffects, { leaseId: location.ringId, holder: `${hostname()} pid ${process.pid}` }, { renewIntervalMs: options.leaseRenewMs ?? DEFAULT_LEASE_RENEW_MS });
  resources.add(() => lease.release());
  lease.startRenewing();
  return lease;
}

export async function startHostDaemon(deps: HostDaemonDeps, options: HostDaemonOptions): Promise<RunningHostDaemon> {
  const { vg: vgName, host } = options;
  const resources = new Resources();
  const phases = startPhases(deps);
  try {
    const first = await readLayout(deps, vgName, host);
    phases.done('metadata');
    const lease = await takeOwnership(deps, options, first.vg, resources);
    phases.done('lease');
    const journalLocation = ringLocation(first.vg, hostLvNames(host).journal);
    const journalRegion = withJournalWriteFaults(await openRegion(deps, journalLocation, resources), deps.faults);
    const grantsLocation = ringLocation(first.vg, hostLvNames(host).grants);
    const grantsRegion = await openRegion(deps, grantsLocation, resources);
    // A full journal waits (bounded) for the master to consume before an extend fails.
    const writer: RingWriter = await openRingWriter(journalRegion, { ringId: journalLocation.ringId, onFull: { waitMs: Math.max(1, Math.min(options.outOfSpaceWaitMs, MAX_FULL_WAIT_MS)) } });
    resources.add(() => writer.close());
    phases.done('journalWriter');
    const state = deps.openState(journalLocation.ringId);
    phases.done('state');
    const { vg, info, unreplayed } = await readUnreplayed(deps, options, first, { region: journalRegion, ringId: journalLocation.ringId, lastSeq: writer.lastSeq });
    phases.done('unreplayed');
    const journal = leasedJournal(writer, lease, { vg: vgName, host });
    const grantsRing = await FollowedRing.open({ region: grantsRegion, ringId: grantsLocation.ringId, log: deps.log, nowMs: deps.nowMs });
    phases.done('grantsReader');
    const running = await serveHost(deps, options, { vg, info, lease, journal, state, unreplayed, grantsRing, journalRingId: journalLocation.ringId, resources });
    phases.done('serve');
    phases.summary({ vg: vgName, host, unreplayedRecordCount: unreplayed.length });
    return running;
  } catch (error) {
    await resources.closeAll();
    if (error instanceof ThinlvError) throw error;
    throw new ThinlvError('HOST_START_FAILED', `host daemon for ${vgName}/${host} could not start: ${(error as Error).message}`, { vg: vgName, host }, { cause: error });
  }
}

/**
 * Times the steps of start-up (metadata read, lease, journal survey, ...) and logs them
 * at debug level, one line per step and a summary: start-up has a 2 s target (issue 14)
 * and the steps that bound it differ with the VG's size and the lease interval.
 */
function startPhases(deps: HostDaemonDeps): { done(phase: string): void; summary(data: Record<string, unknown>): void } {
  const startedMs = deps.nowMs();
  let lastMs = startedMs;
  const phaseMs: Record<string, number> = {};
  return {
    done(phase) {
      const nowMs = deps.nowMs();
      phaseMs[phase] = nowMs - lastMs;
      lastMs = nowMs;
      deps.log.debug({ phase, ms: phaseMs[phase] }, 'start-up step done');
    },
    summary(data) {
      deps.log.debug({ ...data, phaseMs, totalMs: lastMs - startedMs }, 'start-up steps');
    },
  };
}

type Opened = {
  readonly vg: VgLayout;
  readonly info: { readonly appliedSeq: number };
  readonly lease: HeldLease;
  readonly journal: ReturnType<typeof leasedJournal>;
  readonly state: HostState;
  readonly unreplayed: readonly UnreplayedRecord[];
  readonly grantsRing: FollowedRing;
  readonly journalRingId: string;
  readonly resources: Resources;
};

/** The allocator over what start-up opened; `refresh` re-reads metadata for it (claims wait on it). */
function buildAllocator(deps: HostDaemonDeps, options: HostDaemonOptions, opened: Opened, refresh: () => Promise<void>): HostAllocator {
  const { vg, journal, state, lease } = opened;
  const host = options.host;
  return new HostAllocator(
    {
      host,
      vg,
      freeRanges: freeRangesOf(vg, host),
      unreplayed: opened.unreplayed,
      appliedSeq: opened.info.appliedSeq,
      lastGrantGeneration: state.grantGeneration(),
      activeLvs: state.listActiveLvs().map((a) => a.lv),
      outOfSpaceWaitMs: options.outOfSpaceWaitMs,
      ...(options.claimWaitMs === undefined ? {} : { claimWaitMs: options.claimWaitMs }),
    },
    {
      journal,
      dm: leasedDeviceMapper(deps.dm, lease, { vg: vg.name, host }),
      nowMs: deps.nowMs,
      sleepMs: deps.sleepMs,
      dmName,
      refreshMetadata: refresh,
      onActivityChange: async (activeLvs, changed) => {
        if (changed.table === null) state.unsetActiveLv(changed.lv);
        else state.setActiveLv({ lv: changed.lv, tableText: formatDmTable(changed.table), loadedAtMs: deps.nowMs() });
        // The master keeps the latest count; host removal refuses a host that has any.
        await journal.append({ kind: 'activity', activeLvCount: activeLvs.length });
      },
    },
  );
}

/** Builds the allocator over what start-up opened, and serves until stopped. */
async function serveHost(deps: HostDaemonDeps, options: HostDaemonOptions, opened: Opened): Promise<RunningHostDaemon> {
  const { vg: vgName, host } = options;
  // The closures below keep what they name for the daemon's life: never `opened`, whose
  // start-up report would outlive every refresh (megabytes on a large pool).
  const { vg, lease, state, resources, journalRingId } = opened;
  let settleStop: (stop: DaemonStop) => void = () => undefined;
  const stopped = new Promise<DaemonStop>((resolve) => (settleStop = resolve));
  let refresh: () => Promise<void> = () => Promise.resolve();
  const allocator = buildAllocator(deps, options, opened, () => refresh());
  const halt = (stop: DaemonStop & { error: ThinlvError }): void => {
    allocator.halt(stop.error);
    settleStop(stop);
  };
  lease.onLost((error) => halt({ reason: 'lease lost', error }));
  const gone = await allocator.recover();
  if (gone.length > 0) deps.log.warn({ lvs: gone }, 'LVs listed active here have no device any more (a reboot?): forgotten and released');
  // An extend writes no SQLite (it is on the hot path): the state keeps the set of active
  // LVs, written on activate and deactivate, and their tables as of a clean stop. A
  // restart rebuilds every table from metadata and the journal (recover()).
  resources.add(() => {
    for (const [lv, table] of allocator.activeTables()) state.setActiveLv({ lv, tableText: formatDmTable(table), loadedAtMs: deps.nowMs() });
  });

  let lowWaterExtents = readThinlvVg(vg).settings.lowWaterExtents;
  refresh = metadataRefresher({
    textKey: () => vgTextKey(deps.lvm, vgName),
    read: () => readHeldLayout(deps, vgName, allocator.layout()),
    apply: async (fresh) => {
      const thinlv = readThinlvVg(fresh);
      const info = thinlv.hosts.get(host);
      if (info === undefined || info.journalLv.uuid !== journalRingId) {
        // Removed (or removed and re-added): this daemon's journal is gone; never write again.
        halt({ reason: 'removed', error: new ThinlvError('HOST_REMOVED', `host ${host} is no longer a member of ${vgName} with this journal: this daemon stopped serving`, { vg: vgName, host }) });
        return;
      }
      lowWaterExtents = thinlv.settings.lowWaterExtents;
      await allocator.refreshMetadata(fresh, info.appliedSeq, thinlv);
    },
  });
  const pollGrants = grantFollower({
    ring: opened.grantsRing,
    allocator,
    state,
    log: deps.log,
    faults: deps.faults,
    beforeWrite: () => lease.ensureHeld(),
    ownerId: lease.ownerId,
    onStop: (reason) => halt({ reason: `stop requested: ${reason}`, error: new ThinlvError('HOST_REMOVED', `host ${host} is being removed from ${vgName} (${reason}): this daemon stopped serving`, { vg: vgName, host }) }),
  });
  await pollGrants();

  const handler = hostRequestHandler({ vg: vgName, host, allocator, extentSizeBytes: vg.extentSizeSectors * 512, lowWaterExtents: () => lowWaterExtents, deviceMapperPresent: deps.deviceMapperPresent, refreshMetadata: refresh });
  deps.observer?.watchAllocator(allocator);
  const server = await startSocketServer({ path: options.socketPath, log: deps.log, handler: deps.observer?.observeRequests(handler) ?? handler });
  resources.add(() => server.close());
  const loop = backgroundLoop(deps, options, { pollGrants, refresh, waiting: () => allocator.isWaitingForGrant() });
  resources.add(() => loop.stop());
  return { allocator, server, stopped, stop: () => resources.closeAll() };
}


/** Polls the grants ring and re-reads metadata now and then, until stopped. */
function backgroundLoop(deps: HostDaemonDeps, options: HostDaemonOptions, work: { pollGrants: () => Promise<void>; refresh: () => Promise<void>; waiting: () => boolean }) {
  let stopping = false;
  const done = (async () => {
    let lastRefreshMs = deps.nowMs();
    while (!stopping) {
      await deps.sleepMs(work.waiting() ? WAITING_GRANT_POLL_MS : (options.grantPollMs ?? DEFAULT_GRANT_POLL_MS));
      if (stopping) break;
      try {
        await work.pollGrants();
        if (deps.nowMs() - lastRefreshMs >= (options.metadataRefreshMs ?? DEFAULT_METADATA_REFRESH_MS)) {
          lastRefreshMs = deps.nowMs();
          await work.refresh();
        }
      } catch (error) {
        deps.log.error({ err: error }, 'background step failed; retrying');
      }
    }
  })();
  return {
    async stop() {
      stopping = true;
      await done;
    },
  };
}

