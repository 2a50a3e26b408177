// Whether device-mapper is usable, for short-lived commands (lvs, lvextend, ...), without a
// `dmsetup version` process each time: that spawn was a tenth of a wrapper's run.
//
//   /proc/misc lists "device-mapper"      the driver is loaded: usable
//   else, a note from this boot says no   not usable (the kernel has no device-mapper)
//   else                                  `dmsetup version` (which loads dm-mod when it can);
//                                         when the kernel says no, the note is written
//
// Only "the kernel has none" is remembered, and only for this boot (the note carries
// /proc/sys/kernel/random/boot_id): a module loaded later shows in /proc/misc at once.
// Daemons ask `dmsetup version` themselves (probeDeviceMapper): they run for days and log
// the driver's version.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { probeDeviceMapper, type DeviceMapperProbe } from './dmsetup.js';

export const DM_ABSENT_NOTE = '/run/thinlv/device-mapper-absent';

export interface QuickProbePaths {
  readonly procMisc: string;
  readonly bootId: string;
  readonly note: string;
  readonly dmsetup: string;
}

const SYSTEM_PATHS: QuickProbePaths = { procMisc: '/proc/misc', bootId: '/proc/sys/kernel/random/boot_id', note: DM_ABSENT_NOTE, dmsetup: 'dmsetup' };

const readOrEmpty = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

export async function probeDeviceMapperQuickly(paths: QuickProbePaths = SYSTEM_PATHS): Promise<DeviceMapperProbe> {
  if (/^\s*\d+\s+device-mapper\s*$/m.test(readOrEmpty(paths.procMisc))) return { available: true, detail: 'device-mapper driver loaded (/proc/misc)' };
  const bootId = readOrEmpty(paths.bootId).trim();
  const note = readOrEmpty(paths.note).split('\n');
  if (bootId !== '' && note[0] === bootId && note[1] !== undefined) return { available: false, detail: note[1] };
  const probe = await probeDeviceMapper(paths.dmsetup);
  // A missing dmsetup is not the kernel's answer: it may be installed any minute.
  if (!probe.available && bootId !== '' && probe.detail.startsWith('kernel device-mapper unusable')) {
    try {
      mkdirSync(dirname(paths.note), { recursive: true });
      writeFileSync(paths.note, `${bootId}\n${probe.detail}\n`);
    } catch {
      // Best effort: without the note the next command probes again.
    }
  }
  return probe;
}
