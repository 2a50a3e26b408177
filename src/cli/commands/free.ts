// `thinlv free VG [--check] [--watch SECONDS]`: how full the VG is. Works on any host and writes nothing:
// metadata through `lvm fullreport --readonly` (readVgReport), and each host's journal
// read from the LUN through a read-only file descriptor, to count what hosts have
// journaled but the master has not replayed yet. The numbers are src/report/freeSpace.ts;
// this file reads and prints. The JSON shape is documented in README.md ("thinlv free").
//
// The journals are read after the metadata, so each journal is read against an applied
// seq that may be out of date: harmless while the records after it are still in the ring
// (they are the ones this metadata lacks), but once the master has consumed past it the
// ring may no longer hold them, and the metadata is read again (as a host daemon does at
// its start, src/host/unreplayedRecords.ts).

import * as fs from 'node:fs';
import { isJournalError, openFileRegion, openRingReader, type BlockRegion, type RingReader } from '../../../journal/index.js';
import { ErrorCode, InvariantError, ThinlvError, UsageError } from '../../errors.js';
import { hostLvNames, readAlertLevels, readThinlvVg, type ThinlvHost } from '../../format/thinlvVg.js';
import { readVgReport } from '../../lvm/readVgReport.js';
import type { VgReport } from '../../metadata/vgModel.js';
import type { JournalRecordBytes } from '../../replay/planReplay.js';
import { computeFreeSpace, type AlertLevel, type FreeSpaceReport, type HostJournal } from '../../report/freeSpace.js';
import { readPublishedStatus } from '../../report/publishedStatus.js';
import { ringLocation, type RegionOpener } from '../../rings/ringRegions.js';
import type { CommandContext } from '../context.js';
import { formatBytes, formatTable } from '../format.js';
import { growthLines } from '../growthText.js';
import { validateVgName } from '../validate.js';
import { watchIntervalMs, watchLoop } from '../watch.js';

/** Reads of the metadata and journals, when the master keeps consuming past the metadata read. */
export const MAX_SNAPSHOT_ATTEMPTS = 3;
/** Reads of one journal (each up to the library's MAX_RECORDS_PER_READ): far more than the largest ring holds. */
export const MAX_JOURNAL_READ_CALLS = 64;
/** `--check`: Nagios-style exit codes for each level. */
export const CHECK_EXIT: Readonly<Record<AlertLevel, number>> = { ok: 0, warning: 1, critical: 2 };

const VG_BAR_WIDTH = 40;
const POOL_BAR_WIDTH = 20;

export interface FreeArgs {
  readonly vg: string;
  readonly check: boolean;
  /** `--watch SECONDS` as given: report again every SECONDS until interrupted (src/cli/watch.ts). */
  readonly watchSeconds?: string | undefined;
}

export async function runFree(context: CommandContext, args: FreeArgs): Promise<number> {
  validateVgName(args.vg);
  if (args.watchSeconds !== undefined) return watchFree(context, args.vg, args.watchSeconds, args.check);
  const { text, level } = await freeOutput(context, args.vg, { oneLineJson: false });
  process.stdout.write(`${text}\n`);
  return args.check ? CHECK_EXIT[level] : 0;
}

/** One report as printed: the human text, or its JSON (indented, or on one line for --watch's NDJSON). */
async function freeOutput(context: CommandContext, vgName: string, layout: { oneLineJson: boolean }): Promise<{ text: string; level: AlertLevel }> {
  const { vg, journals } = await readSnapshot(context, vgName);
  const published = await readPublishedStatus(readOnlyRegionOpener(), vg);
  const report = computeFreeSpace(vg, journals, readAlertLevels(vg), published);
  const colour = process.stdout.isTTY === true && (process.env['NO_COLOR'] ?? '') === '';
  const text = context.options.json ? JSON.stringify(report, null, layout.oneLineJson ? undefined : 2) : freeText(report, colour);
  return { text, level: report.level };
}

/** `--watch SECONDS`: the report every SECONDS until SIGINT or SIGTERM, then exit 0. */
function watchFree(context: CommandContext, vgName: string, watchSeconds: string, check: boolean): Promise<number> {
  // --check's exit code is one report's level, and a watch has no last report: it ends when interrupted.
  if (check) {
    throw new UsageError(ErrorCode.invalidArgument, '--watch and --check cannot be used together: --check exits with the level of one report and a watch runs until interrupted; run thinlv free VG --check from your monitoring instead');
  }
  const options = { intervalMs: watchIntervalMs(watchSeconds), title: `thinlv free ${vgName}`, json: context.options.json, tty: process.stdout.isTTY === true };
  return watchLoop(options, async () => (await freeOutput(context, vgName, { oneLineJson: true })).text);
}

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

