import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';

import { LvmError } from '../../src/errors.js';
import { classifyLvmFailure, createLvmRunner, MAX_STDERR_KEPT_CHARS } from '../../src/lvm/runLvm.js';

// Real LVM 2.03 stderr for each failure thinlv recognises.
const VG_NOT_FOUND_STDERR = '  Volume group "nosuchvg" not found\n  Cannot process volume group nosuchvg\n';
const LV_NOT_FOUND_STDERR = '  Failed to find logical volume "vg/x"\n';
const INSUFFICIENT_STDERR = '  Insufficient free space: 10 extents needed, but only 3 available\n';
const METADATA_FULL_STDERR = '  VG vg1 metadata on /dev/loop0 (1049600 bytes) exceeds maximum metadata size (1046528 bytes)\n  Failed to write VG vg1.\n';
// vgcfgrestore's words for a text that no longer fits beside the old copy (found by the simulator).
const CIRCULAR_BUFFER_STDERR = '  VG vg1 1234 metadata on /dev/loop0 (600000 bytes) too large for circular buffer (1043968 bytes with 500000 used)\n  Failed to write VG vg1.\n  Restore failed.\n';
const LOCK_BUSY_STDERR = '  Giving up waiting for lock.\n  Can\'t get lock for vg1.\n';
// What lvm prints first in a container without device-mapper.
const NO_DM_NOISE =
  '  WARNING: Activation disabled. No device-mapper interaction will be attempted.\n' +
  '  /dev/mapper/control: open failed: No such file or directory\n' +
  '  Failure to communicate with kernel device-mapper driver.\n';

describe('classifyLvmFailure', () => {
  test.each([
    ['a missing VG', VG_NOT_FOUND_STDERR, 'VG_NOT_FOUND', 'Volume group "nosuchvg" not found'],
    ['a missing LV', LV_NOT_FOUND_STDERR, 'LV_NOT_FOUND', 'Failed to find logical volume "vg/x"'],
    ['too few free extents', INSUFFICIENT_STDERR, 'INSUFFICIENT_EXTENTS', 'Insufficient free space: 10 extents needed, but only 3 available'],
    ['a full metadata area', METADATA_FULL_STDERR, 'METADATA_AREA_TOO_SMALL', 'exceeds maximum metadata size (1046528 bytes)'],
    ['a metadata copy too large for the area beside the old one', CIRCULAR_BUFFER_STDERR, 'METADATA_AREA_TOO_SMALL', 'too large for circular buffer'],
    ['a VG lock held elsewhere', LOCK_BUSY_STDERR, 'LOCK_BUSY', 'Giving up waiting for lock.'],
  ])('%s is classified by its stderr, quoting the line that says so', (_what, stderr, code, line) => {
    const error = classifyLvmFailure('vgs', ['vg1'], 5, stderr);
    expect(error).toBeInstanceOf(LvmError);
    expect(error.code).toBe(code);
    expect(error.message).toContain(`lvm vgs: `);
    expect(error.message).toContain(line);
    expect(error.data).toEqual({ command: 'vgs', args: ['vg1'], exitCode: 5, stderr });
  });

  test('a recognised failure is recognised behind device-mapper noise', () => {
    expect(classifyLvmFailure('lvs', [], 5, NO_DM_NOISE + VG_NOT_FOUND_STDERR).code).toBe('VG_NOT_FOUND');
  });

  test('an unknown failure is LVM_FAILED with the exit code and stderr kept', () => {
    const stderr = '  Device /dev/loop9 excluded by a filter.\n';
    const error = classifyLvmFailure('pvcreate', ['/dev/loop9'], 5, stderr);
    expect(error.code).toBe('LVM_FAILED');
    expect(error.message).toBe('lvm pvcreate failed with exit code 5: Device /dev/loop9 excluded by a filter.');
    expect(error.data).toEqual({ command: 'pvcreate', args: ['/dev/loop9'], exitCode: 5, stderr });
  });

  test('an unknown failure is named by its first meaningful line, past activation warnings and device-mapper noise', () => {
    const stderr = `${NO_DM_NOISE}  WARNING: something else worth a look.\n  Cannot use /dev/loop3: device is too small (pv_min_size)\n  Other line.\n`;
    expect(classifyLvmFailure('pvcreate', [], 5, stderr).message).toMatch(/: Cannot use \/dev\/loop3: device is too small \(pv_min_size\)$/);
  });

  test('an unknown failure with only warnings is named by the first warning that is not noise', () => {
    const stderr = `${NO_DM_NOISE}  WARNING: PV /dev/loop0 in VG vg1 is using an old PV header.\n`;
    expect(classifyLvmFailure('vgs', [], 5, stderr).message).toMatch(/: WARNING: PV \/dev\/loop0 in VG vg1 is using an old PV header\.$/);
  });

  test('a failure with no stderr, or only noise, says there was no message', () => {
    expect(classifyLvmFailure('vgs', [], 3, '').message).toBe('lvm vgs failed with exit code 3: no message');
    expect(classifyLvmFailure('vgs', [], undefined, NO_DM_NOISE).message).toBe('lvm vgs failed with exit code none: no message');
  });

  test(`stderr kept in the error is bounded by MAX_STDERR_KEPT_CHARS`, () => {
    const stderr = `  Something odd happened.\n${'x'.repeat(MAX_STDERR_KEPT_CHARS * 3)}`;
    const error = classifyLvmFailure('vgs', [], 5, stderr);
    expect(error.data['stderr']).toBe(stderr.slice(0, MAX_STDERR_KEPT_CHARS));
    const known = classifyLvmFailure('vgs', [], 5, VG_NOT_FOUND_STDERR + 'y'.repeat(MAX_STDERR_KEPT_CHARS * 3));
    expect(known.code).toBe('VG_NOT_FOUND');
    expect((known.data['stderr'] as string).length).toBe(MAX_STDERR_KEPT_CHARS);
  });

  test.prop([fc.array(fc.stringMatching(/^[a-z ]{0,30}$/), { maxLength: 5 })], { numRuns: 100 })(
    'stderr with no recognised text is always LVM_FAILED',
    (lines) => {
      expect(classifyLvmFailure('vgs', [], 1, lines.join('\n')).code).toBe('LVM_FAILED');
    },
  );
});

