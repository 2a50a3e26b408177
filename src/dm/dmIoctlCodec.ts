// The device-mapper ioctl interface (<linux/dm-ioctl.h>, version 4) as bytes: request
// numbers, struct dm_ioctl, and the payloads of the few commands thinlv issues. Pure: no
// I/O, so it is unit tested on machines without device-mapper; the addon
// (native/dmIoctl/dmIoctl.c) only runs ioctl(2) on the buffers built here, and exports the
// kernel header's sizes and request numbers, which dmIoctl.ts checks against these when
// it loads (a pair assertion: a layout written down wrong never reaches the kernel).
//
// One buffer, in and out (the kernel copies data_size bytes in, and back out):
//
//   0    struct dm_ioctl (312 bytes)  version[3] data_size data_start target_count
//                                     open_count flags event_nr padding dev name[128] uuid[129]
//   312  payload                       TABLE_LOAD in: target specs; TABLE_STATUS out: the same
//
//   struct dm_target_spec (40 bytes)  sector_start length status next target_type[16]
//                                     followed by its NUL-terminated parameter string, the
//                                     next spec 8-byte aligned. `next` counts from this spec
//                                     on the way in, from the payload's start on the way out.

import { DmError } from '../errors.js';
import { DmErrorCode, type DmErrorCodeValue } from './dmsetup.js';

export const DM_IOCTL_BYTES = 312;
export const DM_TARGET_SPEC_BYTES = 40;
export const DM_NAME_OFFSET = 48;
export const DM_UUID_OFFSET = 176;
export const DM_DEV_OFFSET = 40;
export const DM_FLAGS_OFFSET = 28;
export const DM_NAME_BYTES = 128;
export const DM_UUID_BYTES = 129;
/** DM_MAX_TYPE_NAME, the terminating NUL included. */
export const DM_TARGET_TYPE_BYTES = 16;
export const DM_VERSION_MAJOR = 4;
/**
 * The interface minor version thinlv asks for. The kernel accepts any minor up to its own;
 * 0 asks for nothing newer than the 4.0 interface, which has every command used here.
 */
export const DM_VERSION_MINOR_WANTED = 0;

/** Flags of struct dm_ioctl (the header's DM_*_FLAG). */
export const DmFlag = {
  readonly: 1 << 0,
  suspend: 1 << 1,
  exists: 1 << 2,
  statusTable: 1 << 4,
  activePresent: 1 << 5,
  inactivePresent: 1 << 6,
  bufferFull: 1 << 8,
  skipLockfs: 1 << 10,
  noflush: 1 << 11,
  queryInactiveTable: 1 << 12,
} as const;

/** Command numbers (the header's DM_*_CMD). */
const DM_COMMAND_NUMBER = {
  version: 0,
  create: 3,
  remove: 4,
  suspend: 6,
  status: 7,
  load: 9,
  clear: 10,
  tableStatus: 12,
} as const;

export type DmIoctlRequestName = keyof typeof DM_COMMAND_NUMBER;

/** _IOWR(0xfd, nr, struct dm_ioctl), as the kernel's <asm-generic/ioctl.h> computes it. */
export function dmRequestNumber(request: DmIoctlRequestName): number {
  const read = 2;
  const write = 1;
  const value = (((read | write) << 30) | (DM_IOCTL_BYTES << 16) | (0xfd << 8) | DM_COMMAND_NUMBER[request]) >>> 0;
  return value;
}

export const DM_REQUEST_NAMES = Object.keys(DM_COMMAND_NUMBER) as DmIoctlRequestName[];

/** The addon's view of the kernel header (native/dmIoctl/dmIoctl.c `layout`). */
export interface DmNativeLayout {
  readonly ioctlBytes: number;
  readonly targetSpecBytes: number;
  readonly nameOffset: number;
  readonly uuidOffset: number;
  readonly devOffset: number;
  readonly flagsOffset: number;
  readonly nameBytes: number;
  readonly uuidBytes: number;
  readonly versionMajor: number;
  readonly requests: Readonly<Record<string, number>>;
}

