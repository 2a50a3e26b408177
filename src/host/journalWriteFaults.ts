// Fault point `host.journal.groupWrite`: the host's journal group-commit write, torn.
// Inert unless armed (with no armed fault point the region is returned as it is).
//
//   THINLV_FAULTS=host.journal.groupWrite:kill    the daemon dies just before its next
//                                                 group write: nothing of it lands
//   THINLV_FAULTS=host.journal.groupWrite:throw   the next group write lands only in
//                                                 part, then the daemon dies (SIGKILL)
//
// A torn write here is what a power cut or a SAN path failure leaves (journal/FORMAT.md,
// "Crash cases": any subset of a write's sectors): the write's span is read first, then
// written back with a random choice of its 512-byte sectors new and the rest as they
// were, either a prefix of them (a write cut short) or any subset (a device that
// reorders). Whole 4096-byte blocks are written, as O_DIRECT needs; sub-block tears are
// made by merging old and new sectors. Nothing the torn write carried was acknowledged:
// the process dies before the write returns.
//
// Only writes that start with a record (magic TLVR) are torn: the zeroing of the torn span
// at open is left alone, so an armed daemon gets through its start-up.

import type { BlockRegion } from '../../journal/index.js';
import { InjectedFault, noFaults, type FaultPoints } from '../faults.js';

export const JOURNAL_GROUP_WRITE_FAULT = 'host.journal.groupWrite';
const SECTOR_BYTES = 512;
/** "TLVR" as the first bytes of a record (its little-endian magic). */
const RECORD_MAGIC_BYTES = [0x54, 0x4c, 0x56, 0x52];

const startsWithRecord = (data: Uint8Array): boolean => RECORD_MAGIC_BYTES.every((byte, i) => data[i] === byte);

/** Which sectors of a write of `sectorCount` land: never all of them, possibly none. */
export function tornSectors(sectorCount: number, random: () => number): boolean[] {
  if (random() < 0.5) {
    const landed = Math.floor(random() * sectorCount);
    return Array.from({ length: sectorCount }, (_, i) => i < landed);
  }
  const landed = Array.from({ length: sectorCount }, () => random() < 0.5);
  if (landed.every(Boolean)) landed[Math.floor(random() * sectorCount)] = false;
  return landed;
}

export function withJournalWriteFaults(region: BlockRegion, faults: FaultPoints | undefined, random: () => number = Math.random): BlockRegion {
  if (faults === undefined || faults === noFaults) return region;
  return {
    sizeBytes: region.sizeBytes,
    description: region.description,
    allocateBuffer: (lengthBytes) => region.allocateBuffer(lengthBytes),
    read: (offsetBytes, lengthBytes) => region.read(offsetBytes, lengthBytes),
    // Kept, so the writer's open survey reuses its buffers here too (journal/src/ringChain.ts).
    ...(region.readInto === undefined ? {} : { readInto: (offsetBytes: number, target: Uint8Array) => region.readInto!(offsetBytes, target) }),
    close: () => region.close(),
    async write(offsetBytes, data) {
      if (!startsWithRecord(data)) return region.write(offsetBytes, data);
      try {
        await faults.hit(JOURNAL_GROUP_WRITE_FAULT);
      } catch (error) {
        if (!(error instanceof InjectedFault)) throw error;
        const before = await region.read(offsetBytes, data.length);
        const merged = region.allocateBuffer(data.length);
        tornSectors(data.length / SECTOR_BYTES, random).forEach((landed, sector) => {
          const start = sector * SECTOR_BYTES;
          merged.set((landed ? data : before).subarray(start, start + SECTOR_BYTES), start);
        });
        await region.write(offsetBytes, merged);
        process.kill(process.pid, 'SIGKILL');
        // SIGKILL is not delivered synchronously everywhere: never let the write "succeed".
        await new Promise<never>(() => {});
      }
      return region.write(offsetBytes, data);
    },
  };
}
