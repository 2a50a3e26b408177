// LVM2's on-disk PV label and metadata-area header (lvm2 lib/format_text/layout.h and
// lib/label/label.h), parsed from bytes. Pure functions; the reads are in diskMetadata.ts.
//
//   sector 0..3 (one of them)   label_header  "LABELONE", sector u64, crc u32, offset u32, "LVM2 001"
//   label + offset              pv_header     pv uuid (32 chars), device size u64,
//                                             data areas {offset u64, size u64}... {0,0},
//                                             metadata areas {offset u64, size u64}... {0,0}
//   each metadata area start    mda_header    checksum u32, magic (16), version u32, start u64,
//                                             size u64, raw_locn {offset u64, size u64,
//                                             checksum u32, flags u32}... {0,...}
//   start + raw_locn.offset     the VG's metadata text (raw_locn.size bytes, its NUL included),
//                               wrapping to start + 512 at the end of the area
//
// All little-endian. Checksums are LVM's calc_crc: CRC-32 (reflected 0xEDB88320) started
// at 0xf597a6cf, with no final inversion. The label's covers its bytes from `offset` to the
// end of its sector; the mda header's covers bytes 4..512; the text's covers the text.

import { crc32 } from 'node:zlib';

export const SECTOR_BYTES = 512;
/** lvm2's MDA_HEADER_SIZE: the header sector at the start of each metadata area. */
export const MDA_HEADER_BYTES = 512;
/** The label is in one of the first four sectors (LABEL_SCAN_SECTORS). */
export const LABEL_SCAN_BYTES = 4 * SECTOR_BYTES;
const LVM_CRC_INITIAL = 0xf597a6cf;
const LABEL_ID = 'LABELONE';
const LABEL_TYPE = 'LVM2 001';
const MDA_MAGIC = ' LVM2 x[5A%r0N*>';
const MDA_VERSION = 1;
/** raw_locn flag: the area is kept but not used (pvchange --metadataignore). */
const RAW_LOCN_IGNORED = 1;
const PV_UUID_CHARS = 32;
/** The dashes LVM prints in a PV uuid: 6-4-4-4-4-4-6. */
const UUID_GROUPS = [6, 4, 4, 4, 4, 4, 6];

/** LVM's calc_crc(initial, bytes): zlib's CRC-32 without its pre- and post-inversion. */
export function lvmCrc(bytes: Uint8Array, initial = LVM_CRC_INITIAL): number {
  return ~crc32(bytes, ~initial >>> 0) >>> 0;
}

export interface DiskArea {
  readonly offsetBytes: number;
  readonly sizeBytes: number;
}

export interface PvLabel {
  /** As LVM prints it, with dashes. */
  readonly pvUuid: string;
  readonly deviceSizeBytes: number;
  readonly dataAreas: readonly DiskArea[];
  readonly metadataAreas: readonly DiskArea[];
}

/** Why bytes are not what LVM would accept; the reader then leaves the answer to lvm. */
export class OnDiskFormatError extends Error {}

function u64(bytes: Uint8Array, at: number): number {
  const value = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new OnDiskFormatError(`64-bit field at ${at} is out of range`);
  return Number(value);
}

const u32 = (bytes: Uint8Array, at: number): number => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32LE(at);
const ascii = (bytes: Uint8Array, at: number, length: number): string => Buffer.from(bytes.buffer, bytes.byteOffset + at, length).toString('latin1');

export function dashedUuid(raw: string): string {
  let at = 0;
  return UUID_GROUPS.map((length) => raw.slice(at, (at += length))).join('-');
}

/** Reads a {offset, size} list ending in {0, 0}; returns the areas and where the list ended. */
function areaList(bytes: Uint8Array, at: number): { areas: DiskArea[]; next: number } {
  const areas: DiskArea[] = [];
  for (; at + 16 <= bytes.length; at += 16) {
    const offsetBytes = u64(bytes, at);
    if (offsetBytes === 0) return { areas, next: at + 16 };
    areas.push({ offsetBytes, sizeBytes: u64(bytes, at + 8) });
  }
  throw new OnDiskFormatError('PV header area list runs past its sector');
}

/** The label in the first LABEL_SCAN_BYTES of a device, or undefined when there is none (not a PV). */
export function parsePvLabel(start: Uint8Array): PvLabel | undefined {
  for (let sector = 0; sector * SECTOR_BYTES + SECTOR_BYTES <= Math.min(start.length, LABEL_SCAN_BYTES); sector++) {
    const label = start.subarray(sector * SECTOR_BYTES, (sector + 1) * SECTOR_BYTES);
    if (ascii(label, 0, 8) !== LABEL_ID) continue;
    if (u64(label, 8) !== sector) throw new OnDiskFormatError(`label in sector ${sector} says it is in sector ${u64(label, 8)}`);
    if (lvmCrc(label.subarray(20)) !== u32(label, 16)) throw new OnDiskFormatError(`label checksum mismatch in sector ${sector}`);
    if (ascii(label, 24, 8) !== LABEL_TYPE) throw new OnDiskFormatError(`label type "${ascii(label, 24, 8)}" is not ${LABEL_TYPE}`);
    const pvHeader = u32(label, 20);
    const data = areaList(label, pvHeader + PV_UUID_CHARS + 8);
    const metadata = areaList(label, data.next);
    return {
      pvUuid: dashedUuid(ascii(label, pvHeader, PV_UUID_CHARS)),
      deviceSizeBytes: u64(label, pvHeader + PV_UUID_CHARS),
      dataAreas: data.areas,
      metadataAreas: metadata.areas,
    };
  }
  return undefined;
}

