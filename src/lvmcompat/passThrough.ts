// lvm-compatible commands whose answer does not depend on unreplayed journal records run
// stock lvm as the caller asked, with `--readonly`, and pass its stdout, stderr and exit
// code on unchanged: lvm's own parser, errors and layout, byte for byte.

import { createCommandContext } from '../cli/context.js';
import { COMPAT_LVM_TIMEOUT_MS, reportCompatError, runStock } from './stockLvm.js';

/** Whether `args` already ask for --readonly (lvm refuses it twice), abbreviations included. */
function asksReadonly(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg.startsWith('--rea') && '--readonly'.startsWith(arg));
}

export async function runUnchanged(command: string, args: readonly string[]): Promise<number> {
  try {
    // The caller's --devices and --config stay on the command line, where lvm reads them.
    const context = await createCommandContext({ devices: undefined, logLevel: 'silent', json: false, lvmPath: 'lvm', lvmTimeoutMs: COMPAT_LVM_TIMEOUT_MS, lvmConfig: undefined });
    const stock = await runStock(context, command, [...(asksReadonly(args) ? [] : ['--readonly']), ...args]);
    process.stdout.write(stock.stdout);
    process.stderr.write(stock.stderr);
    return stock.exitCode;
  } catch (error) {
    return reportCompatError(command, error);
  }
}
