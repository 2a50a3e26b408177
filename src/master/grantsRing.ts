// The master's side of a host's grants ring (master -> host): append a record, ask
// whether a grant is already there, and recreate the ring when it cannot be read.
//
// Every record on a grants ring is a notice: a grant is a snapshot of the host's pool as
// metadata holds it (at a generation metadata also holds), a return request or a shortage
// is advice, a stop asks a daemon to exit. None is the only copy of anything. So a ring
// whose header or consumer block is damaged (a bit flipped on the LUN) is recreated, and
// the record is written to the new ring: the host's daemon sees the new ring's header and
// reads it from its start (src/host/followedRing.ts). Without this, the host's pool was
// never refilled again until the host was removed and added back.

import { createRing, openRingReader, openRingWriter, type BlockRegion, type RingWriter } from '../../journal/index.js';
import { hostLvNames } from '../format/thinlvVg.js';
import type { VgMetadata } from '../metadata/vgModel.js';
import { decodeGrantRecord } from '../records/records.js';
import { ringLocation, type RingLocation } from '../rings/ringRegions.js';
import { unreadableRing } from '../rings/unreadableRing.js';
import type { MasterDeps } from './replayPass.js';

/** Appends one record to the host's grants ring (recreating a ring it cannot read), then closes the writer and its region. */
export async function appendToGrantsRing(deps: MasterDeps, vg: VgMetadata, host: string, payload: Uint8Array): Promise<void> {
  const location = ringLocation(vg, hostLvNames(host).grants);
  const region = await deps.regions.open(location);
  try {
    const writer = await openOrRecreate(deps, region, location, host);
    try {
      await writer.append(payload);
    } finally {
      await writer.close();
    }
  } finally {
    await region.close();
  }
}

async function openOrRecreate(deps: MasterDeps, region: BlockRegion, location: RingLocation, host: string): Promise<RingWriter> {
  try {
    return await openRingWriter(region, { ringId: location.ringId });
  } catch (error) {
    if (!unreadableRing(error)) throw error;
    deps.log.warn({ host, ringId: location.ringId, err: error }, "the host's grants ring cannot be read: recreating it (its records are notices of what metadata holds)");
  }
  await createRing(region, { ringId: location.ringId, force: true, nowMs: deps.nowMs });
  await deps.faults.hit('master.grantsRingRecreated');
  return openRingWriter(region, { ringId: location.ringId });
}

/**
 * Whether the host's grants ring already holds its grant of `generation` (or a later
 * one) where the host sees it: in a record not yet consumed (it will apply it), or as the
 * last consumed record (it applied it before consuming). A master session re-sends every
 * host's grant on its first pass, in case an earlier master died between a commit and
 * its grant write; when the grant is there, the re-send would change nothing for the
 * host (it ignores a generation it has) and costs a writer's open of the ring (a read of
 * the whole ring, and a write of up to 1 MiB to clear a torn span). This costs a few
 * block reads. Anything it cannot tell (a consumed record of another kind, an older
 * ring, a ring it cannot read) answers false, and the grant is written as before.
 */
export async function grantOnRing(deps: MasterDeps, vg: VgMetadata, host: string, generation: number): Promise<boolean> {
  const location = ringLocation(vg, hostLvNames(host).grants);
  const region = await deps.regions.open(location);
  try {
    // A reader that only looks (it never consumes: the host does), so no survey.
    const reader = await openRingReader(region, { ringId: location.ringId, survey: false });
    const unconsumed = (await reader.read({ fromSeq: reader.consumedSeq + 1 })).records;
    const consumed = await reader.readConsumedRecord();
    return [...(consumed === undefined ? [] : [consumed]), ...unconsumed].some((record) => {
      const decoded = decodeGrantRecord(record.payload);
      return decoded.ok && decoded.record.kind === 'grant' && decoded.record.generation >= generation;
    });
  } catch (error) {
    if (unreadableRing(error)) return false;
    throw error;
  } finally {
    await region.close();
  }
}
