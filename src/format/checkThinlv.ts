// Findings about thinlv's own layout, from metadata alone: records replay had
// to reject, hosts left half-added, thin LVs that a stock `vgchange -ay` would
// activate, and pools that are not one linear LV.

import type { Finding } from '../metadata/checkLayout.js';
import { linearSegments, lvExtentCount, SECTOR_BYTES, type VgLayout } from '../metadata/vgModel.js';
import { ThinlvError } from '../errors.js';
import { isFormatted, readThinlvVg, type ThinlvVg } from './thinlvVg.js';

export function checkThinlv(vg: VgLayout): Finding[] {
  if (!isFormatted(vg)) return [];
  let thinlv: ThinlvVg;
  try {
    thinlv = readThinlvVg(vg);
  } catch (error) {
    // A layout thinlv cannot read is a finding to report, not a reason for check to fail.
    if (!(error instanceof ThinlvError)) throw error;
    return [{ severity: 'error', code: 'THINLV_LAYOUT_INVALID', message: error.message, data: { cause: error.code } }];
  }
  const findings: Finding[] = [];
  for (const host of thinlv.hosts.values()) {
    if (host.rejectedCount > 0) {
      findings.push({
        severity: 'error',
        code: 'REJECTED_RECORDS',
        message: `replay rejected ${host.rejectedCount} journal records of host ${host.host}${lastRejection(host.rejectedLast)}; nothing of them was applied and the extents they named stay in its pool. The master's log names each one; once understood, clear this with "thinlv host clear-rejected ${vg.name} ${host.host}"`,
        data: { host: host.host, rejectedCount: host.rejectedCount, lastRejected: host.rejectedLast },
      });
    }
    for (const lv of [host.journalLv, host.grantsLv, ...(host.freeLv ? [host.freeLv] : [])]) {
      if (linearSegments(lv) === undefined) {
        findings.push({ severity: 'error', code: 'HOST_LV_NOT_LINEAR', message: `${lv.name} is not linear`, data: { lv: lv.name } });
      }
    }
    for (const ring of [host.journalLv, host.grantsLv]) {
      if (ring.segments.length !== 1) {
        findings.push({ severity: 'error', code: 'RING_NOT_CONTIGUOUS', message: `ring ${ring.name} has ${ring.segments.length} segments; a ring must be one`, data: { lv: ring.name } });
      }
    }
  }
  for (const host of thinlv.incompleteHosts) {
    findings.push({
      severity: 'warning',
      code: 'HOST_INCOMPLETE',
      message: `host ${host} has some of its thinlv LVs but not all (a host add or remove stopped half-way): run "thinlv host add" or "thinlv host remove" again`,
      data: { host },
    });
  }
  const extentBytes = vg.extentSizeSectors * SECTOR_BYTES;
  for (const thin of thinlv.thinLvs.values()) {
    if (!thin.lv.activationSkip) {
      findings.push({
        severity: 'error',
        code: 'THIN_LV_ACTIVATABLE',
        message: `thin LV ${thin.lv.name} lacks LVM's activation-skip flag, so vgchange -ay could activate it without hosts' unreplayed extents: lvchange -ky ${vg.name}/${thin.lv.name}`,
        data: { lv: thin.lv.name },
      });
    }
    if (lvExtentCount(thin.lv) * extentBytes > thin.virtualBytes) {
      findings.push({
        severity: 'warning',
        code: 'THIN_LV_OVER_VIRTUAL',
        message: `thin LV ${thin.lv.name} holds more than its virtual size of ${thin.virtualBytes} bytes`,
        data: { lv: thin.lv.name },
      });
    }
  }
  return findings;
}

/** Why replay refused records, in words, keyed by the code it records in thinlv_rejected_last. */
const REJECTION_MEANING: Readonly<Record<string, string>> = {
  undecodable: 'it could not be read',
  'unknown-pv': 'it named a PV the VG does not have',
  'duplicate-extent': 'it listed one extent twice',
  'outside-pool': "it claimed extents outside the host's pool",
  'not-thin-lv': 'it grew an LV that is not a thin LV',
  'lv-not-owned': 'it grew an LV the host did not hold',
  'virtual-size-exceeded': "it grew an LV past its virtual size",
  'size-mismatch': 'its size did not follow from the LV as replay found it',
};

function lastRejection(last: string | undefined): string {
  if (last === undefined) return '';
  const match = /^([0-9]+)\.(.+)$/.exec(last);
  if (match === null) return ` (last: ${last})`;
  return ` (the last, seq ${match[1]}, because ${REJECTION_MEANING[match[2]!] ?? match[2]!})`;
}
