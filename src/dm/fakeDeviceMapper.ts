// An in-memory device-mapper for unit and property tests (xenvm's --mock-devmapper).
//
// It fakes the kernel, not the sequencing: the DeviceMapper it exposes is
// createDeviceMapper() over in-memory commands, so reload's suspend → load → resume
// and its recovery run exactly as they do over dmsetup. Like the kernel it keeps a live
// and an inactive table and a suspended flag per device, and answers a missing device
// with DM_NOT_FOUND, a taken name with DM_DEVICE_EXISTS, a table it cannot read with
// DM_INVALID_TABLE. Tests can fail the next command of a kind (optionally after it took
// effect, as a timed-out ioctl may have), read every command in order, and ask which
// devices are left suspended.

import { DmError, InvariantError } from '../errors.js';
import { formatDmTable, type DmTableLine } from '../extent/dmTable.js';
import {
  createDeviceMapper,
  DmErrorCode,
  parseDmTable,
  withDeviceNumbers,
  type ActivateOptions,
  type DeviceMapper,
  type DeviceNumbers,
  type DmCallOptions,
  type DmCommand,
  type DmCommands,
} from './deviceMapper.js';

/** Beyond this many recorded commands the fake stops: a test is looping, or should clear the log. */
export const MAX_RECORDED_OPERATIONS = 1_000_000;

export interface FakeDmOperation {
  readonly command: DmCommand;
  readonly name: string;
  /** The table text given to `create` or `load`. */
  readonly tableText?: string;
  /** The code of the error the command failed with, when it failed. */
  readonly failedWith?: string;
}

export interface FakeFailureOptions {
  /** Apply the command's effect, then fail (a timeout after the kernel had acted). */
  readonly afterEffect?: boolean;
}

export interface FakeDeviceMapperOptions {
  /**
   * When given, tables are stored as the kernel stores them: each device path becomes its
   * "major:minor", and a path missing from the map fails the load with DM_INVALID_TABLE
   * (the kernel cannot open it). Without it, tables read back as they were loaded.
   */
  readonly deviceNumbers?: DeviceNumbers;
}

interface FakeDevice {
  live: string;
  inactive: string | undefined;
  suspended: boolean;
  readonly uuid: string | undefined;
}

interface PendingFailure {
  readonly error: DmError;
  readonly afterEffect: boolean;
}

export class FakeDeviceMapper implements DeviceMapper {
  readonly #devices = new Map<string, FakeDevice>();
  readonly #operations: FakeDmOperation[] = [];
  readonly #failures = new Map<DmCommand, PendingFailure>();
  readonly #deviceNumbers: DeviceNumbers | undefined;
  readonly #deviceMapper: DeviceMapper;

  constructor(options: FakeDeviceMapperOptions = {}) {
    this.#deviceNumbers = options.deviceNumbers;
    this.#deviceMapper = createDeviceMapper(this.#commands());
  }

  activate(name: string, table: readonly DmTableLine[], options?: ActivateOptions): Promise<void> {
    return this.#deviceMapper.activate(name, table, options);
  }

  reload(name: string, table: readonly DmTableLine[], options?: DmCallOptions): Promise<void> {
    return this.#deviceMapper.reload(name, table, options);
  }

  deactivate(name: string, options?: DmCallOptions): Promise<void> {
    return this.#deviceMapper.deactivate(name, options);
  }

  table(name: string, options?: DmCallOptions): Promise<DmTableLine[] | undefined> {
    return this.#deviceMapper.table(name, options);
  }

  exists(name: string, options?: DmCallOptions): Promise<boolean> {
    return this.#deviceMapper.exists(name, options);
  }

