// Reads a VG in ONE lvm call (`lvm fullreport`) into a validated VgReport.
// Every field is checked by a hand-written guard: lvm output that does not
// have the expected shape is an LVM_OUTPUT_INVALID error naming the field, never
// a cast that lets garbage through.

import { ErrorCode, LvmError } from '../errors.js';
import type { PhysicalRange } from '../extent/types.js';
import type { LvLayout, PvLayout, Segment, StripeArea, VgReport } from '../metadata/vgModel.js';
import { SECTOR_BYTES } from '../metadata/vgModel.js';
import { DiskMetadataMiss, readTextsKey, readVgFromDisk } from './diskMetadata.js';
import { rememberDevices, rememberedDevices } from './vgReportCache.js';
import type { LvmCallOptions, LvmRunner } from './runLvm.js';

const VG_FIELDS = 'vg_name,vg_uuid,vg_seqno,vg_extent_size,vg_extent_count,vg_free_count,vg_mda_size,vg_mda_free,vg_tags';
const PV_FIELDS = 'pv_name,pv_uuid,pe_start,pv_pe_count,dev_size';
const LV_FIELDS = 'lv_name,lv_uuid,lv_tags,lv_skip_activation';
const SEG_FIELDS = 'lv_uuid,seg_start_pe,seg_size_pe,segtype,seg_pe_ranges';
const PVSEG_FIELDS = 'pv_uuid,pvseg_start,pvseg_size,lv_uuid';

export const FULLREPORT_ARGS: readonly string[] = [
  '--reportformat', 'json', '--units', 'b', '--nosuffix', '--all',
  '--configreport', 'vg', '-o', VG_FIELDS,
  '--configreport', 'pv', '-o', PV_FIELDS,
  '--configreport', 'lv', '-o', LV_FIELDS,
  '--configreport', 'seg', '-o', SEG_FIELDS,
  '--configreport', 'pvseg', '-o', PVSEG_FIELDS,
];

type Row = Readonly<Record<string, unknown>>;

function invalid(message: string): never {
  throw new LvmError(ErrorCode.lvmOutputInvalid, `lvm fullreport output: ${message}`, {});
}

function rowsOf(value: unknown, name: string): Row[] {
  if (!Array.isArray(value)) invalid(`"${name}" is not a list`);
  return value.map((row, index) => {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) invalid(`${name}[${index}] is not an object`);
    return row as Row;
  });
}

function text(row: Row, key: string, where: string): string {
  const value = row[key];
  if (typeof value !== 'string') invalid(`${where}.${key} is missing or not a string`);
  return value;
}

function count(row: Row, key: string, where: string): number {
  const raw = text(row, key, where);
  if (!/^[0-9]+$/.test(raw)) invalid(`${where}.${key} = ${JSON.stringify(raw)} is not a non-negative integer`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) invalid(`${where}.${key} = ${raw} is out of range`);
  return value;
}

const tagList = (raw: string): string[] => (raw === '' ? [] : raw.split(','));

/** Parses "/dev/sdb:10-19 /dev/sdc:0-9" (last colon splits device from range). */
export function parsePeRanges(raw: string, where: string): PhysicalRange[] {
  if (raw.trim() === '') return [];
  return raw
    .trim()
    .split(/\s+/)
    .map((part) => {
      const match = /^(.+):([0-9]+)-([0-9]+)$/.exec(part);
      if (!match) invalid(`${where}: cannot read PE range ${JSON.stringify(part)}`);
      const first = Number(match[2]);
      const last = Number(match[3]);
      if (last < first) invalid(`${where}: PE range ${part} ends before it starts`);
      return { pv: match[1]!, firstExtent: first, extentCount: last - first + 1 };
    });
}

