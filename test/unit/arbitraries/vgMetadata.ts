// fast-check arbitraries for LVM config trees and VgMetadata, shared by the
// configTree and metadataText tests.

import { fc } from '@fast-check/vitest';

import type { ConfigEntry, ConfigScalar, ConfigValue } from '../../../src/lvm/configTree.js';
import type { LvMetadata, PvMetadata, SegmentMetadata, StripeArea, VgMetadata } from '../../../src/metadata/vgModel.js';

const FLOAT_TEXT = /^-?[0-9]+\.[0-9]+$/;

/**
 * A key or section name the config syntax can print and read back. Keys that read
 * as an integer token ("12", "-3") are accepted as keys by the parser; keys that
 * read as a float ("1.5") are not, so they are left out.
 */
export const configIdentifierArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/),
  fc.stringMatching(/^[A-Za-z0-9_.+-]{1,10}$/).filter((key) => !FLOAT_TEXT.test(key)),
);

/** Strings that stress the printer: quotes, backslashes, newlines, '#', braces, unicode. */
export const configStringArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc
    .array(fc.constantFrom('"', '\\', '\n', '#', '{', '}', '[', ']', '=', ',', ' ', '\t', 'a', 'é', '🐧', '\\"', '\r\n'), {
      maxLength: 10,
    })
    .map((parts) => parts.join('')),
);

export const configScalarArbitrary: fc.Arbitrary<ConfigScalar> = fc.oneof(
  fc.stringMatching(/^-?[0-9]{1,20}$/).map((text): ConfigScalar => ({ kind: 'int', text })),
  fc.stringMatching(/^-?[0-9]{1,6}\.[0-9]{1,6}$/).map((text): ConfigScalar => ({ kind: 'float', text })),
  configStringArbitrary.map((value): ConfigScalar => ({ kind: 'string', value })),
);

export const configValueArbitrary: fc.Arbitrary<ConfigValue> = fc.oneof(
  configScalarArbitrary,
  fc.array(configScalarArbitrary, { maxLength: 5 }).map((items): ConfigValue => ({ kind: 'array', items })),
);

/** Config trees up to `maxDepth` sections deep, with names drawn from `key`. */
export function configEntriesArbitrary(
  options: { maxDepth?: number; maxLength?: number; key?: fc.Arbitrary<string> } = {},
): fc.Arbitrary<ConfigEntry[]> {
  const { maxDepth = 3, maxLength = 5, key = configIdentifierArbitrary } = options;
  const level = (depth: number): fc.Arbitrary<ConfigEntry[]> => {
    const assign = fc.record({ key, value: configValueArbitrary }).map((a): ConfigEntry => ({ kind: 'assign', ...a }));
    if (depth >= maxDepth) return fc.array(assign, { maxLength });
    const section = fc
      .record({ name: key, entries: fc.constant(null).chain(() => level(depth + 1)) })
      .map((s): ConfigEntry => ({ kind: 'section', ...s }));
    return fc.array(fc.oneof({ weight: 3, arbitrary: assign }, { weight: 1, arbitrary: section }), { maxLength });
  };
  return level(0);
}

/**
 * Unknown entries for a VgMetadata `extra`/`header`: keys unique within the list and
 * never one of `reserved` (the keys the reader interprets at that level).
 */
export function extraEntriesArbitrary(reserved: (key: string) => boolean, options: { sections?: boolean } = {}): fc.Arbitrary<ConfigEntry[]> {
  const key = configIdentifierArbitrary.filter((k) => !reserved(k));
  const entry: fc.Arbitrary<ConfigEntry> =
    options.sections === false
      ? fc.record({ key, value: configValueArbitrary }).map((a): ConfigEntry => ({ kind: 'assign', ...a }))
      : fc.oneof(
          { weight: 3, arbitrary: fc.record({ key, value: configValueArbitrary }).map((a): ConfigEntry => ({ kind: 'assign', ...a })) },
          {
            weight: 1,
            arbitrary: fc
              .record({ name: key, entries: configEntriesArbitrary({ maxDepth: 1, maxLength: 3 }) })
              .map((s): ConfigEntry => ({ kind: 'section', ...s })),
          },
        );
  return fc.uniqueArray(entry, { maxLength: 3, selector: (e) => (e.kind === 'assign' ? e.key : e.name) });
}

const reservedIn =
  (keys: readonly string[], pattern?: RegExp) =>
  (key: string): boolean =>
    keys.includes(key) || (pattern?.test(key) ?? false);

export const RESERVED_VG_KEYS = reservedIn(['id', 'seqno', 'status', 'flags', 'tags', 'extent_size', 'physical_volumes', 'logical_volumes']);
export const RESERVED_PV_KEYS = reservedIn(['id', 'device', 'status', 'flags', 'tags', 'dev_size', 'pe_start', 'pe_count']);
export const RESERVED_LV_KEYS = reservedIn(['id', 'status', 'flags', 'tags', 'segment_count'], /^segment[0-9]+$/);
export const RESERVED_SEGMENT_KEYS = reservedIn(['start_extent', 'extent_count', 'type', 'stripe_count', 'stripes']);