  /**
   * The next `command` fails with `error` (default DM_FAILED) and, unless afterEffect,
   * changes nothing. Later commands of that kind succeed again.
   */
  failNext(command: DmCommand, error?: DmError, options: FakeFailureOptions = {}): void {
    this.#failures.set(command, {
      error: error ?? new DmError(DmErrorCode.failed, `fake dmsetup ${command} failed (injected by a test)`, { command }),
      afterEffect: options.afterEffect ?? false,
    });
  }

  /** Drops failures set with failNext that no command has consumed yet. */
  clearFailures(): void {
    this.#failures.clear();
  }

  /** Every command run so far, in order, failed ones included. */
  get operations(): readonly FakeDmOperation[] {
    return this.#operations;
  }

  clearOperations(): void {
    this.#operations.length = 0;
  }

  /** Names of the devices that exist, sorted. */
  deviceNames(): string[] {
    return [...this.#devices.keys()].sort();
  }

  /** Names of the devices left suspended, sorted: empty after every completed reload. */
  suspendedDevices(): string[] {
    return [...this.#devices].filter(([, device]) => device.suspended).map(([name]) => name).sort();
  }

  isSuspended(name: string): boolean {
    return this.#devices.get(name)?.suspended ?? false;
  }

  /** The live table text as the fake kernel holds it, or undefined without such a device. */
  liveTableText(name: string): string | undefined {
    return this.#devices.get(name)?.live;
  }

  /** The table loaded but not yet resumed, or undefined. */
  inactiveTableText(name: string): string | undefined {
    return this.#devices.get(name)?.inactive;
  }

  uuidOf(name: string): string | undefined {
    return this.#devices.get(name)?.uuid;
  }

  #commands(): DmCommands {
    return {
      create: async (name: string, tableText: string, options: ActivateOptions) => {
        this.#run('create', name, tableText, () => {
          if (this.#devices.has(name) || (options.uuid !== undefined && [...this.#devices.values()].some((d) => d.uuid === options.uuid))) {
            throw new DmError(DmErrorCode.deviceExists, `fake dmsetup create: ${name} (or its uuid) is already in use`, { command: 'create', name });
          }
          // The kernel creates, loads and resumes in one go, and creates nothing if the load fails.
          this.#devices.set(name, { live: this.#kernelTable('create', name, tableText), inactive: undefined, suspended: false, uuid: options.uuid });
        });
      },
      suspend: async (name: string) => {
        this.#run('suspend', name, undefined, () => {
          this.#device('suspend', name).suspended = true;
        });
      },
      load: async (name: string, tableText: string) => {
        this.#run('load', name, tableText, () => {
          const device = this.#device('reload', name);
          device.inactive = this.#kernelTable('load', name, tableText);
        });
      },
      clear: async (name: string) => {
        this.#run('clear', name, undefined, () => {
          this.#device('clear', name).inactive = undefined;
        });
      },
      resume: async (name: string) => {
        this.#run('resume', name, undefined, () => {
          const device = this.#device('resume', name);
          if (device.inactive !== undefined) {
            device.live = device.inactive;
            device.inactive = undefined;
          }
          device.suspended = false;
        });
      },
      remove: async (name: string) => {
        this.#run('remove', name, undefined, () => {
          this.#device('remove', name);
          this.#devices.delete(name);
        });
      },
      table: async (name: string) => {
        let text = '';
        this.#run('table', name, undefined, () => {
          text = this.#device('table', name).live;
        });
        return text;
      },
      info: async (name: string) => {
        this.#run('info', name, undefined, () => {
          this.#device('info', name);
        });
      },
    };
  }

  #run(command: DmCommand, name: string, tableText: string | undefined, effect: () => void): void {
    if (this.#operations.length >= MAX_RECORDED_OPERATIONS) {
      throw new InvariantError(`the fake device-mapper recorded ${MAX_RECORDED_OPERATIONS} commands; call clearOperations() between runs`);
    }
    const base = tableText === undefined ? { command, name } : { command, name, tableText };
    const failure = this.#failures.get(command);
    try {
      if (failure !== undefined) {
        this.#failures.delete(command);
        if (failure.afterEffect) effect();
        throw failure.error;
      }
      effect();
      this.#operations.push(base);
    } catch (error) {
      this.#operations.push({ ...base, failedWith: error instanceof DmError ? error.code : 'UNKNOWN' });
      throw error;
    }
  }

  #device(ioctl: string, name: string): FakeDevice {
    const device = this.#devices.get(name);
    if (device === undefined) {
      throw new DmError(DmErrorCode.notFound, `fake dmsetup: ${ioctl} ioctl on ${name} failed: No such device or address`, { name });
    }
    return device;
  }

  /** The table as the kernel would hold it; throws DM_INVALID_TABLE where the kernel refuses it. */
  #kernelTable(command: DmCommand, name: string, tableText: string): string {
    try {
      const lines = parseDmTable(tableText, name);
      if (lines.length === 0) throw new Error('the table is empty');
      return this.#deviceNumbers === undefined ? tableText : formatDmTable(withDeviceNumbers(lines, this.#deviceNumbers));
    } catch (cause) {
      throw new DmError(
        DmErrorCode.invalidTable,
        `fake dmsetup ${command} ${name}: the kernel refuses the table (${cause instanceof Error ? cause.message : String(cause)})`,
        { command, name },
        { cause },
      );
    }
  }
}
