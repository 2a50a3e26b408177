// Loop devices for the integration test and the benchmark. Attaches a loop device
// to a sparse file it creates, and detaches only that device (after checking it
// still points at that file) and deletes only that file. Never touches other loops.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const LOSETUP_TIMEOUT_MS = 30_000;

export interface LoopDevice {
  readonly devicePath: string;
  readonly backingFile: string;
  /** Whether the loop device does direct I/O to its backing file (losetup --direct-io=on). */
  readonly directIo: boolean;
  detach(): void;
}

function losetup(args: readonly string[]): string {
  return execFileSync('losetup', args, { encoding: 'utf8', timeout: LOSETUP_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Why loop devices cannot be used here, or undefined when they can. */
export function loopDeviceProblem(): string | undefined {
  if (process.platform !== 'linux') return `loop devices need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'attaching a loop device needs root';
  if (!fs.existsSync('/dev/loop-control')) return '/dev/loop-control is missing (no loop driver)';
  try {
    losetup(['--version']);
  } catch {
    return 'losetup is not installed';
  }
  return undefined;
}

/**
 * A file of `sizeBytes` (sparse unless `preallocate`) under `directory` (default os.tmpdir()) attached to a
 * free loop device. With directIo the loop driver does O_DIRECT to the file, so a
 * write that returned has reached the file's storage, as it would on a SAN LUN.
 */
export function attachLoopDevice(options: { sizeBytes: number; directIo?: boolean; directory?: string; preallocate?: boolean }): LoopDevice {
  const directory = options.directory ?? os.tmpdir();
  const backingFile = path.join(directory, `thinlv-journal-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.img`);
  fs.writeFileSync(backingFile, '');
  if (options.preallocate === true) {
    // Real zeros, not a hole: the first write to a hole (or to a fallocated, unwritten
    // extent) also updates the filesystem's metadata, which would skew a benchmark.
    const chunk = Buffer.alloc(1024 * 1024);
    const fd = fs.openSync(backingFile, 'w');
    try {
      for (let written = 0; written < options.sizeBytes; written += chunk.length) {
        fs.writeSync(fd, chunk, 0, Math.min(chunk.length, options.sizeBytes - written));
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } else {
    fs.truncateSync(backingFile, options.sizeBytes);
  }
  const directIo = options.directIo ?? true;
  let devicePath: string;
  try {
    devicePath = losetup(['--find', '--show', ...(directIo ? ['--direct-io=on'] : []), backingFile]);
  } catch (error) {
    fs.rmSync(backingFile, { force: true });
    throw error;
  }
  let detached = false;
  return {
    devicePath,
    backingFile,
    directIo,
    detach(): void {
      if (detached) return;
      detached = true;
      try {
        const backing = losetup(['--list', '--noheadings', '--output', 'BACK-FILE', devicePath]);
        if (backing.startsWith(backingFile)) losetup(['--detach', devicePath]);
      } finally {
        fs.rmSync(backingFile, { force: true });
      }
    },
  };
}
