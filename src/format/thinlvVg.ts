// How thinlv lays itself out inside an ordinary LVM VG, and how to read that
// layout back. Pure: it names things and parses tags; it does no I/O.
//
//   VG tags        thinlv_format=1
//                  thinlv_quantum_extents=N     extents granted to a pool per refill
//                  thinlv_lowwater_extents=N    refill a pool that falls below this
//                  thinlv_reserve_permille=N    VG share pools are never refilled from
//                  thinlv_warn_permille=N       `thinlv free`: warning from this share of the
//                  thinlv_critical_permille=N   VG committed, critical from this one (optional;
//                                               defaults 750 and 850; set with vgchange --addtag)
//                  thinlv_overcommit_limit_percent=N  lvcreate / lvresize -V refuse to take the
//                                               thin LVs' virtual total past N% of the VG
//                                               (optional; no limit when absent)
//   per host H     thinlv_H_journal   ring host -> master, then the host's 4 KiB lease
//                                     block (src/rings/ringRegions.ts); tags thinlv_applied_seq=N,
//                                     thinlv_rejected=N (records replay refused),
//                                     thinlv_rejected_last=<seq>.<code> (the last one, and why),
//                                     thinlv_active_lvs=N (as the host last journaled)
//                  thinlv_H_grants    ring master -> host; tag thinlv_grant_gen=N
//                  thinlv_H_free      the host's pool; absent while the pool is empty
//                                     (LVM cannot hold an LV of zero extents)
//                  thinlv_master=<hostname>    where `thinlv master` runs (set when it starts)
//   thin LV        tag thinlv_virtual_bytes=N, and LVM's activation-skip flag;
//                  tag thinlv_owner=<host> while a host holds it (active there, or
//                  in a one-off extend): only the owner extends it (I8), and the
//                  master changes an owned LV only by raising its virtual size
//
// The cursors (applied_seq, grant_gen) are tags on LVs that never change size,
// written in the same metadata commit as the change they describe: that is
// what makes a replay or a grant repeated after a crash harmless.

import { ErrorCode, ThinlvError, UsageError } from '../errors.js';
import type { LvLayout, VgLayout } from '../metadata/vgModel.js';
import { lvExtentCount } from '../metadata/vgModel.js';
import { invalidNameReason } from '../metadata/names.js';

export const THINLV_FORMAT_VERSION = 1;

export const TAG = {
  format: 'thinlv_format=',
  quantumExtents: 'thinlv_quantum_extents=',
  lowWaterExtents: 'thinlv_lowwater_extents=',
  reservePermille: 'thinlv_reserve_permille=',
  appliedSeq: 'thinlv_applied_seq=',
  rejectedCount: 'thinlv_rejected=',
  /** The last record replay refused, as <seq>.<code>, so `thinlv check` can say why. */
  rejectedLast: 'thinlv_rejected_last=',
  activeLvCount: 'thinlv_active_lvs=',
  grantGeneration: 'thinlv_grant_gen=',
  /**
   * On a host's journal LV (a whole tag, no value) from `host add`'s commit until both its
   * rings are initialised: until then the host is incomplete, and the master, which could
   * not read its journal, leaves it out rather than fail every pass.
   */
  hostPending: 'thinlv_host_pending',
  virtualBytes: 'thinlv_virtual_bytes=',
  /** The host that alone may extend this thin LV; set and cleared only by replaying that host's claim and release records. */
  owner: 'thinlv_owner=',
  /** The machine whose `thinlv master` runs this VG; metadata-changing commands run there. */
  master: 'thinlv_master=',
  /** `thinlv free` alert levels, per mille of the VG committed (optional VG tags). */
  warnPermille: 'thinlv_warn_permille=',
  criticalPermille: 'thinlv_critical_permille=',
  /** Refuse lvcreate / lvresize -V past this many percent of virtual over physical (optional VG tag). */
  overcommitLimitPercent: 'thinlv_overcommit_limit_percent=',
} as const;

/** Ring LV sizes: big enough for tens of thousands of records between replays. */
export const JOURNAL_RING_EXTENTS_DEFAULT = 1;
export const GRANTS_RING_EXTENTS_DEFAULT = 1;

/** Host names: what a hostname may hold, and nothing that would make `thinlv_<host>_free` ambiguous. */
export const HOST_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;

/** The master's status (src/rings/statusBlock.ts): where `thinlv status` and `free` on any host read what the master last said. */
export const STATUS_LV = 'thinlv_status';

export const hostLvNames = (host: string): { free: string; journal: string; grants: string } => ({
  free: `thinlv_${host}_free`,
  journal: `thinlv_${host}_journal`,
  grants: `thinlv_${host}_grants`,
});

const HOST_LV = /^thinlv_([A-Za-z0-9][A-Za-z0-9.-]{0,62})_(free|journal|grants)$/;

