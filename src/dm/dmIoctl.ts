// device-mapper through its ioctls: the hot path of a live extend (suspend, load, resume)
// without a dmsetup process per step. The addon (native/dmIoctl) runs one ioctl on a
// buffer built by dmIoctlCodec.ts, on the libuv thread pool, so a suspend waiting for
// in-flight I/O never blocks the event loop.
//
//   ioctlCommands(dmsetup)    DmCommands: suspend, load, clear, resume, table, info as ioctls;
//                             create and remove through dmsetup (below)
//   openDmIoctl()             the addon loaded, /dev/mapper/control opened, DM_VERSION answered
//
// Same semantics as dmsetup's commands, step by step: `suspend` is DM_DEV_SUSPEND with
// neither DM_NOFLUSH_FLAG nor DM_SKIP_LOCKFS_FLAG, as `dmsetup suspend` sends it (in-flight
// I/O is flushed and a file system on the device frozen); `load` goes to the inactive
// slot; `resume` swaps it in. createDeviceMapper's sequencing and recovery run unchanged
// over these. What differs: no udev cookie on resume, so nothing waits for udev to
// process the change event. A resume of a device that exists adds and removes no node, so
// there is nothing to wait for; create and remove, which do add and remove
// /dev/mapper/NAME, stay with dmsetup and keep its udev wait and its `--retry`.
//
// Bounds: at most MAX_DM_IOCTLS_IN_FLIGHT ioctls at once (the thread pool has four
// threads, which the journal's file I/O needs too); each call is bounded by its timeout,
// which covers its wait for a slot. A timed-out ioctl cannot be taken back (nor can a
// killed dmsetup's): it keeps its slot, and later commands on the same device wait until
// it has returned, so a late load can never land after the clear that followed its timeout.

import { closeSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DmError } from '../errors.js';
import type { DmCallOptions, DmCommands } from './deviceMapper.js';
import {
  decodeDmIoctl,
  decodeTableStatus,
  dmErrorCodeOfErrno,
  dmRequestNumber,
  DmFlag,
  encodeDmIoctl,
  encodeTableLoad,
  layoutMismatch,
  parseTableText,
  DM_IOCTL_BYTES,
  type DmIoctlCommand,
  type DmIoctlRequestName,
  type DmNativeLayout,
} from './dmIoctlCodec.js';
import { DMSETUP_TIMEOUT_MS, DmErrorCode } from './dmsetup.js';

export const DM_CONTROL_PATH = '/dev/mapper/control';
/** Two of the thread pool's four threads at most: a stuck suspend must not starve file I/O. */
export const MAX_DM_IOCTLS_IN_FLIGHT = 2;
/** First size of a DM_TABLE_STATUS buffer; doubled while the kernel says it is full. */
export const TABLE_STATUS_FIRST_BYTES = 16 * 1024;
/** A table text beyond this is a bug upstream (deviceMapper.ts's MAX_DM_TABLE_BYTES, plus headers). */
export const TABLE_STATUS_MAX_BYTES = 4 * 1024 * 1024;
/** The addon, relative to the package root. */
export const DM_ADDON_RELATIVE_PATH = 'native/dmIoctl/build/dmIoctl.node';
/** How many directories above this module (or the bundle) to look for the package root. */
const MAX_ROOT_SEARCH_LEVELS = 6;

export interface DmNativeAddon {
  openControl(path: string): number;
  ioctl(fd: number, request: number, buffer: Buffer): Promise<number>;
  ioctlSync(fd: number, request: number, buffer: Buffer): number;
  readonly layout: DmNativeLayout;
}

/** An open control device and the addon that drives it. */
export interface DmIoctl {
  readonly addon: DmNativeAddon;
  readonly controlFd: number;
  /** The kernel's driver version, "4.48.0". */
  readonly driverVersion: string;
  readonly addonPath: string;
}

export type DmIoctlOpenResult = { readonly ok: true; readonly dmIoctl: DmIoctl } | { readonly ok: false; readonly reason: string };

