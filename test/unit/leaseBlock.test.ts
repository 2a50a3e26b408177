// The lease block's bytes: what is written reads back, and damage in the sector
// that matters is seen as damage (or as no lease), never as another valid lease.

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { crc32c } from '../../journal/index.js';
import {
  LEASE_BLOCK_BYTES,
  LEASE_MEANINGFUL_BYTES,
  MAX_LEASE_HOLDER_BYTES,
  decodeLeaseBlock,
  encodeLeaseBlock,
  type LeaseBlock,
} from '../../src/ownership/leaseBlock.js';

const utf8Length = (text: string): number => new TextEncoder().encode(text).length;

const leaseBlockArbitrary: fc.Arbitrary<LeaseBlock> = fc.record({
  state: fc.constantFrom('held' as const, 'released' as const),
  counter: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  ownerId: fc.stringMatching(/^[0-9a-f]{16}$/),
  leaseId: fc.stringMatching(/^[\x21-\x7e]{1,64}$/),
  holder: fc.string({ unit: 'binary', maxLength: 128 }).filter((holder) => utf8Length(holder) <= MAX_LEASE_HOLDER_BYTES),
});

const sample: LeaseBlock = { state: 'held', counter: 42, ownerId: '0123456789abcdef', leaseId: 'Xy12-ab34-uuid', holder: 'hostA pid 1234' };

describe('lease block encoding', () => {
  test.prop([leaseBlockArbitrary])('every valid lease round-trips through its 4096 bytes', (block) => {
    const bytes = encodeLeaseBlock(block);
    expect(bytes.length).toBe(LEASE_BLOCK_BYTES);
    expect(bytes.subarray(LEASE_MEANINGFUL_BYTES).every((byte) => byte === 0)).toBe(true);
    expect(decodeLeaseBlock(bytes)).toEqual({ kind: 'lease', ...block });
  });

  test.prop([leaseBlockArbitrary, fc.nat({ max: LEASE_MEANINGFUL_BYTES * 8 - 1 })])(
    'a bit flip anywhere in the first 512 bytes reads as corrupt or absent, never as a lease',
    (block, bitIndex) => {
      const bytes = encodeLeaseBlock(block);
      bytes[bitIndex >> 3]! ^= 1 << (bitIndex & 7);
      const decoded = decodeLeaseBlock(bytes);
      expect(['corrupt', 'absent']).toContain(decoded.kind);
      // A flip inside the magic leaves no magic; anywhere else the CRC catches it.
      expect(decoded.kind).toBe(bitIndex < 64 ? 'absent' : 'corrupt');
    },
  );

  test.prop([leaseBlockArbitrary, fc.integer({ min: LEASE_MEANINGFUL_BYTES, max: LEASE_BLOCK_BYTES - 1 }), fc.integer({ min: 1, max: 255 })])(
    'bytes after the first 512 are ignored, so a torn tail does not matter',
    (block, offset, value) => {
      const bytes = encodeLeaseBlock(block);
      bytes[offset] = value;
      expect(decodeLeaseBlock(bytes)).toEqual({ kind: 'lease', ...block });
    },
  );

  test('zeros, and anything without the magic, are absent', () => {
    expect(decodeLeaseBlock(new Uint8Array(LEASE_BLOCK_BYTES))).toEqual({ kind: 'absent' });
    expect(decodeLeaseBlock(new Uint8Array(LEASE_BLOCK_BYTES).fill(0xff))).toEqual({ kind: 'absent' });
  });

  test('the magic, version and fields sit where the layout table says, little-endian', () => {
    const bytes = encodeLeaseBlock(sample);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe('TLVLEASE');
    expect(view.getUint32(8, true)).toBe(1);
    expect(view.getUint32(12, true)).toBe(1);
    expect(view.getBigUint64(16, true)).toBe(42n);
    expect(new TextDecoder().decode(bytes.subarray(24, 40))).toBe(sample.ownerId);
    expect(view.getUint32(508, true)).toBe(crc32c(bytes.subarray(0, 508)));
  });

  test('a block with a valid CRC but an unknown version or state is corrupt, with a reason', () => {
    for (const [offset, value] of [[8, 2], [12, 3]] as const) {
      const bytes = encodeLeaseBlock(sample);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      view.setUint32(offset, value, true);
      view.setUint32(508, crc32c(bytes.subarray(0, 508)), true);
      const decoded = decodeLeaseBlock(bytes);
      expect(decoded.kind).toBe('corrupt');
      expect(decoded.kind === 'corrupt' && decoded.reason).toMatch(offset === 8 ? /version 2/ : /state 3/);
    }
  });

  test('a counter beyond 2^53 - 1 is corrupt rather than silently rounded', () => {
    const bytes = encodeLeaseBlock(sample);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    view.setBigUint64(16, 2n ** 53n, true);
    view.setUint32(508, crc32c(bytes.subarray(0, 508)), true);
    expect(decodeLeaseBlock(bytes)).toMatchObject({ kind: 'corrupt', reason: expect.stringMatching(/counter/) });
  });

  test('encoding refuses fields it could not read back', () => {
    expect(() => encodeLeaseBlock({ ...sample, ownerId: 'NOT-HEX' })).toThrow(/owner id/);
    expect(() => encodeLeaseBlock({ ...sample, leaseId: 'x'.repeat(65) })).toThrow(/lease id/);
    expect(() => encodeLeaseBlock({ ...sample, holder: 'é'.repeat(65) })).toThrow(/holder/);
    expect(() => encodeLeaseBlock({ ...sample, counter: -1 })).toThrow(/counter/);
  });
});
