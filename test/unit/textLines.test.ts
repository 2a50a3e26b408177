import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { parseConfigLines } from '../../src/lvm/configLines.js';
import { parseVgSummary, parseVgSummaryLines, printVgMetadata } from '../../src/lvm/metadataText.js';
import { linesOf, PIECE_BYTES, type NextLine } from '../../src/lvm/textLines.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { testVg } from '../fixtures/pvText.js';

const all = (next: NextLine): string[] => {
  const lines: string[] = [];
  for (let line = next(); line !== undefined; line = next()) lines.push(line);
  return lines;
};

/** Text with many lines and characters of 1 to 4 UTF-8 bytes, ill-formed ones included. */
const textArbitrary = fc.array(fc.oneof(fc.constantFrom('\n', '\n\n', '\r\n', 'é', '€', '😀', '\ud800', ''), fc.string({ unit: 'binary', maxLength: 12 })), { maxLength: 60 }).map((parts) => parts.join(''));

describe('the lines of a text', () => {
  test.prop([textArbitrary], { numRuns: 500 })('of a string, are what split("\\n") gives', (text) => {
    expect(all(linesOf(text))).toEqual(text.split('\n'));
  });

  test.prop([textArbitrary, fc.integer({ min: 1, max: 40 })], { numRuns: 1000 })('of its UTF-8 bytes, read any number of bytes at a time, are the lines of their decoding', (text, pieceBytes) => {
    const bytes = Buffer.from(text, 'utf8');
    expect(all(linesOf(bytes, pieceBytes))).toEqual(bytes.toString('utf8').split('\n'));
  });

  test('of bytes with an ill-formed sequence at a piece\'s end, are those of the whole decoding', () => {
    const bytes = Buffer.from([0x61, 0xe2, 0x82, 0x0a, 0xf0, 0x9f, 0x98, 0x0a, 0x62]);
    for (let pieceBytes = 1; pieceBytes <= bytes.length; pieceBytes++) expect(all(linesOf(bytes, pieceBytes))).toEqual(bytes.toString('utf8').split('\n'));
  });

  test('of no bytes, is one empty line, as of ""', () => {
    expect(all(linesOf(Buffer.alloc(0)))).toEqual(['']);
    expect(all(linesOf(''))).toEqual(['']);
  });
});

describe('a VG text parsed from its bytes', () => {
  // Enough LVs for the text to run over many pieces, so some piece ends inside an LV, a
  // segment or a `stripes` array LVM writes over three lines.
  const vg: VgMetadata = testVg({
    name: 'vg_bytes_test',
    tags: ['thinlv_format=1', 'caf\u00e9_\u{1f600}'],
    devSizeSectors: 8 * 1024 ** 3,
    peCount: 100_000,
    lvs: Array.from({ length: 1500 }, (_, i) => ({
      name: `vdi${String(i).padStart(5, '0')}`,
      uuid: `lv-uuid-0123456789-abcdef-${i}`,
      status: ['READ', 'WRITE', 'VISIBLE'],
      flags: [],
      activationSkip: true,
      tags: ['thinlv_virtual_bytes=107374182400', `thinlv_owner=h${i % 64}`],
      segments: [0, 1, 2].map((k) => ({ logicalStart: k, extentCount: 1, type: 'striped', stripes: [{ pv: '/dev/loop9', firstExtent: k * 1500 + i }], extra: [] })),
      extra: [],
    })),
  });
  const text = printVgMetadata(vg);

  test('is the tree and the summary the string gives', () => {
    const bytes = Buffer.from(text, 'utf8');
    expect(bytes.length).toBeGreaterThan(5 * PIECE_BYTES);
    expect(parseConfigLines(bytes)).toEqual(parseConfigLines(text));
    expect(parseVgSummary(bytes)).toEqual(parseVgSummary(text));
  });

  test('that the line parser declines is read whole by parseVgMetadata, with the same answer as the string', () => {
    const declined = text.replace('\tlogical_volumes {\n', '\tlogical_volumes {\n\t\tx = 1\n');
    expect(() => parseVgSummary(Buffer.from(declined, 'utf8'))).toThrow(/unexpected value "x"/);
    // LVs before their PVs: valid, but not what the line parser reads.
    const body = text.slice(text.indexOf('\tphysical_volumes {'), text.lastIndexOf('}'));
    const swapped = text.replace(body, body.slice(body.indexOf('\tlogical_volumes {')) + body.slice(0, body.indexOf('\tlogical_volumes {')));
    expect(parseVgSummaryLines(Buffer.from(swapped, 'utf8'))).toBeUndefined();
    expect(parseVgSummary(Buffer.from(swapped, 'utf8'))).toEqual(parseVgSummary(text));
  });
});
