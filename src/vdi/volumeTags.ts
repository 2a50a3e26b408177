// A VDI's name, description and key-value pairs, kept as LV tags. Pure: no I/O.
//
//   thinlv_vdi_name=<enc name>           the human name (always written by `vdi create`)
//   thinlv_vdi_desc=<enc description>    absent when the description is empty
//   thinlv_vdi_kv=<enc key>=<enc value>  one tag per pair
//
// LVM allows only A-Z a-z 0-9 _ + . - / = ! : & # in a tag, at most 1024 characters
// (src/metadata/names.ts), so text is encoded, percent-encoding style with ":" as the
// escape: the characters A-Z a-z 0-9 _ . + - / stand for themselves, and every other
// character becomes its UTF-8 bytes, each written ":" plus two upper-case hex digits
// ("my disk" -> "my:20disk", "é" -> ":C3:A9", "=" -> ":3D", ":" -> ":3A"). Since "=" is
// always escaped, the first "=" after thinlv_vdi_kv= ends the key. The encoding is
// canonical (a character that stands for itself is never escaped, hex is upper-case), so
// one text has one tag and a tag that is not canonical is refused on read: tags are
// compared by string when a pair is replaced or removed.
//
// Any well-formed string round-trips (test/unit/vdiTags.test.ts). A string with a lone
// UTF-16 surrogate is not text UTF-8 can carry and is refused; so is a value whose tag
// would pass LVM's 1024 characters: that is 1024 less the prefix, a third of it for text
// that is all escapes (336 bytes of UTF-8 in a name or description).

import { ErrorCode, InvariantError, ThinlvError, UsageError } from '../errors.js';
import { MAX_TAG_CHARS, invalidTagReason } from '../metadata/names.js';

export const VDI_TAG = {
  name: 'thinlv_vdi_name=',
  description: 'thinlv_vdi_desc=',
  keyValue: 'thinlv_vdi_kv=',
} as const;

/** Key-value pairs one volume may carry: each is a tag in the VG's metadata area, which every LV shares. */
export const MAX_KEY_VALUE_PAIRS = 32;

const LITERAL = /^[A-Za-z0-9_.+/-]$/;
const ESCAPE = ':';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is refused, never replaced; ignoreBOM: a leading U+FEFF is text, not a mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The tag-safe form of `text` (see the top of this file). */
export function encodeTagText(text: string): string {
  if (LONE_SURROGATE.test(text)) throw new UsageError(ErrorCode.invalidArgument, 'text holds a lone UTF-16 surrogate, which is not valid Unicode text', {});
  let encoded = '';
  for (const character of text) {
    if (LITERAL.test(character)) {
      encoded += character;
      continue;
    }
    for (const byte of utf8Encoder.encode(character)) encoded += `${ESCAPE}${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/** The text `encoded` stands for, or undefined when it is not the canonical encoding of any text. */
export function decodeTagText(encoded: string): string | undefined {
  const bytes: number[] = [];
  for (let index = 0; index < encoded.length; ) {
    const character = encoded[index]!;
    if (LITERAL.test(character)) {
      bytes.push(character.charCodeAt(0));
      index += 1;
      continue;
    }
    const hex = encoded.slice(index + 1, index + 3);
    if (character !== ESCAPE || !/^[0-9A-F]{2}$/.test(hex)) return undefined;
    const byte = parseInt(hex, 16);
    // An escaped literal character is not canonical: refuse it, so each text has one tag.
    if (LITERAL.test(String.fromCharCode(byte))) return undefined;
    bytes.push(byte);
    index += 3;
  }
  try {
    return utf8Decoder.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

/** `prefix` + the encoded `text`, refused (INVALID_ARGUMENT) when LVM would not take it as a tag. */
function tagFor(prefix: string, text: string, what: string): string {
  const tag = `${prefix}${encodeTagText(text)}`;
  if (tag.length > MAX_TAG_CHARS) {
    throw new UsageError(
      ErrorCode.invalidArgument,
      `${what} is too long: encoded for an LVM tag it takes ${tag.length} characters, past LVM's ${MAX_TAG_CHARS} (characters other than A-Z a-z 0-9 _ . + - / take 3 per UTF-8 byte): shorten it`,
      { what, tagChars: tag.length, maxTagChars: MAX_TAG_CHARS },
    );
  }
  // Every character the encoding emits is one LVM takes, and the prefix starts the tag: a bug otherwise.
  const problem = invalidTagReason(tag);
  if (problem !== undefined) throw new InvariantError(`encoded ${what} is not a valid LVM tag: ${problem}`, { tag });
  return tag;
}

export const nameTag = (name: string): string => tagFor(VDI_TAG.name, name, 'the name');
export const descriptionTag = (description: string): string => tagFor(VDI_TAG.description, description, 'the description');

/** Every tag of one pair's key starts with this: a pair is replaced or removed by it. */
export function keyValuePrefix(key: string): string {
  if (key.length === 0) throw new UsageError(ErrorCode.invalidArgument, 'a key-value pair needs a non-empty key', {});
  return `${VDI_TAG.keyValue}${encodeTagText(key)}=`;
}

export function keyValueTag(key: string, value: string): string {
  const prefix = keyValuePrefix(key);
  return tagFor(prefix, value, `the pair ${JSON.stringify(key.slice(0, 64))}`);
}

export interface VolumeTags {
  /** Undefined for a thin LV made without `vdi create` (thinlv lvcreate): no name tag. */
  readonly name: string | undefined;
  readonly description: string;
  /** Sorted by key. */
  readonly keys: ReadonlyMap<string, string>;
}

function unreadable(lv: string, tag: string, why: string): never {
  throw new ThinlvError(ErrorCode.unsupportedMetadata, `LV ${lv}: tag ${tag} ${why}; fix or remove it with lvchange --deltag (then thinlv vdi set)`, { lv, tag });
}

/** Reads the VDI tags of LV `lv` (other tags are ignored); a malformed or repeated one is UNSUPPORTED_METADATA. */
export function readVolumeTags(lv: string, tags: readonly string[]): VolumeTags {
  let name: string | undefined;
  let description: string | undefined;
  const keys = new Map<string, string>();
  for (const tag of tags) {
    if (tag.startsWith(VDI_TAG.name) || tag.startsWith(VDI_TAG.description)) {
      const isName = tag.startsWith(VDI_TAG.name);
      const text = decodeTagText(tag.slice((isName ? VDI_TAG.name : VDI_TAG.description).length));
      if (text === undefined) unreadable(lv, tag, 'is not a valid thinlv encoding');
      if ((isName ? name : description) !== undefined) unreadable(lv, tag, `repeats the LV's ${isName ? 'name' : 'description'}`);
      if (isName) name = text;
      else description = text;
    } else if (tag.startsWith(VDI_TAG.keyValue)) {
      const pair = tag.slice(VDI_TAG.keyValue.length);
      const separator = pair.indexOf('=');
      const key = separator > 0 ? decodeTagText(pair.slice(0, separator)) : undefined;
      const value = separator > 0 ? decodeTagText(pair.slice(separator + 1)) : undefined;
      if (key === undefined || value === undefined) unreadable(lv, tag, 'is not a valid thinlv key-value pair');
      if (keys.has(key)) unreadable(lv, tag, `repeats the key ${JSON.stringify(key)}`);
      keys.set(key, value);
    }
  }
  const sorted = new Map([...keys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { name, description: description ?? '', keys: sorted };
}
