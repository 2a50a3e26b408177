// `thinlv free VG [--check] [--watch SECONDS]`: how full the VG is. Works on any host and writes nothing:
// the metadata and each host's journal read from the LUN (src/report/journalSnapshot.ts), to
// count what hosts have journaled but the master has not replayed yet. The numbers are
// src/report/freeSpace.ts; this file prints them. The JSON shape is documented in README.md ("thinlv free").

import { ErrorCode, UsageError } from '../../errors.js';
import { readAlertLevels } from '../../format/thinlvVg.js';
import { computeFreeSpace, type AlertLevel, type FreeSpaceReport } from '../../report/freeSpace.js';
import { readOnlyRegionOpener, readSnapshot } from '../../report/journalSnapshot.js';
import { readPublishedStatus } from '../../report/publishedStatus.js';
import type { CommandContext } from '../context.js';
import { formatBytes, formatTable } from '../format.js';
import { growthLines } from '../growthText.js';
import { validateVgName } from '../validate.js';
import { watchIntervalMs, watchLoop } from '../watch.js';

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
