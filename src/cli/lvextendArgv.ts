// The command lines `thinlv lvextend` is run with, read without yargs: tapdisk's resize
// hook runs it as a process per grow, and loading yargs costs more than the extend.
//
// Only forms whose meaning is beyond doubt are read here, each one exactly as yargs
// reads it with main.ts's definitions: `-L V` / `--size V`, `-l V` / `--extents V`,
// `--socket V`, `--live`, `--json`, the global options as `--name V` (a known
// `--log-level`, a positive whole `--lvm-timeout-ms`), each at most once except
// `--devices`, and one VG/LV anywhere among them. Anything else (help, `=` forms,
// a value that starts with "-" or is empty, a boolean followed by true or false, a
// repeated option, a second positional, `--`, an unknown option) returns undefined and
// goes through yargs, which accepts or refuses it as before. So this is a shortcut,
// never a second grammar: whatever it reads, yargs would have read the same way.

import { LOG_LEVELS } from '../log.js';
import type { LvextendArgs } from './commands/lvextend.js';

export interface LvextendInvocation {
  readonly args: LvextendArgs;
  /** The global options given, by yargs' names; main.ts adds the defaults yargs would. */
  readonly globals: {
    readonly devices?: string[];
    readonly 'log-level'?: string;
    readonly json: boolean;
    readonly 'lvm-path'?: string;
    readonly 'lvm-timeout-ms'?: number;
    readonly 'lvm-config'?: string;
  };
}

/** Options that take a value, by every name yargs knows them by, and the field each fills. */
const VALUE_OPTIONS: Readonly<Record<string, string>> = {
  '-L': 'size',
  '--size': 'size',
  '-l': 'extents',
  '--extents': 'extents',
  '--socket': 'socket',
  '--log-level': 'log-level',
  '--lvm-path': 'lvm-path',
  '--lvm-timeout-ms': 'lvm-timeout-ms',
  '--lvm-config': 'lvm-config',
  '--devices': 'devices',
};

const BOOLEAN_OPTIONS: ReadonlySet<string> = new Set(['--live', '--json']);

/** At most this many arguments: a longer line is not one the hook writes, so yargs reads it. */
const MAX_ARGUMENTS = 64;

/** `argv` is everything after the program (argv[0] being "lvextend"); undefined: let yargs read it. */
export function readLvextendArgv(argv: readonly string[]): LvextendInvocation | undefined {
  if (argv[0] !== 'lvextend' || argv.length > MAX_ARGUMENTS) return undefined;
  const values = new Map<string, string>();
  const devices: string[] = [];
  const booleans = new Set<string>();
  const positionals: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    const field = VALUE_OPTIONS[arg];
    if (field !== undefined) {
      const value = argv[i + 1];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
      // yargs reads `--devices` as an array that takes every value up to the next option.
      if (field === 'devices') {
        const next = argv[i + 2];
        if (next !== undefined && !next.startsWith('-')) return undefined;
        devices.push(value);
      } else if (values.has(field)) {
        return undefined;
      }
      values.set(field, value);
      i++;
    } else if (BOOLEAN_OPTIONS.has(arg)) {
      const next = argv[i + 1];
      if (booleans.has(arg) || next === 'true' || next === 'false') return undefined;
      booleans.add(arg);
    } else if (arg.startsWith('-') || arg === '') {
      return undefined;
    } else {
      positionals.push(arg);
    }
  }
  if (positionals.length !== 1) return undefined;
  const logLevel = values.get('log-level');
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) return undefined;
  const timeout = values.get('lvm-timeout-ms');
  if (timeout !== undefined && !(/^[1-9][0-9]{0,14}$/.test(timeout) && Number.isSafeInteger(Number(timeout)))) return undefined;
  const lvmPath = values.get('lvm-path');
  const lvmConfig = values.get('lvm-config');
  return {
    args: { path: positionals[0]!, size: values.get('size'), extents: values.get('extents'), socket: values.get('socket') },
    globals: {
      json: booleans.has('--json'),
      ...(devices.length > 0 ? { devices } : {}),
      ...(logLevel !== undefined ? { 'log-level': logLevel } : {}),
      ...(lvmPath !== undefined ? { 'lvm-path': lvmPath } : {}),
      ...(timeout !== undefined ? { 'lvm-timeout-ms': Number(timeout) } : {}),
      ...(lvmConfig !== undefined ? { 'lvm-config': lvmConfig } : {}),
    },
  };
}
