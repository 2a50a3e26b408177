import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { compareUtf8 } from '../../src/lvm/utf8Order.js';

const sign = (n: number): number => Math.sign(n);
const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

describe('compareUtf8', () => {
  test.prop([fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' })], { numRuns: 2000 })('orders as the UTF-8 bytes do', (a, b) => {
    expect(sign(compareUtf8(a, b))).toBe(sign(byBytes(a, b)));
  });

  test.prop([fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })], { numRuns: 2000 })('for any well-formed text, astral characters included', (a, b) => {
    expect(sign(compareUtf8(a, b))).toBe(sign(byBytes(a, b)));
  });

  test('the cases where UTF-16 order and UTF-8 order differ', () => {
    // U+FF5E (a BMP character above the surrogates) and U+1F600 (a surrogate pair).
    expect(compareUtf8('\uff5e', '\u{1f600}')).toBeLessThan(0);
    expect('\uff5e' < '\u{1f600}').toBe(false);
    expect(compareUtf8('vm1', 'vm10')).toBeLessThan(0);
    expect(compareUtf8('Z', 'a')).toBeLessThan(0);
    expect(compareUtf8('same', 'same')).toBe(0);
  });
});
