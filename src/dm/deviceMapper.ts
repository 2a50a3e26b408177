// The device-mapper operations thinlv needs, behind one small interface.
//
//   DeviceMapper                       activate / reload / deactivate / table / exists
//     └─ createDeviceMapper(commands)  the sequencing: suspend → load → resume, a resume
//          │                           after any failure, one operation per device at a time
//          ├─ ioctlCommands(runner)    real, the default where it works: one ioctl per command,
//          │                           create and remove through dmsetup (dmIoctl.ts)
//          ├─ dmsetupCommands(runner)  real, the fallback: one `dmsetup` run per command (dmsetup.ts)
//          └─ FakeDeviceMapper         in memory, for tests (fakeDeviceMapper.ts)
//
// selectDeviceMapper.ts chooses between the real two. All share the sequencing, so a
// property test on the fake exercises the same reload logic that runs on a host; the
// dmsetup tests check the exact commands, the rig's smoke run the ioctls against them.
//
// reload (design hot path step 4, invariant I6). A metadata commit never touches an
// active table: the host that grew an LV loads the new table itself.
//
//   suspend ──fail──▶ clear, resume ──▶ throw the suspend's error (the old table is live)
//      │ ok
//   load ─────fail──▶ clear, resume ──▶ throw the load's error (the old table is live)
//      │ ok
//   resume ───fail──▶ throw DM_LEFT_SUSPENDED (I/O to the device is blocked)
//
// `clear` drops the kernel's inactive table before a recovery resume, because a resume
// makes whatever sits there live: a table loaded by an earlier reload whose resume
// failed, or by a load that timed out after the kernel took it. A failure of the
// recovery resume is DM_LEFT_SUSPENDED too: the caller must alert, because a suspended
// device stalls its VM until someone resumes it.
//
// Device names follow LVM ("<vg>-<lv>", each '-' inside a name doubled), so `dmsetup ls`,
// `lsblk` and LVM's own tools show a thin LV's device as they show any LV's.

import { statSync } from 'node:fs';

import { DmError, ErrorCode, ThinlvError, UsageError } from '../errors.js';
import { formatDmTable, type DmTableLine } from '../extent/dmTable.js';
import { invalidNameReason } from '../metadata/names.js';
import { createDmsetupRunner, DMSETUP_TIMEOUT_MS, DmErrorCode, type DmsetupRunner } from './dmsetup.js';

export { DmErrorCode, type DmErrorCodeValue } from './dmsetup.js';

/** The kernel's DM_NAME_LEN (128) less its terminating NUL. */
export const MAX_DM_NAME_CHARS = 127;
/** The kernel's DM_UUID_LEN (129) less its terminating NUL. */
export const MAX_DM_UUID_CHARS = 128;
/** A table of a badly fragmented LV is a few hundred KiB; more is a bug upstream. */
export const MAX_DM_TABLE_BYTES = 1024 * 1024;
/** Operations one process may have queued on one device; more means dm has stalled. */
export const MAX_QUEUED_OPERATIONS_PER_DEVICE = 16;

