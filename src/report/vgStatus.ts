// `thinlv status` and `thinlv hosts`: is the master passing, how each host stands, and
// what is wrong with what to do about it. Pure: from the free-space report (metadata
// and the journals as read from the LUN just now, so counts are current) and the
// status the master last published (src/master/masterStatus.ts).
//
// Ages compare the master's clock with this machine's, so they carry any skew between
// the two; the thresholds below leave SKEW_ALLOWANCE_MS for it.

import type { MasterStatus } from '../master/masterStatus.js';
import type { ThinlvVg } from '../format/thinlvVg.js';
import type { AlertLevel, FreeSpaceReport } from './freeSpace.js';
import type { PublishedStatus } from './publishedStatus.js';

/** Clock skew between machines that ages allow for. */
export const SKEW_ALLOWANCE_MS = 5_000;
/** The master counts as down after this many of its intervals without a pass (plus the skew allowance). */
export const MASTER_SILENT_INTERVALS = 5;
/** A host daemon counts as running while the master saw its lease renewed this recently (or 3 master intervals, if longer). */
export const DAEMON_SILENT_MS = 10_000;

export type Severity = 'warning' | 'critical';

export interface Problem {
  readonly severity: Severity;
  readonly code: string;
  readonly host: string | null;
  readonly message: string;
  /** What to do about it. */
  readonly action: string;
}

export interface MasterReport {
  /** The machine the VG's master tag names (where metadata commands run). */
  readonly host: string | null;
  /** true: passing; false: silent or never published; null: cannot tell (status unreadable). */
  readonly running: boolean | null;
  /** Seconds since the master published that it stopped; null when it did not. */
  readonly stoppedAgeSeconds: number | null;
  readonly statusReadable: boolean;
  /** Why the status could not be read; null when it was. */
  readonly statusError: string | null;
  readonly pid: number | null;
  readonly intervalMs: number | null;
  readonly lastPassAgeSeconds: number | null;
  readonly lastSuccessAgeSeconds: number | null;
  readonly lastPassOk: boolean | null;
  readonly lastPassDurationMs: number | null;
  readonly passCount: number | null;
  readonly failedPassCount: number | null;
  readonly lastError: MasterStatus['lastError'];
}

export type DaemonState = 'running' | 'stopped' | 'unknown';

export interface HostReport {
  readonly host: string;
  readonly daemon: DaemonState;
  readonly leaseHolder: string | null;
  readonly poolExtents: number;
  readonly lowWaterExtents: number | null;
  readonly grantGeneration: number;
  readonly appliedSeq: number;
  /** Records journaled and not yet replayed, read from the LUN now. */
  readonly unreplayedRecords: number;
  readonly unreplayedExtents: number;
  /** Seconds since the master's last successful pass, while records wait; 0 when none wait; null when unknown. */
  readonly replayLagSeconds: number | null;
  /** Seconds since the master last saw this host's journal grow; null when it has not. */
  readonly lastSeenAgeSeconds: number | null;
  readonly activeLvCount: number;
  readonly demandExtents: number;
  readonly rejectedRecords: number;
  readonly journalReadable: boolean;
  readonly journalError: string | null;
}

/** `thinlv status --json`: documented in README.md; add fields, never rename. */
export interface StatusReport {
  readonly vg: string;
  readonly seqno: number;
  readonly atMs: number;
  readonly level: 'ok' | Severity;
  readonly master: MasterReport;
  readonly space: { readonly level: AlertLevel; readonly committedRatio: number; readonly freeExtents: number; readonly reserveExtents: number; readonly extentSizeBytes: number };
  readonly hosts: readonly HostReport[];
  readonly problems: readonly Problem[];
}

export interface StatusInput {
  readonly free: FreeSpaceReport;
  readonly thinlv: ThinlvVg;
  readonly published: PublishedStatus;
  readonly nowMs: number;
}