/** Where the addon is: THINLV_DM_ADDON, or native/dmIoctl/build under the package root. */
export function findDmAddon(fromUrl: string = import.meta.url, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = env.THINLV_DM_ADDON;
  if (override !== undefined && override !== '') return override;
  let directory = dirname(fileURLToPath(fromUrl));
  for (let level = 0; level < MAX_ROOT_SEARCH_LEVELS; level += 1) {
    const candidate = join(directory, DM_ADDON_RELATIVE_PATH);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(directory);
    if (parent === directory) break;
    directory = parent;
  }
  return undefined;
}

/**
 * Loads the addon, checks its layout against dmIoctlCodec's, opens the control device
 * and asks the driver's version. Any failure is a reason to use dmsetup, not an error.
 */
export function openDmIoctl(addonPath: string | undefined = findDmAddon(), controlPath = DM_CONTROL_PATH): DmIoctlOpenResult {
  if (addonPath === undefined) return { ok: false, reason: `no ${DM_ADDON_RELATIVE_PATH} (the install did not build it)` };
  let addon: DmNativeAddon;
  try {
    addon = createRequire(import.meta.url)(addonPath) as DmNativeAddon;
  } catch (error) {
    return { ok: false, reason: `cannot load ${addonPath}: ${(error as Error).message}` };
  }
  const mismatch = layoutMismatch(addon.layout);
  if (mismatch !== undefined) return { ok: false, reason: `${addonPath} was built against another dm-ioctl.h: ${mismatch}` };
  let controlFd: number;
  try {
    controlFd = addon.openControl(controlPath);
  } catch (error) {
    // ENODEV: the node exists (lvm creates it) but the kernel has no device-mapper.
    return { ok: false, reason: `cannot open ${controlPath}: ${(error as Error).message}` };
  }
  const buffer = encodeDmIoctl({ name: '' }, DM_IOCTL_BYTES);
  const errno = addon.ioctlSync(controlFd, dmRequestNumber('version'), buffer);
  if (errno !== 0) {
    closeSync(controlFd);
    return { ok: false, reason: `DM_VERSION on ${controlPath} failed with errno ${errno}` };
  }
  const version = decodeDmIoctl(buffer).version;
  return { ok: true, dmIoctl: { addon, controlFd, driverVersion: version.join('.'), addonPath } };
}

/** Runs ioctls with the bounds described at the top of this file. */
export class DmIoctlRunner {
  private inFlight = 0;
  private readonly waitingForSlot: (() => void)[] = [];
  /** Per device, the last issued ioctl (settled when the kernel returned, whatever the caller saw). */
  private readonly lastByDevice = new Map<string, Promise<unknown>>();

  constructor(
    readonly dmIoctl: DmIoctl,
    private readonly defaultTimeoutMs = DMSETUP_TIMEOUT_MS,
  ) {}

  /** Issues `request` on `buffer` for device `name`; resolves once the kernel returned 0. */
  async run(command: DmIoctlCommand, request: DmIoctlRequestName, name: string, buffer: Buffer, options: DmCallOptions): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const timedOut = (): DmError =>
      new DmError(DmErrorCode.timeout, `dm ioctl ${command} ${name} did not finish within ${timeoutMs} ms (a suspend waits for in-flight I/O): check \`dmsetup info ${name}\` and the storage paths`, { command, name, timeoutMs });
    const cancelled = (): DmError =>
      new DmError(DmErrorCode.failed, `dm ioctl ${command} ${name} was cancelled before it started`, { command, name, cancelled: true });

