// Pure planning of a metadata commit: a VG's metadata plus a list of changes
// gives the next metadata, or an INVALID_BATCH error that names the first bad
// change. No I/O: the commit path (src/lvm/commitBatch.ts) runs it twice, once
// on the caller's model before any lvm call and once on the model re-read
// under the VG lock, and writes the result only when both agree it is valid.

import { CommitError, ErrorCode } from '../errors.js';
import { ExtentError } from '../extent/extentErrors.js';
import { appendSegments, coalesceSegments, removeExtentsFromSegments } from '../extent/segments.js';
import type { LinearSegment, PhysicalRange } from '../extent/types.js';
import type { ConfigEntry } from '../lvm/configTree.js';
import { configInt, configString } from '../lvm/configTree.js';
import { checkLayout, type Finding } from './checkLayout.js';
import { invalidNameReason, invalidTagReason } from './names.js';
import { linearSegments, type LvMetadata, type SegmentMetadata, type VgMetadata } from './vgModel.js';

/** Bound on one batch: past it, split the work into several commits. */
export const MAX_CHANGES_PER_BATCH = 100_000;

export type MetadataChange =
  /** A new linear LV made of `ranges`, in order. */
  | {
      readonly kind: 'createLv';
      readonly name: string;
      readonly ranges: readonly PhysicalRange[];
      readonly tags?: readonly string[];
      readonly activationSkip?: boolean;
    }
  | { readonly kind: 'removeLv'; readonly name: string }
  /** Renames an LV in place (lvrename): its segments, tags and place in the VG stay. */
  | { readonly kind: 'renameLv'; readonly name: string; readonly newName: string }
  /** Makes an LV writable or read-only (lvchange -p rw|r): its WRITE status flag. */
  | { readonly kind: 'setLvWritable'; readonly lv: string; readonly writable: boolean }
  /** Extents from VG free space appended to the end of an LV. */
  | { readonly kind: 'appendRanges'; readonly lv: string; readonly ranges: readonly PhysicalRange[] }
  /** Extents taken out of `fromLv` and appended to the end of `toLv` (replaying a host's journal). */
  | { readonly kind: 'moveRanges'; readonly fromLv: string; readonly toLv: string; readonly ranges: readonly PhysicalRange[] }
  /** Extents taken out of an LV and returned to VG free space. */
  | { readonly kind: 'releaseRanges'; readonly lv: string; readonly ranges: readonly PhysicalRange[] }
  /** Adds a tag to an LV, or to the VG when `lv` is absent; first removes every tag starting with `replacingPrefix`. */
  | { readonly kind: 'setTag'; readonly lv?: string; readonly tag: string; readonly replacingPrefix?: string }
  | { readonly kind: 'removeTag'; readonly lv?: string; readonly tag: string };

/** Effects a pure planner still needs: identities and the time for new LVs. */
export interface NewLvIdentity {
  newUuid(): string;
  nowSeconds(): number;
  readonly hostname: string;
}

function invalidBatch(index: number, message: string, data: Record<string, unknown> = {}): never {
  throw new CommitError(ErrorCode.invalidBatch, `change #${index}: ${message}; nothing was written`, { changeIndex: index, ...data });
}

function toSegmentMetadata(segments: readonly LinearSegment[]): SegmentMetadata[] {
  return segments.map((s) => ({
    logicalStart: s.logicalStart,
    extentCount: s.extentCount,
    type: 'striped',
    stripes: [{ pv: s.pv, firstExtent: s.firstExtent }],
    extra: [],
  }));
}

function editableLinear(lv: LvMetadata, index: number): LinearSegment[] {
  const linear = linearSegments(lv);
  if (linear === undefined || lv.segments.some((s) => s.extra.length > 0)) {
    invalidBatch(index, `LV ${lv.name} has segments that are not plain linear; thinlv does not edit it`, { lv: lv.name });
  }
  return linear;
}

function withExtentErrors<T>(index: number, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ExtentError) invalidBatch(index, error.message, { extentCode: error.code });
    throw error;
  }
}

