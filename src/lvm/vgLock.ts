// LVM's own local lock for a VG, held by thinlv around a read-check-write commit.
//
// lvm takes flock(2) on <locking_dir>/V_<vg> (shared to read, exclusive to
// write). Holding it exclusively here blocks every other lvm command on this
// machine for that VG, so nothing slips in between our vgcfgbackup and our
// vgcfgrestore; those two run with --nolocking so they do not wait on us.
// (Other machines are kept out by the seqno check, not by this lock.)
//
// lvm may unlink the lock file when it releases it, so after flock succeeds we
// check the path still names the inode we locked, as lvm's flock.c does; if not
// we locked an orphan and must try again.

import { closeSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { ErrorCode, LvmError } from '../errors.js';

export // A native addon whose package "main" is the .node file: load it with require,
// which both Node and vitest resolve, rather than an ESM import.
const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as typeof import('@ronomon/direct-io');

export const DEFAULT_LVM_LOCK_DIR = '/run/lock/lvm';
export const DEFAULT_VG_LOCK_TIMEOUT_MS = 30_000;
const LOCK_RETRY_DELAY_MS = 20;

function tryFlock(fd: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    directIo.setFlock(fd, 1, (error?: NodeJS.ErrnoException | null) => {
      if (!error) resolve(true);
      else if (error.code === 'EWOULDBLOCK' || error.code === 'EAGAIN') resolve(false);
      else reject(error);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface VgLockOptions {
  readonly lockDir?: string;
  readonly timeoutMs?: number;
}

/** Runs `fn` while holding lvm's exclusive local lock on the VG; throws LOCK_BUSY after the timeout. */
export async function withVgLock<T>(vgName: string, fn: () => Promise<T>, options: VgLockOptions = {}): Promise<T> {
  const lockDir = options.lockDir ?? DEFAULT_LVM_LOCK_DIR;
  const timeoutMs = options.timeoutMs ?? DEFAULT_VG_LOCK_TIMEOUT_MS;
  const path = join(lockDir, `V_${vgName}`);
  mkdirSync(lockDir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  let fd: number | undefined;
  while (fd === undefined) {
    const candidate = openSync(path, 'a', 0o600);
    let locked = false;
    try {
      locked = await tryFlock(candidate);
      if (locked) {
        let pathInode: number | undefined;
        try {
          pathInode = statSync(path).ino;
        } catch {
          pathInode = undefined;
        }
        if (pathInode === fstatSync(candidate).ino) {
          fd = candidate;
          break;
        }
      }
    } catch (error) {
      closeSync(candidate);
      throw error;
    }
    // Closing the descriptor releases an orphaned lock too.
    closeSync(candidate);
    if (Date.now() >= deadline) {
      throw new LvmError(
        ErrorCode.lockBusy,
        `could not lock VG ${vgName} within ${timeoutMs} ms: another lvm command holds ${path}; retry when it finishes`,
        { vg: vgName, path, timeoutMs },
      );
    }
    await sleep(LOCK_RETRY_DELAY_MS);
  }
  try {
    return await fn();
  } finally {
    // Closing the only descriptor drops the flock. We do not unlink: lvm copes with
    // a lock file that stays, and unlinking could race another locker.
    closeSync(fd);
  }
}
