import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, test } from 'vitest';
import { acquireFileLock } from '../../src/fileLock.js';
import { withVgLock } from '../../src/lvm/vgLock.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-lock-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('file locks', () => {
  test('a lock held in this process is not granted twice, and is granted again once released', async () => {
    const path = join(tempDir(), 'a.lock');
    const first = await acquireFileLock(path, 0);
    expect(first).toBeDefined();
    expect(await acquireFileLock(path, 50)).toBeUndefined();
    first!.release();
    const again = await acquireFileLock(path, 0);
    expect(again).toBeDefined();
    again!.release();
  });

  test('a lock held by another process (flock(1), as lvm takes it) makes withVgLock wait, then fail with LOCK_BUSY', async () => {
    const dir = tempDir();
    const holder = execa('flock', ['--exclusive', join(dir, 'V_vg1'), 'sleep', '2']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    await expect(withVgLock('vg1', async () => 'ran', { lockDir: dir, timeoutMs: 400 })).rejects.toMatchObject({ code: 'LOCK_BUSY' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    await holder;
    await expect(withVgLock('vg1', async () => 'ran', { lockDir: dir, timeoutMs: 400 })).resolves.toBe('ran');
  });
});
