// What the benchmarks that run `thinlv host run` as a process share: start it from the
// bundle (the package's bin, as a service runs it) and wait until it serves, stop it,
// read its peak RSS, and remove the lock files a run left for its VG.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';

export const BUNDLE_PATH = fileURLToPath(new URL('../bundle/thinlv.js', import.meta.url));

export interface StartedDaemon {
  readonly daemon: ChildProcess;
  /** From spawning the process to its first answer to a status request. */
  readonly startMs: number;
}

export interface StartDaemonOptions {
  /** The CLI to run; BUNDLE_PATH by default. */
  readonly bundlePath?: string;
  /** Options for node itself, before the script (V8 flags, say). */
  readonly nodeArgs?: readonly string[];
  readonly timeoutMs: number;
  /** How often the socket is tried while the daemon starts. */
  readonly pollMs?: number;
  /** A file to append the daemon's stdout to (its log; --trace-gc's lines); by default it is dropped. */
  readonly stdoutPath?: string | undefined;
  /** Variables added to the daemon's environment (a systemd unit's Environment= lines, say). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Starts `thinlv ...args` (a `host run`) and resolves when it answers a status request on `socketPath`. */
export async function startDaemon(args: readonly string[], socketPath: string, options: StartDaemonOptions): Promise<StartedDaemon> {
  const started = performance.now();
  const stdout = options.stdoutPath === undefined ? 'ignore' : openSync(options.stdoutPath, 'a');
  const daemon = spawn(process.execPath, [...(options.nodeArgs ?? []), options.bundlePath ?? BUNDLE_PATH, ...args], { stdio: ['ignore', stdout, 'inherit'], env: { ...process.env, ...options.env } });
  if (typeof stdout === 'number') closeSync(stdout);
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const reply = existsSync(socketPath) ? await requestOnce(socketPath, { id: newRequestId(), op: 'status' }, 5000).catch(() => undefined) : undefined;
    if (reply?.ok) return { daemon, startMs: performance.now() - started };
    if (daemon.exitCode !== null || Date.now() > deadline) {
      daemon.kill('SIGKILL');
      throw new Error(`host daemon did not start (exit ${String(daemon.exitCode)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 10));
  }
}

/** SIGTERM, and waits for the exit; a daemon already gone is left alone. */
export async function stopDaemon(daemon: ChildProcess): Promise<void> {
  if (daemon.exitCode !== null || daemon.signalCode !== null) return;
  const exited = new Promise((resolve) => daemon.once('exit', resolve));
  daemon.kill('SIGTERM');
  await exited;
}

/** The process's peak resident set (VmHWM) in MB (MiB, as the kernel counts kB). */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1]) / 1024;
}

/** Removes the lock files thinlv and lvm left for `vgName` (a daemon's host lock, lvm's VG lock), and only those. */
export function removeLockFiles(vgName: string): void {
  for (const dir of ['/run/lock/thinlv', '/run/lock/lvm']) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) if (name.includes(vgName)) rmSync(join(dir, name), { force: true });
  }
}
