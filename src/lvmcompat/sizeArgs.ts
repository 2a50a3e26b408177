// `-L SIZE` and `-l EXTENTS` as lvm reads them for lvcreate, lvresize and lvextend, and
// the size an LV ends up with. lvm rounds a size up to whole extents (and says so); a
// relative size (+/-) is applied to the LV's current size. Pure: no I/O.

import { UsageError } from '../errors.js';
import { parseSize } from '../cli/sizes.js';
import { LvmUsageError } from './lvmArgs.js';

export type Sign = '+' | '-' | undefined;

export interface SizeArg {
  readonly sign: Sign;
  /** With -L: bytes; with -l: extents. */
  readonly amount: number;
  readonly unit: 'bytes' | 'extents';
}

const invalid = (option: string, text: string, first?: string): LvmUsageError =>
  new LvmUsageError(`${first === undefined ? '' : `  ${first}\n`}  Invalid argument for --${option}: ${text}\n  Error during parsing of command line.\n`);

/** lvm's -L: a number, an optional unit (default MiB, binary either case), an optional sign. */
export function parseSizeOption(text: string): SizeArg {
  try {
    const parsed = parseSize(text, '--size');
    return { sign: parsed.relative, amount: parsed.bytes, unit: 'bytes' };
  } catch (error) {
    if (error instanceof UsageError) throw invalid('size', text);
    throw error;
  }
}

/** lvm's -l: a whole number of extents with an optional sign. Percentages (%VG, %FREE, ...) are not supported. */
export function parseExtentsOption(command: string, text: string): SizeArg {
  if (text.includes('%')) {
    throw new LvmUsageError(`  -l ${text}: percentages are not supported by thinlv's ${command}; give a number of extents or -L SIZE.\n`);
  }
  const match = /^([+-]?)([0-9]+)$/.exec(text);
  if (match === null) throw invalid('extents', text);
  const amount = Number(match[2]);
  if (!Number.isSafeInteger(amount)) throw invalid('extents', text);
  return { sign: match[1] === '' ? undefined : (match[1] as '+' | '-'), amount, unit: 'extents' };
}

export interface TargetExtents {
  readonly extentCount: number;
  /** lvm's note when -L was not a whole number of extents (printed on stdout), else undefined. */
  readonly rounding: number | undefined;
}

/**
 * The extent count `size` asks for, given the LV's `currentExtentCount` (0 for a new LV).
 * A size is rounded up to whole extents (lvm rounds a reduction, -L -N, the same way: the
 * LV's size less N, rounded up). The result may be 0 or negative: callers refuse it with
 * lvm's message for their command.
 */
export function targetExtents(size: SizeArg, currentExtentCount: number, extentSizeBytes: number): TargetExtents {
  if (size.unit === 'extents') {
    const count = size.sign === '+' ? currentExtentCount + size.amount : size.sign === '-' ? currentExtentCount - size.amount : size.amount;
    return { extentCount: count, rounding: undefined };
  }
  const currentBytes = currentExtentCount * extentSizeBytes;
  const bytes = size.sign === '+' ? currentBytes + size.amount : size.sign === '-' ? currentBytes - size.amount : size.amount;
  const extentCount = Math.ceil(bytes / extentSizeBytes);
  const rounded = bytes > 0 && bytes % extentSizeBytes !== 0;
  return { extentCount, rounding: rounded ? extentCount * extentSizeBytes : undefined };
}
