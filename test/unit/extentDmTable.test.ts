import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import {
  appendSegments,
  ExtentArgumentError,
  ExtentSet,
  formatDmTable,
  linearTable,
  type DmTableLine,
  type LinearSegment,
  type PhysicalRange,
  type PvLocation,
} from '../../src/extent/index.js';

const PVS: ReadonlyMap<string, PvLocation> = new Map([
  ['pv0', { devicePath: '/dev/sdb', peStartSectors: 2048 }],
  ['pv1', { devicePath: '/dev/mapper/mpatha', peStartSectors: 384 }],
  ['pv2', { devicePath: '8:48', peStartSectors: 0 }],
]);

describe('linearTable and formatDmTable examples', () => {
  test('each segment becomes one linear target at its logical sector, offset by pe_start', () => {
    const segments: LinearSegment[] = [
      { pv: 'pv0', firstExtent: 100, extentCount: 10, logicalStart: 0 },
      { pv: 'pv1', firstExtent: 3, extentCount: 2, logicalStart: 10 },
    ];
    expect(formatDmTable(linearTable(segments, PVS, 8192))).toBe(
      '0 81920 linear /dev/sdb 821248\n' + '81920 16384 linear /dev/mapper/mpatha 24960\n',
    );
  });

  test('segments that continue each other on one PV produce a single line', () => {
    const segments: LinearSegment[] = [
      { pv: 'pv0', firstExtent: 100, extentCount: 10, logicalStart: 0 },
      { pv: 'pv0', firstExtent: 110, extentCount: 5, logicalStart: 10 },
    ];
    expect(linearTable(segments, PVS, 8)).toEqual([
      { startSector: 0, lengthSectors: 120, targetType: 'linear', devicePath: '/dev/sdb', offsetSector: 2048 + 800 },
    ]);
  });

  test('a plain object works as the PV map, and its prototype keys are not PVs', () => {
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 1, extentCount: 1, logicalStart: 0 }];
    expect(linearTable(segments, { pv0: { devicePath: '/dev/loop3', peStartSectors: 2048 } }, 8)).toEqual([
      { startSector: 0, lengthSectors: 8, targetType: 'linear', devicePath: '/dev/loop3', offsetSector: 2056 },
    ]);
    const onConstructor: LinearSegment[] = [{ pv: 'constructor', firstExtent: 0, extentCount: 1, logicalStart: 0 }];
    expect(() => linearTable(onConstructor, {}, 8)).toThrow(/no device known for PV constructor/);
  });

  test('sector numbers beyond 2^32 come out exact', () => {
    // 4 MiB extents on a 64 TiB LUN: the offset of the last extent is ~2^37 sectors.
    const firstExtent = 16 * 1024 * 1024 - 1;
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent, extentCount: 1, logicalStart: 2 ** 20 }];
    const [line] = linearTable(
      [{ pv: 'pv2', firstExtent: 0, extentCount: 2 ** 20, logicalStart: 0 }, ...segments],
      PVS,
      8192,
    ).slice(1);
    expect(line).toEqual({
      startSector: 8589934592,
      lengthSectors: 8192,
      targetType: 'linear',
      devicePath: '/dev/sdb',
      offsetSector: 2048 + 137438945280,
    });
  });

  test('a sector number beyond 2^53 - 1 is refused rather than rounded', () => {
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 2 ** 41, extentCount: 1, logicalStart: 0 }];
    try {
      linearTable(segments, PVS, 8192);
      expect.unreachable('an inexact sector must be refused');
    } catch (error) {
      expect(error).toBeInstanceOf(ExtentArgumentError);
      expect((error as ExtentArgumentError).code).toBe('EXTENT_SECTOR_OVERFLOW');
    }
  });

  test('an unknown PV, a bad extent size or a device path with a space is refused', () => {
    const segments: LinearSegment[] = [{ pv: 'pv9', firstExtent: 0, extentCount: 1, logicalStart: 0 }];
    expect(() => linearTable(segments, PVS, 8)).toThrow(/no device known for PV pv9/);
    expect(() => linearTable([], PVS, 0)).toThrow(/extentSizeSectors must be a safe integer >= 1/);
    const spaced = new Map([['pv9', { devicePath: '/dev/disk/by-id/a b', peStartSectors: 0 }]]);
    expect(() => linearTable(segments, spaced, 8)).toThrow(/without whitespace/);
  });

  test('segments with a logical gap are refused: dm tables must be contiguous', () => {
    const segments: LinearSegment[] = [{ pv: 'pv0', firstExtent: 0, extentCount: 1, logicalStart: 1 }];
    expect(() => linearTable(segments, PVS, 8)).toThrow(/not a valid segment list/);
  });

  test('formatDmTable refuses lines that leave a gap', () => {
    const lines: DmTableLine[] = [
      { startSector: 0, lengthSectors: 8, targetType: 'linear', devicePath: '/dev/sdb', offsetSector: 0 },
      { startSector: 16, lengthSectors: 8, targetType: 'linear', devicePath: '/dev/sdb', offsetSector: 8 },
    ];
    expect(() => formatDmTable(lines)).toThrow(/lines\[1\] starts at sector 16 but the table so far ends at 8/);
  });

  test('an LV with no segments has an empty table', () => {
    expect(linearTable([], PVS, 8)).toEqual([]);
    expect(formatDmTable([])).toBe('');
  });
});

