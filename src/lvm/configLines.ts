// The fast path of parseConfig (configTree.ts) for text laid out as LVM writes it: one
// entry per line, `key = value`, `name {`, `}`, arrays that may run over several lines,
// `#` comments. Metadata of a pool in service is megabytes (10,000 LVs: 8.6 MB), read on
// every host start, every commit and every report, and reading it a line at a time costs
// a fraction of a token at a time.
//
// It builds exactly the tree the general parser builds, or gives up (undefined) at the
// first line that is not in LVM's layout, or anything the general parser would refuse:
// the general parser then reads the whole text again and reports errors with their line.

import type { ConfigEntry, ConfigScalar, ConfigValue } from './configTree.js';
import { linesOf } from './textLines.js';

/** Bound on nesting, so hostile input cannot blow the stack. LVM metadata nests 5 deep. */
export const MAX_SECTION_DEPTH = 32;

/** Characters of a bare word: [A-Za-z0-9_.+-]. */
export function isWordChar(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 95 || code === 46 || code === 43 || code === 45;
}

const isDigit = (code: number): boolean => code >= 48 && code <= 57;

/** "12", "-3" (int) or "1.5" (float): digits, one optional dot between digits, an optional leading minus. */
export function numberKind(word: string): 'int' | 'float' | undefined {
  let i = word.charCodeAt(0) === 45 ? 1 : 0;
  const digitsStart = i;
  while (i < word.length && isDigit(word.charCodeAt(i))) i++;
  if (i === digitsStart) return undefined;
  if (i === word.length) return 'int';
  if (word.charCodeAt(i) !== 46 || i + 1 === word.length) return undefined;
  for (i++; i < word.length; i++) if (!isDigit(word.charCodeAt(i))) return undefined;
  return 'float';
}

/** Where the word starting at `at` ends. */
function wordEnd(text: string, at: number): number {
  while (at < text.length && isWordChar(text.charCodeAt(at))) at++;
  return at;
}

function skipSpaces(text: string, at: number): number {
  for (;;) {
    const code = text.charCodeAt(at);
    if (code !== 32 && code !== 9 && code !== 13 && code !== 10) return at;
    at++;
  }
}

/** True when only spaces or a comment follow `at`. */
function restIsEmpty(text: string, at: number): boolean {
  at = skipSpaces(text, at);
  return at >= text.length || text.charCodeAt(at) === 35;
}

/** A scalar at `at`: its value and where it ends; undefined for anything else. */
function scalarAt(text: string, at: number): { value: ConfigScalar; end: number } | undefined {
  if (text.charCodeAt(at) === 34) {
    let value = '';
    let chunk = at + 1;
    for (let i = chunk; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code === 34) return { value: { kind: 'string', value: value + text.slice(chunk, i) }, end: i + 1 };
      if (code === 92) {
        if (i + 1 >= text.length) return undefined;
        value += text.slice(chunk, i) + text[i + 1]!;
        chunk = i + 2;
        i++;
      }
    }
    return undefined;
  }
  const end = wordEnd(text, at);
  const word = text.slice(at, end);
  const kind = end > at ? numberKind(word) : undefined;
  return kind === undefined ? undefined : { value: { kind, text: word }, end };
}

/** The items of an array whose text starts after its "[": the value and where it ends, or undefined. */
function arrayAt(text: string, at: number): { value: ConfigValue; end: number } | undefined {
  const items: ConfigScalar[] = [];
  at = skipSpaces(text, at);
  if (text.charCodeAt(at) === 93) return { value: { kind: 'array', items }, end: at + 1 };
  for (;;) {
    const item = scalarAt(text, at);
    if (item === undefined) return undefined;
    items.push(item.value);
    at = skipSpaces(text, item.end);
    const code = text.charCodeAt(at);
    if (code === 93) return { value: { kind: 'array', items }, end: at + 1 };
    if (code !== 44) return undefined;
    at = skipSpaces(text, at + 1);
  }
}

/**
 * Entries one parse shares, by the text of their line: on a pool's metadata most lines
 * repeat (`extent_count = 1`, `type = "striped"`, a host's tags), and one entry for all
 * of them costs a fraction of one per line (10,000 thin LVs of 2 segments: a tree of
 * 17 MB instead of 43). Entries are never changed once made, so sharing is safe. Past
 * this many different lines a parse shares no more, so the table stays small.
 */
