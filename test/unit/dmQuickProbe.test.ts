// The quick device-mapper probe of short-lived commands: /proc/misc first, then a note
// for this boot, then `dmsetup version` (here a stand-in script), noting only the
// kernel's "no".

import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { probeDeviceMapperQuickly, type QuickProbePaths } from '../../src/dm/quickProbe.js';

const BOOT = 'c0ffee00-0000-4000-8000-000000000001';

describe('quick device-mapper probe', () => {
  let dir: string;
  let paths: QuickProbePaths;
  /** A dmsetup stand-in that counts its runs and answers as a kernel without device-mapper. */
  const runs = () => (existsSync(join(dir, 'runs')) ? readFileSync(join(dir, 'runs'), 'utf8').length : 0);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'thinlv-dmprobe-'));
    const dmsetup = join(dir, 'dmsetup');
    writeFileSync(dmsetup, `#!/bin/sh\nprintf x >> ${join(dir, 'runs')}\necho "Library version:   1.02.185"\necho "/dev/mapper/control: open failed: No such device" >&2\nexit 1\n`);
    chmodSync(dmsetup, 0o755);
    writeFileSync(join(dir, 'misc'), ' 183 hw_random\n 229 fuse\n');
    writeFileSync(join(dir, 'boot_id'), `${BOOT}\n`);
    paths = { procMisc: join(dir, 'misc'), bootId: join(dir, 'boot_id'), note: join(dir, 'run', 'dm-absent'), dmsetup };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('a driver listed in /proc/misc is usable, without running dmsetup', async () => {
    writeFileSync(paths.procMisc, ' 183 hw_random\n 236 device-mapper\n');
    expect(await probeDeviceMapperQuickly(paths)).toMatchObject({ available: true });
    expect(runs()).toBe(0);
  });

  test("the kernel's no is asked once per boot: noted, then read from the note", async () => {
    const first = await probeDeviceMapperQuickly(paths);
    expect(first).toMatchObject({ available: false, detail: expect.stringContaining('kernel device-mapper unusable') });
    expect(readFileSync(paths.note, 'utf8').split('\n')[0]).toBe(BOOT);
    expect(await probeDeviceMapperQuickly(paths)).toEqual(first);
    expect(runs()).toBe(1);
    // Another boot: the note no longer counts.
    writeFileSync(paths.bootId, 'another-boot\n');
    await probeDeviceMapperQuickly(paths);
    expect(runs()).toBe(2);
    // A module loaded since shows in /proc/misc, whatever the note says.
    writeFileSync(paths.procMisc, ' 236 device-mapper\n');
    expect((await probeDeviceMapperQuickly(paths)).available).toBe(true);
  });

  test('a missing dmsetup is not noted: it may be installed any minute', async () => {
    const probe = await probeDeviceMapperQuickly({ ...paths, dmsetup: join(dir, 'no-such-dmsetup') });
    expect(probe).toMatchObject({ available: false, detail: expect.stringContaining('not found') });
    expect(existsSync(paths.note)).toBe(false);
  });
});