describe('linearTable properties', () => {
  /** A valid LV over small PVs, in a random logical order of pieces. */
  const caseArbitrary = fc
    .record({
      ranges: fc.array(
        fc.record({ pv: fc.constantFrom('pv0', 'pv1', 'pv2'), firstExtent: fc.nat(30), extentCount: fc.integer({ min: 1, max: 6 }) }),
        { maxLength: 6 },
      ),
      extentSizeSectors: fc.integer({ min: 1, max: 8 }),
    })
    .chain(({ ranges, extentSizeSectors }) => {
      const pieces: PhysicalRange[] = ExtentSet.fromRanges(ranges)
        .ranges()
        .flatMap((range) =>
          // Single extents, so shuffling creates both coalescible and scattered neighbours.
          Array.from({ length: range.extentCount }, (_, offset) => ({ pv: range.pv, firstExtent: range.firstExtent + offset, extentCount: 1 })),
        );
      return fc
        .shuffledSubarray(pieces, { minLength: pieces.length })
        .map((shuffled) => ({ segments: appendSegments([], shuffled), extentSizeSectors }));
    });

  test.prop([caseArbitrary])(
    'every logical sector maps to the device and sector of its physical extent',
    ({ segments, extentSizeSectors }) => {
      const lines = linearTable(segments, PVS, extentSizeSectors);
      const text = formatDmTable(lines);
      // Read the table back from its text, as dmsetup would.
      const parsed = text
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => {
          const [start, length, target, device, offset] = line.split(' ');
          expect(target).toBe('linear');
          return { start: Number(start), length: Number(length), device, offset: Number(offset) };
        });
      for (const segment of segments) {
        const location = PVS.get(segment.pv) as PvLocation;
        for (let extentOffset = 0; extentOffset < segment.extentCount; extentOffset += 1) {
          for (let sectorInExtent = 0; sectorInExtent < extentSizeSectors; sectorInExtent += 1) {
            const logicalSector = (segment.logicalStart + extentOffset) * extentSizeSectors + sectorInExtent;
            const expectedSector =
              location.peStartSectors + (segment.firstExtent + extentOffset) * extentSizeSectors + sectorInExtent;
            const line = parsed.find((candidate) => candidate.start <= logicalSector && logicalSector < candidate.start + candidate.length);
            expect(line?.device).toBe(location.devicePath);
            expect((line?.offset ?? Number.NaN) + logicalSector - (line?.start ?? 0)).toBe(expectedSector);
          }
        }
      }
      const totalSectors = parsed.reduce((sum, line) => sum + line.length, 0);
      expect(totalSectors).toBe(segments.reduce((sum, segment) => sum + segment.extentCount, 0) * extentSizeSectors);
    },
  );

  test.prop([caseArbitrary])('no two consecutive lines continue each other on the same device', ({ segments, extentSizeSectors }) => {
    const lines = linearTable(segments, PVS, extentSizeSectors);
    for (let index = 1; index < lines.length; index += 1) {
      const previous = lines[index - 1] as DmTableLine;
      const current = lines[index] as DmTableLine;
      expect(previous.devicePath === current.devicePath && previous.offsetSector + previous.lengthSectors === current.offsetSector).toBe(
        false,
      );
    }
  });
});
