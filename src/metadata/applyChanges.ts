// Pure planning of a metadata commit: a VG's metadata plus a list of changes
// gives the next metadata, or an INVALID_BATCH error that names the first bad
// change. No I/O: the commit path (src/lvm/commitBatch.ts) runs it twice, once
// on the caller's model before any lvm call and once on the model re-read
// under the VG lock, and writes the result only when both agree it is valid.

import { CommitError, ErrorCode } from '../errors.js';
import { assertPhysicalRange } from '../extent/argumentChecks.js';
import { ExtentError } from '../extent/extentErrors.js';
import { appendSegments, assertValidSegments, coalesceSegments, removeExtentsFromSegments } from '../extent/segments.js';
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

/** An LV's extents as ranges sorted by PV and first extent, for isHeld. */
function sortedRanges(segments: readonly LinearSegment[]): PhysicalRange[] {
  return segments
    .map((s) => ({ pv: s.pv, firstExtent: s.firstExtent, extentCount: s.extentCount }))
    .sort((a, b) => (a.pv < b.pv ? -1 : a.pv > b.pv ? 1 : a.firstExtent - b.firstExtent));
}

/** Whether `range` lies within one of `held` (sorted, disjoint): a binary search, not a pass over the LV. */
function isHeld(held: readonly PhysicalRange[], range: PhysicalRange): boolean {
  let low = 0;
  let high = held.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const candidate = held[middle]!;
    const before = candidate.pv < range.pv || (candidate.pv === range.pv && candidate.firstExtent <= range.firstExtent);
    if (before) low = middle + 1;
    else high = middle - 1;
  }
  const holder = held[high];
  return holder !== undefined && holder.pv === range.pv && range.firstExtent + range.extentCount <= holder.firstExtent + holder.extentCount;
}

/** The LVs a change reads or writes, other than the source of a move. */
function lvsTouched(change: MetadataChange): string[] {
  switch (change.kind) {
    case 'createLv':
    case 'removeLv':
      return [change.name];
    case 'renameLv':
      return [change.name, change.newName];
    case 'moveRanges':
      return [change.toLv];
    case 'setTag':
    case 'removeTag':
      return change.lv === undefined ? [] : [change.lv];
    default:
      return [change.lv];
  }
}

/**
 * `edit` applied to `segments` once, with the ranges of every change in `list`. When that
 * is refused, the changes are applied one at a time, to name the change that fails (its
 * index in the batch) rather than the batch.
 */
function inOneGo(
  segments: readonly LinearSegment[],
  list: readonly { readonly index: number; readonly ranges: readonly PhysicalRange[] }[],
  edit: (segments: readonly LinearSegment[], ranges: readonly PhysicalRange[]) => LinearSegment[],
): LinearSegment[] {
  try {
    return edit(segments, list.flatMap((change) => change.ranges));
  } catch (error) {
    if (!(error instanceof ExtentError)) throw error;
    let current = segments;
    for (const change of list) current = withExtentErrors(change.index, () => edit(current, change.ranges));
    throw error;
  }
}

type ReplaceSegments = (lv: LvMetadata, segments: readonly LinearSegment[]) => void;

/**
 * Changes of one kind held back per LV and applied to it in one go (inOneGo) when flushed:
 * `ranges` is what the subclass checks each change against as it comes, `changes` the
 * changes kept, in batch order.
 */
abstract class PendingEdits {
  protected readonly pending = new Map<string, { ranges: PhysicalRange[]; changes: { index: number; ranges: readonly PhysicalRange[] }[] }>();

  constructor(
    protected readonly lvs: Map<string, LvMetadata>,
    protected readonly replaceSegments: ReplaceSegments,
    private readonly edit: (segments: readonly LinearSegment[], ranges: readonly PhysicalRange[]) => LinearSegment[],
  ) {}

  flush(name: string): void {
    const list = this.pending.get(name)?.changes;
    if (list === undefined) return;
    this.pending.delete(name);
    if (list.length === 0) return;
    const lv = this.lvs.get(name)!;
    this.replaceSegments(lv, inOneGo(editableLinear(lv, list[0]!.index), list, this.edit));
  }

  flushAll(): void {
    for (const name of [...this.pending.keys()]) this.flush(name);
  }
}

/**
 * Extents moved out of LVs, taken out of each LV once. Replaying a pass is one move per
 * journal record out of the host's free LV, and taking each out at once re-derived the
 * whole pool for every record: N records against a pool of S segments cost N x S (most
 * of a 10,000-record pass at 10,000 LVs). Removing the union at once gives the same
 * segments, since the extents left keep their logical order either way. An error is
 * reported at the change that makes it, as one at a time would.
 */
class PendingRemovals extends PendingEdits {
  constructor(lvs: Map<string, LvMetadata>, replaceSegments: ReplaceSegments) {
    super(lvs, replaceSegments, removeExtentsFromSegments);
  }

