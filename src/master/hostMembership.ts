// Hosts joining and leaving a thinlv VG.
//
// host add (resumable: each step checks what is already done)
//   1. commit: create thinlv_<host>_journal (16 MiB) and _grants (1 MiB), each one
//      contiguous segment, with cursors thinlv_applied_seq=0 and thinlv_grant_gen=0
//   2. initialise the journal ring, then the grants ring, identified by their
//      LVs' uuids. A ring that already carries its LV's uuid was initialised by
//      an earlier run; anything else on those extents is stale and overwritten.
//   The pool starts empty; the master's next pass grants the first quantum.
//
// host remove / declare-dead
//   1. replay passes until the host's journal holds nothing past its cursor; remove
//      then refuses a host whose last activity record reports active LVs
//      (declare-dead does not: the operator says the host is fenced)
//   2. take the host's lease (src/ownership), so that no daemon of the host writes
//      from now on and none can start:
//        remove        a daemon that renews it is asked to stop (a stop record in
//                      its grants ring); it finishes its requests, closes its journal
//                      and releases the lease; no answer within the bound: refused
//        declare-dead  a lease still renewed means the host runs: refused, unless the
//                      operator says --fenced, which takes the lease at once
//      then consume the grants ring past the stop record, so that if this command
//      stops short (say, HOST_ACTIVE below) a daemon started later does not stop again
//   3. replay to the end again (now nothing writes); remove re-checks active LVs
//   4. commit: remove the host's free, journal and grants LVs and clear its
//      ownership of LVs; the pool's extents return to VG free space. The lease block
//      lives in the journal LV, so it is abandoned, never written, after this commit:
//      those extents may belong to someone else from now on.
//   A crash anywhere before 4 leaves the host a member with a replayed journal and a
//   lease that stops being renewed; running the command again redoes every step.

import { hostname } from 'node:os';
import { createRing, openRingReader } from '../../journal/index.js';
import { ErrorCode, ThinlvError, assert } from '../errors.js';
import { ExtentSet } from '../extent/extentSet.js';
import type { PhysicalRange } from '../extent/types.js';
import { TAG, hostLvNames, readThinlvVg, validateHostName } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../lvm/commitBatch.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { extentSizeBytes, type VgMetadata } from '../metadata/vgModel.js';
import { acquireLease, DEFAULT_LEASE_RENEW_MS, probeLease, type HeldLease, type LeaseEffects } from '../ownership/index.js';
import { encodeGrantRecord } from '../records/records.js';
import { leaseLocation, openLeaseRegion, ringLocation } from '../rings/ringRegions.js';
import { unreadableRing } from '../rings/unreadableRing.js';
import { appendToGrantsRing } from './grantsRing.js';
import { runPass, MasterSession, type MasterDeps } from './replayPass.js';

/** Journal ring size: at one 4 KiB block per record, 4096 records between replays. */
export const JOURNAL_RING_BYTES = 16 * 1024 * 1024;
/** Grants ring size: grants are rare and small. */
export const GRANTS_RING_BYTES = 1024 * 1024;

/** The first free run of at least `extentCount` extents, since a ring must be one segment. */
function contiguousRun(free: ExtentSet, extentCount: number): PhysicalRange | undefined {
  const run = free.ranges().find((r) => r.extentCount >= extentCount);
  return run === undefined ? undefined : { pv: run.pv, firstExtent: run.firstExtent, extentCount };
}
/** Replay passes host removal runs before it gives up on a journal that keeps growing. */
export const MAX_REMOVAL_PASSES = 20;
/** How long `host remove` waits for a running daemon to stop. */
export const DEFAULT_STOP_WAIT_MS = 30_000;

export interface AddHostResult {
  readonly host: string;
  readonly createdLvs: readonly string[];
  readonly initialisedRings: readonly string[];
}

function hostError(code: string, message: string, data: Record<string, unknown>): ThinlvError {
  return new ThinlvError(code, message, data);
}

