// Running a program to completion: an argument array (no shell), a time limit, a cancel
// signal, stdin closed unless input is given, output collected up to a bound. What the
// lvm and dmsetup calls need, on node's own child_process: a process library costs 50 to
// 100 ms of start-up in every command that runs lvm, and the lvm-compatible wrappers are
// judged by their start-up.
//
// stdout to a file: a pipe holds 64 KiB, and a program that prints more waits for the
// reader. A command that runs lvm and loads modules or reads journals meanwhile is that
// reader, busy, so lvm's report of a pool (90 KB for 300 LVs) finished 50 ms late
// (npm run bench:cli, `thinlv lvs`). With `stdoutTo: 'file'` the program writes to an
// unlinked temporary file, read once it has exited; its size is checked against
// maxOutputBytes then, the time limit bounding what a runaway program writes.

import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** After a timeout or a cancel the program gets SIGTERM (lvm releases its locks), then SIGKILL this much later. */
export const KILL_GRACE_MS = 5_000;

export interface ProcessOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly signal?: AbortSignal | undefined;
  /** Written to stdin, which is then closed; without it stdin is closed from the start. */
  readonly input?: string | undefined;
  /** Where stdout goes (see the top of this file); a pipe when no temporary file can be made. */
  readonly stdoutTo?: 'pipe' | 'file';
}

export type ProcessFailure = 'missing' | 'timeout' | 'cancelled' | 'output-too-large' | 'spawn-failed';

export interface ProcessResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code when the program exited by itself; null when a signal ended it. */
  readonly exitCode: number | null;
  /** Why it did not run to its own end, if so. */
  readonly failure: ProcessFailure | undefined;
  readonly failureMessage: string | undefined;
}

export function runProcess(file: string, args: readonly string[], options: ProcessOptions): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const stdoutFd = options.stdoutTo === 'file' ? openScratchFile() : undefined;
    const child = spawn(file, args, { env: options.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', stdoutFd ?? 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    let failure: ProcessFailure | undefined;
    let failureMessage: string | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (why: ProcessFailure): void => {
      failure ??= why;
      child.kill('SIGTERM');
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => stop('timeout'), options.timeoutMs);
    const onAbort = (): void => stop('cancelled');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted === true) onAbort();
    const collect = (into: Buffer[]) => (chunk: Buffer): void => {
      outputBytes += chunk.length;
      if (outputBytes > options.maxOutputBytes) stop('output-too-large');
      else into.push(chunk);
    };
    child.stdout?.on('data', collect(stdout));
    child.stderr?.on('data', collect(stderr));
    let settled = false;
    const finish = (exitCode: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      if (stdoutFd !== undefined) {
        const written = takeScratchFile(stdoutFd, options.maxOutputBytes - outputBytes);
        if (written === undefined) failure ??= 'output-too-large';
        else stdout.push(written);
      }
      resolve({ stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), exitCode, failure, failureMessage });
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= error.code === 'ENOENT' ? 'missing' : 'spawn-failed';
      failureMessage = error.message;
      // A program that never started emits no 'close' on every node version.
      if (child.pid === undefined) finish(null);
    });
    child.on('close', (code) => finish(code));
    if (options.input !== undefined && child.stdin !== null) {
      // A program that exits without reading its input must not crash us with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

let scratchFiles = 0;

/** An unlinked file for a program's stdout, or undefined (then a pipe) when none can be made. */
function openScratchFile(): number | undefined {
  const path = join(tmpdir(), `thinlv-stdout-${process.pid}-${Date.now()}-${scratchFiles++}`);
  try {
    const fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    return fd;
  } catch {
    return undefined;
  }
}

/** What the program wrote to its scratch file (undefined when more than maxBytes), closing it. */
function takeScratchFile(fd: number, maxBytes: number): Buffer | undefined {
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) return undefined;
    const buffer = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buffer, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}
