// The master's commit path (src/lvm/commitBatch.ts) writes the VG text to a temporary
// directory and takes lvm's flock: the only real file system the simulator touches.
// On a disk-backed /tmp each commit's mkdtemp, writes and rm cost journal work and
// thread-pool round trips (a fifth of a short run's wall time here). The simulator points
// the temporary files at tmpfs when the caller has not chosen a TMPDIR: the same calls, in
// memory. (lvm's lock directory is not configurable from here: see the README.)

import { existsSync } from 'node:fs';

const TMPFS = '/dev/shm';

/** Sets TMPDIR to tmpfs unless it is set or there is none; returns what undoes it. */
export function useTmpfsScratch(): () => void {
  if (process.env['TMPDIR'] !== undefined || !existsSync(TMPFS)) return () => undefined;
  process.env['TMPDIR'] = TMPFS;
  return () => {
    delete process.env['TMPDIR'];
  };
}
