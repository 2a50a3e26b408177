// LVM's label and metadata-area header, parsed from bytes built here by hand from lvm2's
// layout (lib/format_text/layout.h), and LVM's calc_crc against a literal copy of its
// nibble-table algorithm.

import { describe, expect, test } from 'vitest';
import { dashedUuid, lvmCrc, mdaFreeBytes, metadataBytes, OnDiskFormatError, parseMdaHeader, parsePvLabel, textPieces } from '../../src/lvm/pvLabel.js';

/** lvm2 lib/misc/crc.c, the small-table variant, written out independently of zlib. */
function calcCrcLikeLvm(initial: number, bytes: Uint8Array): number {
  const table = [
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
  ];
  let crc = initial;
  for (const byte of bytes) {
    crc ^= byte;
    crc = (crc >>> 4) ^ table[crc & 0xf]!;
    crc = (crc >>> 4) ^ table[crc & 0xf]!;
  }
  return crc >>> 0;
}

const INITIAL = 0xf597a6cf;

function labelSector(sector: number, uuid: string, areas: { data: [number, number][]; metadata: [number, number][] }): Buffer {
  const label = Buffer.alloc(512);
  label.write('LABELONE', 0, 'latin1');
  label.writeBigUInt64LE(BigInt(sector), 8);
  label.writeUInt32LE(32, 20);
  label.write('LVM2 001', 24, 'latin1');
  label.write(uuid, 32, 'latin1');
  label.writeBigUInt64LE(64n * 1024n ** 3n, 64);
  let at = 72;
  for (const list of [areas.data, areas.metadata]) {
    for (const [offset, size] of list) {
      label.writeBigUInt64LE(BigInt(offset), at);
      label.writeBigUInt64LE(BigInt(size), at + 8);
      at += 16;
    }
    at += 16;
  }
  label.writeUInt32LE(calcCrcLikeLvm(INITIAL, label.subarray(20)), 16);
  return label;
}

function mdaHeader(start: number, size: number, text?: { offset: number; size: number; checksum: number; flags?: number }): Buffer {
  const header = Buffer.alloc(512);
  header.write(' LVM2 x[5A%r0N*>', 4, 'latin1');
  header.writeUInt32LE(1, 20);
  header.writeBigUInt64LE(BigInt(start), 24);
  header.writeBigUInt64LE(BigInt(size), 32);
  if (text !== undefined) {
    header.writeBigUInt64LE(BigInt(text.offset), 40);
    header.writeBigUInt64LE(BigInt(text.size), 48);
    header.writeUInt32LE(text.checksum, 56);
    header.writeUInt32LE(text.flags ?? 0, 60);
  }
  header.writeUInt32LE(calcCrcLikeLvm(INITIAL, header.subarray(4)), 0);
  return header;
}

const UUID = 'lw29FxzWLUEaTJkFYkFD2yRy8d7o7SmJ';

describe('lvmCrc', () => {
  test('equals lvm2 calc_crc on empty, short and long inputs', () => {
    for (const bytes of [Buffer.alloc(0), Buffer.from('vg0 {\n'), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 0xff))]) {
      expect(lvmCrc(bytes)).toBe(calcCrcLikeLvm(INITIAL, bytes));
    }
  });

  test('continues across pieces as lvm does for a wrapped text', () => {
    const whole = Buffer.from('abcdefghijklmnopqrstuvwxyz');
    expect(lvmCrc(whole.subarray(10), lvmCrc(whole.subarray(0, 10)))).toBe(lvmCrc(whole));
  });
});

