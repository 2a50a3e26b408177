// Reads a VG's metadata straight from its PVs, as lvm itself does, without starting lvm.
//
// Why: every lvm process costs about 150 ms here before it reads a byte, and `lvm
// fullreport` of a pool in service costs seconds to minutes (10,000 LVs: 34 s for a
// stock lvs), most of it lvm's own processing, not I/O. The bytes are small: one label
// sector, one header sector and the text (pvLabel.ts has the layout).
//
// Trust: the same checks lvm makes before it believes metadata. The label and the header
// carry checksums, the text carries one, the text must name the VG asked for, and every
// PV the text lists must have been found, by uuid, among the devices read, with the same
// seqno in every metadata area in use. Anything short of that (a PV missing, areas that
// disagree, a torn read during a commit, a device that is not a PV) is a miss: the caller
// asks lvm, which repairs, warns or fails in its own words. Reads use O_DIRECT: the
// master writes metadata from another machine, and this machine's page cache must not
// answer.
//
// A model read here remembers what identifies its text on every PV (the headers' place,
// size and checksum of the text, as the report cache keys it). A caller holding one asks
// `unlessUnchanged`: when the headers still say the same, that model is the answer and
// nothing is read or parsed but the label and header sectors (a master commit checks the
// VG so twice, and a pass starts so: at 10,000 LVs each parse costs seconds).

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { ExtentSet } from '../extent/extentSet.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import type { LvLayout, VgMetadata, VgReport } from '../metadata/vgModel.js';
import { parseVgMetadata, parseVgSummary, type LvKeeper, type VgSummary } from './metadataText.js';
import { ownCopy, StringTable } from './ownStrings.js';
import { lvsSharedWith } from './sharedLvs.js';
import { wholeText } from './textLines.js';
import { compareUtf8 } from './utf8Order.js';
import { cacheKeyOf, readCachedReport, writeCachedReport } from './vgReportCache.js';
import {
  LABEL_SCAN_BYTES,
  MDA_HEADER_BYTES,
  mdaFreeBytes,
  metadataBytes,
  OnDiskFormatError,
  parseMdaHeader,
  parsePvLabel,
  textPieces,
  type DiskArea,
  type MdaHeader,
  type PvLabel,
} from './pvLabel.js';

interface DirectIo {
  getAlignedBuffer(size: number, alignment: number): Buffer;
}
const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as DirectIo;

/** Direct I/O wants offsets, lengths and buffers aligned to the logical block; 4 KiB covers 512e and 4Kn. */
const ALIGN_BYTES = 4096;
/** Reads of one device's text while a commit moves it: a checksum mismatch is read again this many times. */
const TEXT_READ_ATTEMPTS = 3;

/** One PV as its headers tell it: the label and each metadata area's header. */
export interface PvHeaders {
  readonly device: string;
  readonly label: PvLabel;
  readonly deviceSizeBytes: number;
  readonly areas: readonly { readonly header: MdaHeader }[];
}

/**
 * One PV as read from its device: the label, and the metadata text of each area in use,
 * as read: its UTF-8 bytes, decoded only as a parse reads them (or a string, the same text).
 */
export interface DevicePv extends PvHeaders {
  readonly areas: readonly { readonly header: MdaHeader; readonly text: string | Uint8Array }[];
}

/** Why the disk could not answer; the caller asks lvm instead. */
export class DiskMetadataMiss extends Error {}

async function readAligned(fd: number, area: DiskArea): Promise<Uint8Array> {
  const start = Math.floor(area.offsetBytes / ALIGN_BYTES) * ALIGN_BYTES;
  const end = Math.ceil((area.offsetBytes + area.sizeBytes) / ALIGN_BYTES) * ALIGN_BYTES;
  const buffer = directIo.getAlignedBuffer(end - start, ALIGN_BYTES);
  let done = 0;
  while (done < buffer.length) {
    const got = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, done, buffer.length - done, start + done, (error, n) => (error ? reject(error) : resolve(n))));
    if (got === 0) throw new DiskMetadataMiss(`short read at ${start + done}`);
    done += got;
  }
  return buffer.subarray(area.offsetBytes - start, area.offsetBytes - start + area.sizeBytes);
}