export function computeStatus(input: StatusInput): StatusReport {
  const master = masterReport(input);
  const hosts = input.free.hosts.map((h) => hostReport(input, master, h.host));
  const problems = [...masterProblems(input, master), ...spaceProblems(input.free), ...hosts.flatMap((h) => hostProblems(input, master, h)), ...incompleteHosts(input)];
  const level = problems.some((p) => p.severity === 'critical') ? 'critical' : problems.length > 0 ? 'warning' : 'ok';
  const { free } = input;
  return {
    vg: free.vg,
    seqno: free.seqno,
    atMs: input.nowMs,
    level,
    master,
    space: { level: free.level, committedRatio: free.committedRatio, freeExtents: free.freeExtents, reserveExtents: free.reserveExtents, extentSizeBytes: free.extentSizeBytes },
    hosts,
    problems,
  };
}

const ageSeconds = (nowMs: number, atMs: number | null | undefined): number | null => (atMs === null || atMs === undefined ? null : Math.max(0, Math.round((nowMs - atMs) / 1000)));

function masterReport({ thinlv, published, nowMs }: StatusInput): MasterReport {
  const base = { host: thinlv.masterHost ?? null };
  if (!published.published) {
    // No status LV or nothing written: no master has run here (or one older than the status LV).
    const neverRan = thinlv.statusLv === undefined || published.reason.includes('not published');
    return { ...base, running: neverRan ? false : null, stoppedAgeSeconds: null, statusReadable: false, statusError: published.reason, pid: null, intervalMs: null, lastPassAgeSeconds: null, lastSuccessAgeSeconds: null, lastPassOk: null, lastPassDurationMs: null, passCount: null, failedPassCount: null, lastError: null };
  }
  const s = published.status;
  const silentMs = MASTER_SILENT_INTERVALS * s.intervalMs + SKEW_ALLOWANCE_MS;
  return {
    host: s.masterHost,
    running: s.stoppedAtMs === null && nowMs - s.writtenAtMs <= silentMs,
    stoppedAgeSeconds: ageSeconds(nowMs, s.stoppedAtMs),
    statusReadable: true,
    statusError: null,
    pid: s.pid,
    intervalMs: s.intervalMs,
    lastPassAgeSeconds: ageSeconds(nowMs, s.lastPass?.atMs),
    lastSuccessAgeSeconds: ageSeconds(nowMs, s.lastSuccessAtMs),
    lastPassOk: s.lastPass?.ok ?? null,
    lastPassDurationMs: s.lastPass?.durationMs ?? null,
    passCount: s.passCount,
    failedPassCount: s.failedPassCount,
    lastError: s.lastError,
  };
}

function hostReport(input: StatusInput, master: MasterReport, host: string): HostReport {
  const free = input.free.hosts.find((h) => h.host === host)!;
  const info = input.thinlv.hosts.get(host)!;
  const published = input.published.published ? input.published.status.hosts.find((h) => h.host === host) : undefined;
  return {
    host,
    daemon: daemonState(input, master, published),
    leaseHolder: published?.lease?.holder ?? null,
    poolExtents: free.poolExtents,
    lowWaterExtents: published?.lowWaterExtents ?? null,
    grantGeneration: info.grantGeneration,
    appliedSeq: info.appliedSeq,
    unreplayedRecords: free.unreplayedRecords,
    unreplayedExtents: free.unreplayedExtents,
    replayLagSeconds: !free.journalReadable ? null : free.unreplayedRecords === 0 ? 0 : master.lastSuccessAgeSeconds,
    lastSeenAgeSeconds: ageSeconds(input.nowMs, published?.journalAdvancedAtMs),
    activeLvCount: info.activeLvCount,
    demandExtents: published?.demandExtents ?? 0,
    rejectedRecords: info.rejectedCount,
    journalReadable: free.journalReadable,
    journalError: free.journalError,
  };
}

/** From the lease as the master last saw it: only a running master watches leases. */
function daemonState(input: StatusInput, master: MasterReport, published: MasterStatus['hosts'][number] | undefined): DaemonState {
  if (master.running !== true || !input.published.published || published === undefined || published.lease === null) return 'unknown';
  if (published.lease.state === 'released') return 'stopped';
  const silentMs = Math.max(DAEMON_SILENT_MS, 3 * input.published.status.intervalMs);
  return input.published.status.writtenAtMs - published.lease.renewedAtMs <= silentMs ? 'running' : 'stopped';
}