export const MAX_SHARED_LINES = 65_536;

/**
 * Called as each section ends, with the names of the sections around it (outermost
 * first; the list is the parser's own, good only during the call) and its entries.
 * Returning true takes the section: it is left out of the tree. A reader can so turn each
 * LV into what it keeps as soon as it is read (metadataText.ts, parseVgSummary) instead of
 * holding the tree of every LV at once. What it throws, parseConfigLines throws.
 */
export type SectionEndHook = (parents: readonly string[], name: string, entries: ConfigEntry[]) => boolean;

export interface ConfigLinesOptions {
  readonly onSectionEnd?: SectionEndHook;
  /**
   * How many different lines a parse shares (MAX_SHARED_LINES by default). A reader that
   * takes each section as it ends keeps no tree, so sharing saves it nothing but
   * allocations, while every line in the table (most lines of a pool's text are unique: ids,
   * stripes) lives to the end of the parse: it asks for a small table.
   */
  readonly maxSharedLines?: number;
}

/**
 * LVM's text as a tree, when it is laid out as LVM lays it out; undefined otherwise. The
 * text may be its UTF-8 bytes as read: they are decoded a piece at a time (textLines.ts).
 */
export function parseConfigLines(text: string | Uint8Array, options: ConfigLinesOptions = {}): ConfigEntry[] | undefined {
  const { onSectionEnd, maxSharedLines = MAX_SHARED_LINES } = options;
  const stack: { name: string; entries: ConfigEntry[] }[] = [{ name: '', entries: [] }];
  /** The names of the open sections but the top level, for onSectionEnd. */
  const parents: string[] = [];
  const shared = new Map<string, ConfigEntry>();
  const share = (lineText: string, entry: ConfigEntry): ConfigEntry => {
    if (shared.size < maxSharedLines) shared.set(lineText, entry);
    return entry;
  };
  // A line at a time, each sliced as it is read: an array of every line of a text of
  // megabytes would be hundreds of thousands of strings alive for the whole parse.
  const nextLine = linesOf(text);
  for (let read = nextLine(); read !== undefined; read = nextLine()) {
    let line = read;
    const start = skipSpaces(line, 0);
    if (restIsEmpty(line, start)) continue;
    const entries = stack[stack.length - 1]!.entries;
    if (line.charCodeAt(start) === 125) {
      if (stack.length === 1 || !restIsEmpty(line, start + 1)) return undefined;
      const done = stack.pop()!;
      parents.pop();
      if (onSectionEnd?.(parents, done.name, done.entries) === true) continue;
      stack[stack.length - 1]!.entries.push({ kind: 'section', name: done.name, entries: done.entries });
      continue;
    }
    const known = shared.get(line.slice(start));
    if (known !== undefined) {
      entries.push(known);
      continue;
    }
    const keyEnd = wordEnd(line, start);
    const key = line.slice(start, keyEnd);
    if (keyEnd === start || numberKind(key) === 'float') return undefined;
    const after = skipSpaces(line, keyEnd);
    const code = line.charCodeAt(after);
    if (code === 123) {
      if (!restIsEmpty(line, after + 1) || stack.length > MAX_SECTION_DEPTH) return undefined;
      stack.push({ name: key, entries: [] });
      parents.push(key);
      continue;
    }
    if (code !== 61) return undefined;
    const valueAt = skipSpaces(line, after + 1);
    if (line.charCodeAt(valueAt) === 91) {
      // An array LVM wrote over several lines: read on until its "]".
      while (!line.includes(']', valueAt)) {
        const more = nextLine();
        if (more === undefined) break;
        line = `${line}\n${more}`;
      }
      const array = arrayAt(line, valueAt + 1);
      if (array === undefined || !restIsEmpty(line, array.end)) return undefined;
      const entry: ConfigEntry = { kind: 'assign', key, value: array.value };
      // Only a line is looked up: an array over several lines is never found again.
      entries.push(line.includes('\n') ? entry : share(line.slice(start), entry));
      continue;
    }
    const scalar = scalarAt(line, valueAt);
    if (scalar === undefined || !restIsEmpty(line, scalar.end)) return undefined;
    entries.push(share(line.slice(start), { kind: 'assign', key, value: scalar.value }));
  }
  return stack.length === 1 ? stack[0]!.entries : undefined;
}