// Characters dmsetup passes through unmangled (its "auto" mangling escapes the rest as
// \xNN, and the name the kernel holds would then differ from the one we asked for).
const DM_NAME_CHARS = /^[A-Za-z0-9#+\-.:=@_]+$/;
const DEVICE_NUMBER = /^(\d+):(\d+)$/;

export interface DmCallOptions {
  /** Per dmsetup run or ioctl; a reload makes up to three (five after a failure). */
  readonly timeoutMs?: number;
  /** Cancels a pending run. A reload's resume is never cancelled: it must run. */
  readonly signal?: AbortSignal;
}

export interface ActivateOptions extends DmCallOptions {
  /**
   * The device's dm uuid. LVM uses "LVM-<vg uuid><lv uuid>" (both without dashes);
   * giving that lets `lvs` and `lvchange -an` see thinlv's activation as LVM's own.
   */
  readonly uuid?: string;
}

export interface DeviceMapper {
  /**
   * Creates device `name` with `table` (`dmsetup create`). Not idempotent by itself: a
   * second activate fails with DM_DEVICE_EXISTS and changes nothing, so a caller that
   * crashed mid-activation checks `table()` and reloads instead.
   */
  activate(name: string, table: readonly DmTableLine[], options?: ActivateOptions): Promise<void>;
  /**
   * Replaces the live table of `name` (suspend, load, resume). Idempotent: loading the
   * table that is already live leaves the device as it was. Never leaves the device
   * suspended unless it throws DM_LEFT_SUSPENDED.
   */
  reload(name: string, table: readonly DmTableLine[], options?: DmCallOptions): Promise<void>;
  /**
   * Removes device `name`. Idempotent: a device that does not exist is success, since the
   * goal (no such device) holds; a retry after a crash must not fail.
   */
  deactivate(name: string, options?: DmCallOptions): Promise<void>;
  /** The live table of `name`, devices as "major:minor"; undefined if there is no such device. */
  table(name: string, options?: DmCallOptions): Promise<DmTableLine[] | undefined>;
  exists(name: string, options?: DmCallOptions): Promise<boolean>;
}

/** One dmsetup command; the fake records and fails operations by the same names. */
export type DmCommand = 'create' | 'suspend' | 'load' | 'clear' | 'resume' | 'remove' | 'table' | 'info';

/**
 * The device-mapper primitives, one per dmsetup command. Each throws DmError, with
 * DM_NOT_FOUND when the device does not exist.
 */
export interface DmCommands {
  create(name: string, tableText: string, options: ActivateOptions): Promise<void>;
  suspend(name: string, options: DmCallOptions): Promise<void>;
  load(name: string, tableText: string, options: DmCallOptions): Promise<void>;
  /** Drops the inactive table, if any; the live one is untouched. */
  clear(name: string, options: DmCallOptions): Promise<void>;
  resume(name: string, options: DmCallOptions): Promise<void>;
  remove(name: string, options: DmCallOptions): Promise<void>;
  /** The `dmsetup table` text of the live table. */
  table(name: string, options: DmCallOptions): Promise<string>;
  /** Succeeds when the device exists. */
  info(name: string, options: DmCallOptions): Promise<void>;
}

// Suspend failures that prove the device was not suspended: nothing to resume.
const SUSPEND_NEVER_RAN: ReadonlySet<string> = new Set([DmErrorCode.notFound, DmErrorCode.missing, DmErrorCode.unavailable]);

/** A DeviceMapper over `commands`: the sequencing both the real and the fake one use. */
export function createDeviceMapper(commands: DmCommands): DeviceMapper {
  const queues = new Map<string, { tail: Promise<void>; length: number }>();

  // One operation per device at a time: two interleaved reloads (suspend A, suspend B,
  // load A, load B, resume A) would make B's table live while A believes its own is.
  async function exclusive<T>(name: string, options: DmCallOptions, operation: () => Promise<T>): Promise<T> {
    const queue = queues.get(name) ?? { tail: Promise.resolve(), length: 0 };
    if (queue.length >= MAX_QUEUED_OPERATIONS_PER_DEVICE) {
      throw new DmError(
        DmErrorCode.queueFull,
        `${queue.length} device-mapper operations are already queued on ${name} (limit ${MAX_QUEUED_OPERATIONS_PER_DEVICE}): ` +
          `dmsetup is not completing; check \`dmsetup info ${name}\` and the storage paths`,
        { name, queued: queue.length, limit: MAX_QUEUED_OPERATIONS_PER_DEVICE },
      );
    }
    queue.length += 1;
    queues.set(name, queue);
    const previous = queue.tail;
    let release = (): void => {};
    queue.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await previous;
      if (options.signal?.aborted) {
        throw new DmError(DmErrorCode.failed, `device-mapper operation on ${name} was cancelled before it started`, {
          name,
          cancelled: true,
        });
      }
      return await operation();
    } finally {
      queue.length -= 1;
      if (queue.length === 0) queues.delete(name);
      release();
    }
  }

  /** Resumes after a failed suspend or load, then throws what the caller must know. */
  async function resumeAfterFailure(name: string, step: 'suspend' | 'load' | 'resume', failure: unknown, options: DmCallOptions): Promise<never> {
    let clearFailure: unknown;
    try {
      await commands.clear(name, withoutSignal(options));
    } catch (error) {
      // Resume all the same: a device left suspended is worse than an unexpected table.
      clearFailure = error;
    }
    try {
      await commands.resume(name, withoutSignal(options));
    } catch (resumeFailure) {
      if (hasCode(resumeFailure, DmErrorCode.notFound)) {
        throw new DmError(DmErrorCode.notFound, `reload of ${name}: ${step} failed and the device has since disappeared`, { name, step }, { cause: failure });
      }
      throw new DmError(
        DmErrorCode.leftSuspended,
        `reload of ${name}: ${step} failed (${messageOf(failure)}) and the resume after it failed too (${messageOf(resumeFailure)}); ` +
          `I/O to ${name} may be blocked: run \`dmsetup resume ${name}\``,
        { name, step, failure: detailOf(failure), resumeFailure: detailOf(resumeFailure) },
        { cause: failure },
      );
    }
    if (!(failure instanceof DmError)) throw failure;
    if (clearFailure !== undefined) {
      throw new DmError(
        failure.code === DmErrorCode.notFound ? DmErrorCode.failed : failure.code,
        `reload of ${name} failed at ${step} (${failure.message}); the device was resumed, but dropping its inactive table ` +
          `failed first (${messageOf(clearFailure)}), so its live table may not be the old one: check \`dmsetup table ${name}\``,
        { ...failure.data, name, step, clearFailure: detailOf(clearFailure) },
        { cause: failure },
      );
    }
    // The device exists (it just resumed), so a load's "no such device" was about a
    // device named in the table, which the kernel could not open.
    const code = step === 'load' && failure.code === DmErrorCode.notFound ? DmErrorCode.invalidTable : failure.code;
    throw new DmError(
      code,
      `reload of ${name} failed at ${step}; the device was resumed on its old table: ${failure.message}`,
      { ...failure.data, name, step },
      { cause: failure },
    );
  }

  return {
    async activate(name, table, options = {}) {
      assertDeviceName(name);
      if (options.uuid !== undefined) assertDeviceUuid(options.uuid);
      const tableText = checkedTableText(name, table);
      await exclusive(name, options, () => commands.create(name, tableText, options));
    },

    async reload(name, table, options = {}) {
      assertDeviceName(name);
      // Formatted and checked before the suspend, so a bad table never stalls the device.
      const tableText = checkedTableText(name, table);
      await exclusive(name, options, async () => {
        try {
          await commands.suspend(name, options);
        } catch (failure) {
          if (failure instanceof DmError && SUSPEND_NEVER_RAN.has(failure.code)) throw failure;
          // A suspend that failed or timed out may still have suspended the device (the
          // ioctl can finish after dmsetup was killed); resuming a device that is not
          // suspended is a no-op, so resume in every case.
          await resumeAfterFailure(name, 'suspend', failure, options);
        }
        try {
          await commands.load(name, tableText, options);
        } catch (failure) {
          await resumeAfterFailure(name, 'load', failure, options);
        }
        try {
          await commands.resume(name, withoutSignal(options));
        } catch (failure) {
          if (hasCode(failure, DmErrorCode.notFound)) throw failure;
          // The kernel refused the new table at resume (seen on real dm): drop it and resume
          // the old one rather than leave the device suspended.
          if (hasCode(failure, DmErrorCode.invalidTable)) await resumeAfterFailure(name, 'resume', failure, options);
          throw new DmError(
            DmErrorCode.leftSuspended,
            `reload of ${name}: the new table was loaded but the resume failed (${messageOf(failure)}); ` +
              `I/O to ${name} is blocked: run \`dmsetup resume ${name}\``,
            { name, step: 'resume', failure: detailOf(failure) },
            { cause: failure },
          );
        }
      });
    },

    async deactivate(name, options = {}) {
      assertDeviceName(name);
      await exclusive(name, options, async () => {
        try {
          await commands.remove(name, options);
        } catch (failure) {
          // Idempotent: the goal is "no device named NAME", and it holds. A retry after a
          // crash between the remove and the record of it, or a deactivation of an LV that
          // was never active on this host, must not fail.
          if (hasCode(failure, DmErrorCode.notFound)) return;
          throw failure;
        }
      });
    },

    async table(name, options = {}) {
      assertDeviceName(name);
      return exclusive(name, options, async () => {
        let text: string;
        try {
          text = await commands.table(name, options);
        } catch (failure) {
          if (hasCode(failure, DmErrorCode.notFound)) return undefined;
          throw failure;
        }
        return parseDmTable(text, name);
      });
    },

    async exists(name, options = {}) {
      assertDeviceName(name);
      return exclusive(name, options, async () => {
        try {
          await commands.info(name, options);
          return true;
        } catch (failure) {
          if (hasCode(failure, DmErrorCode.notFound)) return false;
          throw failure;
        }
      });
    },
  };
}

