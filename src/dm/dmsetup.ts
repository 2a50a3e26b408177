// The only place that runs `dmsetup`.
//
// Whether device-mapper is usable is decided by asking the kernel
// (`dmsetup version` succeeds only when the driver answers). The presence of
// /dev/mapper/control proves nothing: lvm creates that node even on a kernel
// without device-mapper.

import { runProcess } from '../runProcess.js';

import { DmError, ErrorCode, UsageError } from '../errors.js';

export const DMSETUP_TIMEOUT_MS = 10_000;

export interface DeviceMapperProbe {
  readonly available: boolean;
  /** The kernel driver version, or why it is unusable. */
  readonly detail: string;
}

export async function probeDeviceMapper(dmsetupPath = 'dmsetup'): Promise<DeviceMapperProbe> {
  const result = await runProcess(dmsetupPath, ['version'], { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: DMSETUP_TIMEOUT_MS, maxOutputBytes: 1024 * 1024 });
  const output = `${result.stdout}\n${result.stderr}`;
  const driver = /Driver version:\s*(\S+)/.exec(output);
  if (result.failure === undefined && result.exitCode === 0 && driver) return { available: true, detail: `device-mapper driver ${driver[1]}` };
  if (result.failure === 'missing') return { available: false, detail: `${dmsetupPath} not found` };
  const reason = output.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'no answer';
  return { available: false, detail: `kernel device-mapper unusable: ${reason}` };
}

// ---------------------------------------------------------------------------
// Running dmsetup commands
//
// Every call: an argument array (no shell); options before the command, so a
// POSIXLY_CORRECT environment (which stops getopt from permuting) cannot turn
// an option into a device name; an environment of only LC_ALL=C, LANG=C and
// PATH, so stderr is matchable and a DM_UDEV_COOKIE or DM_DEV_DIR inherited
// from the daemon's environment cannot change what dmsetup does; stdin closed
// unless a table is passed on it; an explicit timeout and cancel signal.
// Failures are classified by exit code and recognised stderr text into DmError
// codes, never guessed.
//
// udev: dmsetup waits by default for udev to finish the events of `create`,
// `resume` and `remove` (`/dev/mapper/NAME` exists when `create` returns and is
// gone when `remove` returns), and falls back to making the nodes itself when
// udev is not running. thinlv keeps that wait (udevSync: true, the default): a
// hypervisor host runs udev, tapdisk/QEMU open /dev/mapper/NAME right after an
// activation, and lvm itself always waits. `udevSync: false` adds
// `--noudevsync` for hosts whose udev is present but never answers (some
// containers); the timeout bounds the wait either way.


/** Stable codes of DmError, in addition to ErrorCode.dmFailed ('DM_FAILED'). */
export const DmErrorCode = {
  /** Any failure not recognised below. */
  failed: ErrorCode.dmFailed,
  /** The dmsetup binary is not installed (or not at the configured path). */
  missing: 'DM_MISSING',
  /** dmsetup did not finish within its timeout (a suspend waits for in-flight I/O). */
  timeout: 'DM_TIMEOUT',
  /** The kernel has no usable device-mapper driver. */
  unavailable: 'DM_UNAVAILABLE',
  /** No device of that name. */
  notFound: 'DM_NOT_FOUND',
  /** `create`: the name (or uuid) is already in use. */
  deviceExists: 'DM_DEVICE_EXISTS',
  /** The device is open (e.g. by a VM) and cannot be removed. */
  deviceBusy: 'DM_DEVICE_BUSY',
  /** The kernel refused the table (a bad line, or a device in it that cannot be opened). */
  invalidTable: 'DM_INVALID_TABLE',
  /** dmsetup printed something thinlv cannot read (e.g. a target that is not linear). */
  outputInvalid: 'DM_OUTPUT_INVALID',
  /** A reload could not resume the device: I/O to it is blocked until someone resumes it. */
  leftSuspended: 'DM_LEFT_SUSPENDED',
  /** Too many operations are already queued for one device in this process. */
  queueFull: 'DM_QUEUE_FULL',
} as const;

export type DmErrorCodeValue = (typeof DmErrorCode)[keyof typeof DmErrorCode];

/** Bound on what we keep of dmsetup's output in an error, so a chatty failure cannot flood logs. */
export const MAX_DM_STDERR_KEPT_CHARS = 4_000;
/** Bound on what one dmsetup call may print (a `table` of a fragmented LV is a few hundred KiB). */
export const MAX_DMSETUP_OUTPUT_BYTES = 16 * 1024 * 1024;