/** Where the addon's layout differs from this file's, or undefined when they agree. */
export function layoutMismatch(native: DmNativeLayout): string | undefined {
  const expected: [string, number, number][] = [
    ['sizeof(struct dm_ioctl)', DM_IOCTL_BYTES, native.ioctlBytes],
    ['sizeof(struct dm_target_spec)', DM_TARGET_SPEC_BYTES, native.targetSpecBytes],
    ['offsetof(name)', DM_NAME_OFFSET, native.nameOffset],
    ['offsetof(uuid)', DM_UUID_OFFSET, native.uuidOffset],
    ['offsetof(dev)', DM_DEV_OFFSET, native.devOffset],
    ['offsetof(flags)', DM_FLAGS_OFFSET, native.flagsOffset],
    ['DM_NAME_LEN (name bytes)', DM_NAME_BYTES, native.nameBytes],
    ['DM_UUID_LEN (uuid bytes)', DM_UUID_BYTES, native.uuidBytes],
    ['DM_VERSION_MAJOR (interface)', DM_VERSION_MAJOR, native.versionMajor],
    ...DM_REQUEST_NAMES.map((name): [string, number, number] => [`request ${name}`, dmRequestNumber(name), native.requests[name] ?? -1]),
  ];
  const wrong = expected.filter(([, mine, theirs]) => mine !== theirs);
  return wrong.length === 0 ? undefined : wrong.map(([what, mine, theirs]) => `${what}: ${mine} here, ${theirs} in the header`).join('; ');
}

export interface DmIoctlHeader {
  /** The device's name; empty for commands about the driver (version). */
  readonly name: string;
  readonly flags?: number;
  readonly targetCount?: number;
}

/**
 * A buffer of `totalBytes` holding struct dm_ioctl for `header`; its payload (from byte
 * DM_IOCTL_BYTES) is left zero for the caller to fill.
 */
export function encodeDmIoctl(header: DmIoctlHeader, totalBytes = DM_IOCTL_BYTES): Buffer {
  if (!Number.isSafeInteger(totalBytes) || totalBytes < DM_IOCTL_BYTES || totalBytes > 0xffffffff) {
    throw new RangeError(`a dm ioctl buffer must be ${DM_IOCTL_BYTES} to 2^32-1 bytes, got ${totalBytes}`);
  }
  const nameBytes = Buffer.from(header.name, 'utf8');
  // A name fills at most DM_NAME_LEN - 1 bytes: the kernel wants it NUL-terminated.
  if (nameBytes.length >= DM_NAME_BYTES || nameBytes.includes(0)) {
    throw new RangeError(`a dm device name must be under ${DM_NAME_BYTES} bytes without NUL, got ${JSON.stringify(header.name)}`);
  }
  const buffer = Buffer.alloc(totalBytes);
  buffer.writeUInt32LE(DM_VERSION_MAJOR, 0);
  buffer.writeUInt32LE(DM_VERSION_MINOR_WANTED, 4);
  buffer.writeUInt32LE(0, 8);
  buffer.writeUInt32LE(totalBytes, 12); // data_size
  buffer.writeUInt32LE(DM_IOCTL_BYTES, 16); // data_start
  buffer.writeUInt32LE(header.targetCount ?? 0, 20);
  buffer.writeUInt32LE((header.flags ?? 0) >>> 0, DM_FLAGS_OFFSET);
  nameBytes.copy(buffer, DM_NAME_OFFSET);
  return buffer;
}

/** What the kernel wrote back into struct dm_ioctl. */
export interface DmIoctlReply {
  readonly version: readonly [number, number, number];
  readonly dataSize: number;
  readonly dataStart: number;
  readonly targetCount: number;
  readonly openCount: number;
  readonly flags: number;
  readonly eventNumber: number;
  readonly name: string;
}

