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
        message: `replay rejected ${host.rejectedCount} journal records of host ${host.host} (they claimed extents outside its pool or could not be read); the master's log names each one`,
        data: { host: host.host, rejectedCount: host.rejectedCount },
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
