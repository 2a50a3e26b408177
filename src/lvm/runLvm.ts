// The only place that starts an `lvm` process.
//
// Every call: an argument array (no shell), LC_ALL=C so stderr is matchable,
// stdin closed so a prompt ("Do you really want to proceed?") fails instead of
// hanging the master, an explicit timeout and cancel signal, and the same
// common options: `--driverloaded n` where the kernel has no device-mapper, and
// a `--devices` restriction when configured (tests always set one, so lvm never
// looks at a device the test did not create). Failures are classified by exit
// code and recognised stderr text into LvmError codes, never guessed.

import { runProcess } from '../runProcess.js';
import { ErrorCode, LvmError } from '../errors.js';
import { DEFAULT_LVM_TIMEOUT_MS } from './lvmDefaults.js';
import type { VgMetadata } from '../metadata/vgModel.js';

export { DEFAULT_LVM_TIMEOUT_MS };

/** Bound on what one lvm call may print (a fullreport of a large VG is tens of MiB). */
const MAX_LVM_OUTPUT_BYTES = 512 * 1024 * 1024;
/** Bound on what we keep of lvm's stderr in an error, so a chatty failure cannot flood logs. */
export const MAX_STDERR_KEPT_CHARS = 4_000;

export interface LvmCallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /**
   * Resolve with lvm's exit code instead of throwing when lvm exits non-zero (the
   * lvm-compatible commands pass lvm's own answer on: its stdout, stderr and code).
   * A missing lvm, a timeout or a cancel still throw.
   */
  readonly allowFailure?: boolean;
}

export interface LvmResult {
  readonly stdout: string;
  readonly stderr: string;
  /** lvm's exit code, set by the runner that ran it: 0, or non-zero with `allowFailure`. */
  readonly exitCode?: number;
}

/** Runs one lvm command (e.g. "fullreport") with the runner's common options. */
export interface LvmRunner {
  /** The devices lvm is restricted to (`--devices`), when it is: where a VG's PVs can be read directly (diskMetadata.ts). */
  readonly devices?: readonly string[];
  /** Without `devices`: remember where lvm finds a VG's PVs, and read them directly next time (readVgReport.ts). */
  readonly rememberPvDevices?: boolean;
  /**
   * What identifies the VG's metadata text now, when the runner can say without an lvm
   * process (the simulator's LVM holds its text): equal keys, the same text. Without it,
   * or when it answers undefined, readers ask the PVs' headers (vgTextKey) or lvm.
   */
  textKey?(vgName: string): Promise<string | undefined>;
  /** What a commit shares with lvm besides the command line; the machine's (commitBatch.ts) unless the runner brings its own. */
  readonly local?: LvmLocal;
  run(command: string, args: readonly string[], options?: LvmCallOptions): Promise<LvmResult>;
}

/**
 * The machine lvm runs on, as a commit uses it: lvm's local VG lock (vgLock.ts) and the
 * files handed to lvm by path (`vgcfgbackup -f`, `vgcfgrestore -f`). The default is the
 * real lock directory and a temporary directory (commitBatch.ts); the simulator keeps both
 * in memory, so runs neither wait on each other's flock nor touch the file system.
 */
export interface LvmLocal {
  /** Runs `fn` holding lvm's exclusive local lock on the VG. */
  withVgLock<T>(vgName: string, fn: () => Promise<T>): Promise<T>;
  /** Runs `fn` with a fresh directory for files lvm reads and writes, removed afterwards. */
  withScratchDir<T>(fn: (dir: string) => Promise<T>): Promise<T>;
  /**
   * `printedFrom`: the VG `text` was printed from, when it is a VG text file (a commit's).
   * A store that keeps it beside the text (the simulator's LVM) may hand it to the lvm that
   * reads the file instead of a parse of what was just printed; a real file system ignores it.
   */
  writeFile(path: string, text: string, printedFrom?: VgMetadata): Promise<void>;
  readFile(path: string): Promise<string>;
  /**
   * The VG text file lvm wrote at `path`, parsed: without this, readFile and parseVgMetadata.
   * A store that holds the parse of that very text (the simulator's LVM, which parsed what
   * it holds) may hand it over instead of parsing again; it must never be changed.
   */
  readVgFile?(path: string): Promise<VgMetadata>;
}

export interface LvmRunnerConfig {
  readonly lvmPath?: string;
  /** When set, lvm sees only these devices (`--devices`). */
  readonly devices?: readonly string[];
  /** False when the kernel has no device-mapper: adds `--driverloaded n`. */
  readonly deviceMapperAvailable: boolean;
  readonly defaultTimeoutMs?: number;
  /** lvm.conf settings for every call, as `--config` takes them (tests turn off /etc/lvm archives). */
  readonly extraConfig?: string;
  /** See LvmRunner.rememberPvDevices: the command line's runner sets it, tests and fakes do not. */
  readonly rememberPvDevices?: boolean;
}