export function decodeDmIoctl(buffer: Buffer): DmIoctlReply {
  if (buffer.length < DM_IOCTL_BYTES) throw new RangeError(`a dm ioctl reply is at least ${DM_IOCTL_BYTES} bytes, got ${buffer.length}`);
  const nameEnd = buffer.indexOf(0, DM_NAME_OFFSET);
  return {
    version: [buffer.readUInt32LE(0), buffer.readUInt32LE(4), buffer.readUInt32LE(8)],
    dataSize: buffer.readUInt32LE(12),
    dataStart: buffer.readUInt32LE(16),
    targetCount: buffer.readUInt32LE(20),
    openCount: buffer.readInt32LE(24),
    flags: buffer.readUInt32LE(DM_FLAGS_OFFSET),
    eventNumber: buffer.readUInt32LE(32),
    name: buffer.toString('utf8', DM_NAME_OFFSET, nameEnd < 0 || nameEnd > DM_NAME_OFFSET + DM_NAME_BYTES ? DM_NAME_OFFSET + DM_NAME_BYTES : nameEnd),
  };
}

/** One table line as the kernel takes it: a target and its parameter string. */
export interface DmTarget {
  readonly startSector: bigint;
  readonly lengthSectors: bigint;
  readonly targetType: string;
  readonly parameters: string;
}

const TABLE_LINE = /^\s*(\d+)\s+(\d+)\s+(\S+)(?:\s+(.*?))?\s*$/;
const MAX_U64 = (1n << 64n) - 1n;

/**
 * Reads `dmsetup load` table text into targets, as libdevmapper does (blank lines and
 * '#' comments skipped; "<start> <length> <type> <parameters...>"). A line it cannot read
 * is DM_INVALID_TABLE, as dmsetup's "Invalid format on line N" is classified.
 */
export function parseTableText(text: string): DmTarget[] {
  const targets: DmTarget[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim().length === 0 || line.trimStart().startsWith('#')) continue;
    const match = TABLE_LINE.exec(line);
    const startSector = match?.[1] === undefined ? undefined : BigInt(match[1]);
    const lengthSectors = match?.[2] === undefined ? undefined : BigInt(match[2]);
    const targetType = match?.[3];
    if (match === null || startSector === undefined || lengthSectors === undefined || targetType === undefined || startSector > MAX_U64 || lengthSectors > MAX_U64) {
      throw new DmError(DmErrorCode.invalidTable, `Invalid format on line ${index + 1} of the table: "${line.slice(0, 200)}"`, { lineNumber: index + 1 });
    }
    if (Buffer.byteLength(targetType) >= DM_TARGET_TYPE_BYTES) {
      throw new DmError(DmErrorCode.invalidTable, `Unknown target type "${targetType.slice(0, 64)}" on line ${index + 1}: longer than ${DM_TARGET_TYPE_BYTES - 1} bytes`, { lineNumber: index + 1 });
    }
    targets.push({ startSector, lengthSectors, targetType, parameters: match[4] ?? '' });
  }
  return targets;
}

const align8 = (value: number): number => (value + 7) & ~7;

/** The DM_TABLE_LOAD buffer that loads `targets` as the inactive table of `name` (read-write). */
export function encodeTableLoad(name: string, targets: readonly DmTarget[]): Buffer {
  const parameterBytes = targets.map((target) => Buffer.from(`${target.parameters}\0`, 'utf8'));
  const specBytes = parameterBytes.map((bytes) => align8(DM_TARGET_SPEC_BYTES + bytes.length));
  const total = DM_IOCTL_BYTES + specBytes.reduce((sum, bytes) => sum + bytes, 0);
  const buffer = encodeDmIoctl({ name, targetCount: targets.length }, total);
  let offset = DM_IOCTL_BYTES;
  for (const [index, target] of targets.entries()) {
    const bytes = parameterBytes[index]!;
    const size = specBytes[index]!;
    buffer.writeBigUInt64LE(target.startSector, offset);
    buffer.writeBigUInt64LE(target.lengthSectors, offset + 8);
    buffer.writeInt32LE(0, offset + 16); // status: out only
    buffer.writeUInt32LE(size, offset + 20); // next: from this spec
    buffer.write(target.targetType, offset + 24, DM_TARGET_TYPE_BYTES - 1, 'utf8');
    bytes.copy(buffer, offset + DM_TARGET_SPEC_BYTES);
    offset += size;
  }
  if (offset !== total) throw new RangeError(`encodeTableLoad wrote ${offset} bytes of ${total}`);
  return buffer;
}

