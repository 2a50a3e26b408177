// The LVM2 configuration syntax, as written by vgcfgbackup and read by
// vgcfgrestore: nested sections of `key = value` assignments.
//
//   name {                 section
//       key = 12           integer (kept as its decimal text, so 64-bit values survive)
//       key = 1.5          float   (kept as text)
//       key = "text"       string  (\" and \\ escaped)
//       key = ["a", 3]     array of scalars
//   }                      # comments run to the end of the line
//
// The tree keeps every entry in file order, so a reader that does not
// understand a key can still print it back unchanged. Comments are dropped:
// LVM writes them only as human hints ("# 4 Megabytes").

import { ErrorCode, ThinlvError } from '../errors.js';
import { isWordChar, MAX_SECTION_DEPTH, numberKind, parseConfigLines } from './configLines.js';

export type ConfigScalar =
  | { readonly kind: 'int'; readonly text: string }
  | { readonly kind: 'float'; readonly text: string }
  | { readonly kind: 'string'; readonly value: string };

export type ConfigValue = ConfigScalar | { readonly kind: 'array'; readonly items: readonly ConfigScalar[] };

export type ConfigEntry =
  | { readonly kind: 'assign'; readonly key: string; readonly value: ConfigValue }
  | { readonly kind: 'section'; readonly name: string; readonly entries: readonly ConfigEntry[] };

export { MAX_SECTION_DEPTH };

const IDENTIFIER = /^[A-Za-z0-9_.+\-]+$/;
// The tokenizer reads "1.5" as a float, which cannot be a key; integers can.
const FLOAT_LIKE = /^-?[0-9]+\.[0-9]+$/;
const printableKey = (key: string): boolean => IDENTIFIER.test(key) && !FLOAT_LIKE.test(key);

export class ConfigParseError extends ThinlvError {
  constructor(message: string, line: number) {
    super(ErrorCode.metadataParse, `LVM metadata text, line ${line}: ${message}`, { line });
  }
}

type Token =
  | { kind: 'ident'; text: string; line: number }
  | { kind: 'int' | 'float'; text: string; line: number }
  | { kind: 'string'; value: string; line: number }
  | { kind: 'punct'; text: '{' | '}' | '[' | ']' | '=' | ','; line: number };

/** A quoted string starting at the quote at `start`: its value (\x is x) and the index after the closing quote. */
function readString(text: string, start: number, line: number): { value: string; end: number; newlines: number } {
  let value = '';
  let newlines = 0;
  let chunk = start + 1;
  for (let i = chunk; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 34 /* " */) return { value: value + text.slice(chunk, i), end: i + 1, newlines };
    if (code === 10) newlines++;
    if (code === 92 /* \ */) {
      if (i + 1 >= text.length) break;
      value += text.slice(chunk, i) + text[i + 1]!;
      chunk = i + 2;
      i++;
    }
  }
  throw new ConfigParseError('unterminated string', line);
}

// A metadata text of 10,000 LVs is megabytes, read on every host start and every commit:
// tokens are made one at a time as the parser asks (no array of them all to collect), and
// the lexer walks char codes and slices, never building strings a character at a time.
class Lexer {
  private at = 0;
  private line = 1;
  /** The line of the last token read: where an error at the end of the text is reported. */
  lastLine = 1;
  private ahead: Token | undefined;

  constructor(private readonly text: string) {}

  peek(): Token | undefined {
    this.ahead ??= this.scan();
    return this.ahead;
  }

  next(): Token | undefined {
    const token = this.peek();
    this.ahead = undefined;
    if (token !== undefined) this.lastLine = token.line;
    return token;
  }

  private scan(): Token | undefined {
    const text = this.text;
    while (this.at < text.length) {
      const code = text.charCodeAt(this.at);
      if (code === 10) {
        this.line++;
        this.at++;
      } else if (code === 32 || code === 9 || code === 13) {
        this.at++;
      } else if (code === 35 /* # */) {
        const end = text.indexOf('\n', this.at);
        this.at = end < 0 ? text.length : end;
      } else if (code === 123 || code === 125 || code === 91 || code === 93 || code === 61 || code === 44) {
        return { kind: 'punct', text: text[this.at++] as '{', line: this.line };
      } else if (code === 34) {
        const line = this.line;
        const string = readString(text, this.at, line);
        this.line += string.newlines;
        this.at = string.end;
        return { kind: 'string', value: string.value, line };
      } else {
        return this.word();
      }
    }
    return undefined;
  }

  private word(): Token {
    const start = this.at;
    while (this.at < this.text.length && isWordChar(this.text.charCodeAt(this.at))) this.at++;
    if (this.at === start) throw new ConfigParseError(`unexpected character ${JSON.stringify(this.text[start])}`, this.line);
    const word = this.text.slice(start, this.at);
    return { kind: numberKind(word) ?? 'ident', text: word, line: this.line };
  }
}

