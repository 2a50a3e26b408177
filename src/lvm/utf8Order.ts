// The order lvm's reports sort names and tags in: strcmp on their UTF-8 bytes.
//
// UTF-8 byte order is Unicode code point order. JavaScript's `<` compares UTF-16 code
// units, which agree with code points except that a surrogate (half of a character above
// U+FFFF, 0xD800-0xDFFF) sorts below U+E000-U+FFFF there and above them in UTF-8. So the
// units are compared as they are, lifting surrogates above the rest. The copy this replaces
// made two Buffers per comparison: sorting 10,000 LV names took 40 to 100 ms.

/** A code unit's rank in code point order. */
function rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/** Negative, zero or positive as `a`'s UTF-8 bytes sort before, with or after `b`'s. */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}
