// The test-guest rig of issue 15: N qemu guests (TCG) sharing one raw LUN image, each
// with real device-mapper, driven through a small command agent.
//
//   startRig()                     a temp dir: LUN.img (sparse), per guest a socket and logs
//     └─ RigGuest × N              one qemu process each (its pid is the handle: kill/boot)
//          ├─ drive thinlv-tools   tools.img, read-only (node, thinlv, lvm, dmsetup)
//          ├─ drive thinlv-lun     LUN.img, cache=none, file.locking=off (shared)
//          └─ virtio-serial        "thinlv.agent" ↔ a Unix socket here: exec(command)
//
// The agent protocol (scripts/rig/guestAgent.sh) is one line per message, payloads in
// base64: "C <id> <timeoutSeconds> <command>" out, "R <id> <exitCode> <stdout> <stderr>"
// back. Commands run concurrently in the guest; a reply carries its id, so a reply to a
// command the harness gave up on is dropped.
//
// Only processes this module spawned are ever killed (by pid), and every guest is killed
// when the process exits, so a failed test cannot leave a qemu behind.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';

export const DEFAULT_RIG_DIR = '/var/tmp/thinlv-rig';
export const DEFAULT_GUEST_COUNT = 3;
/** More than two guests at once overloads the shared 2-core machine. */
export const MAX_GUESTS_RUNNING = 3;
export const DEFAULT_LUN_SIZE_BYTES = 4 * 1024 ** 3;
export const DEFAULT_GUEST_MEMORY_MIB = 1024;
/** TCG on a loaded machine: a boot took 6 s idle; allow for a busy host. */
export const DEFAULT_BOOT_TIMEOUT_MS = 180_000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
/** What the harness waits beyond the guest's own kill of a command before giving up on it. */
const REPLY_GRACE_MS = 15_000;
const PING_INTERVAL_MS = 2_000;
/** Bound on one reply line (base64 of stdout and stderr). */
const MAX_REPLY_LINE_BYTES = 64 * 1024 * 1024;
const CONSOLE_TAIL_BYTES = 4_000;

export interface RigConfig {
  /** Where scripts/rig/build.sh put vmlinuz, initramfs.cpio.gz and tools.img. */
  readonly rigDir?: string;
  readonly guestCount?: number;
  readonly lunSizeBytes?: number;
  readonly memoryMib?: number;
  readonly bootTimeoutMs?: number;
  /** Start the guests now (default true); false leaves each to boot() later. */
  readonly boot?: boolean;
  readonly log?: (line: string) => void;
}

export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

export interface ExecOptions {
  readonly timeoutMs?: number;
}

export class RigError extends Error {
  constructor(
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'RigError';
  }
}

/** Why the rig cannot run here (images not built, qemu missing), or undefined when it can. */
export function rigUnavailableReason(rigDir = DEFAULT_RIG_DIR): string | undefined {
  for (const file of ['vmlinuz', 'initramfs.cpio.gz', 'tools.img']) {
    if (!existsSync(join(rigDir, file))) return `${join(rigDir, file)} is missing: run "bash scripts/rig/build.sh" (as root) first`;
  }
  const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((path) => existsSync(path));
  if (qemu === undefined) return 'qemu-system-x86_64 is not installed: run "bash scripts/rig/build.sh"';
  return undefined;
}

// Every qemu this process started and has not seen exit: killed on exit, whatever happens.
const liveQemuPids = new Set<number>();
// Work directories of rigs not closed yet: removed on exit (a signal, a forgotten close).
const liveWorkDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const pid of liveQemuPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const dir of liveWorkDirs) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  // A signal ends node without 'exit': kill the guests, then die of the same signal.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal);
    });
  }
}

interface Pending {
  readonly resolve: (result: CommandResult) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly startedMs: number;
}

export class RigGuest {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private socket: Socket | undefined;
  private received = '';
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private bootCount = 0;
  /** Host time of the last boot, from spawn to the agent's first answer. */
  lastBootMs: number | undefined;

