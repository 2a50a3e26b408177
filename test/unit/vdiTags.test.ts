// The VDI tag encoding (src/vdi/volumeTags.ts): any text round-trips through an LV tag
// that LVM accepts, the encoding is canonical, and what does not fit is refused.

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { MAX_TAG_CHARS, invalidTagReason } from '../../src/metadata/names.js';
import { volumeOf } from '../../src/vdi/volume.js';
import {
  VDI_TAG,
  decodeTagText,
  descriptionTag,
  encodeTagText,
  keyValuePrefix,
  keyValueTag,
  nameTag,
  readVolumeTags,
} from '../../src/vdi/volumeTags.js';

// Any well-formed string: every code point (fast-check's "binary" unit leaves out lone
// surrogates), and strings built from the characters the encoding treats specially.
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(':', '=', '%', ' ', '-', '_', '/', '+', '.', '\u0000', '\uFEFF', 'é', '😀', 'a', 'Z', '9'), maxLength: 40 }),
);
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));

describe('encoding text for LVM tags', () => {
  test.prop([anyText])('any string round-trips', (text) => {
    expect(decodeTagText(encodeTagText(text))).toBe(text);
  });

  test.prop([anyText, anyText])('name, description and pair tags are valid LVM tags (short values) and read back', (name, value) => {
    const key = `k${name}`;
    const tags = [nameTag(name), descriptionTag(value), keyValueTag(key, value)];
    for (const tag of tags) expect(invalidTagReason(tag), tag).toBeUndefined();
    const read = readVolumeTags('lv', tags);
    expect(read.name).toBe(name);
    expect(read.description).toBe(value);
    expect([...read.keys]).toEqual([[key, value]]);
  });

  test.prop([anyText])('encoded text holds only characters LVM allows, and never "=", so a pair splits at its first "="', (text) => {
    const encoded = encodeTagText(text);
    expect(encoded).toMatch(/^[A-Za-z0-9_+.\-/:]*$/);
    expect(encoded).not.toContain('=');
  });

  test.prop([anyText, anyText])('different texts have different encodings', (a, b) => {
    fc.pre(a !== b);
    expect(encodeTagText(a)).not.toBe(encodeTagText(b));
  });

  test('examples read as documented', () => {
    expect(encodeTagText('my disk')).toBe('my:20disk');
    expect(encodeTagText('é=:')).toBe(':C3:A9:3D:3A');
    expect(encodeTagText('a/b-c_d.e+f')).toBe('a/b-c_d.e+f');
    expect(encodeTagText('')).toBe('');
    expect(keyValueTag('vm uuid', '0a=1')).toBe('thinlv_vdi_kv=vm:20uuid=0a:3D1');
  });

  test.each([
    ['an escaped literal character', ':41'],
    ['lower-case hex', ':c3:a9'],
    ['a cut escape', 'ab:4'],
    ['a character LVM allows but the encoding does not emit', 'a=b'],
    ['invalid UTF-8', ':C3'],
    ['a lone surrogate as UTF-8', ':ED:A0:80'],
  ])('refuses a tag that is not a canonical encoding: %s', (_what, encoded) => {
    expect(decodeTagText(encoded)).toBeUndefined();
  });

  test.prop([loneSurrogate, anyText])('refuses text with a lone surrogate (not valid Unicode) as INVALID_ARGUMENT', (surrogate, text) => {
    expect(() => encodeTagText(`${text}${surrogate}`)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  test('a value whose tag would pass 1024 characters is refused; one that just fits is taken', () => {
    const room = MAX_TAG_CHARS - VDI_TAG.description.length;
    expect(descriptionTag('x'.repeat(room))).toHaveLength(MAX_TAG_CHARS);
    expect(() => descriptionTag('x'.repeat(room + 1))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    // Three characters per byte: 2 bytes per "é".
    expect(() => nameTag('é'.repeat(Math.ceil((MAX_TAG_CHARS - VDI_TAG.name.length) / 6) + 1))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => keyValueTag('k'.repeat(MAX_TAG_CHARS), '')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  test.prop([fc.string({ unit: 'binary', maxLength: 2000 })])('whatever the length, a tag is either valid for LVM or refused', (text) => {
    let tag: string | undefined;
    try {
      tag = descriptionTag(text);
    } catch (error) {
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(VDI_TAG.description.length + encodeTagText(text).length).toBeGreaterThan(MAX_TAG_CHARS);
    }
    if (tag !== undefined) expect(invalidTagReason(tag)).toBeUndefined();
  });

  test('an empty pair key is refused', () => {
    expect(() => keyValuePrefix('')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('reading a volume from its tags', () => {
  test('other tags are ignored; pairs come sorted by key; no name tag means the LV name; no description is ""', () => {
    const tags = ['thinlv_virtual_bytes=1073741824', keyValueTag('b', '2'), keyValueTag('a', '1'), keyValueTag('__proto__', 'x'), 'someone_elses_tag'];
    const read = readVolumeTags('lv1', tags);
    expect(read.name).toBeUndefined();
    expect(read.description).toBe('');
    expect([...read.keys.keys()]).toEqual(['__proto__', 'a', 'b']);
    const volume = volumeOf({ vgName: 'vg0', lvName: 'lv1', lvUuid: 'u-1', tags, virtualBytes: 1073741824, allocatedExtentCount: 3, extentSizeBytes: 4194304, writable: true });
    expect(volume).toEqual({
      key: 'lv1', uuid: 'u-1', name: 'lv1', description: '', read_write: true, sharable: false,
      virtual_size: 1073741824, physical_utilisation: 3 * 4194304, uri: ['block:///dev/vg0/lv1'],
      keys: JSON.parse('{"__proto__":"x","a":"1","b":"2"}'),
    });
    expect(JSON.stringify(volume.keys)).toBe('{"__proto__":"x","a":"1","b":"2"}');
  });

  test.each([
    ['a bad encoding', ['thinlv_vdi_name=a:2']],
    ['two names', [nameTag('a'), nameTag('b')]],
    ['two descriptions', [descriptionTag('a'), descriptionTag('b')]],
    ['a pair without "="', ['thinlv_vdi_kv=abc']],
    ['a pair with an empty key', ['thinlv_vdi_kv==v']],
    ['one key twice', [keyValueTag('k', '1'), keyValueTag('k', '2')]],
  ])('refuses %s as UNSUPPORTED_METADATA, naming the tag', (_what, tags) => {
    expect(() => readVolumeTags('lv1', tags)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_METADATA', data: expect.objectContaining({ lv: 'lv1' }) }));
  });
});
