// Running stock lvm for an lvm-compatible command: through thinlv's one lvm runner
// (src/lvm/runLvm.ts), built as every thinlv command builds it (src/cli/context.ts), so
// `--driverloaded n` is added where the kernel has no device-mapper and the caller's
// `--devices` and `--config` restrict every lvm call, the journal reads' included.
// Every call is a read with `--readonly`: these commands never write metadata.

import { ThinlvError } from '../errors.js';
import { createCommandContext, type CommandContext } from '../cli/context.js';
import { hasOption, lastValue, LVM_EXIT, valuesOf, type ParsedLvmArgs } from './lvmArgs.js';

/** Options thinlv gives lvm through its runner rather than on the command line. */
export const RUNNER_OPTIONS: readonly string[] = ['devices', 'config'];

export interface StockResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/**
 * How long an lvm-compatible command lets lvm run. Stock lvm has no limit, and on a VG of
 * 10,000 LVs one `lvs` took 34 s on a loaded machine (bench:scale), so thinlv's 60 s default
 * for its own commands failed where lvm answers; still bounded, as every call is.
 */
export const COMPAT_LVM_TIMEOUT_MS = 600_000;

/** A context whose lvm runner sees what the caller's lvm would: its --devices and --config. */
export function compatContext(parsed: ParsedLvmArgs): Promise<CommandContext> {
  const devices = valuesOf(parsed, 'devices');
  const config = lastValue(parsed, 'config');
  return createCommandContext({
    devices: devices.length > 0 ? devices : undefined,
    logLevel: 'silent',
    json: false,
    lvmPath: 'lvm',
    lvmTimeoutMs: COMPAT_LVM_TIMEOUT_MS,
    lvmConfig: config,
  });
}

/** `--readonly`, unless the caller gave it (lvm refuses it twice). */
export const readonlyUnlessGiven = (parsed: ParsedLvmArgs): string[] => (hasOption(parsed, 'readonly') ? [] : ['--readonly']);

/** Runs `lvm <command> <args>`, resolving with lvm's output and exit code whatever it is. */
export async function runStock(context: CommandContext, command: string, args: readonly string[]): Promise<StockResult> {
  const result = await context.lvm.run(command, args, { allowFailure: true });
  return { stdout: result.stdout, stderr: withoutRunnerNoise(context, result.stderr), exitCode: result.exitCode ?? LVM_EXIT.ok };
}

/**
 * lvm's stderr less the warning that thinlv's own `--driverloaded n` causes (stock lvm on
 * the same machine, run without it, prints its device-mapper complaints instead).
 */
function withoutRunnerNoise(context: CommandContext, stderr: string): string {
  if (context.deviceMapper.available) return stderr;
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== 'WARNING: Activation disabled. No device-mapper interaction will be attempted.')
    .join('\n');
}

/**
 * Prints an error thinlv met (lvm missing or timed out, a journal thinlv cannot place) the
 * way lvm prints its own, and returns lvm's exit code for a failed command. Anything else
 * is a bug and is thrown to the program's top-level handler.
 */
export function reportCompatError(command: string, error: unknown): number {
  if (error instanceof ThinlvError && error.code !== 'INVARIANT_BROKEN') {
    process.stderr.write(`  thinlv ${command}: ${error.message}\n`);
    return LVM_EXIT.failed;
  }
  throw error;
}