/** Ensures the ring on `lvName` carries its LV's identity, creating it when it does not. Returns whether it wrote. */
async function ensureRing(deps: MasterDeps, vg: VgMetadata, lvName: string): Promise<boolean> {
  const location = ringLocation(vg, lvName);
  const region = await deps.regions.open(location);
  try {
    try {
      await openRingReader(region, { ringId: location.ringId });
      return false;
    } catch (error) {
      if (!unreadableRing(error)) throw error;
    }
    // The LV is ours and new (its uuid is not in the header), so whatever the extents
    // held before belongs to nobody: overwrite it.
    await createRing(region, { ringId: location.ringId, force: true });
    return true;
  } finally {
    await region.close();
  }
}

export async function addHost(deps: MasterDeps, vgName: string, host: string): Promise<AddHostResult> {
  validateHostName(host);
  const names = hostLvNames(host);
  let vg = await readVgMetadata(deps.lvm, vgName);
  readThinlvVg(vg); // refuses a VG that is not formatted for thinlv
  const existing = new Set(vg.lvs.map((lv) => lv.name));
  const missing = [names.journal, names.grants].filter((name) => !existing.has(name));

  const createdLvs: string[] = [];
  if (missing.length > 0) {
    let free = computeFreeExtents(vg);
    const changes: MetadataChange[] = [];
    const extentBytes = extentSizeBytes(vg);
    for (const name of missing) {
      const ringBytes = name === names.journal ? JOURNAL_RING_BYTES : GRANTS_RING_BYTES;
      const extentCount = Math.max(1, Math.ceil(ringBytes / extentBytes));
      const run = contiguousRun(free, extentCount);
      if (run === undefined) {
        throw new ThinlvError(ErrorCode.insufficientExtents, `VG ${vgName} has no run of ${extentCount} free contiguous extents for ${name}; free space first`, { vg: vgName, lv: name, extentCount });
      }
      free = free.difference(ExtentSet.fromRanges([run]));
      const tags = name === names.journal ? [`${TAG.appliedSeq}0`, TAG.hostPending] : [`${TAG.grantGeneration}0`];
      changes.push({ kind: 'createLv', name, ranges: [run], tags, activationSkip: true });
      createdLvs.push(name);
    }
    vg = (await commitBatch(deps.lvm, vg, changes)).metadata;
    await deps.faults.hit('host.add.afterCommit');
  }
  // When both LVs existed already, either the host was added before (HOST_EXISTS
  // below) or a run crashed before initialising its rings (finished here).

  const initialisedRings: string[] = [];
  if (await ensureRing(deps, vg, names.journal)) initialisedRings.push(names.journal);
  await deps.faults.hit('host.add.afterJournalRing');
  if (await ensureRing(deps, vg, names.grants)) initialisedRings.push(names.grants);
  const completed = await markComplete(deps, vg, names.journal);

  if (createdLvs.length === 0 && initialisedRings.length === 0 && !completed) {
    throw hostError('HOST_EXISTS', `host ${host} is already a member of ${vgName}; nothing was changed`, { vg: vgName, host });
  }
  return { host, createdLvs, initialisedRings };
}

/**
 * Removes the journal's pending tag once both rings are initialised: from then on the master
 * reads the host's journal. Returns whether there was a tag to remove.
 */
async function markComplete(deps: MasterDeps, vg: VgMetadata, journalLv: string): Promise<boolean> {
  if (!vg.lvs.find((lv) => lv.name === journalLv)?.tags.includes(TAG.hostPending)) return false;
  await commitBatch(deps.lvm, vg, [{ kind: 'removeTag', lv: journalLv, tag: TAG.hostPending }]);
  return true;
}

export interface RemoveHostResult {
  readonly host: string;
  readonly replayedRecordCount: number;
  readonly returnedExtentCount: number;
  /** Whether a running daemon was asked to stop (remove), or its lease taken over (declare-dead --fenced). */
  readonly daemonStopped: boolean;
}

