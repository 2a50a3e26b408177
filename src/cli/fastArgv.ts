// The command lines run most often, read without yargs: loading yargs costs about 150 ms,
// more than a whole `lvs` on a small VG. tapdisk's resize hook runs `thinlv lvextend` as a
// process per grow; monitoring and operators run `inspect`, `check`, `hosts`, `free` and
// `status` over and over. And `host run`, the daemon a service runs on every host: yargs
// and what it loads (string-width's Intl.Segmenter pages in ICU's data) are 12 MB of its
// resident memory for its whole life, an eighth of its 100 MB (issue 14).
//
// Only forms whose meaning is beyond doubt are read here, each one exactly as yargs reads
// it with main.ts's definitions: the command first, its options and the global options as
// `--name V` (a known `--log-level`, a positive whole `--lvm-timeout-ms` or other `-ms`
// option), each at most once except `--devices`, and the command's positionals (one; for
// `host`, the action `run`, the VG and the host) anywhere among them. Anything else (help,
// `=` forms, a value that starts with "-" or is empty, a boolean followed by true or
// false, a repeated option, a positional too many or too few, `--`, an unknown option)
// returns undefined and goes through yargs, which accepts or refuses it as before. So this
// is a shortcut, never a second grammar: whatever it reads, yargs would have read the same
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
  /** What the positionals must be: how many, and the first when it is fixed (`host run`); one by default. */
  readonly positionals?: { readonly count: number; readonly first?: string };
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
  // `host run VG HOST` only, with the options `run` uses: any other action goes to yargs.
  host: {
    values: {
      '--socket': 'socket',
      '--state-dir': 'state-dir',
      '--out-of-space-wait-ms': 'out-of-space-wait-ms',
      '--claim-wait-ms': 'claim-wait-ms',
      '--lease-interval-ms': 'lease-interval-ms',
      '--metrics-listen': 'metrics-listen',
    },
    booleans: [],
    positionals: { count: 3, first: 'run' },
  },
} as const satisfies Record<string, CommandOptions>;

/** Fields yargs reads as numbers: read here only when written as a positive whole number, which yargs reads the same. */
const NUMBER_FIELDS: readonly string[] = ['lvm-timeout-ms', 'out-of-space-wait-ms', 'claim-wait-ms', 'lease-interval-ms'];
const isPlainWholeNumber = (text: string): boolean => /^[1-9][0-9]{0,14}$/.test(text) && Number.isSafeInteger(Number(text));

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
  /** The positionals in order (one, the VG or LV, but for `host`: run, VG, host). */
  readonly positionals: readonly string[];
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
  const { count, first } = options.positionals ?? { count: 1 };
  if (read.positionals.length !== count || (first !== undefined && read.positionals[0] !== first) || globals === undefined) return undefined;
  if (NUMBER_FIELDS.some((field) => read.values.has(field) && !isPlainWholeNumber(read.values.get(field)!))) return undefined;
  const own = new Set(Object.values(options.values));
  return {
    command: command as FastCommand,
    positionals: read.positionals,
    values: new Map([...read.values].filter(([field]) => own.has(field))),
    booleans: new Set([...read.booleans].filter((name) => name !== '--json')),
    globals,
  };
}

/** `thinlv lvextend ...` read without yargs, as its handler takes it. */
export function lvextendArgsOf(fast: FastInvocation): LvextendArgs {
  return { path: fast.positionals[0]!, size: fast.values.get('size'), extents: fast.values.get('extents'), socket: fast.values.get('socket') };
}
