// lvm's command-line syntax, as getopt_long reads it for lvm: options and positional
// arguments in any order, `--opt value` and `--opt=value`, `-o value` and `-ovalue`,
// clustered short flags (`-qq`), a long option abbreviated to any unique prefix, and
// `--` ending the options. Each command lists the options it accepts; an option
// lvm does not know is refused with lvm's own message and exit code 3, and one lvm
// knows but thinlv does not reproduce is refused with a message saying so, never
// silently ignored.

/** lvm's exit codes (lvm2 errors.h): what SM and scripts test. */
export const LVM_EXIT = { ok: 0, failed: 5, invalidCommandLine: 3 } as const;

export interface OptionSpec {
  readonly long: string;
  readonly short?: string;
  readonly takesValue: boolean;
  /** Why thinlv refuses it, when it does. */
  readonly unsupported?: string;
}

/** One option as given, by its long name. */
export interface GivenOption {
  readonly name: string;
  readonly value?: string;
}

export interface ParsedLvmArgs {
  readonly options: readonly GivenOption[];
  readonly positionals: readonly string[];
}

/** A command line lvm would refuse: `message` is what to print on stderr, as lvm would. */
export class LvmUsageError extends Error {
  constructor(readonly stderr: string) {
    super(stderr.trim());
  }
}

export const flagSpec = (long: string, short?: string): OptionSpec => ({ long, takesValue: false, ...(short === undefined ? {} : { short }) });
export const valuedSpec = (long: string, short?: string): OptionSpec => ({ long, takesValue: true, ...(short === undefined ? {} : { short }) });
/** `spec`, refused with `why` when given. */
export const unsupportedSpec = (spec: OptionSpec, why: string): OptionSpec => ({ ...spec, unsupported: why });
const flag = flagSpec;
const valued = valuedSpec;

/** lvm's common options (`lvm help`, "Common options for lvm"). */
export const COMMON_OPTIONS: readonly OptionSpec[] = [
  flag('debug', 'd'),
  flag('help', 'h'),
  flag('quiet', 'q'),
  flag('verbose', 'v'),
  flag('yes', 'y'),
  flag('test', 't'),
  valued('commandprofile'),
  valued('config'),
  valued('driverloaded'),
  flag('nolocking'),
  valued('lockopt'),
  flag('longhelp'),
  valued('profile'),
  flag('version'),
  valued('devicesfile'),
  valued('devices'),
  flag('nohints'),
  valued('journal'),
];

const WHY_LAYOUT = "thinlv rewrites the sizes of thin LVs in lvm's columns, and this option changes their layout";

/** The report options of lvs (and of lvdisplay -C), with what thinlv cannot reproduce marked. */
export const REPORT_OPTIONS: readonly OptionSpec[] = [
  flag('history', 'H'),
  flag('all', 'a'),
  valued('options', 'o'),
  valued('select', 'S'),
  valued('sort', 'O'),
  flag('segments'),
  flag('aligned'),
  flag('binary'),
  { ...valued('configreport'), unsupported: WHY_LAYOUT },
  flag('foreign'),
  flag('ignorelockingfailure'),
  { ...flag('logonly'), unsupported: WHY_LAYOUT },
  { ...flag('nameprefixes'), unsupported: WHY_LAYOUT },
  flag('noheadings'),
  flag('nosuffix'),
  flag('readonly'),
  valued('reportformat'),
  { ...flag('rows'), unsupported: WHY_LAYOUT },
  valued('separator'),
  flag('shared'),
  flag('unbuffered'),
  valued('units'),
  flag('unquoted'),
];

/** The last value given for `name`, if any. */
export const lastValue = (parsed: ParsedLvmArgs, name: string): string | undefined => parsed.options.filter((o) => o.name === name).at(-1)?.value;
export const hasOption = (parsed: ParsedLvmArgs, name: string): boolean => parsed.options.some((o) => o.name === name);
export const valuesOf = (parsed: ParsedLvmArgs, name: string): string[] => parsed.options.filter((o) => o.name === name).map((o) => o.value ?? '');