/**
 * The table of a DM_TABLE_STATUS reply (sent with DmFlag.statusTable) as `dmsetup table`
 * prints it: "<start> <length> <type> <parameters>\n" per target. Undefined when the
 * buffer was too small (DmFlag.bufferFull): ask again with a larger one.
 */
export function decodeTableStatus(buffer: Buffer): string | undefined {
  const reply = decodeDmIoctl(buffer);
  if ((reply.flags & DmFlag.bufferFull) !== 0) return undefined;
  const end = Math.min(reply.dataSize, buffer.length);
  let text = '';
  let offset = reply.dataStart;
  for (let index = 0; index < reply.targetCount; index += 1) {
    if (offset < reply.dataStart || offset + DM_TARGET_SPEC_BYTES > end) {
      throw new RangeError(`target ${index} of a table status reply lies outside its ${end} bytes (at ${offset})`);
    }
    const start = buffer.readBigUInt64LE(offset);
    const length = buffer.readBigUInt64LE(offset + 8);
    const next = buffer.readUInt32LE(offset + 20);
    const typeEnd = buffer.indexOf(0, offset + 24);
    const targetType = buffer.toString('utf8', offset + 24, typeEnd < 0 || typeEnd > offset + 40 ? offset + 40 : typeEnd);
    const parametersStart = offset + DM_TARGET_SPEC_BYTES;
    const parametersEnd = buffer.indexOf(0, parametersStart);
    if (parametersEnd < 0 || parametersEnd >= end) throw new RangeError(`the parameters of target ${index} are not NUL-terminated within the reply`);
    text += `${start} ${length} ${targetType} ${buffer.toString('utf8', parametersStart, parametersEnd)}\n`;
    // `next` counts from the payload's start in replies; it must move forward.
    const following = reply.dataStart + next;
    if (index + 1 < reply.targetCount && following <= offset) throw new RangeError(`target ${index}'s next offset ${next} does not move forward`);
    offset = following;
  }
  return text;
}

/** dmsetup's command names, for error classes and messages. */
export type DmIoctlCommand = 'version' | 'create' | 'suspend' | 'load' | 'clear' | 'resume' | 'remove' | 'table' | 'info';

const ERRNO = { ENXIO: 6, EBUSY: 16, ENODEV: 19, EINVAL: 22, ENOTTY: 25 } as const;

/**
 * The DmError code of a failed ioctl, by the same rules classifyDmsetupFailure applies to
 * dmsetup's strerror text (src/dm/dmsetup.ts), so callers see one set of codes whichever
 * path ran. The rig's smoke run checks both against the same real failures.
 */
export function dmErrorCodeOfErrno(command: DmIoctlCommand, errno: number): DmErrorCodeValue {
  const tableCommand = command === 'create' || command === 'load';
  switch (errno) {
    case ERRNO.ENXIO:
      return DmErrorCode.notFound;
    case ERRNO.EBUSY:
      return command === 'create' ? DmErrorCode.deviceExists : DmErrorCode.deviceBusy;
    case ERRNO.ENODEV:
      // A device the table names cannot be opened (dmsetup: "failed: No such device").
      return tableCommand ? DmErrorCode.invalidTable : DmErrorCode.failed;
    case ERRNO.EINVAL:
      // A resume checks a loaded table's ranges against its devices.
      return tableCommand || command === 'resume' ? DmErrorCode.invalidTable : DmErrorCode.failed;
    case ERRNO.ENOTTY:
      return DmErrorCode.unavailable;
    default:
      return DmErrorCode.failed;
  }
}