export interface DmsetupDeviceMapperConfig {
  readonly dmsetupPath?: string;
  /** Per dmsetup run; default DMSETUP_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** Wait for udev on create/resume/remove (default true; see dmsetup.ts). */
  readonly udevSync?: boolean;
}

/** The real DeviceMapper: runs `dmsetup`. */
export function createDmsetupDeviceMapper(config: DmsetupDeviceMapperConfig = {}): DeviceMapper {
  const runner = createDmsetupRunner({
    ...(config.dmsetupPath === undefined ? {} : { dmsetupPath: config.dmsetupPath }),
    defaultTimeoutMs: config.timeoutMs ?? DMSETUP_TIMEOUT_MS,
    udevSync: config.udevSync ?? true,
  });
  return createDeviceMapper(dmsetupCommands(runner));
}

/** The primitives as dmsetup commands. Tables go on stdin, which handles any number of lines. */
export function dmsetupCommands(runner: DmsetupRunner): DmCommands {
  return {
    async create(name, tableText, options) {
      const switches = options.uuid === undefined ? [] : ['--uuid', options.uuid];
      await runner.run('create', [name], { ...callOptions(options), input: tableText, switches });
    },
    async suspend(name, options) {
      await runner.run('suspend', [name], callOptions(options));
    },
    async load(name, tableText, options) {
      await runner.run('load', [name], { ...callOptions(options), input: tableText });
    },
    async clear(name, options) {
      await runner.run('clear', [name], callOptions(options));
    },
    async resume(name, options) {
      await runner.run('resume', [name], callOptions(options));
    },
    async remove(name, options) {
      // --retry: udev's rules open a device briefly after each change event (blkid), so a
      // remove soon after an activation or a reload can meet a passing EBUSY; dmsetup then
      // retries for a few seconds instead of failing.
      await runner.run('remove', [name], { ...callOptions(options), switches: ['--retry'] });
    },
    async table(name, options) {
      return (await runner.run('table', [name], callOptions(options))).stdout;
    },
    async info(name, options) {
      const { stdout } = await runner.run('info', [name], callOptions(options));
      // Some dmsetup versions print this on stdout and still exit 0.
      if (/Device does not exist/.test(stdout)) {
        throw new DmError(DmErrorCode.notFound, `dmsetup info: ${name} does not exist`, { command: 'info', name });
      }
    },
  };
}

