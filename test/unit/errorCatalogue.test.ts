// Every error code in the source is in the catalogue (src/errorCatalogue.ts) and in
// README.md, and the catalogue holds no code the source never raises. Codes are found
// as string literals that look like codes (UPPER_SNAKE), in every source file except
// those whose codes are findings or problems, not errors (listed below, with why).

import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ERROR_CATALOGUE, exitClassOf } from '../../src/errorCatalogue.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** Files whose UPPER_SNAKE literals are not error codes. */
const NOT_ERRORS: Readonly<Record<string, string>> = {
  'src/metadata/checkLayout.ts': 'thinlv check findings',
  'src/format/checkThinlv.ts': 'thinlv check findings',
  'src/format/checkUnreplayed.ts': 'thinlv check findings',
  'src/report/vgStatus.ts': 'thinlv status problems',
  'src/lvm/metadataText.ts': "lvm's ACTIVATION_SKIP flag",
};
/** Literals that look like codes and are not (environment variables). */
const NOT_CODES = new Set(['THINLV_FAULTS', 'NO_COLOR', 'THINLV_LOCAL_LOCK_DIR', 'THINLV_BENCH_QUICK', 'THINLV_BENCH_RUNS', 'THINLV_SOCKET']);
/** Codes of one word, which the pattern below cannot tell from other words. */
const ONE_WORD_CODES = ['CANCELLED', 'INTERNAL'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

function codesInSource(): Map<string, string[]> {
  const codes = new Map<string, string[]>();
  for (const file of [...sourceFiles(join(ROOT, 'src')), ...sourceFiles(join(ROOT, 'journal', 'src'))]) {
    const name = relative(ROOT, file);
    if (Object.hasOwn(NOT_ERRORS, name)) continue;
    const text = readFileSync(file, 'utf8');
    const found = [...text.matchAll(/'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)'/g)].map((m) => m[1]!);
    for (const word of ONE_WORD_CODES) if (text.includes(`'${word}'`)) found.push(word);
    for (const code of found.filter((c) => !NOT_CODES.has(c))) codes.set(code, [...(codes.get(code) ?? []), name]);
  }
  return codes;
}

describe('the error catalogue', () => {
  const source = codesInSource();
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

  test('every code the source raises is in the catalogue', () => {
    const missing = [...source].filter(([code]) => exitClassOf(code) === undefined).map(([code, files]) => `${code} (${files.join(', ')})`);
    expect(missing).toEqual([]);
    expect(source.size).toBeGreaterThan(50);
  });

  test('every catalogued code is raised somewhere, and listed in README.md', () => {
    expect(Object.keys(ERROR_CATALOGUE).filter((code) => !source.has(code))).toEqual([]);
    expect(Object.keys(ERROR_CATALOGUE).filter((code) => !readme.includes(`\`${code}\``))).toEqual([]);
  });

  test('bad input exits 2 wherever it is raised; a broken invariant 4; the rest 3', () => {
    expect(exitClassOf('INVALID_ARGUMENT')).toBe('usage');
    expect(exitClassOf('INVARIANT_BROKEN')).toBe('internal');
    expect(exitClassOf('LVM_FAILED')).toBe('operational');
    expect(exitClassOf('NO_SUCH_CODE')).toBeUndefined();
  });
});