describe('createLvmRunner', () => {
  let dir = '';
  /** Writes an executable shell script standing in for lvm. */
  const script = async (name: string, body: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    return path;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'thinlv-runlvm-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('an lvm binary that does not exist is LVM_MISSING, naming the path', async () => {
    const lvm = createLvmRunner({ lvmPath: join(dir, 'no-such-lvm'), deviceMapperAvailable: true });
    const error = await lvm.run('vgs', []).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LvmError);
    expect((error as LvmError).code).toBe('LVM_MISSING');
    expect((error as LvmError).message).toContain(join(dir, 'no-such-lvm'));
  });

  test('the command comes first, then the common options, then the call’s arguments; LC_ALL=C; stdin is empty', async () => {
    // `cat` would hang if stdin were left open.
    const echo = await script(
      'echo-args',
      'input=$(cat)\nprintf "stdin=[%s]\\n" "$input"\nprintf "LC_ALL=%s\\n" "$LC_ALL"\nfor a in "$@"; do printf "arg=%s\\n" "$a"; done\nprintf "done" >&2',
    );
    const lvm = createLvmRunner({
      lvmPath: echo,
      deviceMapperAvailable: false,
      devices: ['/dev/loop0', '/dev/loop1'],
      extraConfig: 'backup { backup = 0 archive = 0 }',
    });
    const { stdout, stderr } = await lvm.run('vgs', ['--reportformat', 'json', 'vg 1'], { timeoutMs: 10_000 });
    expect(stdout.split('\n')).toEqual([
      'stdin=[]',
      'LC_ALL=C',
      'arg=vgs',
      'arg=--driverloaded',
      'arg=n',
      'arg=--devices',
      'arg=/dev/loop0',
      'arg=--devices',
      'arg=/dev/loop1',
      'arg=--config',
      'arg=backup { backup = 0 archive = 0 }',
      'arg=--reportformat',
      'arg=json',
      'arg=vg 1',
      '',
    ]);
    expect(stderr).toBe('done');
  });

  test('with device-mapper available and no devices or config, only the command and arguments are passed', async () => {
    const echo = await script('echo-args-plain', 'for a in "$@"; do printf "%s\\n" "$a"; done');
    const lvm = createLvmRunner({ lvmPath: echo, deviceMapperAvailable: true });
    expect((await lvm.run('lvs', ['vg1'])).stdout).toBe('lvs\nvg1\n');
  });

  test('a failing lvm is classified from its exit code and stderr, with the full argument list', async () => {
    const failing = await script('fail-vg', `printf '%s' '${VG_NOT_FOUND_STDERR}' >&2\nexit 5`);
    const lvm = createLvmRunner({ lvmPath: failing, deviceMapperAvailable: false, devices: ['/dev/loop0'] });
    const error = (await lvm.run('vgs', ['nosuchvg']).catch((e: unknown) => e)) as LvmError;
    expect(error).toBeInstanceOf(LvmError);
    expect(error.code).toBe('VG_NOT_FOUND');
    expect(error.data).toMatchObject({ command: 'vgs', args: ['vgs', '--driverloaded', 'n', '--devices', '/dev/loop0', 'nosuchvg'], exitCode: 5 });
  });

  test('an lvm that does not finish in time is LVM_TIMEOUT, and the call returns promptly', async () => {
    const slow = await script('slow', 'exec sleep 5');
    const lvm = createLvmRunner({ lvmPath: slow, deviceMapperAvailable: true });
    const started = Date.now();
    const error = (await lvm.run('vgs', [], { timeoutMs: 200 }).catch((e: unknown) => e)) as LvmError;
    expect(error).toBeInstanceOf(LvmError);
    expect(error.code).toBe('LVM_TIMEOUT');
    expect(error.data).toMatchObject({ command: 'vgs', timeoutMs: 200 });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  test('the runner’s default timeout applies when a call gives none', async () => {
    const slow = await script('slow-default', 'exec sleep 5');
    const lvm = createLvmRunner({ lvmPath: slow, deviceMapperAvailable: true, defaultTimeoutMs: 200 });
    const error = (await lvm.run('vgs', []).catch((e: unknown) => e)) as LvmError;
    expect(error.code).toBe('LVM_TIMEOUT');
  });

  test('an aborted signal cancels the call and returns promptly', async () => {
    const slow = await script('slow-abort', 'exec sleep 5');
    const lvm = createLvmRunner({ lvmPath: slow, deviceMapperAvailable: true });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const error = (await lvm.run('vgs', [], { signal: controller.signal }).catch((e: unknown) => e)) as LvmError;
    expect(error).toBeInstanceOf(LvmError);
    expect(error.message).toMatch(/cancelled/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