  constructor(
    readonly name: string,
    private readonly rig: { readonly workDir: string; readonly rigDir: string; readonly lunPath: string; readonly memoryMib: number; readonly bootTimeoutMs: number; readonly log: (line: string) => void },
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get consolePath(): string {
    return join(this.rig.workDir, `${this.name}.console.log`);
  }

  /** The end of the guest's serial console, for failure messages. */
  consoleTail(bytes = CONSOLE_TAIL_BYTES): string {
    try {
      const text = readFileSync(this.consolePath, 'latin1');
      return text.slice(-bytes);
    } catch {
      return '(no console log)';
    }
  }

  /** Starts qemu and waits until the agent answers. */
  async boot(): Promise<void> {
    if (this.child !== undefined) throw new RigError(`${this.name} is already running (pid ${this.child.pid})`);
    this.bootCount += 1;
    const socketPath = join(this.rig.workDir, `${this.name}.${this.bootCount}.sock`);
    const startedMs = Date.now();
    const args = [
      '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', '1', '-m', String(this.rig.memoryMib),
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-monitor', 'none',
      '-serial', `file:${this.consolePath}`,
      '-kernel', join(this.rig.rigDir, 'vmlinuz'),
      '-initrd', join(this.rig.rigDir, 'initramfs.cpio.gz'),
      '-append', `console=ttyS0 panic=-1 loglevel=4 rig.name=${this.name}`,
      '-drive', `file=${join(this.rig.rigDir, 'tools.img')},if=none,id=tools,format=raw,readonly=on,file.locking=off`,
      '-device', 'virtio-blk-pci,drive=tools,serial=thinlv-tools',
      '-drive', `file=${this.rig.lunPath},if=none,id=lun,format=raw,cache=none,file.locking=off`,
      '-device', 'virtio-blk-pci,drive=lun,serial=thinlv-lun',
      '-device', 'virtio-serial-pci',
      '-chardev', `socket,id=agent,path=${socketPath},server=on,wait=off`,
      '-device', 'virtserialport,chardev=agent,name=thinlv.agent',
    ];
    const stderrFd = openSync(join(this.rig.workDir, `${this.name}.qemu.log`), 'a');
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', stderrFd] });
    closeSync(stderrFd);
    if (child.pid === undefined) throw new RigError(`${this.name}: qemu-system-x86_64 did not start`);
    installExitHook();
    liveQemuPids.add(child.pid);
    this.child = child;
    this.rig.log(`${this.name}: qemu pid ${child.pid} started`);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        liveQemuPids.delete(child.pid!);
        if (this.child === child) this.child = undefined;
        this.rig.log(`${this.name}: qemu pid ${child.pid} exited (${signal ?? code})`);
        this.dropConnection(new RigError(`${this.name}: qemu exited (${signal ?? code}) while a command was running`));
        resolve();
      });
    });
    try {
      await this.connectAgent(socketPath, startedMs + this.rig.bootTimeoutMs);
      await this.waitForAgent(startedMs + this.rig.bootTimeoutMs);
    } catch (error) {
      await this.kill();
      throw new RigError(`${this.name}: boot failed: ${(error as Error).message}\n--- console tail ---\n${this.consoleTail()}`);
    }
    this.lastBootMs = Date.now() - startedMs;
    this.rig.log(`${this.name}: agent answered ${this.lastBootMs} ms after qemu started`);
  }

  /** SIGKILL of this guest's qemu (a host crash, as the SAN sees it); waits for its exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined) return;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // It exited on its own in the meantime.
    }
    await this.exited;
  }

  /** Runs a shell command line in the guest (busybox sh; PATH has node, lvm, dmsetup). */
  exec(command: string, options: ExecOptions = {}): Promise<CommandResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1000) throw new RigError(`exec timeoutMs must be an integer of at least 1000, got ${timeoutMs}`);
    const socket = this.socket;
    if (socket === undefined) return Promise.reject(new RigError(`${this.name} is not running`));
    const id = (this.nextId++).toString(36);
    const payload = Buffer.from(command).toString('base64');
    return new Promise<CommandResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RigError(`${this.name}: no answer to "${command.slice(0, 200)}" within ${timeoutMs + REPLY_GRACE_MS} ms`, { command, timeoutMs }));
      }, timeoutMs + REPLY_GRACE_MS);
      this.pending.set(id, { resolve, reject, timer, startedMs: Date.now() });
      socket.write(`C ${id} ${Math.ceil(timeoutMs / 1000)} ${payload || '-'}\n`);
    });
  }

  /** exec, and throw unless the command exited 0. */
  async run(command: string, options: ExecOptions = {}): Promise<CommandResult> {
    const result = await this.exec(command, options);
    if (result.exitCode !== 0) {
      throw new RigError(`${this.name}: "${command.slice(0, 300)}" exited ${result.exitCode}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-2000)}`, { command, ...result });
    }
    return result;
  }

  private async connectAgent(socketPath: string, deadlineMs: number): Promise<void> {
    while (!existsSync(socketPath)) {
      if (this.child === undefined) throw new RigError('qemu exited before opening its agent socket');
      if (Date.now() > deadlineMs) throw new RigError(`no agent socket ${socketPath}`);
      await sleep(50);
    }
    const socket = await new Promise<Socket>((resolve, reject) => {
      const candidate = connect(socketPath);
      candidate.once('connect', () => resolve(candidate));
      candidate.once('error', reject);
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.dropConnection(new RigError(`${this.name}: agent socket: ${error.message}`)));
    socket.on('close', () => this.dropConnection(new RigError(`${this.name}: agent socket closed`)));
    this.socket = socket;
  }

  // The guest reads commands only once its agent runs; pings sent before are queued or
  // lost, so ping until one is answered.
  private async waitForAgent(deadlineMs: number): Promise<void> {
    for (;;) {
      if (this.child === undefined) throw new RigError('qemu exited during boot');
      const remainingMs = deadlineMs - Date.now();
      if (remainingMs <= 0) throw new RigError(`the agent did not answer within the boot timeout`);
      const answered = await Promise.race([
        this.exec('echo rig-ready', { timeoutMs: Math.max(1000, Math.min(remainingMs, 60_000)) }).then(
          (result) => result.stdout.trim() === 'rig-ready',
          () => false,
        ),
        sleep(PING_INTERVAL_MS).then(() => false),
      ]);
      if (answered) return;
    }
  }

  private onData(chunk: string): void {
    this.received += chunk;
    if (this.received.length > MAX_REPLY_LINE_BYTES) {
      this.dropConnection(new RigError(`${this.name}: agent sent a line longer than ${MAX_REPLY_LINE_BYTES} bytes`));
      return;
    }
    let newline: number;
    while ((newline = this.received.indexOf('\n')) >= 0) {
      const line = this.received.slice(0, newline).trim();
      this.received = this.received.slice(newline + 1);
      const [kind, id, exitCode, stdout, stderr] = line.split(' ');
      if (kind !== 'R' || id === undefined || stdout === undefined || stderr === undefined || !/^\d+$/.test(exitCode ?? '')) {
        if (line.length > 0) this.rig.log(`${this.name}: ignoring agent line "${line.slice(0, 120)}"`);
        continue;
      }
      const pending = this.pending.get(id);
      if (pending === undefined) continue; // a command the harness gave up on
      this.pending.delete(id);
      clearTimeout(pending.timer);
      pending.resolve({
        exitCode: Number(exitCode),
        stdout: decode(stdout),
        stderr: decode(stderr),
        durationMs: Date.now() - pending.startedMs,
      });
    }
  }

  private dropConnection(error: Error): void {
    const socket = this.socket;
    this.socket = undefined;
    this.received = '';
    socket?.destroy();
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
  }
}

