import { describe, expect, test } from 'vitest';
import yargs from 'yargs';

import { HOST_STATE_DIR } from '../../src/cli/commands/hostDaemon.js';
import { lvextendArgsOf, readFastArgv } from '../../src/cli/fastArgv.js';
import { DEFAULT_OUT_OF_SPACE_WAIT_MS } from '../../src/host/allocator.js';
import { LOG_LEVELS } from '../../src/log.js';

/** thinlv's global options and the commands fastArgv.ts reads, as src/cli/main.ts defines them for yargs. */
async function parseWithYargs(argv: readonly string[]): Promise<Record<string, unknown> | undefined> {
  let parsed: Record<string, unknown> | undefined;
  try {
    await yargs([...argv])
      .option('devices', { type: 'string', array: true })
      .option('log-level', { type: 'string', choices: LOG_LEVELS, default: 'warn' })
      .option('json', { type: 'boolean', default: false })
      .option('lvm-path', { type: 'string', default: 'lvm' })
      .option('lvm-timeout-ms', { type: 'number', default: 60_000 })
      .option('lvm-config', { type: 'string' })
      .command(
        'lvextend <lv>',
        'grow a thin LV',
        (y) =>
          y
            .positional('lv', { type: 'string', demandOption: true })
            .option('L', { alias: 'size', type: 'string' })
            .option('l', { alias: 'extents', type: 'string' })
            .option('live', { type: 'boolean', default: false })
            .option('socket', { type: 'string' }),
        (args) => {
          parsed = args;
        },
      )
      .command(['inspect <vg>', 'check <vg>', 'hosts <vg>'], 'a report', (y) => y.positional('vg', { type: 'string', demandOption: true }), (args) => {
        parsed = args;
      })
      .command(
        'free <vg>',
        'free',
        (y) => y.positional('vg', { type: 'string', demandOption: true }).option('check', { type: 'boolean', default: false }).option('watch', { type: 'string' }),
        (args) => {
          parsed = args;
        },
      )
      .command(
        'status <vg>',
        'status',
        (y) => y.positional('vg', { type: 'string', demandOption: true }).option('check', { type: 'boolean', default: false }),
        (args) => {
          parsed = args;
        },
      )
      .command(
        'host <action> <vg> <host>',
        'the host commands',
        (y) =>
          y
            .positional('vg', { type: 'string', demandOption: true })
            .positional('action', { type: 'string', choices: ['run', 'status', 'add', 'remove', 'declare-dead', 'clear-rejected'], demandOption: true })
            .positional('host', { type: 'string', demandOption: true })
            .option('socket', { type: 'string' })
            .option('state-dir', { type: 'string', default: HOST_STATE_DIR })
            .option('out-of-space-wait-ms', { type: 'number', default: DEFAULT_OUT_OF_SPACE_WAIT_MS })
            .option('claim-wait-ms', { type: 'number' })
            .option('lease-interval-ms', { type: 'number' })
            .option('fenced', { type: 'boolean', default: false })
            .option('stop-wait-ms', { type: 'number' })
            .option('metrics-listen', { type: 'string' }),
        (args) => {
          parsed = args;
        },
      )
      .strict()
      .fail((message, error) => {
        throw error ?? new Error(message);
      })
      .parseAsync();
  } catch {
    return undefined;
  }
  return parsed;
}

const ACCEPTED: readonly (readonly string[])[] = [
  ['lvextend', '-l', '+1', 'vg/lv', '--live'],
  ['lvextend', '-L', '268435456b', 'vg/lv', '--live', '--socket', '/run/s.sock'],
  ['lvextend', 'vg/lv', '--size', '+12m', '--json'],
  ['lvextend', '--extents', '6', 'vg/lv', '--devices', '/dev/loop0', '--lvm-config', 'backup { backup = 0 }'],
  ['lvextend', '-l', '1', 'vg/lv', '--devices', '/dev/a', '--devices', '/dev/b', '--log-level', 'debug', '--lvm-timeout-ms', '5000', '--lvm-path', '/sbin/lvm'],
  ['lvextend', '-L', 'lots', 'vg/lv'],
  ['lvextend', '-l', '+1', 'not-a-path'],
];

