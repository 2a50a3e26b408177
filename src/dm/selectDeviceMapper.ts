// Which real DeviceMapper a host daemon uses.
//
//   THINLV_DM_BACKEND=dmsetup             dmsetup, always (an operator's way back)
//   the ioctl addon loads, and            ioctls for suspend/load/resume/table/info,
//     /dev/mapper/control answers         dmsetup for create/remove (dmIoctl.ts)
//     DM_VERSION
//   otherwise                             dmsetup, with the reason the ioctls are not used
//
// Both run under the same createDeviceMapper sequencing, and classify failures into the
// same DmError codes; the rig's smoke run checks that they leave the same tables.

import { DmError, ErrorCode, UsageError } from '../errors.js';
import { createDeviceMapper, dmsetupCommands, type DeviceMapper, type DmsetupDeviceMapperConfig } from './deviceMapper.js';
import { DmIoctlRunner, ioctlCommands, openDmIoctl, type DmIoctlOpenResult } from './dmIoctl.js';
import { createDmsetupRunner, DMSETUP_TIMEOUT_MS, DmErrorCode } from './dmsetup.js';

export type DeviceMapperBackend = 'ioctl' | 'dmsetup';

export interface SelectedDeviceMapper {
  readonly deviceMapper: DeviceMapper;
  readonly backend: DeviceMapperBackend;
  /** The driver version used, or why the ioctls are not. */
  readonly detail: string;
}

export interface SelectDeviceMapperConfig extends DmsetupDeviceMapperConfig {
  /** 'ioctl' fails when the ioctls cannot be used; default: ioctls when they can be used. */
  readonly backend?: DeviceMapperBackend | 'auto';
  /** Replaces openDmIoctl() (tests). */
  readonly openIoctl?: () => DmIoctlOpenResult;
}

export function selectDeviceMapper(config: SelectDeviceMapperConfig = {}, env: NodeJS.ProcessEnv = process.env): SelectedDeviceMapper {
  const timeoutMs = config.timeoutMs ?? DMSETUP_TIMEOUT_MS;
  const dmsetup = dmsetupCommands(
    createDmsetupRunner({
      ...(config.dmsetupPath === undefined ? {} : { dmsetupPath: config.dmsetupPath }),
      defaultTimeoutMs: timeoutMs,
      udevSync: config.udevSync ?? true,
    }),
  );
  const wanted = config.backend ?? backendFromEnv(env.THINLV_DM_BACKEND);
  if (wanted === 'dmsetup') return { deviceMapper: createDeviceMapper(dmsetup), backend: 'dmsetup', detail: 'dmsetup chosen by configuration' };
  const opened = (config.openIoctl ?? (() => openDmIoctl()))();
  if (!opened.ok) {
    if (wanted === 'ioctl') throw new DmError(DmErrorCode.unavailable, `device-mapper ioctls were required (THINLV_DM_BACKEND=ioctl) but cannot be used: ${opened.reason}`, { reason: opened.reason });
    return { deviceMapper: createDeviceMapper(dmsetup), backend: 'dmsetup', detail: `dmsetup, since the ioctls cannot be used: ${opened.reason}` };
  }
  const runner = new DmIoctlRunner(opened.dmIoctl, timeoutMs);
  return {
    deviceMapper: createDeviceMapper(ioctlCommands(runner, dmsetup)),
    backend: 'ioctl',
    detail: `ioctls (driver ${opened.dmIoctl.driverVersion}, ${opened.dmIoctl.addonPath}); dmsetup for create and remove`,
  };
}

function backendFromEnv(value: string | undefined): DeviceMapperBackend | 'auto' {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'ioctl' || value === 'dmsetup') return value;
  throw new UsageError(ErrorCode.invalidArgument, `THINLV_DM_BACKEND must be auto, ioctl or dmsetup, got "${value}"`, { value });
}