/** Parses `lvm fullreport` JSON (as produced with FULLREPORT_ARGS) for one VG. */
export function parseFullReport(json: string, vgName: string): VgReport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    invalid(`not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null) invalid('not an object');
  const reports = rowsOf((parsed as Row)['report'], 'report');
  const report = reports.find((r) => rowsOf(r['vg'], 'vg').some((vg) => vg['vg_name'] === vgName));
  if (report === undefined) {
    throw new LvmError(ErrorCode.vgNotFound, `volume group "${vgName}" not found (check the name and --devices)`, { vg: vgName });
  }
  const vgRow = rowsOf(report['vg'], 'vg')[0]!;
  const extentSizeBytes = count(vgRow, 'vg_extent_size', 'vg');
  if (extentSizeBytes === 0 || extentSizeBytes % SECTOR_BYTES !== 0) invalid(`extent size ${extentSizeBytes} is not whole sectors`);

  const pvUuidToDevice = new Map<string, string>();
  const pvs = rowsOf(report['pv'], 'pv').map((row, index): PvLayout & { deviceSizeBytes: number } => {
    const where = `pv[${index}]`;
    const device = text(row, 'pv_name', where);
    const uuid = text(row, 'pv_uuid', where);
    const peStartBytes = count(row, 'pe_start', where);
    if (peStartBytes % SECTOR_BYTES !== 0) invalid(`${where}.pe_start ${peStartBytes} is not whole sectors`);
    pvUuidToDevice.set(uuid, device);
    return {
      device,
      uuid,
      peStartSectors: peStartBytes / SECTOR_BYTES,
      peCount: count(row, 'pv_pe_count', where),
      deviceSizeBytes: count(row, 'dev_size', where),
    };
  });

  const segmentsByLv = new Map<string, Segment[]>();
  rowsOf(report['seg'], 'seg').forEach((row, index) => {
    const where = `seg[${index}]`;
    const lvUuid = text(row, 'lv_uuid', where);
    const type = text(row, 'segtype', where);
    const extentCount = count(row, 'seg_size_pe', where);
    const ranges = parsePeRanges(text(row, 'seg_pe_ranges', where), where);
    // lvm reports linear segments as type "linear" and multi-stripe ones as "striped";
    // the metadata text calls both "striped", and so does the model.
    const isStriped = type === 'linear' || type === 'striped';
    const stripes: StripeArea[] = isStriped ? ranges.map((r) => ({ pv: r.pv, firstExtent: r.firstExtent })) : [];
    if (isStriped && ranges.some((r) => r.extentCount * ranges.length !== extentCount)) {
      invalid(`${where}: PE ranges do not add up to ${extentCount} extents`);
    }
    const list = segmentsByLv.get(lvUuid) ?? [];
    list.push({ logicalStart: count(row, 'seg_start_pe', where), extentCount, type: isStriped ? 'striped' : type, stripes });
    segmentsByLv.set(lvUuid, list);
  });

  const lvs = rowsOf(report['lv'], 'lv').map((row, index): LvLayout => {
    const where = `lv[${index}]`;
    const uuid = text(row, 'lv_uuid', where);
    return {
      name: text(row, 'lv_name', where).replace(/^\[(.*)\]$/, '$1'),
      uuid,
      tags: tagList(text(row, 'lv_tags', where)),
      activationSkip: text(row, 'lv_skip_activation', where) !== '',
      segments: (segmentsByLv.get(uuid) ?? []).sort((a, b) => a.logicalStart - b.logicalStart),
    };
  });

  const freeRanges: PhysicalRange[] = [];
  rowsOf(report['pvseg'], 'pvseg').forEach((row, index) => {
    const where = `pvseg[${index}]`;
    if (text(row, 'lv_uuid', where) !== '') return;
    const device = pvUuidToDevice.get(text(row, 'pv_uuid', where));
    if (device === undefined) invalid(`${where} refers to an unknown PV`);
    freeRanges.push({ pv: device, firstExtent: count(row, 'pvseg_start', where), extentCount: count(row, 'pvseg_size', where) });
  });

  return {
    name: vgName,
    uuid: text(vgRow, 'vg_uuid', 'vg'),
    seqno: count(vgRow, 'vg_seqno', 'vg'),
    extentSizeSectors: extentSizeBytes / SECTOR_BYTES,
    tags: tagList(text(vgRow, 'vg_tags', 'vg')),
    extentCount: count(vgRow, 'vg_extent_count', 'vg'),
    freeExtentCount: count(vgRow, 'vg_free_count', 'vg'),
    metadataAreaSizeBytes: count(vgRow, 'vg_mda_size', 'vg'),
    metadataAreaFreeBytes: count(vgRow, 'vg_mda_free', 'vg'),
    pvs,
    lvs,
    freeRanges,
  };
}

export interface ReadVgOptions extends LvmCallOptions {
  /** 'lvm': ask lvm even when the PVs could be read directly (`thinlv check` wants lvm's own view). */
  readonly via?: 'lvm';
  /**
   * The LVs of a layout the caller holds (a host daemon's, as it re-reads): a read from the
   * PVs gives each LV unchanged since as that very object, not a second copy (sharedLvs.ts).
   */
  readonly sharingWith?: readonly LvLayout[];
}

/** Where to read the VG's PVs directly: the devices lvm is restricted to, else where lvm last found them. */
export async function devicesToRead(lvm: LvmRunner, vgName: string): Promise<readonly string[] | undefined> {
  return lvm.devices ?? (lvm.rememberPvDevices === true ? await rememberedDevices(vgName) : undefined);
}

/**
 * What identifies the VG's metadata now, from its PVs' label and header sectors alone (or
 * the runner's own word, LvmRunner.textKey, when it has one): whoever read the VG when the
 * key was the same has it still. Undefined when thinlv does not know the VG's devices or
 * they cannot say (only lvm could).
 */
export async function vgTextKey(lvm: LvmRunner, vgName: string): Promise<string | undefined> {
  const named = await lvm.textKey?.(vgName);
  if (named !== undefined) return named;
  const devices = await devicesToRead(lvm, vgName);
  if (devices === undefined) return undefined;
  try {
    return await readTextsKey(devices);
  } catch (error) {
    if (error instanceof DiskMetadataMiss) return undefined;
    throw error;
  }
}

/** After lvm read the VG: where its PVs are, for the next reader without --devices. */
export async function noteDevices(lvm: LvmRunner, vgName: string, devices: readonly string[]): Promise<void> {
  if (lvm.devices === undefined && lvm.rememberPvDevices === true) await rememberDevices(vgName, devices);
}

/**
 * The VG as lvm fullreport gives it. Its PVs are read directly instead when thinlv knows
 * where they are (devicesToRead; diskMetadata.ts: the same bytes and checks, without an
 * lvm process, which costs seconds on a large VG); whatever that cannot vouch for goes to lvm.
 */
export async function readVgReport(lvm: LvmRunner, vgName: string, options: ReadVgOptions = {}): Promise<VgReport> {
  const { via, sharingWith, ...callOptions } = options;
  const devices = via === 'lvm' ? undefined : await devicesToRead(lvm, vgName);
  if (devices !== undefined) {
    try {
      return await readVgFromDisk(devices, vgName, sharingWith);
    } catch (error) {
      if (!(error instanceof DiskMetadataMiss)) throw error;
    }
  }
  const report = await readVgReportWithLvm(lvm, vgName, callOptions);
  await noteDevices(lvm, vgName, report.pvs.map((pv) => pv.device));
  return report;
}

/**
 * Always with lvm's --readonly: a report must never write. Measured here: a plain
 * `lvm fullreport` of a VG whose metadata LVM found wanting rewrote it (an archive
 * "created before executing fullreport" appeared), which on a shared VG means a
 * host, or an operator's `thinlv check`, writing metadata the master owns.
 */
async function readVgReportWithLvm(lvm: LvmRunner, vgName: string, options: LvmCallOptions): Promise<VgReport> {
  const { stdout } = await lvm.run('fullreport', [...FULLREPORT_ARGS, '--readonly', vgName], options);
  return parseFullReport(stdout, vgName);
}
