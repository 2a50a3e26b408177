// `thinlv inspect VG`: the VG as thinlv sees it. The JSON shape is documented in
// README.md ("inspect --json") and is a stable interface: add fields, never rename.

import { readVgReport } from '../../lvm/readVgReport.js';
import { metadataAreaUsedRatio } from '../../metadata/checkLayout.js';
import { SECTOR_BYTES, lvExtentCount, type VgReport } from '../../metadata/vgModel.js';
import type { CommandContext } from '../context.js';
import { formatBytes, formatRange, formatTable } from '../format.js';
import { validateVgName } from '../validate.js';

export interface InspectJson {
  name: string;
  uuid: string;
  seqno: number;
  extentSizeBytes: number;
  extentCount: number;
  freeExtentCount: number;
  tags: string[];
  metadataArea: { sizeBytes: number; freeBytes: number; usedRatio: number };
  pvs: { device: string; uuid: string; peStartBytes: number; peCount: number; deviceSizeBytes: number }[];
  lvs: {
    name: string;
    uuid: string;
    sizeBytes: number;
    extentCount: number;
    tags: string[];
    activationSkip: boolean;
    segments: {
      logicalStart: number;
      extentCount: number;
      pv: string;
      firstExtent: number;
      type: string;
      stripes?: { pv: string; firstExtent: number }[];
    }[];
  }[];
  freeRanges: { pv: string; firstExtent: number; extentCount: number }[];
}

export function inspectJson(vg: VgReport): InspectJson {
  const extentSizeBytes = vg.extentSizeSectors * SECTOR_BYTES;
  return {
    name: vg.name,
    uuid: vg.uuid,
    seqno: vg.seqno,
    extentSizeBytes,
    extentCount: vg.extentCount,
    freeExtentCount: vg.freeExtentCount,
    tags: [...vg.tags],
    metadataArea: { sizeBytes: vg.metadataAreaSizeBytes, freeBytes: vg.metadataAreaFreeBytes, usedRatio: metadataAreaUsedRatio(vg) },
    pvs: vg.pvs.map((pv) => ({
      device: pv.device,
      uuid: pv.uuid,
      peStartBytes: pv.peStartSectors * SECTOR_BYTES,
      peCount: pv.peCount,
      deviceSizeBytes: pv.deviceSizeBytes,
    })),
    lvs: vg.lvs.map((lv) => ({
      name: lv.name,
      uuid: lv.uuid,
      sizeBytes: lvExtentCount(lv) * extentSizeBytes,
      extentCount: lvExtentCount(lv),
      tags: [...lv.tags],
      activationSkip: lv.activationSkip,
      segments: lv.segments.map((segment) => ({
        logicalStart: segment.logicalStart,
        extentCount: segment.extentCount,
        pv: segment.stripes[0]?.pv ?? '',
        firstExtent: segment.stripes[0]?.firstExtent ?? 0,
        type: segment.stripes.length === 1 ? 'linear' : segment.type,
        ...(segment.stripes.length > 1 ? { stripes: segment.stripes.map((s) => ({ ...s })) } : {}),
      })),
    })),
    freeRanges: vg.freeRanges.map((r) => ({ pv: r.pv, firstExtent: r.firstExtent, extentCount: r.extentCount })),
  };
}

export function inspectText(view: InspectJson): string {
  const lines: string[] = [];
  lines.push(
    `VG ${view.name}  seqno ${view.seqno}  extent size ${formatBytes(view.extentSizeBytes)}  ` +
      `extents ${view.extentCount} (${view.freeExtentCount} free, ${formatBytes(view.freeExtentCount * view.extentSizeBytes)})`,
  );
  lines.push(
    `metadata area ${(view.metadataArea.usedRatio * 100).toFixed(1)}% used (${formatBytes(view.metadataArea.sizeBytes)} per PV)` +
      (view.tags.length > 0 ? `  tags ${view.tags.join(',')}` : ''),
  );
  lines.push('');
  lines.push(
    formatTable([
      ['PV', 'PE start', 'extents', 'device size'],
      ...view.pvs.map((pv) => [pv.device, formatBytes(pv.peStartBytes), String(pv.peCount), formatBytes(pv.deviceSizeBytes)]),
    ]),
  );
  lines.push('');
  const lvRows = view.lvs.map((lv) => [
    lv.name,
    formatBytes(lv.sizeBytes),
    lv.segments.map((s) => (s.type === 'linear' ? formatRange(s) : `${s.type}@${formatRange(s)}`)).join(' ') || '-',
    [...lv.tags, ...(lv.activationSkip ? ['(skip activation)'] : [])].join(',') || '-',
  ]);
  lines.push(view.lvs.length > 0 ? formatTable([['LV', 'size', 'PE ranges', 'tags'], ...lvRows]) : 'no LVs');
  lines.push('');
  lines.push(`free: ${view.freeRanges.map(formatRange).join(' ') || 'none'}`);
  return lines.join('\n');
}

export async function runInspect(context: CommandContext, vgName: string): Promise<number> {
  validateVgName(vgName);
  const view = inspectJson(await readVgReport(context.lvm, vgName));
  process.stdout.write(context.options.json ? `${JSON.stringify(view, null, 2)}\n` : `${inspectText(view)}\n`);
  return 0;
}
