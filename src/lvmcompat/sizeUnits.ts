// Sizes printed as lvm prints them: the `--units` letters, lvm's suffixes and its rounding,
// for the cells and lines thinlv rewrites (sizes of thin LVs with unreplayed extents).
// Everything else in an lvm-compatible report is lvm's own text.
//
// lvm's rules (libdm dm_size_to_string, with global/si_unit_consistency=1, lvm's default):
//   b B s S            exact: bytes or 512-byte sectors, no decimals, suffix "B" / "S"
//   k m g t p e        powers of 1024, two decimals, suffix the letter as given
//   K M G T P E        powers of 1000, two decimals
//   h H r R            human: the largest unit the size reaches (1024-based for h r, 1000 for
//                      H R); the suffix is always printed, --nosuffix or not; r and R put "<"
//                      before a value that was rounded up (lvm's default units are r)
//   zero               "0" plus the unit's suffix; for h/H/r/R that suffix is one space
// Two decimals are rounded half to even on the exact value, as C's printf rounds.
// `--units` with a number (`4k`) is lvm's "U" unit; thinlv does not print it (callers
// refuse it before running anything).

/** The letters `--units` takes, one at a time. */
export const UNIT_LETTERS = 'hHrRbBsSkKmMgGtTpPeE';

/** How a size ends: in report cells ("12.00m"), or in lvdisplay's lines ("12.00 MiB"). */
export type SuffixStyle = 'report' | 'display';

export interface SizeFormat {
  /** One of UNIT_LETTERS. */
  readonly unit: string;
  /** False with --nosuffix (ignored by the human units, which always print theirs). */
  readonly suffix: boolean;
  readonly style: SuffixStyle;
}

interface UnitName {
  readonly display: string;
  readonly report: string;
}

const PREFIXES = ['E', 'P', 'T', 'G', 'M', 'K'] as const;
const BINARY_NAMES: readonly UnitName[] = [
  { display: ' EiB', report: 'e' },
  { display: ' PiB', report: 'p' },
  { display: ' TiB', report: 't' },
  { display: ' GiB', report: 'g' },
  { display: ' MiB', report: 'm' },
  { display: ' KiB', report: 'k' },
  { display: ' B', report: 'b' },
];
const DECIMAL_NAMES: readonly UnitName[] = [
  { display: ' EB', report: 'E' },
  { display: ' PB', report: 'P' },
  { display: ' TB', report: 'T' },
  { display: ' GB', report: 'G' },
  { display: ' MB', report: 'M' },
  { display: ' kB', report: 'K' },
  // lvm shares its "Byte" entry with the exact units, trailing space included.
  { display: ' B ', report: 'B' },
];
const BYTE_NAME: UnitName = { display: ' B ', report: 'B' };
const SECTOR_NAME: UnitName = { display: ' Se', report: 'S' };
const HUMAN_ZERO_NAME: UnitName = { display: '   ', report: ' ' };

export const isUnitLetter = (text: string): boolean => text.length === 1 && UNIT_LETTERS.includes(text);

/** A size in bytes as lvm prints it with `format`. */
export function formatSize(sizeBytes: bigint, format: SizeFormat): string {
  if (!isUnitLetter(format.unit)) throw new RangeError(`not an lvm unit letter: ${JSON.stringify(format.unit)}`);
  if (sizeBytes < 0n) throw new RangeError(`negative size ${sizeBytes}`);
  const unit = format.unit;
  const human = 'hHrR'.includes(unit);
  if (human) return formatHuman(sizeBytes, format);
  const { divisor, name, decimals } = exactUnit(unit);
  const suffix = format.suffix ? name[format.style] : '';
  if (sizeBytes === 0n) return `0${suffix}`;
  return `${fixedHalfEven(sizeBytes, divisor, decimals)}${suffix}`;
}

function exactUnit(unit: string): { divisor: bigint; name: UnitName; decimals: number } {
  if (unit === 'b' || unit === 'B') return { divisor: 1n, name: BYTE_NAME, decimals: 0 };
  if (unit === 's' || unit === 'S') return { divisor: 512n, name: SECTOR_NAME, decimals: 0 };
  const index = PREFIXES.indexOf(unit.toUpperCase() as (typeof PREFIXES)[number]);
  const binary = unit === unit.toLowerCase();
  const power = BigInt(PREFIXES.length - index);
  return { divisor: (binary ? 1024n : 1000n) ** power, name: (binary ? BINARY_NAMES : DECIMAL_NAMES)[index]!, decimals: 2 };
}

function formatHuman(sizeBytes: bigint, format: SizeFormat): string {
  // Human units print their suffix even with --nosuffix; zero's suffix is a blank.
  if (sizeBytes === 0n) return `0${format.suffix ? HUMAN_ZERO_NAME[format.style] : ''}`;
  const decimal = format.unit === 'H' || format.unit === 'R';
  const base = decimal ? 1000n : 1024n;
  const names = decimal ? DECIMAL_NAMES : BINARY_NAMES;
  let divisor = base ** 6n;
  let index = 0;
  while (index < PREFIXES.length && sizeBytes < divisor) {
    divisor /= base;
    index++;
  }
  const decimals = index < PREFIXES.length ? 2 : 0;
  const roundedUp = (format.unit === 'r' || format.unit === 'R') && index < PREFIXES.length && roundsUp(sizeBytes * 100n, divisor);
  return `${roundedUp ? '<' : ''}${fixedHalfEven(sizeBytes, divisor, decimals)}${names[index]![format.style]}`;
}

/** Whether numerator/denominator, rounded half to even to a whole number, is above its floor. */
function roundsUp(numerator: bigint, denominator: bigint): boolean {
  const quotient = numerator / denominator;
  const twiceRemainder = (numerator % denominator) * 2n;
  return twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n);
}

/** numerator/denominator with `decimals` decimals, rounded half to even (C's printf on an exact value). */
export function fixedHalfEven(numerator: bigint, denominator: bigint, decimals: number): string {
  const scaled = numerator * 10n ** BigInt(decimals);
  let units = scaled / denominator;
  if (roundsUp(scaled, denominator)) units += 1n;
  if (decimals === 0) return units.toString();
  const digits = units.toString().padStart(decimals + 1, '0');
  return `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}
