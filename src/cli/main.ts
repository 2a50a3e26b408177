#!/usr/bin/env node
// The thinlv command line. Commands are thin layers over src/; this file owns
// the global options and the one top-level error handler that maps errors to
// exit codes and to --json output.
//
// Exit codes: 0 ok, 1 findings (check), 2 bad input, 3 operating error
// (lvm failed, VG not found, lock busy, ...), 4 internal error (a bug).

import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { LevelWithSilent } from 'pino';
import { ErrorCode, InvariantError, ThinlvError, UsageError } from '../errors.js';
import { DEFAULT_LVM_TIMEOUT_MS } from '../lvm/runLvm.js';
import { LOG_LEVELS } from '../log.js';
import { runCheck } from './commands/check.js';
import { runInspect } from './commands/inspect.js';
import { createCommandContext, type GlobalOptions } from './context.js';

export const EXIT = { ok: 0, findings: 1, usage: 2, operational: 3, internal: 4 } as const;

interface RawGlobals {
  devices?: string[] | undefined;
  'log-level': string;
  json: boolean;
  'lvm-path': string;
  'lvm-timeout-ms': number;
  'lvm-config'?: string | undefined;
}

function globalsFrom(argv: RawGlobals): GlobalOptions {
  const timeout = argv['lvm-timeout-ms'];
  if (!Number.isSafeInteger(timeout) || timeout <= 0) {
    throw new UsageError(ErrorCode.invalidArgument, `--lvm-timeout-ms must be a positive whole number of milliseconds, got ${timeout}`);
  }
  return {
    devices: argv.devices?.flatMap((d) => d.split(',')).filter((d) => d.length > 0),
    logLevel: argv['log-level'] as LevelWithSilent,
    json: argv.json,
    lvmPath: argv['lvm-path'],
    lvmTimeoutMs: timeout,
    lvmConfig: argv['lvm-config'],
  };
}

function reportError(error: unknown, json: boolean): number {
  let code: string;
  let message: string;
  let data: unknown = {};
  let exitCode: number;
  if (error instanceof ThinlvError) {
    ({ code, message, data } = error);
    exitCode = error instanceof UsageError ? EXIT.usage : error instanceof InvariantError ? EXIT.internal : EXIT.operational;
  } else {
    code = 'INTERNAL';
    message = `internal error (a bug in thinlv, please report it): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    exitCode = EXIT.internal;
  }
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code, message, data } })}\n`);
  else process.stderr.write(`thinlv: ${message}\n`);
  return exitCode;
}

function withVgPositional(y: Argv<RawGlobals>): Argv<RawGlobals & { vg: string }> {
  return y.positional('vg', { type: 'string', describe: 'volume group name', demandOption: true }) as Argv<RawGlobals & { vg: string }>;
}

export async function main(argv: readonly string[]): Promise<number> {
  const wantsJson = argv.includes('--json');
  let exitCode: number = EXIT.ok;
  try {
    await yargs([...argv])
      .scriptName('thinlv')
      .usage('$0 <command> [options]\n\nThin provisioning for LVM volume groups shared by many hosts.')
      .option('devices', {
        type: 'string',
        array: true,
        describe: 'restrict lvm to these PV devices (repeat or comma-separate), like lvm --devices',
      })
      .option('log-level', { type: 'string', choices: LOG_LEVELS, default: 'warn', describe: 'log level (logs go to stderr)' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output on stdout' })
      .option('lvm-path', { type: 'string', default: 'lvm', describe: 'the lvm binary' })
      .option('lvm-timeout-ms', { type: 'number', default: DEFAULT_LVM_TIMEOUT_MS, describe: 'time limit for each lvm call' })
      .option('lvm-config', { type: 'string', describe: 'lvm.conf settings passed to every lvm call as --config' })
      .command(
        'inspect <vg>',
        'show the VG as thinlv sees it: PVs, extents, metadata area, LVs with segments and tags, free ranges',
        withVgPositional,
        async (args) => {
          const context = await createCommandContext(globalsFrom(args));
          exitCode = await runInspect(context, args.vg);
        },
      )
      .command(
        'check <vg>',
        'check the VG metadata: no extent in two LVs, free plus allocated equals total, segments inside PVs, metadata area use',
        withVgPositional,
        async (args) => {
          const context = await createCommandContext(globalsFrom(args));
          exitCode = await runCheck(context, args.vg);
        },
      )
      .demandCommand(1, 'name a command: thinlv --help lists them')
      .strict()
      .help()
      .version()
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageError(ErrorCode.invalidArgument, `${message} (thinlv --help shows usage)`);
      })
      .parseAsync();
  } catch (error) {
    exitCode = reportError(error, wantsJson);
  }
  return exitCode;
}

main(hideBin(process.argv)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`thinlv: ${String(error)}\n`);
    process.exitCode = EXIT.internal;
  },
);
