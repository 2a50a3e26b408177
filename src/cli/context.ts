// What every CLI command gets from the global options: a logger and an lvm
// runner restricted to --devices, with --driverloaded decided by asking the kernel.

import { probeDeviceMapper, type DeviceMapperProbe } from '../dm/dmsetup.js';
import { probeDeviceMapperQuickly } from '../dm/quickProbe.js';
import { createLvmRunner, type LvmRunner } from '../lvm/runLvm.js';
import { createLogger, type Logger } from '../log.js';
import type { LevelWithSilent } from 'pino';

export interface GlobalOptions {
  readonly devices?: readonly string[] | undefined;
  readonly logLevel: LevelWithSilent;
  readonly json: boolean;
  readonly lvmPath: string;
  readonly lvmTimeoutMs: number;
  readonly lvmConfig?: string | undefined;
}

export interface CommandContext {
  readonly options: GlobalOptions;
  readonly log: Logger;
  readonly lvm: LvmRunner;
  readonly deviceMapper: DeviceMapperProbe;
}

/**
 * `probe: 'fresh'` (daemons) asks `dmsetup version` every time; 'quick' (every other
 * command) reads /proc/misc and a per-boot note first (src/dm/quickProbe.ts).
 */
export async function createCommandContext(options: GlobalOptions, probe: 'quick' | 'fresh' = 'quick'): Promise<CommandContext> {
  const log = createLogger(options.logLevel);
  const deviceMapper = probe === 'fresh' ? await probeDeviceMapper() : await probeDeviceMapperQuickly();
  log.debug({ deviceMapper }, 'device-mapper probe');
  const lvm = createLvmRunner({
    lvmPath: options.lvmPath,
    deviceMapperAvailable: deviceMapper.available,
    defaultTimeoutMs: options.lvmTimeoutMs,
    ...(options.devices && options.devices.length > 0 ? { devices: options.devices } : {}),
    ...(options.lvmConfig !== undefined ? { extraConfig: options.lvmConfig } : {}),
    rememberPvDevices: true,
  });
  return { options, log, lvm, deviceMapper };
}