/**
 * The dm device name LVM gives LV `lv` of VG `vg`: "<vg>-<lv>" with each '-' inside
 * either name doubled ("vg-1", "lv-a" → "vg--1-lv--a"), so the name splits back
 * unambiguously (an LV name never starts with '-').
 */
export function dmName(vg: string, lv: string): string {
  const reason = invalidNameReason(vg, 'VG') ?? invalidNameReason(lv, 'LV');
  if (reason !== undefined) {
    throw new UsageError(ErrorCode.invalidArgument, `cannot name the dm device of ${vg}/${lv}: ${reason}`, { vg, lv });
  }
  const name = `${vg.replaceAll('-', '--')}-${lv.replaceAll('-', '--')}`;
  if (name.length > MAX_DM_NAME_CHARS) {
    throw new UsageError(
      ErrorCode.invalidArgument,
      `the dm device name of ${vg}/${lv} would be ${name.length} characters, more than the kernel's ${MAX_DM_NAME_CHARS}; use a shorter LV name`,
      { vg, lv, length: name.length },
    );
  }
  return name;
}

/**
 * Reads `dmsetup table` output back into lines. dmsetup prints each device as
 * "major:minor", so devicePath holds that string; compare with dmTableDifference.
 * A device with no live table prints nothing: no lines.
 */
