// The crash campaign's processes: a thinlv master and host daemons it started itself,
// killed by pid (only these), restarted, optionally armed with a fault point.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { newRequestId, requestOnce } from '../../src/host/socketServer.js';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One long-running thinlv daemon the campaign owns. */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> = Promise.resolve({ code: 0, signal: null });
  private log: WriteStream | undefined;
  /** The fault spec this incarnation was started with, if any. */
  armedWith: string | undefined;
  /** True once the campaign sent this incarnation a signal (so its death is ours, not a fault's). */
  signalledByUs = false;
  lastExit: ExitInfo | undefined;

  constructor(
    readonly name: string,
    private readonly cli: string,
    private readonly args: readonly string[],
    private readonly logDir: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(faults?: string): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.armedWith = faults;
    this.signalledByUs = false;
    this.log ??= createWriteStream(join(this.logDir, `${this.name}.log`), { flags: 'a' });
    this.log.write(`--- start ${new Date().toISOString()}${faults ? ` THINLV_FAULTS=${faults}` : ''}\n`);
    const env = { ...process.env, ...(faults ? { THINLV_FAULTS: faults } : {}) };
    if (!faults) delete env['THINLV_FAULTS'];
    // Its own process group: a Ctrl-C at the terminal reaches the campaign, which stops it.
    const child = spawn(process.execPath, [this.cli, ...this.args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.lastExit = { code, signal };
        resolve({ code, signal });
      });
    });
  }

  /** Sends `signal` to this process's pid (only ever a pid this object spawned). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): boolean {
    if (!this.running || this.child?.pid === undefined) return false;
    this.signalledByUs = true;
    process.kill(this.child.pid, signal);
    return true;
  }

  waitExit(): Promise<ExitInfo> {
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  closeLog(): void {
    this.log?.end();
  }
}

/** A host daemon: a ManagedProcess with a socket to ask whether it serves. */
export class HostProcess extends ManagedProcess {
  constructor(
    readonly host: string,
    readonly socketPath: string,
    readonly stateDir: string,
    cli: string,
    args: readonly string[],
    logDir: string,
  ) {
    super(`host-${host}`, cli, args, logDir);
  }

  async status(timeoutMs = 3000): Promise<{ unreplayedRecordCount: number; poolExtentCount: number } | undefined> {
    const reply = await requestOnce(this.socketPath, { id: newRequestId(), op: 'status' }, timeoutMs).catch(() => undefined);
    return reply?.ok === true ? (reply.result as { unreplayedRecordCount: number; poolExtentCount: number }) : undefined;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
