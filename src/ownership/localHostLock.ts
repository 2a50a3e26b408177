// "One host daemon per VG and host on this machine": an flock whose file also holds
// the daemon's pid. It refuses a second daemon on the same machine at once, where
// the lease on the LUN (hostLease.ts) would take a full watch to notice it. The
// path depends only on the VG and host names, never on socket or state options:
// two daemons started with different --socket paths must still collide here.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ThinlvError } from '../errors.js';
import { acquireFileLock, type HeldLock } from '../fileLock.js';
import { invalidNameReason } from '../metadata/names.js';

export type { HeldLock };

export const DEFAULT_LOCAL_LOCK_DIR = '/run/lock/thinlv';

export function localHostLockPath(vg: string, host: string, lockDir: string = DEFAULT_LOCAL_LOCK_DIR): string {
  // Names become part of a file name: lvm's name rules keep "/" and ".." out.
  const problem = invalidNameReason(vg, 'VG') ?? invalidNameReason(host, 'VG')?.replace(/^VG name/, 'host name');
  if (problem !== undefined) throw new ThinlvError('INVALID_ARGUMENT', `cannot lock the host daemon: ${problem}`, { vg, host });
  return join(lockDir, `host-${vg}-${host}.lock`);
}

/** Takes the lock at once or throws HOST_DAEMON_RUNNING; hold it for the daemon's whole life. */
export async function acquireLocalHostLock(vg: string, host: string, lockDir: string = DEFAULT_LOCAL_LOCK_DIR): Promise<HeldLock> {
  const lockPath = localHostLockPath(vg, host, lockDir);
  const lock = await acquireFileLock(lockPath, 0);
  if (lock === undefined) {
    const pid = readLockPid(lockPath);
    throw new ThinlvError(
      'HOST_DAEMON_RUNNING',
      `a host daemon for VG ${vg} host ${host} already runs on this machine (lock ${lockPath} is held, pid ${pid ?? 'unknown'}): stop it first`,
      { vg, host, lockPath, pid },
    );
  }
  // Same inode, so the flock stays; the pid is for the message above and for operators.
  writeFileSync(lockPath, `${process.pid}\n`);
  return lock;
}

/** The pid the holder wrote, or undefined if it has not written it yet. */
function readLockPid(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