/** Lines the shortcut leaves to yargs: yargs reads them some other way, or refuses them. */
const LEFT_TO_YARGS: readonly (readonly string[])[] = [
  ['lvextend', '-L', '-1G', 'vg/lv'],
  ['lvextend', '-l', '+1', 'vg/lv', '--json', 'true'],
  ['lvextend', '-l', '+1', '--devices', '/dev/a', 'vg/lv'],
  ['lvextend', '-l', '+1', '-l', '+2', 'vg/lv'],
  ['lvextend', '-l', '+1', '--size', '1g', '-L', '2g', 'vg/lv'],
  ['lvextend', '-l=+1', 'vg/lv'],
  ['lvextend', '--socket=/s', '-l', '1', 'vg/lv'],
  ['lvextend', '-l', '+1', 'vg/lv', 'vg/other'],
  ['lvextend', '-l', '+1'],
  ['lvextend', '-l', '+1', 'vg/lv', '--', 'x'],
  ['lvextend', '--help'],
  ['lvextend', '-l', '+1', 'vg/lv', '--log-level', 'loud'],
  ['lvextend', '-l', '+1', 'vg/lv', '--lvm-timeout-ms', '0'],
  ['lvextend', '-l', '+1', 'vg/lv', '--lvm-timeout-ms', '1e3'],
  ['lvextend', '-l', '', 'vg/lv'],
  ['lvextend', '-l', '+1', 'vg/lv', '--no-live'],
  ['lvextend', '-l', '+1', 'vg/lv', '-v'],
  ['--json', 'lvextend', '-l', '+1', 'vg/lv'],
  ['lvcreate', 'vg', '-n', 'x', '-V', '1g'],
];

function expectSameGlobals(fast: NonNullable<ReturnType<typeof readFastArgv>>, slow: Record<string, unknown>): void {
  expect(fast.globals.json).toBe(slow['json']);
  expect(fast.globals['log-level'] ?? 'warn').toBe(slow['log-level']);
  expect(fast.globals['lvm-path'] ?? 'lvm').toBe(slow['lvm-path']);
  expect(fast.globals['lvm-timeout-ms'] ?? 60_000).toBe(slow['lvm-timeout-ms']);
  expect(fast.globals['lvm-config']).toBe(slow['lvm-config']);
  expect(fast.globals.devices).toEqual(slow['devices']);
}

const REPORTS_ACCEPTED: readonly (readonly string[])[] = [
  ['inspect', 'vg0', '--devices', '/dev/loop0'],
  ['check', '--json', 'vg0'],
  ['hosts', 'vg0', '--lvm-config', 'backup { backup = 0 }', '--log-level', 'info'],
  ['free', 'vg0', '--check', '--json'],
  ['free', 'vg0', '--watch', '5', '--devices', '/dev/a', '--devices', '/dev/b'],
  ['status', 'vg0', '--check', '--lvm-timeout-ms', '9000'],
  ['status', '--lvm-path', '/sbin/lvm', 'vg0'],
];

const REPORTS_LEFT_TO_YARGS: readonly (readonly string[])[] = [
  ['inspect'],
  ['inspect', 'vg0', 'vg1'],
  ['inspect', 'vg0', '--check'],
  ['check', 'vg0', '--watch', '5'],
  ['free', 'vg0', '--watch'],
  ['free', 'vg0', '--watch', '-1'],
  ['free', 'vg0', '--check', 'false'],
  ['free', 'vg0', '--check', '--check'],
  ['status', 'vg0', '--help'],
  ['hosts', 'vg0', '--json=true'],
  ['master', 'vg0'],
  ['--version'],
];

describe('thinlv lvextend read without yargs', () => {
  test.each(ACCEPTED)('reads %j exactly as yargs does', async (...argv) => {
    const fast = readFastArgv(argv);
    const slow = await parseWithYargs(argv);
    expect(fast).toBeDefined();
    expect(slow).toBeDefined();
    expect(lvextendArgsOf(fast!)).toEqual({ path: slow!['lv'], size: slow!['L'], extents: slow!['l'], socket: slow!['socket'] });
    expect(fast!.booleans.has('--live')).toBe(slow!['live']);
    expectSameGlobals(fast!, slow!);
  });

  test.each(LEFT_TO_YARGS)('leaves %j to yargs', (...argv) => {
    expect(readFastArgv(argv)).toBeUndefined();
  });
});