export function validateHostName(host: string): void {
  if (!HOST_NAME_PATTERN.test(host)) {
    throw new UsageError(
      ErrorCode.invalidArgument,
      `invalid host name "${host}": use 1 to 63 letters, digits, "." or "-", starting with a letter or digit`,
      { host },
    );
  }
  // The host's LV names must pass LVM's own rules ("tmeta" would make thinlv_tmeta_free, which holds "_tmeta").
  for (const lvName of Object.values(hostLvNames(host))) {
    const problem = invalidNameReason(lvName, 'LV');
    if (problem) throw new UsageError(ErrorCode.invalidArgument, `invalid host name "${host}": ${problem}`, { host });
  }
}

export interface ThinlvSettings {
  readonly quantumExtents: number;
  readonly lowWaterExtents: number;
  readonly reservePermille: number;
}

export const MIN_QUANTUM_BYTES = 256 * 1024 * 1024;
export const QUANTUM_PERMILLE_OF_VG = 5;
export const DEFAULT_RESERVE_PERMILLE = 50;

/** DESIGN's sizing: quantum about 0.5% of the VG with a floor of 256 MiB, low-water half of it, reserve 5%. */
export function defaultSettings(vgExtentCount: number, extentSizeBytes: number): ThinlvSettings {
  const floorExtents = Math.ceil(MIN_QUANTUM_BYTES / extentSizeBytes);
  const quantumExtents = Math.max(floorExtents, Math.ceil((vgExtentCount * QUANTUM_PERMILLE_OF_VG) / 1000));
  return { quantumExtents, lowWaterExtents: Math.max(1, Math.floor(quantumExtents / 2)), reservePermille: DEFAULT_RESERVE_PERMILLE };
}

export interface ThinlvHost {
  readonly host: string;
  readonly journalLv: LvLayout;
  readonly grantsLv: LvLayout;
  /** Undefined while the pool is empty. */
  readonly freeLv: LvLayout | undefined;
  readonly appliedSeq: number;
  readonly rejectedCount: number;
  /** The last refused record as "<seq>.<code>", when there is one. */
  readonly rejectedLast: string | undefined;
  /** LVs active on the host as of its last replayed activity record. */
  readonly activeLvCount: number;
  readonly grantGeneration: number;
}

export interface ThinLv {
  readonly lv: LvLayout;
  readonly virtualBytes: number;
  /** The host that owns it (the only one that may extend it), if any. */
  readonly owner: string | undefined;
}

export interface ThinlvVg {
  readonly formatVersion: number;
  /** Hostname of the machine the master runs on, once one has started. */
  readonly masterHost: string | undefined;
  readonly settings: ThinlvSettings;
  readonly hosts: ReadonlyMap<string, ThinlvHost>;
  readonly thinLvs: ReadonlyMap<string, ThinLv>;
  /** Host LVs missing a partner (e.g. a journal without grants), or whose rings a `host add` has not finished initialising: a host add that crashed half-way. */
  readonly incompleteHosts: readonly string[];
  /** The master's status LV, once a master has created it. */
  readonly statusLv: LvLayout | undefined;
}

/** The value of the one tag starting with `prefix`, as a non-negative integer; undefined when absent. */
export function numericTag(tags: readonly string[], prefix: string, where: string): number | undefined {
  const matching = tags.filter((t) => t.startsWith(prefix));
  if (matching.length === 0) return undefined;
  if (matching.length > 1) {
    throw new ThinlvError(ErrorCode.unsupportedMetadata, `${where} carries ${matching.length} "${prefix}" tags; expected one: run "thinlv check"`, { where, tags: matching });
  }
  const raw = matching[0]!.slice(prefix.length);
  const value = Number(raw);
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(value)) {
    throw new ThinlvError(ErrorCode.unsupportedMetadata, `${where}: tag ${matching[0]} does not hold a whole number`, { where, tag: matching[0] });
  }
  return value;
}

/** The owner tag's host, if the LV carries one. */
export function ownerOf(lv: LvLayout): string | undefined {
  const tags = lv.tags.filter((t) => t.startsWith(TAG.owner));
  if (tags.length > 1) throw new ThinlvError(ErrorCode.unsupportedMetadata, `LV ${lv.name} carries ${tags.length} owner tags; expected at most one: run "thinlv check"`, { lv: lv.name, tags });
  return tags[0]?.slice(TAG.owner.length);
}

export const isFormatted = (vg: VgLayout): boolean => vg.tags.some((t) => t.startsWith(TAG.format));