// Human output.

const LEVEL_COLOURS: Readonly<Record<AlertLevel, string>> = { ok: '\u001b[32m', warning: '\u001b[33m', critical: '\u001b[1;31m' };
const RESET = '\u001b[0m';

/** `[#####.....]`: `used` of `total` in `width` cells, never all of one kind unless it is exactly so. */
export function bar(used: number, total: number, width: number): string {
  let filled = total <= 0 ? 0 : Math.round((used / total) * width);
  if (used > 0 && filled === 0) filled = 1;
  if (used < total && filled === width) filled = width - 1;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

const percent = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;

export function freeText(report: FreeSpaceReport, colour: boolean): string {
  const paint = (text: string): string => (colour ? `${LEVEL_COLOURS[report.level]}${text}${RESET}` : text);
  const extentBytes = report.extentSizeBytes;
  const lines = [
    `VG ${report.vg}: ${formatBytes(report.extentCount * extentBytes)} in ${report.extentCount} extents of ${formatBytes(extentBytes)}`,
    `committed ${paint(bar(report.committedExtents, report.extentCount, VG_BAR_WIDTH))} ${percent(report.committedRatio)}: ${paint(report.level)} ` +
      `(warning at ${percent(report.warnRatio)}, critical at ${percent(report.criticalRatio)})`,
    '',
    summaryTable(report),
    '',
    `provisioned: ${formatBytes(report.virtualBytes)} virtual in ${report.thinLvCount} thin LV${report.thinLvCount === 1 ? '' : 's'}, ${report.overcommitRatio.toFixed(2)}x the VG`,
    ...growthLines(report.growth, extentBytes),
  ];
  if (report.hosts.length > 0) lines.push('', hostTable(report));
  for (const host of report.hosts.filter((h) => !h.journalReadable)) {
    lines.push(`warning: host ${host.host}'s journal could not be read (${host.journalError ?? 'unknown'}); its pool is shown as metadata has it, which may include allocations not replayed yet`);
  }
  return lines.join('\n');
}

function summaryTable(report: FreeSpaceReport): string {
  const row = (label: string, extents: number): string[] => [label, formatBytes(extents * report.extentSizeBytes), String(extents)];
  return alignedTable(
    [
      ['', 'size', 'extents'],
      row(`thin LVs (${report.thinLvCount})`, report.thinAllocatedExtents),
      row('ordinary LVs', report.otherAllocatedExtents),
      row('thinlv metadata', report.thinlvMetadataExtents),
      row('host pools', report.poolExtents),
      row('journaled, not replayed', report.unreplayedExtents),
      row('free', report.freeExtents),
      row('  reserve (pools never get it)', report.reserveExtents),
      row('  above the reserve', Math.max(0, report.freeExtents - report.reserveExtents)),
      row('total', report.extentCount),
    ],
    [1, 2],
  );
}

function hostTable(report: FreeSpaceReport): string {
  const rows = report.hosts.map((h) => [
    h.host,
    formatBytes(h.poolExtents * report.extentSizeBytes),
    String(h.poolExtents),
    h.journalReadable ? String(h.unreplayedExtents) : '?',
    h.journalReadable ? String(h.unreplayedRecords) : '?',
    bar(h.unreplayedExtents, h.poolExtents + h.unreplayedExtents, POOL_BAR_WIDTH),
  ]);
  return alignedTable([['host', 'pool', 'extents', 'journaled', 'records', 'journaled of pool'], ...rows], [1, 2, 3, 4]);
}

/** formatTable with the given columns right-aligned (numbers), the header row included. */
function alignedTable(rows: readonly (readonly string[])[], rightAligned: readonly number[]): string {
  const widths = new Map(rightAligned.map((column) => [column, Math.max(...rows.map((r) => (r[column] ?? '').length))]));
  return formatTable(rows.map((row) => row.map((cell, column) => (widths.has(column) ? cell.padStart(widths.get(column)!) : cell))));
}
