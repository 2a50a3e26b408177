// Sizes as lvm prints them, checked against what lvm 2.03 printed for the same sizes.

import { describe, expect, test } from 'vitest';
import { fixedHalfEven, formatSize, type SizeFormat } from '../../src/lvmcompat/sizeUnits.js';

const MiB = 1024n * 1024n;
const report = (unit: string, suffix = true): SizeFormat => ({ unit, suffix, style: 'report' });
const display = (unit: string): SizeFormat => ({ unit, suffix: true, style: 'display' });

describe('formatSize', () => {
  test('report cells as lvs prints them', () => {
    expect(formatSize(12n * MiB, report('b'))).toBe('12582912B');
    expect(formatSize(12n * MiB, report('b', false))).toBe('12582912');
    expect(formatSize(12n * MiB, report('h'))).toBe('12.00m');
    expect(formatSize(12n * MiB, report('h', false))).toBe('12.00m');
    expect(formatSize(16n * MiB, report('g'))).toBe('0.02g');
    expect(formatSize(16n * MiB, report('s'))).toBe('32768S');
    expect(formatSize(16n * MiB, report('S'))).toBe('32768S');
    expect(formatSize(16n * MiB, report('M'))).toBe('16.78M');
  });

  test('r marks a value rounded up with "<" (lvm\'s default units); h does not', () => {
    const almost2g = 511n * 4n * MiB; // a 2 GiB PV less its metadata area, as vgs showed "<2.00g"
    expect(formatSize(almost2g, report('r'))).toBe('<2.00g');
    expect(formatSize(almost2g, report('h'))).toBe('2.00g');
    expect(formatSize(16n * MiB, report('r'))).toBe('16.00m');
  });

  test('zero: the unit\'s suffix, a blank for the human units', () => {
    expect(formatSize(0n, report('h'))).toBe('0 ');
    expect(formatSize(0n, report('r'))).toBe('0 ');
    expect(formatSize(0n, report('h', false))).toBe('0');
    expect(formatSize(0n, report('b'))).toBe('0B');
    expect(formatSize(0n, report('b', false))).toBe('0');
  });

  test('lvdisplay\'s long suffixes', () => {
    expect(formatSize(16n * MiB, display('r'))).toBe('16.00 MiB');
    expect(formatSize(16n * MiB, display('b'))).toBe('16777216 B ');
    expect(formatSize(511n * 4n * MiB, display('r'))).toBe('<2.00 GiB');
  });

  test('two decimals round half to even, as C\'s printf does', () => {
    expect(fixedHalfEven(1125n, 1000n, 2)).toBe('1.12');
    expect(fixedHalfEven(1375n, 1000n, 2)).toBe('1.38');
    expect(formatSize(1024n * MiB + 128n * MiB, report('h'))).toBe('1.12g');
    expect(formatSize(1024n * MiB + 3n * 128n * MiB, report('h'))).toBe('1.38g');
    expect(fixedHalfEven(1n, 3n, 2)).toBe('0.33');
  });

  test('refuses what is not an lvm unit letter', () => {
    expect(() => formatSize(1n, report('x'))).toThrow(RangeError);
    expect(() => formatSize(1n, report('4k'))).toThrow(RangeError);
  });
});