/** Reads thinlv's layout out of a VG; throws NOT_FORMATTED for a VG thinlv was not set up on. */
export function readThinlvVg(vg: VgLayout): ThinlvVg {
  const formatVersion = numericTag(vg.tags, TAG.format, `VG ${vg.name}`);
  if (formatVersion === undefined) {
    throw new ThinlvError('NOT_FORMATTED', `VG ${vg.name} is not formatted for thinlv: run "thinlv format ${vg.name}" first`, { vg: vg.name });
  }
  if (formatVersion !== THINLV_FORMAT_VERSION) {
    throw new ThinlvError('FORMAT_VERSION', `VG ${vg.name} has thinlv format ${formatVersion}; this thinlv reads format ${THINLV_FORMAT_VERSION}: upgrade thinlv`, {
      vg: vg.name,
      formatVersion,
    });
  }
  const setting = (prefix: string): number => {
    const value = numericTag(vg.tags, prefix, `VG ${vg.name}`);
    if (value === undefined) throw new ThinlvError(ErrorCode.unsupportedMetadata, `VG ${vg.name} lacks its ${prefix}N tag: re-run "thinlv format ${vg.name}"`, { vg: vg.name });
    return value;
  };
  const settings: ThinlvSettings = {
    quantumExtents: setting(TAG.quantumExtents),
    lowWaterExtents: setting(TAG.lowWaterExtents),
    reservePermille: setting(TAG.reservePermille),
  };

  const parts = new Map<string, { free?: LvLayout; journal?: LvLayout; grants?: LvLayout }>();
  const thinLvs = new Map<string, ThinLv>();
  for (const lv of vg.lvs) {
    const match = HOST_LV.exec(lv.name);
    if (match) {
      const entry = parts.get(match[1]!) ?? {};
      entry[match[2] as 'free' | 'journal' | 'grants'] = lv;
      parts.set(match[1]!, entry);
      continue;
    }
    const virtualBytes = numericTag(lv.tags, TAG.virtualBytes, `LV ${lv.name}`);
    if (virtualBytes !== undefined) thinLvs.set(lv.name, { lv, virtualBytes, owner: ownerOf(lv) });
  }

  const hosts = new Map<string, ThinlvHost>();
  const incompleteHosts: string[] = [];
  for (const [host, entry] of parts) {
    if (entry.journal === undefined || entry.grants === undefined || entry.journal.tags.includes(TAG.hostPending)) {
      incompleteHosts.push(host);
      continue;
    }
    hosts.set(host, {
      host,
      journalLv: entry.journal,
      grantsLv: entry.grants,
      freeLv: entry.free,
      appliedSeq: numericTag(entry.journal.tags, TAG.appliedSeq, `LV ${entry.journal.name}`) ?? 0,
      rejectedCount: numericTag(entry.journal.tags, TAG.rejectedCount, `LV ${entry.journal.name}`) ?? 0,
      rejectedLast: entry.journal.tags.find((t) => t.startsWith(TAG.rejectedLast))?.slice(TAG.rejectedLast.length),
      activeLvCount: numericTag(entry.journal.tags, TAG.activeLvCount, `LV ${entry.journal.name}`) ?? 0,
      grantGeneration: numericTag(entry.grants.tags, TAG.grantGeneration, `LV ${entry.grants.name}`) ?? 0,
    });
  }
  const masterTag = vg.tags.find((t) => t.startsWith(TAG.master));
  const statusLv = vg.lvs.find((lv) => lv.name === STATUS_LV);
  return { formatVersion, masterHost: masterTag?.slice(TAG.master.length), settings, hosts, thinLvs, incompleteHosts, statusLv };
}

/** Share of the VG committed (allocated to any LV, pools included) at which `thinlv free` warns, and turns critical. */
export interface AlertLevels {
  readonly warnPermille: number;
  readonly criticalPermille: number;
}

export const DEFAULT_ALERT_LEVELS: AlertLevels = { warnPermille: 750, criticalPermille: 850 };

/**
 * The VG's alert levels: its thinlv_warn_permille= and thinlv_critical_permille= tags,
 * each defaulting when absent. Kept apart from ThinlvSettings because nothing but
 * reports reads them, and an operator sets them with `vgchange --addtag` at any time.
 */
export function readAlertLevels(vg: VgLayout): AlertLevels {
  const where = `VG ${vg.name}`;
  const warnPermille = numericTag(vg.tags, TAG.warnPermille, where) ?? DEFAULT_ALERT_LEVELS.warnPermille;
  const criticalPermille = numericTag(vg.tags, TAG.criticalPermille, where) ?? DEFAULT_ALERT_LEVELS.criticalPermille;
  const fix = `fix it with "vgchange --deltag <old tag> --addtag <new tag> ${vg.name}" on the master's machine`;
  for (const [tag, value] of [[TAG.warnPermille, warnPermille], [TAG.criticalPermille, criticalPermille]] as const) {
    if (value < 1 || value > 1000) {
      throw new ThinlvError(ErrorCode.unsupportedMetadata, `${where}: ${tag}${value} must be from 1 to 1000 (per mille of the VG); ${fix}`, { vg: vg.name, tag: `${tag}${value}` });
    }
  }
  if (warnPermille > criticalPermille) {
    throw new ThinlvError(ErrorCode.unsupportedMetadata, `${where}: the warning level (${warnPermille}‰) is above the critical level (${criticalPermille}‰); ${fix}`, {
      vg: vg.name,
      warnPermille,
      criticalPermille,
    });
  }
  return { warnPermille, criticalPermille };
}

export const poolExtentCount = (host: ThinlvHost): number => (host.freeLv ? lvExtentCount(host.freeLv) : 0);