/** Applies `changes` in order to `vg`; throws INVALID_BATCH before anything is written if any change or the result is invalid. */
export function applyChanges(vg: VgMetadata, changes: readonly MetadataChange[], identity: NewLvIdentity): VgMetadata {
  if (changes.length > MAX_CHANGES_PER_BATCH) {
    throw new CommitError(ErrorCode.invalidBatch, `a batch holds at most ${MAX_CHANGES_PER_BATCH} changes, got ${changes.length}; split it`, {
      changeCount: changes.length,
    });
  }
  // Working copy keyed by name; Map keeps insertion order, so untouched LVs keep their place.
  const lvs = new Map<string, LvMetadata>(vg.lvs.map((lv) => [lv.name, lv]));
  let vgTags = [...vg.tags];

  const lvNamed = (name: string, index: number): LvMetadata => {
    const lv = lvs.get(name);
    if (lv === undefined) invalidBatch(index, `LV ${vg.name}/${name} does not exist`, { lv: name });
    return lv;
  };
  const replaceSegments = (lv: LvMetadata, segments: readonly LinearSegment[]): void => {
    lvs.set(lv.name, { ...lv, segments: toSegmentMetadata(coalesceSegments(segments)) });
  };
  const checkTag = (tag: string, index: number): void => {
    const problem = invalidTagReason(tag);
    if (problem) invalidBatch(index, problem, { tag });
  };
  const editTags = (tags: readonly string[], change: Extract<MetadataChange, { kind: 'setTag' | 'removeTag' }>): string[] => {
    if (change.kind === 'removeTag') return tags.filter((t) => t !== change.tag);
    const prefix = change.replacingPrefix;
    const kept = prefix === undefined ? tags.filter((t) => t !== change.tag) : tags.filter((t) => !t.startsWith(prefix) && t !== change.tag);
    return [...kept, change.tag];
  };

  changes.forEach((change, index) => {
    switch (change.kind) {
      case 'createLv': {
        const problem = invalidNameReason(change.name, 'LV');
        if (problem) invalidBatch(index, problem, { lv: change.name });
        if (lvs.has(change.name)) invalidBatch(index, `LV ${vg.name}/${change.name} already exists`, { lv: change.name });
        if (change.ranges.length === 0) invalidBatch(index, `LV ${change.name} needs at least one extent`, { lv: change.name });
        (change.tags ?? []).forEach((tag) => checkTag(tag, index));
        const segments = withExtentErrors(index, () => appendSegments([], change.ranges));
        const extra: ConfigEntry[] = [
          { kind: 'assign', key: 'creation_time', value: configInt(identity.nowSeconds()) },
          { kind: 'assign', key: 'creation_host', value: configString(identity.hostname) },
        ];
        lvs.set(change.name, {
          name: change.name,
          uuid: identity.newUuid(),
          status: ['READ', 'WRITE', 'VISIBLE'],
          flags: [],
          activationSkip: change.activationSkip ?? false,
          tags: [...new Set(change.tags ?? [])],
          segments: toSegmentMetadata(coalesceSegments(segments)),
          extra,
        });
        break;
      }
      case 'removeLv':
        lvNamed(change.name, index);
        lvs.delete(change.name);
        break;
      case 'renameLv': {
        const lv = lvNamed(change.name, index);
        const problem = invalidNameReason(change.newName, 'LV');
        if (problem) invalidBatch(index, problem, { lv: change.newName });
        if (lvs.has(change.newName)) invalidBatch(index, `LV ${vg.name}/${change.newName} already exists`, { lv: change.newName });
        // Rebuilt rather than deleted and re-added, so the LV keeps its place in the metadata.
        const renamed = [...lvs.values()].map((other) => (other.name === lv.name ? { ...lv, name: change.newName } : other));
        lvs.clear();
        for (const other of renamed) lvs.set(other.name, other);
        break;
      }
      case 'setLvWritable': {
        const lv = lvNamed(change.lv, index);
        const others = lv.status.filter((flag) => flag !== 'WRITE');
        // lvm writes WRITE right after READ.
        const status = change.writable ? others.flatMap((flag) => (flag === 'READ' ? ['READ', 'WRITE'] : [flag])) : others;
        lvs.set(lv.name, { ...lv, status });
        break;
      }
      case 'appendRanges': {
        const lv = lvNamed(change.lv, index);
        replaceSegments(lv, withExtentErrors(index, () => appendSegments(editableLinear(lv, index), change.ranges)));
        break;
      }
      case 'moveRanges': {
        if (change.fromLv === change.toLv) invalidBatch(index, `cannot move extents from ${change.fromLv} to itself`);
        const from = lvNamed(change.fromLv, index);
        const to = lvNamed(change.toLv, index);
        replaceSegments(from, withExtentErrors(index, () => removeExtentsFromSegments(editableLinear(from, index), change.ranges)));
        replaceSegments(to, withExtentErrors(index, () => appendSegments(editableLinear(to, index), change.ranges)));
        break;
      }
      case 'releaseRanges': {
        const lv = lvNamed(change.lv, index);
        replaceSegments(lv, withExtentErrors(index, () => removeExtentsFromSegments(editableLinear(lv, index), change.ranges)));
        break;
      }
      case 'setTag':
      case 'removeTag': {
        checkTag(change.tag, index);
        if (change.lv === undefined) {
          vgTags = editTags(vgTags, change);
        } else {
          const lv = lvNamed(change.lv, index);
          lvs.set(lv.name, { ...lv, tags: editTags(lv.tags, change) });
        }
        break;
      }
      default: {
        const unknown: never = change;
        invalidBatch(index, `unknown change ${JSON.stringify(unknown)}`);
      }
    }
  });

  const next: VgMetadata = { ...vg, tags: vgTags, lvs: [...lvs.values()] };
  const errors = checkLayout(next).filter((f: Finding) => f.severity === 'error');
  if (errors.length > 0) {
    throw new CommitError(
      ErrorCode.invalidBatch,
      `the batch would leave ${vg.name} invalid: ${errors
        .slice(0, 5)
        .map((f) => f.message)
        .join('; ')}${errors.length > 5 ? ` (and ${errors.length - 5} more)` : ''}; nothing was written`,
      { findings: errors },
    );
  }
  return next;
}
