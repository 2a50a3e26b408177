// The VG's metadata and every host's journal read against it, for the reports that count
// what hosts have journaled and the master has not replayed yet (thinlv free, status, hosts,
// and the lvm-compatible lvs): read-only, on any host, with no daemon.
//
// The journals are read after the metadata, so each journal is read against an applied
// seq that may be out of date: harmless while the records after it are still in the ring
// (they are the ones this metadata lacks), but once the master has consumed past it the
// ring may no longer hold them, and the metadata is read again (as a host daemon does at
// its start, src/host/unreplayedRecords.ts).

import * as fs from 'node:fs';
import { isJournalError, openFileRegion, openRingReader, type BlockRegion, type RingReader } from '../../journal/index.js';
import { InvariantError, ThinlvError } from '../errors.js';
import { hostLvNames, readThinlvVg, type ThinlvHost } from '../format/thinlvVg.js';
import { readVgReport } from '../lvm/readVgReport.js';
import type { VgReport } from '../metadata/vgModel.js';
import type { JournalRecordBytes } from '../replay/planReplay.js';
import type { HostJournal } from './freeSpace.js';
import { ringLocation, type RegionOpener } from '../rings/ringRegions.js';
import type { CommandContext } from '../cli/context.js';

/** Reads of the metadata and journals, when the master keeps consuming past the metadata read. */
export const MAX_SNAPSHOT_ATTEMPTS = 3;
/** Reads of one journal (each up to the library's MAX_RECORDS_PER_READ): far more than the largest ring holds. */
export const MAX_JOURNAL_READ_CALLS = 64;

/** The metadata, and every host's journal read against it. */
export async function readSnapshot(context: CommandContext, vgName: string, firstRead?: Promise<VgReport>): Promise<{ vg: VgReport; journals: Map<string, HostJournal> }> {
  const regions = readOnlyRegionOpener();
  for (let attempt = 1; ; attempt++) {
    const vg = await (attempt === 1 && firstRead !== undefined ? firstRead : readVgReport(context.lvm, vgName));
    const journals = new Map<string, HostJournal>();
    let stale = false;
    // Every host's journal at once: each read waits on the LUN, not on the CPU.
    const hosts = [...readThinlvVg(vg).hosts.values()];
    const read = await Promise.all(hosts.map((host) => readHostJournal(regions, vg, host)));
    for (const [index, host] of hosts.entries()) {
      const journal = read[index]!;
      stale ||= journal === 'stale';
      journals.set(
        host.host,
        journal !== 'stale' ? journal : { readable: false, reason: `the master replayed past applied seq ${host.appliedSeq} while this read the VG, ${attempt} times; run thinlv free again` },
      );
    }
    if (!stale || attempt >= MAX_SNAPSHOT_ATTEMPTS) return { vg, journals };
    context.log.info({ vg: vgName, attempt }, 'the master replayed while free read the VG; reading it again');
  }
}

/**
 * The host's records after its applied seq; 'stale' when its ring is consumed past that
 * seq (the metadata is older than the ring). A journal that cannot be read is reported,
 * not fatal: the other hosts' numbers still stand.
 */
async function readHostJournal(regions: RegionOpener, vg: VgReport, host: ThinlvHost): Promise<HostJournal | 'stale'> {
  let region: BlockRegion | undefined;
  try {
    const location = ringLocation(vg, hostLvNames(host.host).journal);
    region = await regions.open(location);
    // A report reads from the consumer position on and never consumes: no survey of the whole ring.
    const reader = await openRingReader(region, { ringId: location.ringId, survey: false });
    if (reader.consumedSeq > host.appliedSeq) return 'stale';
    const records = await recordsAfter(reader, host.appliedSeq);
    if (records === undefined) return { readable: false, reason: `more than ${MAX_JOURNAL_READ_CALLS} reads of records; is the ring damaged?` };
    return { readable: true, records };
  } catch (error) {
    // A damaged ring, an I/O error, a ring LV thinlv cannot place: reported. A bug is not.
    if (isJournalError(error) || (error instanceof ThinlvError && !(error instanceof InvariantError))) {
      return { readable: false, reason: `${error.code}: ${error.message}` };
    }
    throw error;
  } finally {
    await region?.close();
  }
}

/** Every record after `appliedSeq` to the end of the ring's valid chain; undefined past the read bound. */
async function recordsAfter(reader: RingReader, appliedSeq: number): Promise<JournalRecordBytes[] | undefined> {
  const records: JournalRecordBytes[] = [];
  let fromSeq = appliedSeq + 1;
  for (let call = 0; call < MAX_JOURNAL_READ_CALLS; call++) {
    const { records: batch, stopReason } = await reader.read({ fromSeq });
    records.push(...batch);
    if (stopReason !== 'max-records' || batch.length === 0) return records;
    fromSeq = batch[batch.length - 1]!.seq + 1;
  }
  return undefined;
}

/**
 * Ring regions opened O_RDONLY: the journal library opens its regions read-write
 * (O_DIRECT|O_DSYNC) through the openFile hook, and this keeps O_DIRECT, so reads still
 * bypass this machine's page cache, but makes any write fail in the kernel.
 */
export function readOnlyRegionOpener(): RegionOpener {
  const { O_RDWR, O_WRONLY, O_RDONLY } = fs.constants;
  const openReadOnly = (path: string, flags: number): Promise<number> =>
    new Promise((resolve, reject) => fs.open(path, (flags & ~(O_RDWR | O_WRONLY)) | O_RDONLY, (error, fd) => (error ? reject(error) : resolve(fd))));
  return {
    open: (location) => openFileRegion(location.device, { offsetBytes: location.offsetBytes, lengthBytes: location.lengthBytes, openFile: openReadOnly }),
  };
}