export function parseDmTable(text: string, name = 'the device'): DmTableLine[] {
  const lines: DmTableLine[] = [];
  let expectedStartSector = 0;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line.length === 0) continue;
    const invalid = (why: string): DmError =>
      new DmError(DmErrorCode.outputInvalid, `the table of ${name}, line ${index + 1} ("${line.slice(0, 200)}"): ${why}`, {
        name,
        lineNumber: index + 1,
        line: line.slice(0, 200),
      });
    const fields = line.split(/\s+/);
    const [start, length, targetType, devicePath, offset] = fields;
    if (targetType !== 'linear') {
      throw invalid(`target "${targetType ?? ''}" is not linear; thinlv only builds linear tables`);
    }
    if (fields.length !== 5 || devicePath === undefined) {
      throw invalid('expected "<start> <length> linear <device> <offset>"');
    }
    const startSector = sectorOf(start);
    const lengthSectors = sectorOf(length);
    const offsetSector = sectorOf(offset);
    if (startSector === undefined || lengthSectors === undefined || offsetSector === undefined || lengthSectors === 0) {
      throw invalid('start, length and offset must be whole sector numbers, the length at least 1');
    }
    if (startSector !== expectedStartSector) {
      throw invalid(`starts at sector ${startSector} but the lines before end at ${expectedStartSector}`);
    }
    expectedStartSector = startSector + lengthSectors;
    if (!Number.isSafeInteger(expectedStartSector)) throw invalid('the table ends beyond the sectors a number holds exactly');
    lines.push({ startSector, lengthSectors, targetType: 'linear', devicePath, offsetSector });
  }
  return lines;
}

/** Device path ("/dev/sdb") to "major:minor", the form in which the kernel reports it. */
export type DeviceNumbers = ReadonlyMap<string, string>;

/**
 * Where two tables differ, or undefined when they map the same sectors to the same
 * places. A device field is compared as "major:minor": a path is looked up in
 * `deviceNumbers` (deviceNumbersOf builds it); an identical field needs no lookup.
 * Throws UsageError for a path the map lacks, rather than call the tables different.
 */
export function dmTableDifference(
  expected: readonly DmTableLine[],
  actual: readonly DmTableLine[],
  deviceNumbers: DeviceNumbers = new Map(),
): string | undefined {
  const lineCount = Math.max(expected.length, actual.length);
  for (let index = 0; index < lineCount; index += 1) {
    const want = expected[index];
    const got = actual[index];
    if (want === undefined || got === undefined) {
      return `line ${index}: expected ${want === undefined ? 'no line' : `"${formatLine(want)}"`}, got ${got === undefined ? 'no line' : `"${formatLine(got)}"`}`;
    }
    const sameDevice =
      want.devicePath === got.devicePath ||
      deviceNumberOfField(want.devicePath, deviceNumbers) === deviceNumberOfField(got.devicePath, deviceNumbers);
    if (
      !sameDevice ||
      want.startSector !== got.startSector ||
      want.lengthSectors !== got.lengthSectors ||
      want.targetType !== got.targetType ||
      want.offsetSector !== got.offsetSector
    ) {
      return `line ${index}: expected "${formatLine(want)}", got "${formatLine(got)}"`;
    }
  }
  return undefined;
}

/** True when the tables map the same sectors to the same places (see dmTableDifference). */
export function dmTablesEqual(expected: readonly DmTableLine[], actual: readonly DmTableLine[], deviceNumbers?: DeviceNumbers): boolean {
  return dmTableDifference(expected, actual, deviceNumbers) === undefined;
}

/** `lines` with each device as "major:minor", as `dmsetup table` would print them. */
export function withDeviceNumbers(lines: readonly DmTableLine[], deviceNumbers: DeviceNumbers): DmTableLine[] {
  return lines.map((line) => ({ ...line, devicePath: deviceNumberOfField(line.devicePath, deviceNumbers) }));
}

/** "major:minor" of a device node, as dm tables name it. */
export function deviceNumberOf(path: string): string {
  let stats;
  try {
    stats = statSync(path, { bigint: true });
  } catch (cause) {
    throw new UsageError(ErrorCode.invalidArgument, `cannot stat device ${path}: ${messageOf(cause)}`, { path }, { cause });
  }
  if (!stats.isBlockDevice() && !stats.isCharacterDevice()) {
    throw new UsageError(ErrorCode.invalidArgument, `${path} is not a device node, so it has no major:minor`, { path });
  }
  return deviceNumberFromRdev(stats.rdev);
}