export interface RemoveHostOptions {
  /** declare-dead: the operator asserts the host is fenced, so its lease is taken even while renewed. */
  readonly fenced?: boolean | undefined;
  readonly leaseRenewMs?: number | undefined;
  readonly stopWaitMs?: number | undefined;
  /**
   * The clock of the host lease this command takes: default performance.now (monotonic)
   * and deps.sleepMs for every wait. A simulator gives its own, the renewal loop's sleeps
   * apart from the waits of taking the lease.
   */
  readonly leaseClock?: { readonly nowMs: () => number; readonly sleepMs?: (ms: number) => Promise<void>; readonly renewSleepMs?: (ms: number) => Promise<void> } | undefined;
}

/** Stops the host (see the top of this file), replays its journal to the end, then removes its LVs. */
export async function removeHost(deps: MasterDeps, vgName: string, host: string, mode: 'remove' | 'declare-dead' = 'remove', options: RemoveHostOptions = {}): Promise<RemoveHostResult> {
  validateHostName(host);
  const session = new MasterSession();
  let replayedRecordCount = await replayToEnd(deps, session, vgName, host);
  if (mode === 'remove') refuseActive(await readVgMetadata(deps.lvm, vgName), vgName, host);
  await deps.faults.hit('host.remove.afterReplay');

  const { lease, daemonStopped } = await takeHostLease(deps, await readVgMetadata(deps.lvm, vgName), host, mode, options);
  let removed = false;
  try {
    await consumeGrants(deps, await readVgMetadata(deps.lvm, vgName), host);
    replayedRecordCount += await replayToEnd(deps, session, vgName, host);
    await deps.faults.hit('host.remove.afterLease');
    const vg = await readVgMetadata(deps.lvm, vgName);
    if (mode === 'remove') refuseActive(vg, vgName, host);
    const returnedExtentCount = await commitRemoval(deps, vg, host, lease);
    removed = true;
    return { host, replayedRecordCount, returnedExtentCount, daemonStopped };
  } finally {
    // Released only when the host stays: after the removal commit its block may be anyone's.
    if (removed) lease.abandon();
    else await lease.release();
  }
}

/** Replay passes until the host's journal holds nothing past its cursor; returns the records replayed. */
async function replayToEnd(deps: MasterDeps, session: MasterSession, vgName: string, host: string): Promise<number> {
  let replayed = 0;
  for (let pass = 0; pass < MAX_REMOVAL_PASSES; pass++) {
    const before = readThinlvVg(await readVgMetadata(deps.lvm, vgName));
    if (!before.hosts.has(host)) {
      throw hostError('UNKNOWN_HOST', `host ${host} is not a member of ${vgName}`, { vg: vgName, host, members: [...before.hosts.keys()] });
    }
    const result = await runPass(deps, session, vgName);
    replayed += result.replayedRecordCount;
    if (result.replayedRecordCount === 0 && !result.moreWaiting) return replayed;
  }
  throw hostError('HOST_STILL_WRITING', `host ${host}'s journal kept growing through ${MAX_REMOVAL_PASSES} replay passes: stop its daemon (or fence it) and retry`, { vg: vgName, host });
}

function refuseActive(vg: VgMetadata, vgName: string, host: string): void {
  const activeLvCount = readThinlvVg(vg).hosts.get(host)?.activeLvCount ?? 0;
  // Its pool and journal would vanish under LVs that are still writing.
  if (activeLvCount > 0) {
    throw hostError('HOST_ACTIVE', `host ${host} reports ${activeLvCount} active LVs: deactivate them there first, or, if the host is fenced, use "thinlv host declare-dead ${vgName} ${host} --fenced"`, {
      vg: vgName,
      host,
      activeLvCount,
    });
  }
}

function leaseEffects(deps: MasterDeps, region: LeaseEffects['region'], clock: RemoveHostOptions['leaseClock']): LeaseEffects {
  return {
    region,
    // Lease timing must not jump with the wall clock (NTP steps): a monotonic clock.
    nowMs: clock?.nowMs ?? (() => performance.now()),
    sleepMs: clock?.sleepMs ?? deps.sleepMs,
    ...(clock?.renewSleepMs === undefined ? {} : { renewSleepMs: clock.renewSleepMs }),
    log: (level, message, data) => deps.log[level](data ?? {}, message),
  };
}