    const previous = this.lastByDevice.get(name);
    if (previous !== undefined && !(await settlesBefore(previous, deadline))) throw timedOut();
    if (!(await this.takeSlot(deadline))) throw timedOut();
    let issued: Promise<number>;
    try {
      if (options.signal?.aborted) throw cancelled();
      issued = this.dmIoctl.addon.ioctl(this.dmIoctl.controlFd, dmRequestNumber(request), buffer);
    } catch (error) {
      this.releaseSlot();
      throw error;
    }
    const settled = issued.then(
      () => undefined,
      () => undefined,
    );
    this.lastByDevice.set(name, settled);
    void settled.then(() => {
      this.releaseSlot();
      if (this.lastByDevice.get(name) === settled) this.lastByDevice.delete(name);
    });
    if (!(await settlesBefore(issued, deadline))) throw timedOut();
    const errno = await issued.catch((error: unknown) => {
      throw new DmError(DmErrorCode.failed, `dm ioctl ${command} ${name} did not run: ${(error as Error).message}`, { command, name });
    });
    if (errno !== 0) {
      const code = dmErrorCodeOfErrno(command, errno);
      const hint = HINTS[code];
      throw new DmError(code, `dm ioctl ${command} ${name} failed: ${errnoText(errno)}${hint === undefined ? '' : ` (${hint})`}`, { command, name, errno });
    }
  }

  private async takeSlot(deadline: number): Promise<boolean> {
    while (this.inFlight >= MAX_DM_IOCTLS_IN_FLIGHT) {
      const freed = new Promise<void>((resolve) => this.waitingForSlot.push(resolve));
      if (!(await settlesBefore(freed, deadline))) return false;
    }
    this.inFlight += 1;
    return true;
  }

  private releaseSlot(): void {
    this.inFlight -= 1;
    if (this.inFlight < 0) throw new Error('DmIoctlRunner: more slots released than taken');
    // Wake every waiter: each checks again, and those that lose wait again.
    for (const wake of this.waitingForSlot.splice(0)) wake();
  }
}

/**
 * DmCommands over ioctls; `create` and `remove` come from `dmsetup` (dmsetupCommands),
 * for their udev handling (see the top of this file).
 */
export function ioctlCommands(runner: DmIoctlRunner, dmsetup: Pick<DmCommands, 'create' | 'remove'>): DmCommands {
  return {
    create: (name, tableText, options) => dmsetup.create(name, tableText, options),
    remove: (name, options) => dmsetup.remove(name, options),
    async suspend(name, options) {
      // Flush and lockfs, as `dmsetup suspend` without --noflush or --nolockfs.
      await runner.run('suspend', 'suspend', name, encodeDmIoctl({ name, flags: DmFlag.suspend }), options);
    },
    async load(name, tableText, options) {
      const targets = parseTableText(tableText);
      await runner.run('load', 'load', name, encodeTableLoad(name, targets), options);
    },
    async clear(name, options) {
      await runner.run('clear', 'clear', name, encodeDmIoctl({ name }), options);
    },
    async resume(name, options) {
      await runner.run('resume', 'suspend', name, encodeDmIoctl({ name }), options);
    },
    async table(name, options) {
      for (let bytes = TABLE_STATUS_FIRST_BYTES; bytes <= TABLE_STATUS_MAX_BYTES; bytes *= 2) {
        const buffer = encodeDmIoctl({ name, flags: DmFlag.statusTable }, bytes);
        await runner.run('table', 'tableStatus', name, buffer, options);
        const text = decodeTableStatus(buffer);
        if (text !== undefined) return text;
      }
      throw new DmError(DmErrorCode.outputInvalid, `the table of ${name} is larger than ${TABLE_STATUS_MAX_BYTES} bytes`, { name, limit: TABLE_STATUS_MAX_BYTES });
    },
    async info(name, options) {
      await runner.run('info', 'status', name, encodeDmIoctl({ name }), options);
    },
  };
}

async function settlesBefore(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  const remainingMs = deadline - Date.now();
  if (remainingMs <= 0) return false;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), remainingMs);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// What to do next, as dmsetup.ts's classifier says it for the same codes.
const HINTS: Readonly<Record<string, string>> = {
  [DmErrorCode.notFound]: 'no device-mapper device of that name is active on this host',
  [DmErrorCode.deviceBusy]: 'the device is held open (a running VM, a mount, a holder in `dmsetup ls --tree`)',
  [DmErrorCode.deviceExists]: 'the name or uuid is in use',
  [DmErrorCode.invalidTable]: 'the kernel refused the table, or a device it names is not there on this host; `dmesg` names the bad line',
};

const ERRNO_TEXT: Readonly<Record<number, string>> = {
  2: 'No such file or directory',
  6: 'No such device or address',
  16: 'Device or resource busy',
  19: 'No such device',
  22: 'Invalid argument',
  25: 'Inappropriate ioctl for device',
};

function errnoText(errno: number): string {
  return `${ERRNO_TEXT[errno] ?? 'error'} (errno ${errno})`;
}
