// LVM's own local lock for a VG, held by thinlv around a read-check-write commit.
//
// lvm takes flock(2) on <locking_dir>/V_<vg> (shared to read, exclusive to
// write). Holding it exclusively here blocks every other lvm command on this
// machine for that VG, so nothing slips in between our vgcfgbackup and our
// vgcfgrestore; those two run with --nolocking so they do not wait on us.
// (Other machines are kept out by the seqno check, not by this lock.)

import { join } from 'node:path';
import { ErrorCode, LvmError } from '../errors.js';
import { acquireFileLock } from '../fileLock.js';

export const DEFAULT_LVM_LOCK_DIR = '/run/lock/lvm';
export const DEFAULT_VG_LOCK_TIMEOUT_MS = 30_000;

export interface VgLockOptions {
  readonly lockDir?: string;
  readonly timeoutMs?: number;
}

/** Runs `fn` while holding lvm's exclusive local lock on the VG; throws LOCK_BUSY after the timeout. */
export async function withVgLock<T>(vgName: string, fn: () => Promise<T>, options: VgLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_VG_LOCK_TIMEOUT_MS;
  const path = join(options.lockDir ?? DEFAULT_LVM_LOCK_DIR, `V_${vgName}`);
  const lock = await acquireFileLock(path, timeoutMs);
  if (lock === undefined) {
    throw new LvmError(
      ErrorCode.lockBusy,
      `could not lock VG ${vgName} within ${timeoutMs} ms: another lvm command holds ${path}; retry when it finishes`,
      { vg: vgName, path, timeoutMs },
    );
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
