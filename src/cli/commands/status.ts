// `thinlv status VG [--check]` and `thinlv hosts VG`: read-only, on any host. The same
// snapshot as `thinlv free` (metadata with --readonly, each journal read from the LUN
// just now) plus the status the master last published; the numbers are
// src/report/vgStatus.ts, this file reads and prints.

import { readAlertLevels, readThinlvVg } from '../../format/thinlvVg.js';
import { computeFreeSpace } from '../../report/freeSpace.js';
import { readPublishedStatus } from '../../report/publishedStatus.js';
import { computeStatus, type HostReport, type StatusReport } from '../../report/vgStatus.js';
import type { CommandContext } from '../context.js';
import { formatBytes, formatDuration, formatTable } from '../format.js';
import { validateVgName } from '../validate.js';
import { readOnlyRegionOpener, readSnapshot } from '../../report/journalSnapshot.js';

/** `--check`: Nagios-style exit codes. */
const CHECK_EXIT = { ok: 0, warning: 1, critical: 2 } as const;

async function readStatus(context: CommandContext, vgName: string): Promise<StatusReport> {
  validateVgName(vgName);
  const { vg, journals } = await readSnapshot(context, vgName);
  const published = await readPublishedStatus(readOnlyRegionOpener(), vg);
  const free = computeFreeSpace(vg, journals, readAlertLevels(vg), published);
  return computeStatus({ free, thinlv: readThinlvVg(vg), published, nowMs: Date.now() });
}

export async function runStatus(context: CommandContext, args: { vg: string; check: boolean }): Promise<number> {
  const report = await readStatus(context, args.vg);
  process.stdout.write(context.options.json ? `${JSON.stringify(report, null, 2)}\n` : `${statusText(report)}\n`);
  return args.check ? CHECK_EXIT[report.level] : 0;
}

export async function runHosts(context: CommandContext, vg: string): Promise<number> {
  const report = await readStatus(context, vg);
  process.stdout.write(context.options.json ? `${JSON.stringify(report.hosts, null, 2)}\n` : `${hostsTable(report)}\n`);
  return 0;
}

const age = (seconds: number | null): string => (seconds === null ? '-' : `${formatDuration(seconds)} ago`);

export function statusText(report: StatusReport): string {
  const lines = [`VG ${report.vg}: ${report.level}`, masterLine(report), spaceLine(report), ''];
  lines.push(report.hosts.length === 0 ? 'no hosts (thinlv host add VG HOST on the master machine)' : hostsTable(report));
  if (report.problems.length > 0) {
    lines.push('', 'problems:');
    for (const p of report.problems) lines.push(`  ${p.severity} ${p.code}: ${p.message}`, `    what to do: ${p.action}`);
  }
  return lines.join('\n');
}

function masterLine({ master }: StatusReport): string {
  const where = master.host ?? 'no machine yet';
  if (!master.statusReadable) return `master: ${master.running === false ? 'not running' : 'unknown'} (on ${where}; ${master.statusError ?? ''})`;
  const state = master.running === true ? 'running' : master.stoppedAgeSeconds !== null ? `stopped ${age(master.stoppedAgeSeconds)}` : 'not passing';
  const pass = master.lastPassOk === false ? `last pass FAILED ${age(master.lastPassAgeSeconds)}` : `last pass ${age(master.lastPassAgeSeconds)} (${master.lastPassDurationMs ?? '?'} ms)`;
  return `master: ${state} on ${where} (pid ${master.pid ?? '?'}), ${pass}, ${master.passCount ?? 0} passes, ${master.failedPassCount ?? 0} failed`;
}

function spaceLine({ space, vg }: StatusReport): string {
  return `space: ${(space.committedRatio * 100).toFixed(1)}% committed (${space.level}), ${formatBytes(space.freeExtents * space.extentSizeBytes)} free; thinlv free ${vg} for details`;
}

export function hostsTable(report: StatusReport): string {
  const extentBytes = report.space.extentSizeBytes;
  const row = (h: HostReport): string[] => [
    h.host,
    h.daemon,
    `${formatBytes(h.poolExtents * extentBytes)}`,
    h.lowWaterExtents === null ? '-' : formatBytes(h.lowWaterExtents * extentBytes),
    String(h.grantGeneration),
    h.journalReadable ? String(h.unreplayedRecords) : '?',
    h.replayLagSeconds === null ? '-' : `${h.replayLagSeconds} s`,
    String(h.activeLvCount),
    h.demandExtents === 0 ? '-' : formatBytes(h.demandExtents * extentBytes),
    age(h.lastSeenAgeSeconds),
  ];
  return formatTable([['host', 'daemon', 'pool', 'low-water', 'grant', 'unreplayed', 'lag', 'active', 'demand', 'last record'], ...report.hosts.map(row)]);
}