  add(lv: LvMetadata, index: number, ranges: readonly PhysicalRange[]): void {
    let entry = this.pending.get(lv.name);
    if (entry === undefined) {
      entry = { ranges: sortedRanges(editableLinear(lv, index)), changes: [] };
      this.pending.set(lv.name, entry);
    }
    const held = entry.ranges;
    if (ranges.every((range) => isHeld(held, range))) {
      entry.changes.push({ index, ranges });
      return;
    }
    // Not within one segment each (or not held at all): done now, one at a time, on the LV as
    // the earlier moves left it, so it succeeds or is refused exactly as it always was.
    this.flush(lv.name);
    const current = this.lvs.get(lv.name)!;
    this.replaceSegments(current, withExtentErrors(index, () => removeExtentsFromSegments(editableLinear(current, index), ranges)));
  }
}

/**
 * Adds `ranges` to `mapped` (sorted, disjoint ranges an LV maps) while each is well formed
 * and maps no extent already there; false at the first that is not (`mapped` is then
 * spoilt and must be dropped). A range that continues the one before it on its PV is merged
 * into it, so an LV growing at its tail keeps a short list and the insertion costs nothing.
 */
function addDisjoint(mapped: PhysicalRange[], ranges: readonly PhysicalRange[]): boolean {
  for (const range of ranges) {
    try {
      assertPhysicalRange(range, 'range');
    } catch (error) {
      if (error instanceof ExtentError) return false;
      throw error;
    }
    // The first entry after `range` in (pv, firstExtent) order.
    let low = 0;
    let high = mapped.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      const candidate = mapped[middle]!;
      if (candidate.pv < range.pv || (candidate.pv === range.pv && candidate.firstExtent <= range.firstExtent)) low = middle + 1;
      else high = middle;
    }
    const before = mapped[low - 1];
    const after = mapped[low];
    const end = range.firstExtent + range.extentCount;
    if (before !== undefined && before.pv === range.pv && before.firstExtent + before.extentCount > range.firstExtent) return false;
    if (after !== undefined && after.pv === range.pv && after.firstExtent < end) return false;
    if (before !== undefined && before.pv === range.pv && before.firstExtent + before.extentCount === range.firstExtent) {
      mapped[low - 1] = { pv: before.pv, firstExtent: before.firstExtent, extentCount: before.extentCount + range.extentCount };
    } else {
      mapped.splice(low, 0, { pv: range.pv, firstExtent: range.firstExtent, extentCount: range.extentCount });
    }
  }
  return true;
}

/**
 * Extents appended to LVs, appended to each LV once. Replaying a pass appends each journal
 * record's ranges to its LV, and appending them one record at a time validated and copied
 * the LV's whole segment list for each: N records onto an LV of S segments cost N x S. Each
 * range is still checked as it comes, against what the LV maps and what the batch appended
 * before it (a binary search), so a range mapped twice is refused at the change that names
 * it, with the error it always had; the flush appends them all at once, and appendSegments
 * checks the whole result again.
 */
class PendingAppends extends PendingEdits {
  constructor(lvs: Map<string, LvMetadata>, replaceSegments: ReplaceSegments) {
    // The checks as they came should have refused anything the flush refuses (a pair assertion).
    super(lvs, replaceSegments, appendSegments);
  }

  add(lv: LvMetadata, index: number, ranges: readonly PhysicalRange[]): void {
    let entry = this.pending.get(lv.name);
    if (entry === undefined) {
      const segments = editableLinear(lv, index);
      // As appendSegments does first: an LV whose own segments are wrong is refused at its first append.
      withExtentErrors(index, () => assertValidSegments(segments, 'lvSegments'));
      entry = { ranges: sortedRanges(segments), changes: [] };
      this.pending.set(lv.name, entry);
    }
    if (addDisjoint(entry.ranges, ranges)) {
      entry.changes.push({ index, ranges });
      return;
    }
    // A malformed range or one mapped twice: appended now, on the LV as the earlier appends
    // left it, so it is refused exactly as it always was.
    this.flush(lv.name);
    const current = this.lvs.get(lv.name)!;
    this.replaceSegments(current, withExtentErrors(index, () => appendSegments(editableLinear(current, index), ranges)));
  }
}

/** The LVs whose pending appends a change must see done: all it touches, but an append's own target. */
function appendsFlushedBy(change: MetadataChange): string[] {
  if (change.kind === 'appendRanges') return [];
  if (change.kind === 'moveRanges') return [change.fromLv];
  return lvsTouched(change);
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

  const removals = new PendingRemovals(lvs, replaceSegments);
  const appends = new PendingAppends(lvs, replaceSegments);
  changes.forEach((change, index) => {
    // Any change but a move out of it sees an LV with its pending removals done, and any but
    // an append to it with its pending appends done: an LV never has both pending.
    for (const name of lvsTouched(change)) removals.flush(name);
    for (const name of appendsFlushedBy(change)) appends.flush(name);
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
        appends.add(lvNamed(change.lv, index), index, change.ranges);
        break;
      }
      case 'moveRanges': {
        if (change.fromLv === change.toLv) invalidBatch(index, `cannot move extents from ${change.fromLv} to itself`);
        const from = lvNamed(change.fromLv, index);
        const to = lvNamed(change.toLv, index);
        removals.add(from, index, change.ranges);
        appends.add(to, index, change.ranges);
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

  removals.flushAll();
  appends.flushAll();
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
