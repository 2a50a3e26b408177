// A small parser for LVM's text metadata format (what vgcfgbackup writes), written
// for the independent checker: sections `name { ... }`, assignments `key = value`,
// values are strings, integers or lists of them; `#` starts a comment.

export type LvmValue = string | number | readonly (string | number)[];
export interface LvmSection {
  readonly values: Map<string, LvmValue>;
  readonly sections: Map<string, LvmSection>;
  /** Section names in file order (LV order matters to nobody, but keeps reports stable). */
  readonly order: string[];
}

type Token = { kind: 'word'; text: string } | { kind: 'string'; text: string } | { kind: 'number'; value: number } | { kind: 'punct'; text: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let value = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i]!;
        i++;
      }
      if (i >= text.length) throw new Error('LVM text: unterminated string');
      i++;
      tokens.push({ kind: 'string', text: value });
    } else if ('{}[]=,'.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      i++;
    } else {
      let word = '';
      while (i < text.length && !/[\s{}[\]=,"#]/.test(text[i]!)) word += text[i++]!;
      if (/^-?[0-9]+$/.test(word)) tokens.push({ kind: 'number', value: Number(word) });
      else if (/^-?[0-9]*\.[0-9]+$/.test(word)) tokens.push({ kind: 'number', value: Number(word) });
      else tokens.push({ kind: 'word', text: word });
    }
  }
  return tokens;
}

export function parseLvmText(text: string): LvmSection {
  const tokens = tokenize(text);
  let position = 0;
  const peek = (): Token | undefined => tokens[position];
  const take = (): Token => {
    const token = tokens[position++];
    if (token === undefined) throw new Error('LVM text: unexpected end');
    return token;
  };
  const scalar = (token: Token): string | number => {
    if (token.kind === 'string') return token.text;
    if (token.kind === 'number') return token.value;
    throw new Error(`LVM text: unexpected ${JSON.stringify(token)} in a value`);
  };
  const section = (closing: boolean): LvmSection => {
    const result: LvmSection = { values: new Map(), sections: new Map(), order: [] };
    for (;;) {
      const token = peek();
      if (token === undefined) {
        if (closing) throw new Error('LVM text: missing }');
        return result;
      }
      if (token.kind === 'punct' && token.text === '}') {
        if (!closing) throw new Error('LVM text: unexpected }');
        position++;
        return result;
      }
      const key = take();
      if (key.kind !== 'word') throw new Error(`LVM text: expected a key, found ${JSON.stringify(key)}`);
      const op = take();
      if (op.kind === 'punct' && op.text === '{') {
        result.sections.set(key.text, section(true));
        result.order.push(key.text);
      } else if (op.kind === 'punct' && op.text === '=') {
        const first = take();
        if (first.kind === 'punct' && first.text === '[') {
          const list: (string | number)[] = [];
          for (;;) {
            const item = take();
            if (item.kind === 'punct' && item.text === ']') break;
            if (item.kind === 'punct' && item.text === ',') continue;
            list.push(scalar(item));
          }
          result.values.set(key.text, list);
        } else {
          result.values.set(key.text, scalar(first));
        }
      } else {
        throw new Error(`LVM text: expected = or { after ${key.text}`);
      }
    }
  };
  return section(false);
}