/** The DeviceNumbers map of `paths` (e.g. every PV of the VG). */
export function deviceNumbersOf(paths: Iterable<string>): Map<string, string> {
  return new Map([...paths].map((path) => [path, deviceNumberOf(path)]));
}

/**
 * glibc's gnu_dev_major / gnu_dev_minor. In BigInt because rdev passes 2^32 for large
 * major or minor numbers, and JavaScript's `>>` on a number works on 32 bits (so
 * `rdev >> 32` would be `rdev >> 0`).
 */
export function deviceNumberFromRdev(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return `${major}:${minor}`;
}

function deviceNumberOfField(field: string, deviceNumbers: DeviceNumbers): string {
  const numbers = DEVICE_NUMBER.test(field) ? field : deviceNumbers.get(field);
  if (numbers === undefined) {
    throw new UsageError(
      ErrorCode.invalidArgument,
      `no major:minor known for device "${field}"; add it to deviceNumbers (deviceNumbersOf builds the map)`,
      { device: field },
    );
  }
  const match = DEVICE_NUMBER.exec(numbers);
  if (match === null) {
    throw new UsageError(ErrorCode.invalidArgument, `deviceNumbers maps "${field}" to "${numbers}", which is not major:minor`, {
      device: field,
      numbers,
    });
  }
  // Canonical form, as the kernel prints it ("007:00" and "7:0" are one device).
  return `${Number(match[1])}:${Number(match[2])}`;
}

function assertDeviceName(name: string): void {
  const reason =
    typeof name !== 'string' || name.length === 0
      ? 'it is empty'
      : name.length > MAX_DM_NAME_CHARS
        ? `it is longer than ${MAX_DM_NAME_CHARS} characters`
        : name === '.' || name === '..'
          ? 'it is reserved'
          : !DM_NAME_CHARS.test(name)
            ? 'it may only contain A-Z a-z 0-9 # + - . : = @ _'
            : undefined;
  if (reason !== undefined) {
    throw new UsageError(ErrorCode.invalidArgument, `invalid device-mapper name ${JSON.stringify(name)}: ${reason} (dmName builds valid names)`, {
      name,
    });
  }
}

function assertDeviceUuid(uuid: string): void {
  if (uuid.length === 0 || uuid.length > MAX_DM_UUID_CHARS || !DM_NAME_CHARS.test(uuid)) {
    throw new UsageError(
      ErrorCode.invalidArgument,
      `invalid device-mapper uuid ${JSON.stringify(uuid)}: 1 to ${MAX_DM_UUID_CHARS} characters of A-Z a-z 0-9 # + - . : = @ _`,
      { uuid },
    );
  }
}

function checkedTableText(name: string, table: readonly DmTableLine[]): string {
  if (table.length === 0) {
    throw new UsageError(ErrorCode.invalidArgument, `the table for ${name} has no lines; an LV without segments cannot be mapped`, { name });
  }
  const text = formatDmTable(table);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_DM_TABLE_BYTES) {
    throw new UsageError(ErrorCode.invalidArgument, `the table for ${name} is ${bytes} bytes, more than ${MAX_DM_TABLE_BYTES}`, {
      name,
      bytes,
      limit: MAX_DM_TABLE_BYTES,
    });
  }
  return text;
}

function sectorOf(field: string | undefined): number | undefined {
  if (field === undefined || !/^\d+$/.test(field)) return undefined;
  const value = Number(field);
  return Number.isSafeInteger(value) ? value : undefined;
}

function formatLine(line: DmTableLine): string {
  return `${line.startSector} ${line.lengthSectors} ${line.targetType} ${line.devicePath} ${line.offsetSector}`;
}

function callOptions(options: DmCallOptions): DmCallOptions {
  return {
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}

function withoutSignal(options: DmCallOptions): DmCallOptions {
  return options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
}

function hasCode(error: unknown, code: string): boolean {
  return error instanceof ThinlvError && error.code === code;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function detailOf(error: unknown): unknown {
  return error instanceof ThinlvError ? error.toJSON() : messageOf(error);
}