// Recognised stderr texts (LVM 2.03), most specific first.
const STDERR_CLASSES: readonly { pattern: RegExp; code: string; hint: string }[] = [
  { pattern: /Volume group "[^"]*" not found/, code: ErrorCode.vgNotFound, hint: 'check the VG name and --devices' },
  { pattern: /Failed to find logical volume|Logical volume [^ ]+ not found/, code: ErrorCode.lvNotFound, hint: 'check the LV name' },
  {
    pattern: /Insufficient free (space|extents)|insufficient free extents/i,
    code: ErrorCode.insufficientExtents,
    hint: 'free space in the VG or add a PV',
  },
  {
    pattern: /exceeds maximum metadata size|too large for circular buffer|metadata area too small|No space for metadata|Not enough space for metadata/i,
    code: ErrorCode.metadataAreaTooSmall,
    hint: 'the PV metadata area is full; recreate the PVs with a larger --metadatasize',
  },
  {
    pattern: /PV segments corrupted|PV segment .*mismatch|Inconsistent length|Checksum error|Failed to read metadata/i,
    code: ErrorCode.vgMetadataCorrupt,
    hint: 'LVM refuses this VG\'s metadata; run vgck, and restore a good copy from /etc/lvm/backup or /etc/lvm/archive with vgcfgrestore',
  },
  {
    pattern: /Can't get lock|Giving up waiting for lock|Resource temporarily unavailable.*lock/i,
    code: ErrorCode.lockBusy,
    hint: 'another lvm command holds the VG lock; retry',
  },
];

function firstMeaningfulLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !/^WARNING: (Activation disabled|Failed to check for active)/.test(line))
    .filter((line) => !/device-mapper|libdevmapper|\/dev\/mapper\/control/i.test(line));
  return lines.find((line) => !line.startsWith('WARNING')) ?? lines[0] ?? '';
}

/** Classifies a failed lvm run into an LvmError with a stable code. Exported for tests. */
export function classifyLvmFailure(command: string, args: readonly string[], exitCode: number | undefined, stderr: string): LvmError {
  const kept = stderr.slice(0, MAX_STDERR_KEPT_CHARS);
  const data = { command, args: [...args], exitCode, stderr: kept };
  for (const known of STDERR_CLASSES) {
    const match = known.pattern.exec(stderr);
    if (match) {
      const line = stderr.split('\n').find((l) => known.pattern.test(l))?.trim() ?? match[0];
      return new LvmError(known.code, `lvm ${command}: ${line} (${known.hint})`, data);
    }
  }
  return new LvmError(
    ErrorCode.lvmFailed,
    `lvm ${command} failed with exit code ${exitCode ?? 'none'}: ${firstMeaningfulLine(stderr) || 'no message'}`,
    data,
  );
}

export function createLvmRunner(config: LvmRunnerConfig): LvmRunner {
  const lvmPath = config.lvmPath ?? 'lvm';
  const defaultTimeoutMs = config.defaultTimeoutMs ?? DEFAULT_LVM_TIMEOUT_MS;
  const commonArgs: string[] = [];
  if (!config.deviceMapperAvailable) commonArgs.push('--driverloaded', 'n');
  for (const device of config.devices ?? []) commonArgs.push('--devices', device);
  if (config.extraConfig !== undefined) commonArgs.push('--config', config.extraConfig);

  return {
    ...(config.devices !== undefined && config.devices.length > 0 ? { devices: config.devices } : { rememberPvDevices: config.rememberPvDevices === true }),
    async run(command, args, options = {}) {
      const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
      const fullArgs = [command, ...commonArgs, ...args];
      const result = await runProcess(lvmPath, fullArgs, {
        env: { ...process.env, LC_ALL: 'C', LANG: 'C', LVM_SUPPRESS_FD_WARNINGS: '1' },
        timeoutMs,
        signal: options.signal,
        maxOutputBytes: MAX_LVM_OUTPUT_BYTES,
        // lvm never waits for this process to read its report (runProcess.ts).
        stdoutTo: 'file',
      });
      const { stdout, stderr } = result;
      switch (result.failure) {
        case 'missing':
          throw new LvmError(ErrorCode.lvmMissing, `lvm not found at "${lvmPath}": install lvm2 (apt-get install lvm2)`, { lvmPath });
        case 'timeout':
          throw new LvmError(ErrorCode.lvmTimeout, `lvm ${command} did not finish within ${timeoutMs} ms`, { command, args: fullArgs, timeoutMs, stderr: stderr.slice(0, MAX_STDERR_KEPT_CHARS) });
        case 'cancelled':
          throw new LvmError(ErrorCode.lvmFailed, `lvm ${command} was cancelled`, { command, args: fullArgs });
        case 'output-too-large':
        case 'spawn-failed':
          throw new LvmError(ErrorCode.lvmFailed, `lvm ${command} could not be run to its end: ${result.failureMessage ?? result.failure}`, { command, args: fullArgs });
        case undefined:
          break;
      }
      if (result.exitCode === 0) return { stdout, stderr, exitCode: 0 };
      if (options.allowFailure === true && result.exitCode !== null) return { stdout, stderr, exitCode: result.exitCode };
      throw classifyLvmFailure(command, fullArgs, result.exitCode ?? undefined, stderr);
    },
  };
}