/**
 * Takes the host's lease from whatever daemon holds it (step 2 above). The region
 * stays open with the lease: released (or abandoned) by the caller.
 */
async function takeHostLease(deps: MasterDeps, vg: VgMetadata, host: string, mode: 'remove' | 'declare-dead', options: RemoveHostOptions): Promise<{ lease: HeldLease & { abandon(): void }; daemonStopped: boolean }> {
  const location = leaseLocation(vg, host);
  const region = await openLeaseRegion(deps.regions, location);
  const effects = leaseEffects(deps, region, options.leaseClock);
  const renewIntervalMs = options.leaseRenewMs ?? DEFAULT_LEASE_RENEW_MS;
  try {
    const probe = await probeLease(effects, location.ringId, { renewIntervalMs });
    const alive = probe.state === 'alive';
    if (alive && mode === 'declare-dead' && options.fenced !== true) {
      throw hostError('HOST_ALIVE', `host ${host}'s daemon (${probe.holder ?? 'unknown'}) still renews its lease, so the host is running: stop it and use "thinlv host remove", or, if the host is fenced (powered off or cut from the SAN), add --fenced`, {
        vg: vg.name,
        host,
        holder: probe.holder,
      });
    }
    if (alive && mode === 'remove') await stopDaemon(deps, vg, host, effects, { leaseId: location.ringId, ownerId: probe.ownerId }, { renewIntervalMs, stopWaitMs: options.stopWaitMs ?? DEFAULT_STOP_WAIT_MS });
    const identity = { leaseId: location.ringId, holder: `thinlv host ${mode} on ${hostname()}` };
    const lease = mode === 'declare-dead' && options.fenced === true ? await takeLeaseByForce(effects, identity, renewIntervalMs) : await acquireLease(effects, identity, { renewIntervalMs });
    lease.startRenewing();
    return { lease: withRegion(lease, region), daemonStopped: alive };
  } catch (error) {
    await region.close();
    throw error;
  }
}

/** Claims a forced takeover makes before giving up on a holder that keeps writing. */
export const MAX_FORCED_CLAIMS = 3;

/**
 * `--fenced`: the operator says the host can no longer write, so its lease is taken
 * without watching. If the holder is in fact still running, its next renewal finds the
 * claim and it stops; but a renewal that read the block just before the claim landed
 * may write over it once, so the claim is made again, a bounded number of times.
 */
async function takeLeaseByForce(effects: LeaseEffects, identity: { leaseId: string; holder: string }, renewIntervalMs: number): Promise<HeldLease> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await acquireLease(effects, identity, { renewIntervalMs, force: true });
    } catch (error) {
      if (!(error instanceof ThinlvError && error.code === 'LEASE_HELD') || attempt >= MAX_FORCED_CLAIMS) throw error;
    }
  }
}

/** The lease, closing its region once released or abandoned. */
function withRegion(lease: HeldLease, region: { close(): Promise<void> }): HeldLease & { abandon(): void } {
  return Object.assign(Object.create(lease) as HeldLease, {
    release: async () => {
      await lease.release();
      await region.close();
    },
    abandon: () => {
      lease.abandon();
      void region.close();
    },
  });
}

