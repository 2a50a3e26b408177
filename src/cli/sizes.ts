// Sizes as lvm's -L/-V take them: a number with an optional unit, "+" for
// relative. Units are binary (1024) in either case, as operators type them to
// lvm: b bytes, s 512-byte sectors, k, m (the default), g, t, p, e; "GiB",
// "MiB" ... are accepted too. Fractions are allowed where they make whole bytes.

import { ErrorCode, UsageError } from '../errors.js';

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  s: 512,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
  e: 1024 ** 6,
};

export interface ParsedSize {
  readonly bytes: number;
  readonly relative: '+' | '-' | undefined;
}

export function parseSize(text: string, what: string, defaultUnit = 'm'): ParsedSize {
  const match = /^([+-]?)([0-9]+(?:\.[0-9]+)?)\s*([bBsSkKmMgGtTpPeE])?(?:i?[bB])?$/.exec(text.trim());
  if (!match) {
    throw new UsageError(ErrorCode.invalidArgument, `${what}: cannot read size "${text}"; use a number with an optional unit (b s k m g t p e, binary), e.g. 10g or +512m`, { value: text });
  }
  const unit = (match[3] ?? defaultUnit).toLowerCase();
  const bytes = Number(match[2]) * UNIT_BYTES[unit]!;
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(ErrorCode.invalidArgument, `${what}: "${text}" is not a whole number of bytes or is too large`, { value: text });
  }
  const sign = match[1];
  return { bytes, relative: sign === '+' || sign === '-' ? sign : undefined };
}

/** Rounds a byte size up to whole extents, as lvm does. */
export const bytesToExtents = (bytes: number, extentSizeBytes: number): number => Math.ceil(bytes / extentSizeBytes);
