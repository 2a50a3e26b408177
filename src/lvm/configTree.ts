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

export type ConfigScalar =
  | { readonly kind: 'int'; readonly text: string }
  | { readonly kind: 'float'; readonly text: string }
  | { readonly kind: 'string'; readonly value: string };

export type ConfigValue = ConfigScalar | { readonly kind: 'array'; readonly items: readonly ConfigScalar[] };

export type ConfigEntry =
  | { readonly kind: 'assign'; readonly key: string; readonly value: ConfigValue }
  | { readonly kind: 'section'; readonly name: string; readonly entries: readonly ConfigEntry[] };

/** Bound on nesting, so hostile input cannot blow the stack. LVM metadata nests 5 deep. */
export const MAX_SECTION_DEPTH = 32;

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

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '\n') {
      line++;
      i++;
    } else if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++;
    } else if (ch === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if ('{}[]=,'.includes(ch)) {
      tokens.push({ kind: 'punct', text: ch as '{', line });
      i++;
    } else if (ch === '"') {
      let value = '';
      const startLine = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new ConfigParseError('unterminated string', startLine);
        const c = text[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const next = text[i + 1];
          if (next === undefined) throw new ConfigParseError('unterminated string', startLine);
          value += next;
          i += 2;
          continue;
        }
        if (c === '\n') line++;
        value += c;
        i++;
      }
      tokens.push({ kind: 'string', value, line: startLine });
    } else {
      let j = i;
      while (j < text.length && /[A-Za-z0-9_.+\-]/.test(text[j]!)) j++;
      if (j === i) throw new ConfigParseError(`unexpected character ${JSON.stringify(ch)}`, line);
      const word = text.slice(i, j);
      if (/^-?[0-9]+$/.test(word)) tokens.push({ kind: 'int', text: word, line });
      else if (/^-?[0-9]+\.[0-9]+$/.test(word)) tokens.push({ kind: 'float', text: word, line });
      else tokens.push({ kind: 'ident', text: word, line });
      i = j;
    }
  }
  return tokens;
}

/** Parses LVM config text into an ordered tree; throws ConfigParseError with a line number. */
export function parseConfig(text: string): ConfigEntry[] {
  const tokens = tokenize(text);
  let position = 0;
  const lastLine = tokens.length > 0 ? tokens[tokens.length - 1]!.line : 1;

  const peek = (): Token | undefined => tokens[position];
  const next = (what: string): Token => {
    const token = tokens[position++];
    if (token === undefined) throw new ConfigParseError(`unexpected end of text, expected ${what}`, lastLine);
    return token;
  };
  const expectPunct = (text: string): void => {
    const token = next(`"${text}"`);
    if (token.kind !== 'punct' || token.text !== text) {
      throw new ConfigParseError(`expected "${text}"`, token.line);
    }
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
        position++;
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
      throw new ConfigParseError(`sections nested deeper than ${MAX_SECTION_DEPTH}`, peek()?.line ?? lastLine);
    }
    const entries: ConfigEntry[] = [];
    for (;;) {
      const token = peek();
      if (token === undefined) {
        if (closeOnBrace) throw new ConfigParseError('missing "}"', lastLine);
        return entries;
      }
      if (token.kind === 'punct' && token.text === '}') {
        if (!closeOnBrace) throw new ConfigParseError('unexpected "}"', token.line);
        position++;
        return entries;
      }
      if (token.kind !== 'ident' && token.kind !== 'int') {
        throw new ConfigParseError('expected a key or a section name', token.line);
      }
      position++;
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