/** Parses LVM config text into an ordered tree; throws ConfigParseError with a line number. */
export function parseConfig(text: string): ConfigEntry[] {
  return parseConfigLines(text) ?? parseConfigTokens(text);
}

/** The general parser: any layout, and the errors with their line. Exported for the tests that compare the two. */
export function parseConfigTokens(text: string): ConfigEntry[] {
  const lexer = new Lexer(text);
  const peek = (): Token | undefined => lexer.peek();
  const next = (what: string): Token => {
    const token = lexer.next();
    if (token === undefined) throw new ConfigParseError(`unexpected end of text, expected ${what}`, lexer.lastLine);
    return token;
  };
  const parseScalar = (token: Token): ConfigScalar => {
    if (token.kind === 'int') return { kind: 'int', text: token.text };
    if (token.kind === 'float') return { kind: 'float', text: token.text };
    if (token.kind === 'string') return { kind: 'string', value: token.value };
    throw new ConfigParseError('expected a number or a string', token.line);
  };

  const parseValue = (): ConfigValue => {
    const token = next('a value');
    if (token.kind === 'punct' && token.text === '[') {
      const items: ConfigScalar[] = [];
      const first = peek();
      if (first?.kind === 'punct' && first.text === ']') {
        lexer.next();
        return { kind: 'array', items };
      }
      for (;;) {
        items.push(parseScalar(next('an array item')));
        const separator = next('"," or "]"');
        if (separator.kind === 'punct' && separator.text === ']') break;
        if (separator.kind !== 'punct' || separator.text !== ',') {
          throw new ConfigParseError('expected "," or "]" in array', separator.line);
        }
      }
      return { kind: 'array', items };
    }
    return parseScalar(token);
  };

  const parseEntries = (depth: number, closeOnBrace: boolean): ConfigEntry[] => {
    if (depth > MAX_SECTION_DEPTH) {
      throw new ConfigParseError(`sections nested deeper than ${MAX_SECTION_DEPTH}`, peek()?.line ?? lexer.lastLine);
    }
    const entries: ConfigEntry[] = [];
    for (;;) {
      const token = peek();
      if (token === undefined) {
        if (closeOnBrace) throw new ConfigParseError('missing "}"', lexer.lastLine);
        return entries;
      }
      if (token.kind === 'punct' && token.text === '}') {
        if (!closeOnBrace) throw new ConfigParseError('unexpected "}"', token.line);
        lexer.next();
        return entries;
      }
      if (token.kind !== 'ident' && token.kind !== 'int') {
        throw new ConfigParseError('expected a key or a section name', token.line);
      }
      lexer.next();
      const key = token.text;
      const after = next('"=" or "{"');
      if (after.kind === 'punct' && after.text === '=') {
        entries.push({ kind: 'assign', key, value: parseValue() });
      } else if (after.kind === 'punct' && after.text === '{') {
        entries.push({ kind: 'section', name: key, entries: parseEntries(depth + 1, true) });
      } else {
        throw new ConfigParseError(`expected "=" or "{" after ${JSON.stringify(key)}`, after.line);
      }
    }
  };

  return parseEntries(0, false);
}

function printScalar(value: ConfigScalar): string {
  if (value.kind === 'string') return `"${value.value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return value.text;
}

function printValue(value: ConfigValue): string {
  if (value.kind === 'array') return `[${value.items.map(printScalar).join(', ')}]`;
  return printScalar(value);
}

/** Prints a tree in LVM's layout (tab indentation); parseConfig(printConfig(t)) deep-equals t. */
export function printConfig(entries: readonly ConfigEntry[], depth = 0): string {
  const indent = '\t'.repeat(depth);
  let out = '';
  for (const entry of entries) {
    if (entry.kind === 'assign') {
      if (!printableKey(entry.key)) throw new ConfigParseError(`cannot print key ${JSON.stringify(entry.key)}`, 0);
      out += `${indent}${entry.key} = ${printValue(entry.value)}\n`;
    } else {
      if (!printableKey(entry.name)) throw new ConfigParseError(`cannot print section ${JSON.stringify(entry.name)}`, 0);
      out += `${indent}${entry.name} {\n${printConfig(entry.entries, depth + 1)}${indent}}\n`;
    }
  }
  return out;
}

// Small constructors and accessors, used by the VG metadata mapping.

export const configInt = (value: number): ConfigScalar => {
  if (!Number.isSafeInteger(value)) throw new RangeError(`not a safe integer: ${value}`);
  return { kind: 'int', text: String(value) };
};
export const configString = (value: string): ConfigScalar => ({ kind: 'string', value });
export const configStrings = (values: readonly string[]): ConfigValue => ({
  kind: 'array',
  items: values.map(configString),
});