/** Asks a running daemon to stop and waits until it has released its lease (or stopped renewing it). */
async function stopDaemon(deps: MasterDeps, vg: VgMetadata, host: string, effects: LeaseEffects, session: { leaseId: string; ownerId: string | undefined }, bounds: { renewIntervalMs: number; stopWaitMs: number }): Promise<void> {
  const { leaseId, ownerId } = session;
  assert(ownerId !== undefined, 'a lease seen alive names its owner');
  await appendToGrantsRing(deps, vg, host, encodeGrantRecord({ kind: 'stop', reason: `thinlv host remove on ${hostname()}`, ownerId }));
  await deps.faults.hit('host.remove.afterStopAsked');
  const deadline = deps.nowMs() + bounds.stopWaitMs;
  for (;;) {
    const probe = await probeLease(effects, leaseId, { renewIntervalMs: bounds.renewIntervalMs });
    if (probe.state !== 'alive') return;
    if (deps.nowMs() >= deadline) {
      throw hostError('HOST_STILL_RUNNING', `host ${host}'s daemon (${probe.holder ?? 'unknown'}) was asked to stop and still runs after ${bounds.stopWaitMs} ms: stop it there (systemctl stop, or kill its pid) and retry`, {
        vg: vg.name,
        host,
        holder: probe.holder,
      });
    }
  }
}

/**
 * Consumes the host's grants ring to its end (the host's side; we hold its lease). A ring
 * that cannot be read (a damaged header: a bit flipped on the LUN) is left as it is: no
 * daemon can read it either, and the removal deletes it; refusing here would leave the
 * operator no way to remove the host and add it again with a new ring.
 */
async function consumeGrants(deps: MasterDeps, vg: VgMetadata, host: string): Promise<void> {
  const location = ringLocation(vg, hostLvNames(host).grants);
  const region = await deps.regions.open(location);
  try {
    const reader = await openRingReader(region, { ringId: location.ringId });
    const { records } = await reader.read({ fromSeq: reader.consumedSeq + 1 });
    const last = records.at(-1);
    if (last !== undefined) await reader.consume(last.seq);
  } catch (error) {
    if (!unreadableRing(error)) throw error;
    deps.log.warn({ vg: vg.name, host, err: error }, "the host's grants ring cannot be read; it goes with the host");
  } finally {
    await region.close();
  }
}

/** One commit: the host's LVs go, and so does its ownership of any thin LV. */
async function commitRemoval(deps: MasterDeps, vg: VgMetadata, host: string, lease: HeldLease): Promise<number> {
  const names = hostLvNames(host);
  const free = vg.lvs.find((lv) => lv.name === names.free);
  const returnedExtentCount = free ? free.segments.reduce((sum, s) => sum + s.extentCount, 0) : 0;
  const changes: MetadataChange[] = [names.free, names.journal, names.grants]
    .filter((name) => vg.lvs.some((lv) => lv.name === name))
    .map((name) => ({ kind: 'removeLv' as const, name }));
  // Its journal is replayed to the end, so no allocation of these LVs is still pending.
  for (const [lv, thin] of readThinlvVg(vg).thinLvs) {
    if (thin.owner === host) changes.push({ kind: 'removeTag', lv, tag: `${TAG.owner}${host}` });
  }
  // The lease must still be ours: otherwise a daemon may have started and written since the last pass.
  await lease.ensureHeld();
  // The seqno check refuses this commit if another master replayed in between.
  await commitBatch(deps.lvm, vg, changes);
  return returnedExtentCount;
}

/**
 * Clears a host's rejected-record finding (the count and the last reason), once the
 * operator has looked into it. Replay already skipped those records; this only
 * forgets that it did.
 */
export async function clearRejected(deps: MasterDeps, vgName: string, host: string): Promise<{ host: string; clearedCount: number }> {
  validateHostName(host);
  const vg = await readVgMetadata(deps.lvm, vgName);
  const info = readThinlvVg(vg).hosts.get(host);
  if (info === undefined) throw hostError('UNKNOWN_HOST', `host ${host} is not a member of ${vgName}`, { vg: vgName, host });
  const journal = hostLvNames(host).journal;
  const changes: MetadataChange[] = info.journalLv.tags
    .filter((tag) => tag.startsWith(TAG.rejectedCount) || tag.startsWith(TAG.rejectedLast))
    .map((tag) => ({ kind: 'removeTag' as const, lv: journal, tag }));
  if (changes.length > 0) await commitBatch(deps.lvm, vg, changes);
  return { host, clearedCount: info.rejectedCount };
}