function masterProblems({ free, published }: StatusInput, master: MasterReport): Problem[] {
  const where = master.host ?? 'the master machine';
  const start = `start it on ${where}: systemctl start thinlv-master@${free.vg} (or thinlv master ${free.vg})`;
  if (master.running === false) {
    const message = !published.published
      ? `no master has published a status: ${published.reason}`
      : master.stoppedAgeSeconds !== null
        ? `the master on ${where} stopped ${master.stoppedAgeSeconds} s ago`
        : `the master on ${where} has not passed for ${master.lastPassAgeSeconds ?? '?'} s`;
    return [{ severity: 'critical', code: 'MASTER_DOWN', host: null, message: `${message}; hosts get no grants and journals are not replayed`, action: start }];
  }
  if (master.running === null) return [{ severity: 'warning', code: 'MASTER_STATUS_UNREADABLE', host: null, message: `the master's status cannot be read: ${master.statusError ?? ''}`, action: `run thinlv check ${free.vg}; on ${where}, see journalctl -u thinlv-master@${free.vg}` }];
  if (master.lastPassOk === false) {
    return [{ severity: 'warning', code: 'MASTER_PASS_FAILING', host: null, message: `the master's last pass failed: ${master.lastError?.code ?? ''} ${master.lastError?.message ?? ''}`.trim(), action: `see journalctl -u thinlv-master@${free.vg} on ${where}` }];
  }
  return [];
}

function spaceProblems(free: FreeSpaceReport): Problem[] {
  if (free.level === 'ok') return [];
  const percent = `${(free.committedRatio * 100).toFixed(1)}%`;
  return [{ severity: free.level, code: free.level === 'critical' ? 'VG_CRITICAL' : 'VG_WARNING', host: null, message: `VG ${free.vg} is ${percent} committed (${free.level})`, action: `add a PV (pvcreate, vgextend ${free.vg}) or remove LVs; thinlv free ${free.vg} shows where the space is` }];
}

function hostProblems(input: StatusInput, master: MasterReport, h: HostReport): Problem[] {
  const vg = input.free.vg;
  const problems: Problem[] = [];
  const add = (severity: Severity, code: string, message: string, action: string): void => void problems.push({ severity, code, host: h.host, message, action });
  if (!h.journalReadable) add('critical', 'JOURNAL_UNREADABLE', `host ${h.host}'s journal cannot be read: ${h.journalError ?? ''}`, `run thinlv check ${vg}; on ${h.host}, see journalctl -u thinlv-host@${vg}`);
  const aboveReserve = input.free.freeExtents - input.free.reserveExtents;
  if (master.running === true && h.poolExtents === 0 && aboveReserve > 0) {
    add('warning', 'POOL_EMPTY', `host ${h.host}'s pool is empty while the VG has ${aboveReserve} extents free above the reserve`, `see the master's log (journalctl -u thinlv-master@${vg}) for why it does not refill it`);
  }
  if (h.daemon === 'stopped' && h.activeLvCount > 0) {
    add('warning', 'DAEMON_STOPPED', `host ${h.host} has ${h.activeLvCount} active LV(s) but its daemon is not running: they cannot grow`, `on ${h.host}: systemctl start thinlv-host@${vg}`);
  }
  if (h.rejectedRecords > 0) add('warning', 'RECORDS_REJECTED', `replay refused ${h.rejectedRecords} of host ${h.host}'s records`, `thinlv check ${vg} says why; then thinlv host clear-rejected ${vg} ${h.host}`);
  return problems;
}

function incompleteHosts({ thinlv, free }: StatusInput): Problem[] {
  return thinlv.incompleteHosts.map((host) => ({
    severity: 'warning' as const,
    code: 'HOST_INCOMPLETE',
    host,
    message: `host ${host} is half added or half removed (its journal or grants LV is missing, or its rings are not initialised yet)`,
    action: `finish it on the master machine: thinlv host add ${free.vg} ${host}, or thinlv host remove ${free.vg} ${host}`,
  }));
}
