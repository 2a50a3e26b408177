// The command lines run most often, read without yargs: loading yargs costs about 150 ms,
// more than a whole `lvs` on a small VG. tapdisk's resize hook runs `thinlv lvextend` as a
// process per grow; monitoring and operators run `inspect`, `check`, `hosts`, `free` and
// `status` over and over.
//
// Only forms whose meaning is beyond doubt are read here, each one exactly as yargs reads
// it with main.ts's definitions: the command first, its options and the global options as
// `--name V` (a known `--log-level`, a positive whole `--lvm-timeout-ms`), each at most
// once except `--devices`, and one positional anywhere among them. Anything else (help,
// `=` forms, a value that starts with "-" or is empty, a boolean followed by true or
// false, a repeated option, a second positional, `--`, an unknown option) returns
// undefined and goes through yargs, which accepts or refuses it as before. So this is a
// shortcut, never a second grammar: whatever it reads, yargs would have read the same
// way (test/unit/fastArgv.test.ts compares the two).

import { LOG_LEVELS } from '../log.js';
import type { LvextendArgs } from './commands/lvextend.js';

/** The global options given, by yargs' names; main.ts adds the defaults yargs would. */
export interface FastGlobals {
  readonly devices?: string[];
  readonly 'log-level'?: string;
  readonly json: boolean;
  readonly 'lvm-path'?: string;
  readonly 'lvm-timeout-ms'?: number;
  readonly 'lvm-config'?: string;
}

interface CommandOptions {
  /** Options that take a value, by every name yargs knows them by, and the field each fills. */
  readonly values: Readonly<Record<string, string>>;
  readonly booleans: readonly string[];
}

const REPORT: CommandOptions = { values: {}, booleans: [] };

/** Each command read here, with its own options (main.ts defines the same for yargs). */
const COMMANDS = {
  lvextend: { values: { '-L': 'size', '--size': 'size', '-l': 'extents', '--extents': 'extents', '--socket': 'socket' }, booleans: ['--live'] },
  inspect: REPORT,
  check: REPORT,
  hosts: REPORT,
  free: { values: { '--watch': 'watch' }, booleans: ['--check'] },
  status: { values: {}, booleans: ['--check'] },
} as const satisfies Record<string, CommandOptions>;

export type FastCommand = keyof typeof COMMANDS;

const GLOBAL_VALUES: Readonly<Record<string, string>> = {
  '--log-level': 'log-level',
  '--lvm-path': 'lvm-path',
  '--lvm-timeout-ms': 'lvm-timeout-ms',
  '--lvm-config': 'lvm-config',
  '--devices': 'devices',
};

/** At most this many arguments: a longer line is not one a hook or a monitor writes, so yargs reads it. */
const MAX_ARGUMENTS = 64;

export interface FastInvocation {
  readonly command: FastCommand;
  readonly positional: string;
  /** The command's own options given, by field ("size", "watch"). */
  readonly values: ReadonlyMap<string, string>;
  /** The command's own boolean options given, as written ("--live", "--check"). */
  readonly booleans: ReadonlySet<string>;
  readonly globals: FastGlobals;
}

interface Read {
  readonly values: Map<string, string>;
  readonly devices: string[];
  readonly booleans: Set<string>;
  readonly positionals: string[];
}

/** Reads the option at argv[i]; returns how many arguments it took, or undefined when yargs must read the line. */
function readOption(argv: readonly string[], i: number, options: CommandOptions, read: Read): number | undefined {
  const arg = argv[i]!;
  const field = options.values[arg] ?? GLOBAL_VALUES[arg];
  if (field !== undefined) {
    const value = argv[i + 1];
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    // yargs reads `--devices` as an array that takes every value up to the next option.
    if (field === 'devices') {
      const next = argv[i + 2];
      if (next !== undefined && !next.startsWith('-')) return undefined;
      read.devices.push(value);
    } else if (read.values.has(field)) {
      return undefined;
    }
    read.values.set(field, value);
    return 2;
  }
  if (arg === '--json' || options.booleans.includes(arg)) {
    const next = argv[i + 1];
    if (read.booleans.has(arg) || next === 'true' || next === 'false') return undefined;
    read.booleans.add(arg);
    return 1;
  }
  if (arg.startsWith('-') || arg === '') return undefined;
  read.positionals.push(arg);
  return 1;
}

function globalsOf(read: Read): FastGlobals | undefined {
  const logLevel = read.values.get('log-level');
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) return undefined;
  const timeout = read.values.get('lvm-timeout-ms');
  if (timeout !== undefined && !(/^[1-9][0-9]{0,14}$/.test(timeout) && Number.isSafeInteger(Number(timeout)))) return undefined;
  const lvmPath = read.values.get('lvm-path');
  const lvmConfig = read.values.get('lvm-config');
  return {
    json: read.booleans.has('--json'),
    ...(read.devices.length > 0 ? { devices: read.devices } : {}),
    ...(logLevel !== undefined ? { 'log-level': logLevel } : {}),
    ...(lvmPath !== undefined ? { 'lvm-path': lvmPath } : {}),
    ...(timeout !== undefined ? { 'lvm-timeout-ms': Number(timeout) } : {}),
    ...(lvmConfig !== undefined ? { 'lvm-config': lvmConfig } : {}),
  };
}

/** `argv` is everything after the program (argv[0] being the command); undefined: let yargs read it. */
export function readFastArgv(argv: readonly string[]): FastInvocation | undefined {
  const command = argv[0];
  if (command === undefined || !Object.hasOwn(COMMANDS, command) || argv.length > MAX_ARGUMENTS) return undefined;
  const options: CommandOptions = COMMANDS[command as FastCommand];
  const read: Read = { values: new Map(), devices: [], booleans: new Set(), positionals: [] };
  for (let i = 1; i < argv.length; ) {
    const took = readOption(argv, i, options, read);
    if (took === undefined) return undefined;
    i += took;
  }
  const globals = globalsOf(read);
  if (read.positionals.length !== 1 || globals === undefined) return undefined;
  const own = new Set(Object.values(options.values));
  return {
    command: command as FastCommand,
    positional: read.positionals[0]!,
    values: new Map([...read.values].filter(([field]) => own.has(field))),
    booleans: new Set([...read.booleans].filter((name) => name !== '--json')),
    globals,
  };
}

/** `thinlv lvextend ...` read without yargs, as its handler takes it. */
export function lvextendArgsOf(fast: FastInvocation): LvextendArgs {
  return { path: fast.positional, size: fast.values.get('size'), extents: fast.values.get('extents'), socket: fast.values.get('socket') };
}
