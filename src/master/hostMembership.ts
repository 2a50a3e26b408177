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
//   2. commit: remove the host's free, journal and grants LVs; the pool's
//      extents return to VG free space
//   A crash between 1 and 2 leaves the host a member with a fully replayed
//   journal; running the command again repeats 1 (a no-op) and does 2.

import { isJournalError, createRing, openRingReader } from '../../journal/index.js';
import { ErrorCode, ThinlvError } from '../errors.js';
import { ExtentSet } from '../extent/extentSet.js';
import type { PhysicalRange } from '../extent/types.js';
import { TAG, hostLvNames, readThinlvVg, validateHostName } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../lvm/commitBatch.js';
import type { MetadataChange } from '../metadata/applyChanges.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { extentSizeBytes, type VgMetadata } from '../metadata/vgModel.js';
import { ringLocation } from '../rings/ringRegions.js';
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
      const stale = isJournalError(error) && ['NOT_A_RING', 'HEADER_CORRUPT', 'RING_VERSION', 'RING_ID_MISMATCH', 'CONSUMER_CORRUPT', 'CONSUMER_AHEAD'].includes(error.code);
      if (!stale) throw error;
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
      const tag = name === names.journal ? `${TAG.appliedSeq}0` : `${TAG.grantGeneration}0`;
      changes.push({ kind: 'createLv', name, ranges: [run], tags: [tag], activationSkip: true });
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

  if (createdLvs.length === 0 && initialisedRings.length === 0) {
    throw hostError('HOST_EXISTS', `host ${host} is already a member of ${vgName}; nothing was changed`, { vg: vgName, host });
  }
  return { host, createdLvs, initialisedRings };
}

export interface RemoveHostResult {
  readonly host: string;
  readonly replayedRecordCount: number;
  readonly returnedExtentCount: number;
}

/** Replays the host's journal to the end, then removes its LVs, returning its pool to VG free space. */
export async function removeHost(deps: MasterDeps, vgName: string, host: string, mode: 'remove' | 'declare-dead' = 'remove'): Promise<RemoveHostResult> {
  validateHostName(host);
  const names = hostLvNames(host);
  const session = new MasterSession();
  let replayedRecordCount = 0;
  for (let pass = 0; ; pass++) {
    if (pass >= MAX_REMOVAL_PASSES) {
      throw hostError('HOST_STILL_WRITING', `host ${host}'s journal kept growing through ${MAX_REMOVAL_PASSES} replay passes: stop its daemon (or fence it) and retry`, { vg: vgName, host });
    }
    const before = readThinlvVg(await readVgMetadata(deps.lvm, vgName));
    if (!before.hosts.has(host)) {
      throw hostError('UNKNOWN_HOST', `host ${host} is not a member of ${vgName}`, { vg: vgName, host, members: [...before.hosts.keys()] });
    }
    const result = await runPass(deps, session, vgName);
    replayedRecordCount += result.replayedRecordCount;
    if (result.replayedRecordCount === 0 && !result.moreWaiting) break;
  }
  await deps.faults.hit('host.remove.afterReplay');

  const vg = await readVgMetadata(deps.lvm, vgName);
  const activeLvCount = readThinlvVg(vg).hosts.get(host)?.activeLvCount ?? 0;
  if (mode === 'remove' && activeLvCount > 0) {
    // Its pool and journal would vanish under LVs that are still writing.
    throw hostError('HOST_ACTIVE', `host ${host} reports ${activeLvCount} active LVs: deactivate them there first, or, if the host is fenced, use "thinlv host declare-dead ${vgName} ${host}"`, {
      vg: vgName,
      host,
      activeLvCount,
    });
  }
  const free = vg.lvs.find((lv) => lv.name === names.free);
  const returnedExtentCount = free ? free.segments.reduce((sum, s) => sum + s.extentCount, 0) : 0;
  const changes: MetadataChange[] = [names.free, names.journal, names.grants]
    .filter((name) => vg.lvs.some((lv) => lv.name === name))
    .map((name) => ({ kind: 'removeLv' as const, name }));
  // The seqno check refuses this commit if another master replayed in between. A
  // record the host appends after the last pass above would be lost with its
  // journal, which is why the host must be stopped (remove) or fenced (declare-dead).
  await commitBatch(deps.lvm, vg, changes);
  return { host, replayedRecordCount, returnedExtentCount };
}