describe('the read-only reports read without yargs', () => {
  test.each(REPORTS_ACCEPTED)('reads %j exactly as yargs does', async (...argv) => {
    const fast = readFastArgv(argv);
    const slow = await parseWithYargs(argv);
    expect(fast).toBeDefined();
    expect(slow).toBeDefined();
    expect(fast!.command).toBe(argv[0]);
    expect(fast!.positionals).toEqual([slow!['vg']]);
    expect(fast!.values.get('watch')).toBe(slow!['watch']);
    if (slow!['check'] !== undefined) expect(fast!.booleans.has('--check')).toBe(slow!['check']);
    expectSameGlobals(fast!, slow!);
  });

  test.each(REPORTS_LEFT_TO_YARGS)('leaves %j to yargs', (...argv) => {
    expect(readFastArgv(argv)).toBeUndefined();
  });
});

/** The command line a service runs (contrib/systemd/thinlv-host@.service) and the forms around it. */
const HOST_RUN_ACCEPTED: readonly (readonly string[])[] = [
  ['host', 'run', 'vg0', 'h01'],
  ['host', 'run', 'vg0', 'h01', '--socket', '/run/thinlv/host-vg0.sock', '--state-dir', '/tmp/state', '--log-level', 'error', '--devices', '/dev/loop3'],
  ['host', '--log-level', 'info', 'run', 'vg0', 'h01', '--devices', '/dev/a', '--devices', '/dev/b', '--out-of-space-wait-ms', '30000'],
  ['host', 'run', 'vg0', 'h01', '--claim-wait-ms', '5000', '--lease-interval-ms', '2000', '--metrics-listen', '127.0.0.1:9464', '--lvm-timeout-ms', '9000'],
  ['host', 'run', 'vg0', '123', '--json'],
];

const HOST_RUN_LEFT_TO_YARGS: readonly (readonly string[])[] = [
  ['host', 'status', 'vg0', 'h01'],
  ['host', 'remove', 'vg0', 'h01'],
  ['host', 'run', 'vg0'],
  ['host', 'run', 'vg0', 'h01', 'h02'],
  ['host', 'vg0', 'run', 'h01'],
  ['host', '--devices', '/dev/a', 'run', 'vg0', 'h01'],
  ['host', 'run', 'vg0', 'h01', '--fenced'],
  ['host', 'run', 'vg0', 'h01', '--stop-wait-ms', '5'],
  ['host', 'run', 'vg0', 'h01', '--out-of-space-wait-ms', '0'],
  ['host', 'run', 'vg0', 'h01', '--out-of-space-wait-ms', '1e3'],
  ['host', 'run', 'vg0', 'h01', '--claim-wait-ms', '0x10'],
  ['host', 'run', 'vg0', 'h01', '--lease-interval-ms', ' 5'],
  ['host', 'run', 'vg0', 'h01', '--socket', '/a', '--socket', '/b'],
  ['host', 'run', 'vg0', 'h01', '--state-dir=/tmp'],
  ['host', 'run', 'vg0', 'h01', '--help'],
];

describe('thinlv host run read without yargs (the daemon never loads it)', () => {
  test.each(HOST_RUN_ACCEPTED)('reads %j exactly as yargs does', async (...argv) => {
    const fast = readFastArgv(argv);
    const slow = await parseWithYargs(argv);
    expect(fast).toBeDefined();
    expect(slow).toBeDefined();
    expect(fast!.command).toBe('host');
    expect(fast!.positionals).toEqual([slow!['action'], slow!['vg'], slow!['host']]);
    const numberOf = (field: string): number | undefined => (fast!.values.has(field) ? Number(fast!.values.get(field)) : undefined);
    expect(fast!.values.get('socket')).toBe(slow!['socket']);
    expect(fast!.values.get('state-dir') ?? HOST_STATE_DIR).toBe(slow!['state-dir']);
    expect(numberOf('out-of-space-wait-ms') ?? DEFAULT_OUT_OF_SPACE_WAIT_MS).toBe(slow!['out-of-space-wait-ms']);
    expect(numberOf('claim-wait-ms')).toBe(slow!['claim-wait-ms']);
    expect(numberOf('lease-interval-ms')).toBe(slow!['lease-interval-ms']);
    expect(fast!.values.get('metrics-listen')).toBe(slow!['metrics-listen']);
    expectSameGlobals(fast!, slow!);
  });

  test.each(HOST_RUN_LEFT_TO_YARGS)('leaves %j to yargs', (...argv) => {
    expect(readFastArgv(argv)).toBeUndefined();
  });
});