export interface MdaHeader {
  readonly startBytes: number;
  readonly sizeBytes: number;
  /** The committed metadata's place in the area; undefined when the area holds none or is ignored. */
  readonly text?: { readonly offsetBytes: number; readonly sizeBytes: number; readonly checksum: number };
}

/** The header sector of the metadata area that starts at `startBytes`. */
export function parseMdaHeader(sector: Uint8Array, startBytes: number): MdaHeader {
  if (sector.length < MDA_HEADER_BYTES) throw new OnDiskFormatError('metadata area header is short');
  if (lvmCrc(sector.subarray(4, MDA_HEADER_BYTES)) !== u32(sector, 0)) throw new OnDiskFormatError(`metadata area header at ${startBytes}: checksum mismatch`);
  if (ascii(sector, 4, 16) !== MDA_MAGIC) throw new OnDiskFormatError(`metadata area header at ${startBytes}: wrong magic`);
  if (u32(sector, 20) !== MDA_VERSION) throw new OnDiskFormatError(`metadata area header at ${startBytes}: version ${u32(sector, 20)}`);
  if (u64(sector, 24) !== startBytes) throw new OnDiskFormatError(`metadata area header at ${startBytes} says it starts at ${u64(sector, 24)}`);
  const sizeBytes = u64(sector, 32);
  const offsetBytes = u64(sector, 40);
  const textBytes = u64(sector, 48);
  const ignored = (u32(sector, 60) & RAW_LOCN_IGNORED) !== 0;
  if (offsetBytes === 0 || textBytes === 0 || ignored) return { startBytes, sizeBytes };
  if (offsetBytes < MDA_HEADER_BYTES || offsetBytes >= sizeBytes || textBytes > sizeBytes - MDA_HEADER_BYTES) {
    throw new OnDiskFormatError(`metadata area at ${startBytes}: text at ${offsetBytes}+${textBytes} lies outside the area`);
  }
  return { startBytes, sizeBytes, text: { offsetBytes, sizeBytes: textBytes, checksum: u32(sector, 56) } };
}

/** Where the text lies on the device: one piece, or two when it wraps round the circular buffer. */
export function textPieces(header: MdaHeader): DiskArea[] {
  const text = header.text;
  if (text === undefined) return [];
  const first = Math.min(text.sizeBytes, header.sizeBytes - text.offsetBytes);
  const pieces = [{ offsetBytes: header.startBytes + text.offsetBytes, sizeBytes: first }];
  if (first < text.sizeBytes) pieces.push({ offsetBytes: header.startBytes + MDA_HEADER_BYTES, sizeBytes: text.sizeBytes - first });
  return pieces;
}

/**
 * The text's UTF-8 bytes from its pieces' bytes, checked against the header's checksum; its
 * trailing NUL dropped. Not decoded: a reader that parses it a piece at a time never holds
 * it whole as a string (textLines.ts).
 */
export function metadataBytes(header: MdaHeader, pieces: readonly Uint8Array[]): Buffer {
  const text = header.text;
  if (text === undefined) throw new OnDiskFormatError('metadata area holds no metadata');
  const crc = pieces.reduce((value, piece) => lvmCrc(piece, value), LVM_CRC_INITIAL);
  if (crc !== text.checksum) throw new OnDiskFormatError(`metadata text at ${header.startBytes + text.offsetBytes}: checksum mismatch`);
  // One piece (the text does not wrap) is kept where it lies: a copy of it would be
  // megabytes more (10,000 LVs: 5.5 MB) at the moment a host daemon's memory peaks.
  const joined = pieces.length === 1 ? asBuffer(pieces[0]!) : Buffer.concat(pieces);
  const end = joined.indexOf(0);
  return end < 0 ? joined : joined.subarray(0, end);
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * What `lvs -o vg_mda_free` reports for this area (lvm2 2.03's read_metadata_location_summary):
 * one copy may use half the circular buffer less a sector (copies start on a sector),
 * and the free space is that less the current text, in whole sectors.
 */
export function mdaFreeBytes(header: MdaHeader): number {
  const maxCopyBytes = Math.floor((header.sizeBytes - MDA_HEADER_BYTES) / 2) - SECTOR_BYTES;
  const used = header.text?.sizeBytes ?? 0;
  return used >= maxCopyBytes ? 0 : Math.floor((maxCopyBytes - used) / SECTOR_BYTES) * SECTOR_BYTES;
}
