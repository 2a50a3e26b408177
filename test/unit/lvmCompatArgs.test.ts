// lvm's command-line syntax as the lvm-compatible commands read it.

import { describe, expect, test } from 'vitest';
import { COMMON_OPTIONS, lastValue, LvmUsageError, lvmArgsFor, parseLvmArgs, REPORT_OPTIONS, valuesOf, vgNamesIn } from '../../src/lvmcompat/lvmArgs.js';

const OPTIONS = [...REPORT_OPTIONS, ...COMMON_OPTIONS];
const parse = (...args: string[]) => parseLvmArgs('lvs', args, OPTIONS);
const usageError = (...args: string[]): string => {
  try {
    parse(...args);
  } catch (error) {
    if (error instanceof LvmUsageError) return error.stderr;
    throw error;
  }
  throw new Error('parsed');
};

describe('parseLvmArgs', () => {
  test('options may follow positional arguments, in both value forms', () => {
    const parsed = parse('vg0', '--noheadings', '--units=b', '--options=lv_name,lv_size', '-o', '+lv_tags', '--unbuffered');
    expect(parsed.positionals).toEqual(['vg0']);
    expect(lastValue(parsed, 'units')).toBe('b');
    expect(valuesOf(parsed, 'options')).toEqual(['lv_name,lv_size', '+lv_tags']);
    expect(parsed.options.map((o) => o.name)).toEqual(['noheadings', 'units', 'options', 'options', 'unbuffered']);
  });

  test('short options take their value attached or next, and flags cluster', () => {
    expect(lastValue(parse('-ovg_name'), 'options')).toBe('vg_name');
    expect(lastValue(parse('-S', 'vg_name=vg0'), 'select')).toBe('vg_name=vg0');
    expect(parse('-qqa').options.map((o) => o.name)).toEqual(['quiet', 'quiet', 'all']);
    expect(parse('--separator', ' ').options).toEqual([{ name: 'separator', value: ' ' }]);
  });

  test('a long option may be abbreviated to a unique prefix, as getopt allows', () => {
    expect(parse('--nohead').options).toEqual([{ name: 'noheadings' }]);
    expect(usageError('--no')).toContain("option '--no' is ambiguous");
  });

  test('"--" ends the options', () => {
    expect(parse('--', '--noheadings').positionals).toEqual(['--noheadings']);
  });

  test('bad command lines are refused with lvm\'s messages', () => {
    expect(usageError('--bogus')).toBe("lvs: unrecognized option '--bogus'\n  Error during parsing of command line.\n");
    expect(usageError('-Q')).toBe("lvs: invalid option -- 'Q'\n  Error during parsing of command line.\n");
    expect(usageError('--units')).toContain("option '--units' requires an argument");
    expect(usageError('-o')).toContain("option requires an argument -- 'o'");
    expect(usageError('--noheadings=1')).toContain("doesn't allow an argument");
  });

  test('options thinlv cannot reproduce are refused, not ignored', () => {
    expect(usageError('--rows')).toContain('--rows is not supported');
    expect(usageError('--nameprefixes', 'vg0')).toContain('--nameprefixes is not supported');
  });
});

describe('lvmArgsFor', () => {
  test('gives lvm the options by long name, thinlv\'s own before the positionals, less those withheld', () => {
    const parsed = parse('vg0', '-o', 'lv_name', '--devices', '/dev/loop0', '--units=b');
    expect(lvmArgsFor(parsed, ['devices'], ['--readonly'])).toEqual(['--options', 'lv_name', '--units', 'b', '--readonly', 'vg0']);
  });
});

test('vgNamesIn reads VG names from VG, VG/LV and /dev paths, not tags', () => {
  expect(vgNamesIn(['vg0', 'vg1/lv', '/dev/vg2/lv', '/dev/vg3', '@tag', 'vg0/other'])).toEqual(['vg0', 'vg1', 'vg2', 'vg3']);
});