export interface DmsetupCallOptions {
  /** Text written to dmsetup's stdin (a table for `create` and `load`); stdin is closed otherwise. */
  readonly input?: string;
  /** Options placed before the command, e.g. ['--uuid', uuid]. */
  readonly switches?: readonly string[];
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface DmsetupResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one dmsetup command ("create", "table", ...) on its operands. */
export interface DmsetupRunner {
  run(command: string, operands: readonly string[], options?: DmsetupCallOptions): Promise<DmsetupResult>;
}

export interface DmsetupRunnerConfig {
  readonly dmsetupPath?: string;
  readonly defaultTimeoutMs?: number;
  /** Wait for udev to process each event (the default); false adds `--noudevsync`. */
  readonly udevSync?: boolean;
}

// Recognised dmsetup / libdevmapper texts (device-mapper 1.02), most specific first.
// The kernel's errno reaches us as strerror text: "<op> ioctl on NAME  failed: <strerror>".
const STDERR_CLASSES: readonly {
  pattern: RegExp;
  code: DmErrorCodeValue | ((command: string) => DmErrorCodeValue);
  hint: string;
}[] = [
  {
    pattern: /Failure to communicate with kernel device-mapper driver|\/dev\/mapper\/control: open failed/,
    code: DmErrorCode.unavailable,
    hint: 'the kernel has no device-mapper driver; load dm_mod (modprobe dm_mod)',
  },
  {
    pattern: /Device does not exist|No such device or address/,
    code: DmErrorCode.notFound,
    hint: 'no device-mapper device of that name is active on this host',
  },
  {
    pattern: /Device or resource busy/,
    // The kernel answers EBUSY to a create whose name or uuid is taken, and to a
    // remove of a device something holds open.
    code: (command) => (command === 'create' ? DmErrorCode.deviceExists : DmErrorCode.deviceBusy),
    hint: 'the name is in use, or the device is held open (a running VM, a mount, a holder in `dmsetup ls --tree`)',
  },
  {
    // ENODEV: a device the table names cannot be opened (seen on real dm: "reload ioctl on
    // NAME  failed: No such device"); ENXIO above is the dm device itself missing.
    pattern: /failed: No such device$/m,
    code: (command) => (command === 'create' || command === 'load' ? DmErrorCode.invalidTable : DmErrorCode.failed),
    hint: 'a device the table names is not there on this host; rescan the LUN',
  },
  {
    // A resume refuses a loaded table that reaches past its device's end ("too small for
    // target" in dmesg), as a host that has not rescanned a grown LUN would see.
    pattern: /Invalid argument|Invalid format on line|Unknown target type/,
    code: (command) => (command === 'create' || command === 'load' || command === 'resume' ? DmErrorCode.invalidTable : DmErrorCode.failed),
    hint: 'the kernel refused the table; `dmesg` names the bad line',
  },
];

function keptOutput(text: string): string {
  return text.slice(0, MAX_DM_STDERR_KEPT_CHARS);
}

function firstMeaningfulLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .find((line) => line.length > 0 && line !== 'Command failed.') ?? ''
  );
}

/**
 * Classifies a failed dmsetup run into a DmError with a stable code. `stdout` is
 * searched too because `dmsetup info` prints "Device does not exist." there.
 * Exported for tests.
 */
export function classifyDmsetupFailure(
  command: string,
  args: readonly string[],
  exitCode: number | undefined,
  stderr: string,
  stdout = '',
): DmError {
  const data = { command, args: [...args], exitCode, stderr: keptOutput(stderr) };
  const output = `${stderr}\n${stdout}`;
  for (const known of STDERR_CLASSES) {
    const match = known.pattern.exec(output);
    if (match) {
      const code = typeof known.code === 'function' ? known.code(command) : known.code;
      const line = output.split('\n').find((l) => known.pattern.test(l))?.trim() ?? match[0];
      return new DmError(code, `dmsetup ${command}: ${line} (${known.hint})`, data);
    }
  }
  return new DmError(
    DmErrorCode.failed,
    `dmsetup ${command} failed with exit code ${exitCode ?? 'none'}: ${firstMeaningfulLine(stderr) || firstMeaningfulLine(stdout) || 'no message'}`,
    data,
  );
}

export function createDmsetupRunner(config: DmsetupRunnerConfig = {}): DmsetupRunner {
  const dmsetupPath = config.dmsetupPath ?? 'dmsetup';
  const defaultTimeoutMs = config.defaultTimeoutMs ?? DMSETUP_TIMEOUT_MS;
  const commonSwitches = config.udevSync === false ? ['--noudevsync'] : [];
  const env: Record<string, string> = { LC_ALL: 'C', LANG: 'C' };
  // PATH only so a bare "dmsetup" is found; nothing else of the daemon's environment.
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];

  return {
    async run(command, operands, options = {}) {
      const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
      if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
        throw new UsageError(ErrorCode.invalidArgument, `dmsetup timeoutMs must be a positive integer, got ${timeoutMs}`, { timeoutMs });
      }
      const fullArgs = [...commonSwitches, ...(options.switches ?? []), command, ...operands];
      const result = await runProcess(dmsetupPath, fullArgs, { env, input: options.input, timeoutMs, signal: options.signal, maxOutputBytes: MAX_DMSETUP_OUTPUT_BYTES });
      const { stdout, stderr } = result;
      switch (result.failure) {
        case 'missing':
          throw new DmError(DmErrorCode.missing, `dmsetup not found at "${dmsetupPath}": install it (apt-get install dmsetup)`, { dmsetupPath });
        case 'timeout':
          throw new DmError(DmErrorCode.timeout, `dmsetup ${command} ${operands.join(' ')} did not finish within ${timeoutMs} ms`, { command, args: fullArgs, timeoutMs, stderr: keptOutput(stderr) });
        case 'cancelled':
          throw new DmError(DmErrorCode.failed, `dmsetup ${command} ${operands.join(' ')} was cancelled`, { command, args: fullArgs, cancelled: true });
        case 'output-too-large':
          throw new DmError(DmErrorCode.outputInvalid, `dmsetup ${command} printed more than ${MAX_DMSETUP_OUTPUT_BYTES} bytes`, { command, args: fullArgs });
        case 'spawn-failed':
          throw new DmError(DmErrorCode.failed, `dmsetup ${command} could not be started: ${result.failureMessage ?? ''}`, { command, args: fullArgs });
        case undefined:
          break;
      }
      if (result.exitCode !== 0) throw classifyDmsetupFailure(command, fullArgs, result.exitCode ?? undefined, stderr, stdout);
      return { stdout, stderr };
    },
  };
}