function usageError(command: string, problem: string): LvmUsageError {
  return new LvmUsageError(`${command}: ${problem}\n  Error during parsing of command line.\n`);
}

/** The spec a long option (possibly abbreviated) names; throws lvm's error when none or several do. */
function longSpec(command: string, specs: readonly OptionSpec[], name: string, shown: string): OptionSpec {
  const exact = specs.find((s) => s.long === name);
  if (exact !== undefined) return exact;
  const prefixed = specs.filter((s) => s.long.startsWith(name));
  if (prefixed.length === 1) return prefixed[0]!;
  if (prefixed.length > 1) throw usageError(command, `option '${shown}' is ambiguous; possibilities:${prefixed.map((s) => ` '--${s.long}'`).join('')}`);
  throw usageError(command, `unrecognized option '${shown}'`);
}

/** Parses `args` as getopt_long does for `command` with the options in `specs`. */
export function parseLvmArgs(command: string, args: readonly string[], specs: readonly OptionSpec[]): ParsedLvmArgs {
  const options: GivenOption[] = [];
  const positionals: string[] = [];
  const take = (spec: OptionSpec, value?: string): void => {
    if (spec.unsupported !== undefined) {
      throw new LvmUsageError(`  Option --${spec.long} is not supported by thinlv's ${command}: ${spec.unsupported}.\n  Run stock lvm's ${command} for it.\n`);
    }
    options.push({ name: spec.long, ...(value === undefined ? {} : { value }) });
  };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') {
      positionals.push(...args.slice(index + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const equals = arg.indexOf('=');
      const name = arg.slice(2, equals === -1 ? undefined : equals);
      const spec = longSpec(command, specs, name, equals === -1 ? arg : arg.slice(0, equals));
      if (!spec.takesValue) {
        if (equals !== -1) throw usageError(command, `option '--${spec.long}' doesn't allow an argument`);
        take(spec);
      } else if (equals !== -1) {
        take(spec, arg.slice(equals + 1));
      } else {
        const value = args[index + 1];
        if (value === undefined) throw usageError(command, `option '--${spec.long}' requires an argument`);
        take(spec, value);
        index++;
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let at = 1; at < arg.length; at++) {
        const letter = arg[at]!;
        const spec = specs.find((s) => s.short === letter);
        if (spec === undefined) throw usageError(command, `invalid option -- '${letter}'`);
        if (!spec.takesValue) {
          take(spec);
          continue;
        }
        const rest = arg.slice(at + 1);
        if (rest !== '') {
          take(spec, rest);
        } else {
          const value = args[index + 1];
          if (value === undefined) throw usageError(command, `option requires an argument -- '${letter}'`);
          take(spec, value);
          index++;
        }
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { options, positionals };
}

/**
 * The arguments to give lvm for `parsed`, less the options in `withhold` (those thinlv
 * passes some other way): each option by its full long name, value as the next argument,
 * then thinlv's `extra` options, then the positional arguments.
 */
export function lvmArgsFor(parsed: ParsedLvmArgs, withhold: readonly string[] = [], extra: readonly string[] = []): string[] {
  const args: string[] = [];
  for (const option of parsed.options) {
    if (withhold.includes(option.name)) continue;
    args.push(`--${option.name}`);
    if (option.value !== undefined) args.push(option.value);
  }
  args.push(...extra);
  // `--` keeps a positional argument that starts with "-" one (lvm would refuse it as a name anyway).
  if (parsed.positionals.some((p) => p.startsWith('-'))) args.push('--');
  return [...args, ...parsed.positionals];
}

/**
 * The VG names positional arguments mention (`VG`, `VG/LV`, `/dev/VG`, `/dev/VG/LV`);
 * tags (`@tag`) name none.
 */
export function vgNamesIn(positionals: readonly string[]): string[] {
  const names = new Set<string>();
  for (const positional of positionals) {
    if (positional.startsWith('@')) continue;
    const path = positional.startsWith('/dev/') ? positional.slice('/dev/'.length) : positional;
    const vg = path.split('/')[0];
    if (vg !== undefined && vg !== '' && vg !== 'mapper') names.add(vg);
  }
  return [...names];
}