/** LVM-style object names (VG, LV): unique within their list by construction of the caller. */
export const objectNameArbitrary: fc.Arbitrary<string> = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);

const stringListArbitrary = fc.array(configStringArbitrary, { maxLength: 3 });
const countArbitrary = fc.nat({ max: 1 << 30 });

function pvArbitrary(key: string, device: string): fc.Arbitrary<PvMetadata> {
  return fc.record({
    key: fc.constant(key),
    uuid: configStringArbitrary,
    device: fc.constant(device),
    status: stringListArbitrary,
    flags: stringListArbitrary,
    tags: stringListArbitrary,
    devSizeSectors: countArbitrary,
    peStartSectors: countArbitrary,
    peCount: countArbitrary,
    extra: extraEntriesArbitrary(RESERVED_PV_KEYS),
  });
}

function segmentArbitrary(devices: readonly string[]): fc.Arbitrary<Omit<SegmentMetadata, 'logicalStart'>> {
  const striped = fc
    .record({
      stripes: fc.array(
        fc.record({ pv: fc.constantFrom(...devices), firstExtent: countArbitrary }).map((s): StripeArea => s),
        { minLength: 1, maxLength: 3 },
      ),
      extentsPerStripe: fc.integer({ min: 1, max: 1000 }),
      extra: extraEntriesArbitrary(RESERVED_SEGMENT_KEYS),
    })
    .map(({ stripes, extentsPerStripe, extra }) => ({
      extentCount: stripes.length * extentsPerStripe,
      type: 'striped',
      stripes,
      extra,
    }));
  const other = fc.record({
    extentCount: fc.integer({ min: 1, max: 100_000 }),
    type: fc.oneof(fc.constantFrom('thin', 'thin-pool', 'raid1', 'mirror', 'error', 'zero', 'cache'), configStringArbitrary).filter((t) => t !== 'striped'),
    stripes: fc.constant([] as StripeArea[]),
    extra: extraEntriesArbitrary(RESERVED_SEGMENT_KEYS),
  });
  return fc.oneof({ weight: 3, arbitrary: striped }, { weight: 1, arbitrary: other });
}

function lvArbitrary(name: string, devices: readonly string[]): fc.Arbitrary<LvMetadata> {
  return fc
    .record({
      uuid: configStringArbitrary,
      status: stringListArbitrary,
      flags: fc.array(configStringArbitrary.filter((f) => f !== 'ACTIVATION_SKIP'), { maxLength: 3 }),
      activationSkip: fc.boolean(),
      tags: stringListArbitrary,
      segments: fc.array(segmentArbitrary(devices), { maxLength: 4 }),
      extra: extraEntriesArbitrary(RESERVED_LV_KEYS),
    })
    .map(({ segments, ...rest }) => {
      let logicalStart = 0;
      const placed = segments.map((segment) => {
        const withStart = { logicalStart, ...segment };
        logicalStart += segment.extentCount;
        return withStart;
      });
      return { name, ...rest, segments: placed };
    });
}

/**
 * Valid VgMetadata: unique PV keys and devices, segments only on those devices, striped
 * segments with 1..3 stripes and an extent count the stripes divide, other segment types
 * with no stripes, and unknown entries at every level.
 */
export const vgMetadataArbitrary: fc.Arbitrary<VgMetadata> = fc
  .record({
    pvKeys: fc.uniqueArray(configIdentifierArbitrary, { minLength: 1, maxLength: 3 }),
    devices: fc.uniqueArray(fc.oneof(fc.stringMatching(/^\/dev\/[a-z]{1,6}[0-9]{0,2}$/), configStringArbitrary), {
      minLength: 3,
      maxLength: 3,
    }),
    lvNames: fc.uniqueArray(objectNameArbitrary, { maxLength: 4 }),
  })
  .chain(({ pvKeys, devices, lvNames }) => {
    const pvDevices = devices.slice(0, pvKeys.length);
    return fc.record({
      header: extraEntriesArbitrary(() => false, { sections: false }),
      name: objectNameArbitrary,
      uuid: configStringArbitrary,
      seqno: countArbitrary,
      status: stringListArbitrary,
      flags: stringListArbitrary,
      tags: stringListArbitrary,
      extentSizeSectors: fc.integer({ min: 1, max: 1 << 24 }),
      extra: extraEntriesArbitrary(RESERVED_VG_KEYS),
      pvs: fc.tuple(...pvKeys.map((key, index) => pvArbitrary(key, pvDevices[index]!))),
      lvs: lvNames.length === 0 ? fc.constant([]) : fc.tuple(...lvNames.map((name) => lvArbitrary(name, pvDevices))),
    });
  });
