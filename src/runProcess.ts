// Running a program to completion: an argument array (no shell), a time limit, a cancel
// signal, stdin closed unless input is given, output collected up to a bound. What the
// lvm and dmsetup calls need, on node's own child_process: a process library costs 50 to
// 100 ms of start-up in every command that runs lvm, and the lvm-compatible wrappers are
// judged by their start-up.

import { spawn } from 'node:child_process';

/** After a timeout or a cancel the program gets SIGTERM (lvm releases its locks), then SIGKILL this much later. */
export const KILL_GRACE_MS = 5_000;

export interface ProcessOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly signal?: AbortSignal | undefined;
  /** Written to stdin, which is then closed; without it stdin is closed from the start. */
  readonly input?: string | undefined;
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
    const child = spawn(file, args, { env: options.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
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