export interface Rig {
  readonly workDir: string;
  readonly lunPath: string;
  readonly guests: readonly RigGuest[];
  /**
   * Kills every guest and removes the work directory; keepWorkDir (after a failure) keeps
   * the consoles and qemu logs, and LUN.img too with THINLV_RIG_KEEP_LUN=1.
   */
  close(options?: { keepWorkDir?: boolean }): Promise<void>;
}

/** Creates the LUN and the guests, and boots them (in parallel) unless config.boot is false. */
export async function startRig(config: RigConfig = {}): Promise<Rig> {
  const rigDir = config.rigDir ?? process.env['THINLV_RIG_DIR'] ?? DEFAULT_RIG_DIR;
  const guestCount = config.guestCount ?? DEFAULT_GUEST_COUNT;
  if (!Number.isSafeInteger(guestCount) || guestCount < 1 || guestCount > MAX_GUESTS_RUNNING) {
    throw new RigError(`guestCount must be 1 to ${MAX_GUESTS_RUNNING}, got ${guestCount}`);
  }
  const unavailable = rigUnavailableReason(rigDir);
  if (unavailable !== undefined) throw new RigError(`the rig cannot run: ${unavailable}`);
  const lunSizeBytes = config.lunSizeBytes ?? DEFAULT_LUN_SIZE_BYTES;
  const log = config.log ?? ((line: string) => process.stderr.write(`rig: ${line}\n`));
  // Next to the images (the LUN needs a file system with O_DIRECT, which /tmp may lack).
  const workDir = mkdtempSync(join(rigDir, `run-${process.pid}-`));
  installExitHook();
  liveWorkDirs.add(workDir);
  const lunPath = join(workDir, 'LUN.img');
  writeFileSync(lunPath, '');
  truncateSync(lunPath, lunSizeBytes);
  const shared = { workDir, rigDir, lunPath, memoryMib: config.memoryMib ?? DEFAULT_GUEST_MEMORY_MIB, bootTimeoutMs: config.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS, log };
  const guests = Array.from({ length: guestCount }, (_, index) => new RigGuest(`g${index + 1}`, shared));
  const rig: Rig = {
    workDir,
    lunPath,
    guests,
    async close(options = {}) {
      await Promise.all(guests.map((guest) => guest.kill()));
      liveWorkDirs.delete(workDir);
      if (!options.keepWorkDir) {
        rmSync(workDir, { recursive: true, force: true });
      } else if (process.env['THINLV_RIG_KEEP_LUN'] === '1') {
        log(`kept ${workDir} (LUN.img: ${statSync(lunPath).blocks * 512} bytes allocated; consoles and qemu logs)`);
      } else {
        rmSync(lunPath, { force: true });
        log(`kept the guests' console and qemu logs in ${workDir} (THINLV_RIG_KEEP_LUN=1 keeps LUN.img too)`);
      }
    },
  };
  log(`work directory ${workDir}, LUN ${lunSizeBytes} bytes, ${guestCount} guest(s)`);
  if (config.boot !== false) {
    try {
      await Promise.all(guests.map((guest) => guest.boot()));
    } catch (error) {
      await rig.close({ keepWorkDir: true });
      throw error;
    }
  }
  return rig;
}

/** Quotes a string for the guest's sh. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function decode(field: string): string {
  return field === '-' ? '' : Buffer.from(field, 'base64').toString('utf8');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