describe('parsePvLabel', () => {
  test('finds the label in sector 1 and reads the uuid and both area lists', () => {
    const start = Buffer.alloc(2048);
    labelSector(1, UUID, { data: [[68157440, 0]], metadata: [[4096, 68153344]] }).copy(start, 512);
    expect(parsePvLabel(start)).toEqual({
      pvUuid: 'lw29Fx-zWLU-EaTJ-kFYk-FD2y-Ry8d-7o7SmJ',
      deviceSizeBytes: 64 * 1024 ** 3,
      dataAreas: [{ offsetBytes: 68157440, sizeBytes: 0 }],
      metadataAreas: [{ offsetBytes: 4096, sizeBytes: 68153344 }],
    });
  });

  test('no label is not a PV; a damaged label or one in the wrong sector is refused', () => {
    expect(parsePvLabel(Buffer.alloc(2048))).toBeUndefined();
    const damaged = Buffer.alloc(2048);
    labelSector(1, UUID, { data: [], metadata: [] }).copy(damaged, 512);
    damaged[600] = damaged[600]! ^ 1;
    expect(() => parsePvLabel(damaged)).toThrow(OnDiskFormatError);
    const moved = Buffer.alloc(2048);
    labelSector(1, UUID, { data: [], metadata: [] }).copy(moved, 1024);
    expect(() => parsePvLabel(moved)).toThrow(/says it is in sector 1/);
  });

  test('dashes a uuid as lvm prints it', () => {
    expect(dashedUuid(UUID)).toBe('lw29Fx-zWLU-EaTJ-kFYk-FD2y-Ry8d-7o7SmJ');
  });
});

describe('the metadata area', () => {
  const text = Buffer.from('vg0 {\nseqno = 3\n}\n\0');

  test('a text in one piece is read and checked, its NUL dropped', () => {
    const header = parseMdaHeader(mdaHeader(4096, 1024 * 1024, { offset: 2048, size: text.length, checksum: lvmCrc(text) }), 4096);
    expect(textPieces(header)).toEqual([{ offsetBytes: 4096 + 2048, sizeBytes: text.length }]);
    expect(metadataBytes(header, [text]).toString('utf8')).toBe('vg0 {\nseqno = 3\n}\n');
  });

  test('a text that wraps is read from the end of the area and then from just past the header', () => {
    const size = 1024 * 1024;
    const header = parseMdaHeader(mdaHeader(4096, size, { offset: size - 10, size: text.length, checksum: lvmCrc(text) }), 4096);
    expect(textPieces(header)).toEqual([
      { offsetBytes: 4096 + size - 10, sizeBytes: 10 },
      { offsetBytes: 4096 + 512, sizeBytes: text.length - 10 },
    ]);
    expect(metadataBytes(header, [text.subarray(0, 10), text.subarray(10)]).toString('utf8')).toBe('vg0 {\nseqno = 3\n}\n');
  });

  test('a text whose checksum does not match is refused', () => {
    const header = parseMdaHeader(mdaHeader(4096, 1024 * 1024, { offset: 2048, size: text.length, checksum: lvmCrc(text) ^ 1 }), 4096);
    expect(() => metadataBytes(header, [text])).toThrow(/checksum mismatch/);
  });

  test('an ignored area, an empty one, a damaged header and one at the wrong place hold no answer', () => {
    expect(parseMdaHeader(mdaHeader(4096, 1024 * 1024, { offset: 2048, size: 10, checksum: 0, flags: 1 }), 4096).text).toBeUndefined();
    expect(parseMdaHeader(mdaHeader(4096, 1024 * 1024), 4096).text).toBeUndefined();
    const damaged = mdaHeader(4096, 1024 * 1024);
    damaged[100] = damaged[100]! ^ 1;
    expect(() => parseMdaHeader(damaged, 4096)).toThrow(/checksum mismatch/);
    expect(() => parseMdaHeader(mdaHeader(4096, 1024 * 1024), 8192)).toThrow(/says it starts at 4096/);
  });

  test('free space is what lvm reports: half the buffer less a sector, less the text, in whole sectors', () => {
    // Measured on lvm 2.03.16: area 68153344 bytes, text 342133 bytes, vg_mda_free 33733632.
    const header = parseMdaHeader(mdaHeader(4096, 68153344, { offset: 19456, size: 342133, checksum: 0 }), 4096);
    expect(mdaFreeBytes(header)).toBe(33733632);
  });
});
