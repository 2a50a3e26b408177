import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c, crc32cUpdate } from '../index.js';

describe('crc32c', () => {
  it('matches the published check value and the RFC 3720 vectors', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it('gives the same value when computed in pieces', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cutSeed) => {
        const cut = bytes.length === 0 ? 0 : cutSeed % bytes.length;
        expect(crc32cUpdate(crc32c(bytes.subarray(0, cut)), bytes.subarray(cut))).toBe(crc32c(bytes));
      }),
    );
  });

  it('changes when any single bit flips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), (bytes, bitSeed) => {
        const flipped = bytes.slice();
        const bit = bitSeed % (bytes.length * 8);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        expect(crc32c(flipped)).not.toBe(crc32c(bytes));
      }),
    );
  });
});
