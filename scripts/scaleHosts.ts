// In-process hosts for bench:scale: each is thinlv's real HostAllocator over the host's
// real journal ring on the bench's VG (an O_DIRECT|O_DSYNC RingWriter, group commit
// included), following its real grants ring with the daemon's own grantFollower, and
// taking in the master's commits as the daemon does (refreshMetadata). What is left out
// is only the daemon's shell: its socket, SQLite, the lease and device-mapper (no LV is
// active). A month of growth through 64 daemon processes and a socket request per
// extend would cost hours of this machine's time and measure nothing more about
// fragmentation or metadata size; the daemon's own start-up and RSS are measured as a
// process separately (benchScale.ts).

import { openRingReader, openRingWriter, type BlockRegion, type RingWriter } from '../journal/index.js';
import { HostAllocator, type HostJournal } from '../src/host/allocator.js';
import { grantFollower } from '../src/host/grantFollower.js';
import { hostLvNames, readThinlvVg } from '../src/format/thinlvVg.js';
import { createLogger } from '../src/log.js';
import { linearSegments, type VgMetadata } from '../src/metadata/vgModel.js';
import { encodeJournalRecord } from '../src/records/records.js';
import { ringLocation, type RegionOpener } from '../src/rings/ringRegions.js';
import type { HostState } from '../src/state/hostState.js';

export class ScaleHost {
  private constructor(
    readonly host: string,
    readonly allocator: HostAllocator,
    private readonly writer: RingWriter,
    private readonly regions: readonly BlockRegion[],
    private readonly followGrants: () => Promise<void>,
  ) {}

  /** Opens the host's rings on `vg` (its metadata now) and builds its allocator as the daemon does at start-up. */
  static async open(regions: RegionOpener, vg: VgMetadata, host: string): Promise<ScaleHost> {
    const names = hostLvNames(host);
    const info = readThinlvVg(vg).hosts.get(host);
    if (info === undefined) throw new Error(`host ${host} is not a member of ${vg.name}`);
    const journalLocation = ringLocation(vg, names.journal);
    const journalRegion = await regions.open(journalLocation);
    const writer = await openRingWriter(journalRegion, { ringId: journalLocation.ringId });
    const grantsLocation = ringLocation(vg, names.grants);
    const grantsRegion = await regions.open(grantsLocation);
    const grantsReader = await openRingReader(grantsRegion, { ringId: grantsLocation.ringId });
    const journal: HostJournal = {
      append: (record) => writer.append(encodeJournalRecord(record)),
      consumedSeq: () => writer.readConsumedSeq(),
    };
    const free = vg.lvs.find((lv) => lv.name === names.free);
    const allocator: HostAllocator = new HostAllocator(
      { host, vg, freeRanges: free ? (linearSegments(free) ?? []) : [], unreplayed: [], appliedSeq: info.appliedSeq, lastGrantGeneration: 0, outOfSpaceWaitMs: 0 },
      {
        journal,
        dm: { activate: async () => undefined, reload: async () => undefined, deactivate: async () => undefined },
        nowMs: () => Date.now(),
        sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        dmName: (vgName, lv) => `${vgName}-${lv}`,
        // No extend here passes an LV's virtual size, the only thing that asks for a refresh.
        refreshMetadata: async () => undefined,
      },
    );
    const state = { setGrantGeneration: () => undefined } as unknown as HostState;
    const followGrants = grantFollower({
      ring: { current: async () => grantsReader },
      allocator,
      state,
      log: createLogger('silent'),
      beforeWrite: async () => undefined,
      ownerId: `bench-scale-${host}`,
      onStop: (reason) => {
        throw new Error(`host ${host} was asked to stop: ${reason}`);
      },
    });
    return new ScaleHost(host, allocator, writer, [journalRegion, grantsRegion], followGrants);
  }

  get poolExtentCount(): number {
    return this.allocator.status().poolExtentCount;
  }

  /** After a master pass: apply new grants, then take in the committed metadata (the daemon's grant poll and refresh). */
  async afterPass(vg: VgMetadata, appliedSeq: number): Promise<void> {
    await this.followGrants();
    await this.allocator.refreshMetadata(vg, appliedSeq);
  }

  async close(): Promise<void> {
    await this.writer.close();
    for (const region of this.regions) await region.close();
  }
}
