// The only place that runs `dmsetup`.
//
// Whether device-mapper is usable is decided by asking the kernel
// (`dmsetup version` succeeds only when the driver answers). The presence of
// /dev/mapper/control proves nothing: lvm creates that node even on a kernel
// without device-mapper.

import { execa } from 'execa';

export const DMSETUP_TIMEOUT_MS = 10_000;

export interface DeviceMapperProbe {
  readonly available: boolean;
  /** The kernel driver version, or why it is unusable. */
  readonly detail: string;
}

export async function probeDeviceMapper(dmsetupPath = 'dmsetup'): Promise<DeviceMapperProbe> {
  const result = await execa(dmsetupPath, ['version'], {
    env: { LC_ALL: 'C' },
    stdin: 'ignore',
    timeout: DMSETUP_TIMEOUT_MS,
    reject: false,
  });
  const output = `${String(result.stdout)}\n${String(result.stderr)}`;
  const driver = /Driver version:\s*(\S+)/.exec(output);
  if (!result.failed && driver) return { available: true, detail: `device-mapper driver ${driver[1]}` };
  if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    return { available: false, detail: `${dmsetupPath} not found` };
  }
  const reason = output.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'no answer';
  return { available: false, detail: `kernel device-mapper unusable: ${reason}` };
}
