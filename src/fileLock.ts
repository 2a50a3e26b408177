// flock(2)-based locks: lvm's own VG lock (src/lvm/vgLock.ts) and "one master
// per VG on this machine" (src/cli/commands/master.ts).
//
// Whoever releases such a lock may unlink its file, so after flock succeeds we
// check the path still names the inode we locked, as lvm's flock.c does; if not
// we locked an orphan and must try again.

import { closeSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

// A native addon whose package "main" is the .node file: load it with require,
// which both Node and vitest resolve, rather than an ESM import.
const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as typeof import('@ronomon/direct-io');

const LOCK_RETRY_DELAY_MS = 20;

function tryFlock(fd: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    directIo.setFlock(fd, 1, (error?: NodeJS.ErrnoException | null) => {
      if (!error) resolve(true);
      // The addon reports contention as an Error whose message starts with the errno name.
      else if (error.code === 'EWOULDBLOCK' || error.code === 'EAGAIN' || /^(EWOULDBLOCK|EAGAIN)\b/.test(error.message)) resolve(false);
      else reject(error);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface HeldLock {
  release(): void;
}

/** Takes an exclusive flock on `path`, retrying for up to `timeoutMs`; undefined when still busy. */
export async function acquireFileLock(path: string, timeoutMs: number): Promise<HeldLock | undefined> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fd = openSync(path, 'a', 0o600);
    let held = false;
    try {
      if (await tryFlock(fd)) {
        let pathInode: number | undefined;
        try {
          pathInode = statSync(path).ino;
        } catch {
          pathInode = undefined;
        }
        held = pathInode === fstatSync(fd).ino;
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    if (held) {
      let released = false;
      return {
        release() {
          // Closing the only descriptor drops the flock. We do not unlink: that could race another locker.
          if (!released) closeSync(fd);
          released = true;
        },
      };
    }
    // Closing the descriptor releases an orphaned lock too.
    closeSync(fd);
    if (Date.now() >= deadline) return undefined;
    await sleep(LOCK_RETRY_DELAY_MS);
  }
}
