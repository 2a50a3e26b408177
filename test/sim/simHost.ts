// One host's allocator process, composed as src/host/hostDaemon.ts composes it
// (read metadata read-only, open the journal writer, collect the unreplayed
// records, rebuild the allocator, reload active tables, follow the grants ring),
// over simulated effects. Not simulated: the socket (requests are method calls)
// and the local flock (a second daemon here runs on another machine).
// A crash drops this object; the next incarnation starts from what the disk,
// the metadata, the host's "SQLite" state and the kernel's dm tables hold.
// The host's lease is the real one (src/ownership) on the simulated disk and
// clock, taken before anything is written, as startHostDaemon takes it: a second
// daemon for the host waits out the first or is refused, and a daemon that loses
// its lease, is asked to stop (host remove) or finds itself removed stops: it
// halts its allocator, releases the lease (unless lost) and exits.
// A paused daemon (freezer.ts) wakes from no sleep until thawed, so its renewals
// stop; every journal write is first shown to the I8 ledger (journalWriters.ts).

import { MAX_FULL_WAIT_MS, openRingReader, openRingWriter, type BlockRegion, type RingWriter } from '../../journal/index.js';
import type { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { dmName } from '../../src/dm/deviceMapper.js';
import { ThinlvError } from '../../src/errors.js';
import type { FaultPoints } from '../../src/faults.js';
import { formatDmTable, type DmTableLine } from '../../src/extent/dmTable.js';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { HostAllocator, type HostDeviceMapper, type HostJournal, type UnreplayedRecord } from '../../src/host/allocator.js';
import { FollowedRing } from '../../src/host/followedRing.js';
import { grantFollower } from '../../src/host/grantFollower.js';
import { leasedJournal } from '../../src/host/leasedJournal.js';
import { leasedDeviceMapper } from '../../src/host/leasedDeviceMapper.js';
import { metadataRefresher } from '../../src/host/metadataRefresh.js';
import { unreplayedRecords } from '../../src/host/unreplayedRecords.js';
import { createLogger } from '../../src/log.js';
import { vgTextKey } from '../../src/lvm/readVgReport.js';
import type { LvmRunner } from '../../src/lvm/runLvm.js';
import { linearSegments, type VgLayout } from '../../src/metadata/vgModel.js';
import { acquireLease, type HeldLease } from '../../src/ownership/index.js';
import type { JournalRecord } from '../../src/records/records.js';
import { leaseLocation, openLeaseRegion, ringLocation, type RegionOpener } from '../../src/rings/ringRegions.js';
import type { ActiveLv, HostState } from '../../src/state/hostState.js';
import type { JournalWriters } from './journalWriters.js';
import type { SharedReports } from './sharedReports.js';
import type { SimKernel, SimProcess } from './simKernel.js';

export const silentLog = createLogger('silent');

/** A host's SQLite state (synchronous=FULL: what was written survives a crash), keyed by its journal LV's uuid. */
export class SimHostStateStore {
  private readonly byRing = new Map<string, { generation: number; active: Map<string, ActiveLv> }>();

  open(ringId: string, proc: SimProcess, kernel: SimKernel): HostState {
    let row = this.byRing.get(ringId);
    if (row === undefined) {
      row = { generation: 0, active: new Map() };
      this.byRing.set(ringId, row);
    }
    const state = row;
    const stub = {
      grantGeneration: () => state.generation,
      setGrantGeneration: (generation: number) => {
        kernel.check(proc, 'state.setGrantGeneration');
        if (generation <= state.generation) return false;
        state.generation = generation;
        return true;
      },
      listActiveLvs: () => [...state.active.values()].sort((a, b) => (a.lv < b.lv ? -1 : a.lv > b.lv ? 1 : 0)),
      setActiveLv: (activeLv: ActiveLv) => {
        kernel.check(proc, 'state.setActiveLv');
        state.active.set(activeLv.lv, activeLv);
      },
      unsetActiveLv: (lv: string) => {
        kernel.check(proc, 'state.unsetActiveLv');
        return state.active.delete(lv);
      },
    };
    return stub as unknown as HostState;
  }
}

export interface SimHostDeps {
  readonly vgName: string;
  readonly host: string;
  readonly proc: SimProcess;
  readonly kernel: SimKernel;
  readonly lvm: LvmRunner;
  /** Reads metadata through `lvm` (see sharedReports.ts). */
  readonly reports: SharedReports;
  readonly regions: RegionOpener;
  /** This host machine's kernel device-mapper: outlives the daemon. */
  readonly dm: FakeDeviceMapper;
  readonly states: SimHostStateStore;
  readonly faults: FaultPoints;
  readonly outOfSpaceWaitMs: number;
  readonly claimWaitMs: number;
  /**
   * Ignore a grant whose snapshot is older than the metadata the allocator holds: sidesteps
   * the stale-grant double allocation the simulator found (test/sim/README.md), so a run
   * can go on to find other bugs. Off by default.
   */
  readonly skipStaleGrants?: boolean;
  /** The lease renew interval R (the master's host removal must use the same). */
  readonly leaseRenewMs: number;
  /** Draws this daemon's lease owner id (deterministic in the simulator). */
  readonly newOwnerId: () => string;
  /** While the daemon is frozen (freezer.ts), what its effects and timers' wake-ups wait for. */
  readonly effectGate?: (proc: SimProcess) => Promise<void> | undefined;
  /** I8: told when this daemon takes the lease and before each write to its journal (journalWriters.ts). */
  readonly journalWriters?: JournalWriters;
  /** A slow journal write: how long this record's append waits before it starts (0: none). */
  readonly journalDelayMs?: (record: JournalRecord) => number;
}

const MAX_START_METADATA_READS = 10;

export class SimHost {
  pendingOps = 0;
  /** Operations started on each LV and not yet settled (the simulator bounds the queue per LV). */
  readonly pendingByLv = new Map<string, number>();
  halted: string | undefined;
  /** Set once a halted daemon has released its lease and exited (the simulator restarts it, like systemd). */
  exited = false;

  private constructor(
    readonly deps: SimHostDeps,
    readonly lease: HeldLease,
    /** Records this incarnation wrote and saw acknowledged by the ring, by seq. */
    readonly written: Map<number, JournalRecord>,
    readonly allocator: HostAllocator,
    readonly journalRingId: string,
    readonly pollGrants: () => Promise<void>,
    readonly refresh: () => Promise<void>,
  ) {}

  get proc(): SimProcess {
    return this.deps.proc;
  }

  /** As startHostDaemon: an error that is not thinlv's own becomes HOST_START_FAILED. */
  static async start(deps: SimHostDeps): Promise<SimHost> {
    try {
      return await SimHost.open(deps);
    } catch (error) {
      if (error instanceof ThinlvError || !deps.proc.alive) throw error;
      throw new ThinlvError('HOST_START_FAILED', `host daemon for ${deps.vgName}/${deps.host} could not start: ${(error as Error).message}`, { host: deps.host }, { cause: error });
    }
  }

  private static async open(deps: SimHostDeps): Promise<SimHost> {
    const { vgName, host, kernel, proc } = deps;
    const readLayout = async () => {
      const vg = await deps.reports.read(deps.lvm, vgName);
      const info = readThinlvVg(vg).hosts.get(host);
      if (info === undefined) throw new ThinlvError('UNKNOWN_HOST', `host ${host} is not a member of ${vgName}`, { host });
      return { vg, info };
    };
    let layout = await readLayout();
    const lease = await takeLease(deps, layout.vg);
    try {
      return await SimHost.serve(deps, lease, layout, readLayout);
    } catch (error) {
      // As Resources.closeAll: a failed start gives its lease back.
      if (proc.alive) await lease.release();
      throw error;
    }
  }

  private static async serve(deps: SimHostDeps, lease: HeldLease, first: { vg: VgLayout; info: { appliedSeq: number; journalLv: { uuid: string } } }, readLayout: () => Promise<typeof first>): Promise<SimHost> {
    const { vgName, host, kernel, proc } = deps;
    const sleep = sleepOf(deps);
    deps.journalWriters?.took(lease.leaseId, proc.toString());
    let layout = first;
    const journalLocation = ringLocation(layout.vg, hostLvNames(host).journal);
    const journalRegion = watchedWrites(await deps.regions.open(journalLocation), () => deps.journalWriters?.writes(lease.leaseId, proc.toString(), host));
    const grantsLocation = ringLocation(layout.vg, hostLvNames(host).grants);
    const grantsRegion = await deps.regions.open(grantsLocation);
    const writer: RingWriter = await openRingWriter(journalRegion, {
      ringId: journalLocation.ringId,
      onFull: { waitMs: Math.max(1, Math.min(deps.outOfSpaceWaitMs, MAX_FULL_WAIT_MS)) },
      nowMs: () => kernel.nowMs(),
      sleepMs: sleep,
    });
    // Keyed by the journal LV's uuid, as hostDaemon.ts opens it: a re-added host starts clean.
    const state = deps.states.open(journalLocation.ringId, proc, kernel);
    let unreplayed: UnreplayedRecord[] | undefined;
    for (let read = 1; ; read++) {
      if (layout.info.journalLv.uuid !== journalLocation.ringId) throw new ThinlvError('HOST_REMOVED', `host ${host} was removed while starting`, { host });
      unreplayed = await unreplayedRecords(journalRegion, journalLocation.ringId, layout.info.appliedSeq, writer.lastSeq);
      if (unreplayed !== undefined) break;
      if (read >= MAX_START_METADATA_READS) throw new ThinlvError('HOST_START_FAILED', 'the master kept replaying past each metadata read', { host });
      layout = await readLayout();
    }
    const { vg, info } = layout;
    const written = new Map<number, JournalRecord>();
    const leased = leasedJournal(writer, lease, { vg: vgName, host });
    const journal: HostJournal = {
      append: async (record) => {
        const delayMs = deps.journalDelayMs?.(record) ?? 0;
        if (delayMs > 0) await sleep(delayMs);
        const result = await leased.append(record);
        written.set(result.seq, record);
        return result;
      },
    };
    // As hostDaemon.ts: loads only while the lease is held, checked after the effect point
    // (where a paused daemon stops), right before the load, as on a real host.
    const leasedDm = leasedDeviceMapper(deps.dm, lease, { vg: vgName, host });
    const dm: HostDeviceMapper = {
      activate: async (name: string, table: readonly DmTableLine[]) => {
        await kernel.point(proc, 'dm.activate');
        await leasedDm.activate(name, table);
      },
      reload: async (name: string, table: readonly DmTableLine[]) => {
        await kernel.point(proc, 'dm.reload');
        await leasedDm.reload(name, table);
      },
      deactivate: async (name: string) => {
        await kernel.point(proc, 'dm.deactivate');
        await deps.dm.deactivate(name);
      },
    };
    let refresh: () => Promise<void> = async () => undefined;
    const allocator = new HostAllocator(
      {
        host,
        vg,
        freeRanges: freeRangesOf(vg, host),
        unreplayed,
        appliedSeq: info.appliedSeq,
        lastGrantGeneration: state.grantGeneration(),
        activeLvs: state.listActiveLvs().map((a) => a.lv),
        outOfSpaceWaitMs: deps.outOfSpaceWaitMs,
        claimWaitMs: deps.claimWaitMs,
      },
      {
        journal,
        dm,
        nowMs: () => kernel.nowMs(),
        sleepMs: sleep,
        dmName,
        refreshMetadata: () => refresh(),
        onActivityChange: async (activeLvs, changed) => {
          if (changed.table === null) state.unsetActiveLv(changed.lv);
          else state.setActiveLv({ lv: changed.lv, tableText: formatDmTable(changed.table), loadedAtMs: kernel.nowMs() });
          await journal.append({ kind: 'activity', activeLvCount: activeLvs.length });
        },
      },
    );
    let simHost: SimHost | undefined;
    let stopping: Promise<void> | undefined;
    let exitedEarly = false;
    let haltedFor: string | undefined;
    const halt = (reason: string) => {
      allocator.halt(new ThinlvError('HOST_REMOVED', `host ${host}: ${reason}`, { host }));
      haltedFor ??= reason;
      if (simHost !== undefined) simHost.halted ??= reason;
      // The daemon stops: no more requests, the lease released (a lost one is left alone), exit.
      stopping ??= (async () => {
        await lease.release();
        exitedEarly = true;
        if (simHost !== undefined) simHost.exited = true;
        kernel.crash(proc);
      })().catch(() => undefined);
    };
    lease.onLost(() => halt('lease lost'));
    // As hostDaemon.ts: a refresh first asks what names the text (vgTextKey: the simulated
    // lvm's textKey), and reads and applies it only when it is not the text last applied.
    refresh = metadataRefresher({
      textKey: () => vgTextKey(deps.lvm, vgName),
      read: () => deps.reports.read(deps.lvm, vgName),
      apply: async (fresh) => {
        const freshInfo = readThinlvVg(fresh).hosts.get(host);
        if (freshInfo === undefined || freshInfo.journalLv.uuid !== journalLocation.ringId) {
          halt('removed');
          return;
        }
        await allocator.refreshMetadata(fresh, freshInfo.appliedSeq);
      },
    });
    if (deps.skipStaleGrants === true) {
      const applyGrant = allocator.applyGrant.bind(allocator);
      const appliedSeqOf = () => (allocator as unknown as { appliedSeq: number }).appliedSeq;
      allocator.applyGrant = (grant) => (grant.kind === 'grant' && grant.appliedSeq < appliedSeqOf() ? false : applyGrant(grant));
    }
    await allocator.recover();
    const grantsRing = await FollowedRing.open({ region: grantsRegion, ringId: grantsLocation.ringId, log: silentLog, nowMs: () => kernel.nowMs() });
    const pollGrants = grantFollower({
      ring: grantsRing,
      allocator,
      state,
      log: silentLog,
      faults: deps.faults,
      beforeWrite: () => lease.ensureHeld(),
      ownerId: lease.ownerId,
      onStop: (reason) => halt(`stop requested: ${reason}`),
    });
    await pollGrants();
    simHost = new SimHost(deps, lease, written, allocator, journalLocation.ringId, pollGrants, refresh);
    simHost.halted = haltedFor;
    simHost.exited = exitedEarly;
    return simHost;
  }
}

/** As takeOwnership in hostDaemon.ts: the host's lease, renewed from now on. */
async function takeLease(deps: SimHostDeps, vg: VgLayout): Promise<HeldLease> {
  const location = leaseLocation(vg, deps.host);
  const region = await openLeaseRegion(deps.regions, location);
  const effects = { region, nowMs: () => deps.kernel.nowMs(), sleepMs: sleepOf(deps), newOwnerId: deps.newOwnerId };
  const lease = await acquireLease(effects, { leaseId: location.ringId, holder: `sim ${deps.proc}` }, { renewIntervalMs: deps.leaseRenewMs });
  lease.startRenewing();
  return lease;
}

/** The daemon's sleep: a frozen daemon's wake-up waits until it thaws (its renewals stop meanwhile). */
function sleepOf(deps: SimHostDeps): (ms: number) => Promise<void> {
  return async (ms) => {
    await deps.kernel.sleep(deps.proc, ms);
    await deps.effectGate?.(deps.proc);
  };
}

/** `region`, with `beforeWrite` called as each write starts (the I8 check). */
function watchedWrites(region: BlockRegion, beforeWrite: () => void): BlockRegion {
  const readInto = region.readInto?.bind(region);
  return {
    sizeBytes: region.sizeBytes,
    description: region.description,
    allocateBuffer: (lengthBytes) => region.allocateBuffer(lengthBytes),
    read: (offsetBytes, lengthBytes) => region.read(offsetBytes, lengthBytes),
    ...(readInto === undefined ? {} : { readInto }),
    write: (offsetBytes, data) => {
      beforeWrite();
      return region.write(offsetBytes, data);
    },
    close: () => region.close(),
  };
}

function freeRangesOf(vg: VgLayout, host: string) {
  const free = vg.lvs.find((lv) => lv.name === hostLvNames(host).free);
  return free ? (linearSegments(free) ?? []) : [];
}