/** The device's size as the kernel gives it (/sys/dev/block/M:m/size, in sectors), or a file's length. */
async function deviceSize(fd: number): Promise<number> {
  const stat = await fs.promises.stat(`/proc/self/fd/${fd}`);
  if (!stat.isBlockDevice()) return stat.size;
  const major = ((stat.rdev >> 8) & 0xfff) | (Math.floor(stat.rdev / 2 ** 32) & ~0xfff);
  const minor = (stat.rdev & 0xff) | ((stat.rdev >> 12) & ~0xff);
  const sectors = Number((await fs.promises.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
  if (!Number.isSafeInteger(sectors)) throw new DiskMetadataMiss(`no size for block device ${major}:${minor}`);
  return sectors * 512;
}

const readHeader = async (fd: number, area: DiskArea): Promise<MdaHeader> =>
  parseMdaHeader(await readAligned(fd, { offsetBytes: area.offsetBytes, sizeBytes: MDA_HEADER_BYTES }), area.offsetBytes);

/** The text of one metadata area, read again when a commit changed it between the header and the text. */
async function readArea(fd: number, area: DiskArea): Promise<{ header: MdaHeader; text: Uint8Array } | undefined> {
  for (let attempt = 1; ; attempt++) {
    const header = await readHeader(fd, area);
    if (header.text === undefined) return undefined;
    const pieces = await Promise.all(textPieces(header).map((piece) => readAligned(fd, piece)));
    try {
      return { header, text: metadataBytes(header, pieces) };
    } catch (error) {
      if (!(error instanceof OnDiskFormatError) || attempt >= TEXT_READ_ATTEMPTS) throw error;
    }
  }
}

/** Opens `device` for direct reads, runs `read`, closes it. */
async function withDirectFd<T>(device: string, read: (fd: number) => Promise<T>): Promise<T> {
  const fd = await new Promise<number>((resolve, reject) => fs.open(device, fs.constants.O_RDONLY | fs.constants.O_DIRECT, (error, opened) => (error ? reject(error) : resolve(opened))));
  try {
    return await read(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The PV on `device`, or undefined when the device holds no LVM label. */
export function readDevicePv(device: string): Promise<DevicePv | undefined> {
  return withDirectFd(device, async (fd) => {
    const label = parsePvLabel(await readAligned(fd, { offsetBytes: 0, sizeBytes: LABEL_SCAN_BYTES }));
    if (label === undefined) return undefined;
    const areas = [];
    for (const area of label.metadataAreas) {
      const read = await readArea(fd, area);
      if (read !== undefined) areas.push(read);
    }
    return { device, label, deviceSizeBytes: await deviceSize(fd), areas };
  });
}

/** The label and area headers on `device` (no text), or undefined when it holds no LVM label. */
function readDeviceHeaders(device: string): Promise<PvHeaders | undefined> {
  return withDirectFd(device, async (fd) => {
    const label = parsePvLabel(await readAligned(fd, { offsetBytes: 0, sizeBytes: LABEL_SCAN_BYTES }));
    if (label === undefined) return undefined;
    const headers = await Promise.all(label.metadataAreas.map((area) => readHeader(fd, area)));
    const areas = headers.filter((header) => header.text !== undefined).map((header) => ({ header }));
    return { device, label, deviceSizeBytes: await deviceSize(fd), areas };
  });
}

const miss = (message: string): never => {
  throw new DiskMetadataMiss(message);
};

/**
 * The newest metadata of `vgName` among the PVs read, checked as lvm checks it before
 * trusting it; each text read with `parse` (a report needs only the summary).
 */
export function vgFromPvs<M extends VgSummary>(pvs: readonly DevicePv[], vgName: string, parse: (text: string | Uint8Array) => M): { metadata: M; byUuid: Map<string, DevicePv> } {
  const byUuid = new Map(pvs.map((pv) => [pv.label.pvUuid, pv]));
  const copies = pvs.flatMap((pv) => pv.areas.map((area) => ({ pv, metadata: parse(area.text), header: area.header })));
  const ours = copies.filter((copy) => copy.metadata.name === vgName);
  if (ours.length === 0) miss(`no metadata of VG ${vgName} on ${pvs.map((pv) => pv.device).join(', ') || 'no device'}`);
  const newest = ours.reduce((a, b) => (b.metadata.seqno > a.metadata.seqno ? b : a)).metadata;
  for (const pv of newest.pvs) {
    if (!byUuid.has(pv.uuid)) miss(`PV ${pv.uuid} of VG ${vgName} is not among the devices read`);
    if (pv.flags.includes('MISSING') || pv.status.includes('MISSING')) miss(`PV ${pv.uuid} of VG ${vgName} is marked missing`);
  }
  const inVg = copies.filter((copy) => newest.pvs.some((pv) => pv.uuid === copy.pv.label.pvUuid));
  if (inVg.some((copy) => copy.metadata.uuid !== newest.uuid || copy.metadata.seqno !== newest.seqno)) miss(`the metadata areas of VG ${vgName} disagree (lvm would repair them)`);
  return { metadata: newest, byUuid };
}


const isSorted = (strings: readonly string[]): boolean => strings.every((s, i) => i === 0 || compareUtf8(strings[i - 1]!, s) <= 0);

/**
 * `lv` as the report gives it: tags sorted, stripes on the devices the PVs were read on.
 * A summary's LV is taken as it is (the summary is made for this and dropped) when the
 * devices keep their names (the usual case), its segments at least: a large VG's LVs are
 * not built twice. Tags out of order (the text keeps the order they were added in, and
 * thinlv adds an LV's virtual size before its owner) become a sorted list, one for each
 * distinct list (`lists`): a copy for each LV was 0.5 MB at 10,000 LVs, and each such LV
 * was built twice, at the moment a host daemon's memory peaks (issue 14).
 */
function reportLv(lv: LvLayout, deviceOf: ReadonlyMap<string, string>, lists: StringTable): LvLayout {
  const samePlaces = lv.segments.every((s) => s.stripes.every((st) => deviceOf.get(st.pv) === st.pv));
  const tags = isSorted(lv.tags) ? lv.tags : lists.sharedList([...lv.tags].sort(compareUtf8));
  if (samePlaces) return tags === lv.tags ? lv : { ...lv, tags };
  return {
    name: lv.name,
    uuid: lv.uuid,
    tags,
    activationSkip: lv.activationSkip,
    segments: lv.segments.map((s) => ({ logicalStart: s.logicalStart, extentCount: s.extentCount, type: s.type, stripes: s.stripes.map((st) => ({ pv: deviceOf.get(st.pv)!, firstExtent: st.firstExtent })) })),
  };
}

/**
 * Each LV as the report keeps it, made as it is read (parseVgSummary's LvKeeper): the
 * report's LV (reportLv), or the LV of `sharingWith` equal to it (sharedLvs.ts).
 */
function reportLvKeeper(byUuid: ReadonlyMap<string, DevicePv>, sharingWith: readonly LvLayout[] | undefined): LvKeeper {
  const lists = new StringTable();
  const shared = lvsSharedWith(sharingWith);
  return (textPvs) => {
    // A PV not among those read leaves its name as it is: vgFromPvs then refuses the text.
    const deviceOf = new Map(textPvs.map((pv) => [pv.device, byUuid.get(pv.uuid)?.device ?? pv.device]));
    return (lv) => shared(reportLv(lv, deviceOf, lists));
  };
}

/**
 * The report lvm fullreport gives, computed from the metadata: PVs named by the device they
 * were read on. Its strings are its own (ownStrings.ts): it keeps nothing of the texts alive.
 * An LV equal to one of `sharingWith`'s (a layout the caller holds) is that LV, not a copy.
 */
export function reportFromPvs(pvs: readonly DevicePv[], vgName: string, sharingWith?: readonly LvLayout[]): VgReport {
  const keepLv = reportLvKeeper(new Map(pvs.map((pv) => [pv.label.pvUuid, pv])), sharingWith);
  const { metadata, byUuid } = vgFromPvs(pvs, vgName, (text) => parseVgSummary(text, keepLv));
  // Sorted as lvm's report sorts them: LVs by name (the keeper sorted each LV's tags).
  const lvs = [...metadata.lvs].sort((a, b) => compareUtf8(a.name, b.name));
  const reportPvs = metadata.pvs.map((pv) => {
    const read = byUuid.get(pv.uuid)!;
    return { device: read.device, uuid: ownCopy(pv.uuid), peStartSectors: pv.peStartSectors, peCount: pv.peCount, deviceSizeBytes: read.deviceSizeBytes };
  });
  const layout = { name: ownCopy(metadata.name), uuid: ownCopy(metadata.uuid), seqno: metadata.seqno, extentSizeSectors: metadata.extentSizeSectors, tags: [...metadata.tags].sort(compareUtf8).map(ownCopy), pvs: reportPvs, lvs };
  const free: ExtentSet = computeFreeExtents(layout);
  const areas = metadata.pvs.flatMap((pv) => byUuid.get(pv.uuid)!.areas.map((area) => area.header));
  return ownReport({
    ...layout,
    extentCount: reportPvs.reduce((sum, pv) => sum + pv.peCount, 0),
    freeExtentCount: free.extentCount,
    metadataAreaSizeBytes: Math.min(...areas.map((h) => h.sizeBytes)),
    metadataAreaFreeBytes: Math.min(...areas.map(mdaFreeBytes)),
    freeRanges: free.ranges(),
  });
}

/**
 * Reports made here (reportFromPvs): their strings are their own and those that repeat are
 * one string each (ownStrings.ts), and nothing else holds their objects, so keeping one
 * costs no more than a copy of it (src/host/heldLayout.ts takes them as they are).
 */
const ownReports = new WeakSet<VgReport>();
const ownReport = (report: VgReport): VgReport => (ownReports.add(report), report);

/** Whether `report` was made here and given to no one before: see ownReports. */
export const isOwnReport = (report: object): boolean => ownReports.has(report as VgReport);

/** Every PV on `devices` (`read`: texts and all, or headers only); a device that cannot be read is a miss. */
async function readPvs<T>(devices: readonly string[], read: (device: string) => Promise<T | undefined>): Promise<T[]> {
  const pvs: T[] = [];
  for (const device of devices) {
    try {
      const pv = await read(device);
      if (pv !== undefined) pvs.push(pv);
    } catch (error) {
      throw new DiskMetadataMiss(`${device}: ${(error as Error).message}`);
    }
  }
  return pvs;
}

/** Anything but a miss in reading what is on the PVs (a text lvm would refuse) is a miss too: lvm says what it is. */
function missOnError<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof DiskMetadataMiss) throw error;
    throw new DiskMetadataMiss((error as Error).message);
  }
}

/** reportFromPvs, any error but a miss made one; a function of its own, so no closure of the caller's keeps the texts. */
const reportOrMiss = (pvs: readonly DevicePv[], vgName: string, sharingWith: readonly LvLayout[] | undefined): VgReport => missOnError(() => reportFromPvs(pvs, vgName, sharingWith));

/**
 * `vgName`'s metadata as vgcfgbackup gives it (the master's commits read and check it so),
 * from `devices`; throws DiskMetadataMiss when lvm must answer.
 */
export async function readVgMetadataFromDisk(devices: readonly string[], vgName: string, unlessUnchanged?: VgMetadata): Promise<VgMetadata> {
  const known = unlessUnchanged?.name === vgName ? textsOf.get(unlessUnchanged) : undefined;
  if (known !== undefined && known.devices === devices.join('\n') && (await readTextsKey(devices)) === known.key) return unlessUnchanged!;
  const pvs = await readPvs(devices, readDevicePv);
  const metadata = missOnError(() => vgFromPvs(pvs, vgName, (text) => parseVgMetadata(wholeText(text))).metadata);
  textsOf.set(metadata, { devices: devices.join('\n'), key: cacheKeyOf(pvs) });
  return metadata;
}

/**
 * What identifies the metadata texts on `devices` now (the report cache's key), read from
 * the label and header sectors alone: equal keys, the same texts. DiskMetadataMiss when a
 * device cannot be read.
 */
export async function readTextsKey(devices: readonly string[]): Promise<string> {
  return cacheKeyOf(await readPvs(devices, readDeviceHeaders));
}

/**
 * The devices a model was read from and what identified the texts on them (see the top of
 * this file). Models are never changed in place (applyChanges makes new ones), so the
 * entry stays true of its model.
 */
const textsOf = new WeakMap<VgMetadata, { readonly devices: string; readonly key: string }>();

/**
 * `vgName` read from `devices` (every PV of the VG among them); throws DiskMetadataMiss when
 * lvm must answer. LVs equal to those of `sharingWith` are those LVs (reportFromPvs).
 */
export async function readVgFromDisk(devices: readonly string[], vgName: string, sharingWith?: readonly LvLayout[]): Promise<VgReport> {
  let pvs: DevicePv[] | undefined = await readPvs(devices, readDevicePv);
  const key = cacheKeyOf(pvs);
  const cached = await readCachedReport(vgName, key);
  if (cached !== undefined) return cached;
  const report = reportOrMiss(pvs, vgName, sharingWith);
  // The texts (megabytes at 10,000 LVs) may go before the cache is written: the report holds nothing of them.
  pvs = undefined;
  await writeCachedReport(vgName, key, report);
  return report;
}
