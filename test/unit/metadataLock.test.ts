import { accessSync, constants, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { CommitError, ErrorCode, ThinlvError } from '../../src/errors.js';
import { acquireFileLock } from '../../src/fileLock.js';
import { createLogger } from '../../src/log.js';
import { LOCAL_LOCK_DIR, MAX_STALE_SEQNO_ATTEMPTS, metadataLockPath, recordLockHolder, withMetadataLock } from '../../src/cli/masterContext.js';

// The lock lives at its fixed path, so these tests need /run/lock to be writable.
const lockDirUnwritable = ((): boolean => {
  try {
    accessSync('/run/lock', constants.W_OK);
    return false;
  } catch {
    return true;
  }
})();

const context = { log: createLogger('silent') };
const stale = (): CommitError => new CommitError(ErrorCode.staleSeqno, 'VG changed since it was read', {});
const vgNames: string[] = [];
const uniqueVg = (): string => {
  const name = `unit_${process.pid}_${randomBytes(4).toString('hex')}`;
  vgNames.push(name);
  return name;
};
afterEach(() => {
  for (const vg of vgNames.splice(0)) rmSync(metadataLockPath(vg), { force: true });
});

describe.skipIf(lockDirUnwritable)('the per-VG metadata lock', () => {
  test('lives at a fixed path keyed by the VG', () => {
    expect(metadataLockPath('vg1')).toBe(`${LOCAL_LOCK_DIR}/metadata-vg1.lock`);
    expect(LOCAL_LOCK_DIR).toBe('/run/lock/thinlv');
  });

  test('a command waits for the lock up to its bound, then fails with LOCK_BUSY naming the holder', async () => {
    const vg = uniqueVg();
    const held = await acquireFileLock(metadataLockPath(vg), 0);
    recordLockHolder(metadataLockPath(vg));
    let ran = false;
    try {
      const attempt = withMetadataLock(context, vg, async () => (ran = true), { timeoutMs: 300 });
      await expect(attempt).rejects.toMatchObject({ code: ErrorCode.lockBusy, data: { vg, holder: `pid ${process.pid}`, timeoutMs: 300 } });
      expect(ran).toBe(false);
    } finally {
      held!.release();
    }
  });

  test('commands on one VG take turns: the second starts when the first has finished', async () => {
    const vg = uniqueVg();
    const events: string[] = [];
    const command = (name: string) => async () => {
      events.push(`${name} start`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      events.push(`${name} end`);
    };
    await Promise.all([withMetadataLock(context, vg, command('a')), withMetadataLock(context, vg, command('b'))]);
    const [first, second] = events[0]!.startsWith('a') ? ['a', 'b'] : ['b', 'a'];
    expect(events).toEqual([`${first} start`, `${first} end`, `${second} start`, `${second} end`]);
  });

  test('a STALE_SEQNO is retried (the command re-reads), and the lock is free afterwards', async () => {
    const vg = uniqueVg();
    let calls = 0;
    const result = await withMetadataLock(context, vg, async () => {
      calls++;
      if (calls < 3) throw stale();
      return 'done';
    });
    expect(result).toBe('done');
    expect(calls).toBe(3);
    const again = await acquireFileLock(metadataLockPath(vg), 0);
    expect(again).toBeDefined();
    again!.release();
  });

  test(`retries stop at the bound (${MAX_STALE_SEQNO_ATTEMPTS} attempts) with the STALE_SEQNO error`, async () => {
    const vg = uniqueVg();
    let calls = 0;
    const always = withMetadataLock(context, vg, async () => {
      calls++;
      throw stale();
    });
    await expect(always).rejects.toMatchObject({ code: ErrorCode.staleSeqno });
    expect(calls).toBe(MAX_STALE_SEQNO_ATTEMPTS);
  });

  test('any other error is not retried', async () => {
    const vg = uniqueVg();
    let calls = 0;
    const failing = withMetadataLock(context, vg, async () => {
      calls++;
      throw new ThinlvError(ErrorCode.insufficientExtents, 'no room');
    });
    await expect(failing).rejects.toMatchObject({ code: ErrorCode.insufficientExtents });
    expect(calls).toBe(1);
  });
});
