// The VG metadata text that `vgcfgbackup` writes and `vgcfgrestore` reads, to
// and from VgMetadata. Keys thinlv interprets become typed fields; every other
// entry is kept in `extra`/`header` in file order and printed back verbatim, so
// a commit never drops what LVM (or a newer LVM) wrote.
//
//   <header entries>            contents, version, description, creation_*
//   <vg> {
//     id, seqno, status, flags, tags, extent_size, <extra>
//     physical_volumes { pv0 { id, device, status, flags, tags, dev_size, pe_start, pe_count, <extra> } }
//     logical_volumes  { <lv> { id, status, flags, tags, segment_count,
//                                segment1 { start_extent, extent_count, type, stripe_count, stripes, <extra> } } }
//   }

import { ErrorCode, ThinlvError } from '../errors.js';
import { parseConfigLines } from './configLines.js';
import { wholeText } from './textLines.js';
import { ownLvLayout, StringTable } from './ownStrings.js';
import {
  type ConfigEntry,
  type ConfigValue,
  configInt,
  configString,
  configStrings,
  parseConfig,
  printConfig,
} from './configTree.js';
import type { LvLayout, LvMetadata, PvMetadata, SegmentMetadata, StripeArea, VgMetadata } from '../metadata/vgModel.js';

const ACTIVATION_SKIP = 'ACTIVATION_SKIP';

function fail(message: string, data: Record<string, unknown> = {}): never {
  throw new ThinlvError(ErrorCode.metadataParse, `LVM metadata text: ${message}`, data);
}

/** Reads a section's entries by key, remembering which ones were taken so the rest can go to `extra`. */
class SectionReader {
  private readonly taken = new Set<string>();
  constructor(
    private readonly entries: readonly ConfigEntry[],
    private readonly where: string,
  ) {}

  private find(key: string): ConfigEntry | undefined {
    const found = this.entries.filter((e) => (e.kind === 'assign' ? e.key : e.name) === key);
    if (found.length > 1) fail(`${this.where}: "${key}" appears ${found.length} times`);
    if (found[0] !== undefined) this.taken.add(key);
    return found[0];
  }

  private value(key: string): ConfigValue | undefined {
    const entry = this.find(key);
    if (entry === undefined) return undefined;
    if (entry.kind !== 'assign') fail(`${this.where}: "${key}" is a section, expected a value`);
    return entry.value;
  }

  int(key: string): number {
    const value = this.value(key);
    if (value === undefined) fail(`${this.where}: "${key}" is missing`);
    if (value.kind !== 'int') fail(`${this.where}: "${key}" is not an integer`);
    const number = Number(value.text);
    if (!Number.isSafeInteger(number)) fail(`${this.where}: "${key}" = ${value.text} is out of range`);
    return number;
  }

  string(key: string): string {
    const value = this.value(key);
    if (value === undefined) fail(`${this.where}: "${key}" is missing`);
    if (value.kind !== 'string') fail(`${this.where}: "${key}" is not a string`);
    return value.value;
  }

  /** An array of strings; a missing key is an empty list (LVM omits empty `tags`). */
  strings(key: string): string[] {
    const value = this.value(key);
    if (value === undefined) return [];
    if (value.kind !== 'array') fail(`${this.where}: "${key}" is not an array`);
    return value.items.map((item) => {
      if (item.kind !== 'string') fail(`${this.where}: "${key}" holds a non-string`);
      return item.value;
    });
  }

  rawValue(key: string): ConfigValue | undefined {
    return this.value(key);
  }

  section(key: string): ConfigEntry[] | undefined {
    const entry = this.find(key);
    if (entry === undefined) return undefined;
    if (entry.kind !== 'section') fail(`${this.where}: "${key}" is a value, expected a section`);
    return [...entry.entries];
  }

  rest(): ConfigEntry[] {
    return this.entries.filter((e) => !this.taken.has(e.kind === 'assign' ? e.key : e.name));
  }
}

function sectionsOf(entries: readonly ConfigEntry[], where: string): { name: string; entries: readonly ConfigEntry[] }[] {
  return entries.map((entry) => {
    if (entry.kind !== 'section') fail(`${where}: unexpected value "${entry.key}"`);
    return entry;
  });
}

function parseSegment(name: string, entries: readonly ConfigEntry[], pvByKey: ReadonlyMap<string, string>, where: string): SegmentMetadata {
  const r = new SectionReader(entries, `${where} ${name}`);
  const logicalStart = r.int('start_extent');
  const extentCount = r.int('extent_count');
  if (logicalStart < 0) fail(`${where} ${name}: start_extent ${logicalStart} is negative`);
  if (extentCount < 1) fail(`${where} ${name}: extent_count ${extentCount} is not positive`);
  const type = r.string('type');
  let stripes: StripeArea[] = [];
  if (type === 'striped') {
    const stripeCount = r.int('stripe_count');
    const raw = r.rawValue('stripes');
    if (raw === undefined || raw.kind !== 'array') fail(`${where} ${name}: "stripes" is missing or not an array`);
    if (raw.items.length !== stripeCount * 2) fail(`${where} ${name}: stripe_count ${stripeCount} does not match stripes`);
    for (let i = 0; i < raw.items.length; i += 2) {
      const key = raw.items[i];
      const first = raw.items[i + 1];
      if (key?.kind !== 'string' || first?.kind !== 'int') fail(`${where} ${name}: stripes must be "pvN", extent pairs`);
      const pv = pvByKey.get(key.value);
      if (pv === undefined) fail(`${where} ${name}: stripe on unknown PV "${key.value}"`);
      const firstExtent = Number(first.text);
      if (!Number.isSafeInteger(firstExtent) || firstExtent < 0) fail(`${where} ${name}: bad stripe start ${first.text}`);
      stripes.push({ pv, firstExtent });
    }
    if (stripeCount < 1 || extentCount % stripeCount !== 0) fail(`${where} ${name}: ${extentCount} extents in ${stripeCount} stripes`);
  } else {
    stripes = [];
  }
  return { logicalStart, extentCount, type, stripes, extra: r.rest() };
}

function parsePv(key: string, entries: readonly ConfigEntry[]): PvMetadata {
  const r = new SectionReader(entries, `physical volume ${key}`);
  return {
    key,
    uuid: r.string('id'),
    device: r.string('device'),
    status: r.strings('status'),
    flags: r.strings('flags'),
    tags: r.strings('tags'),
    devSizeSectors: r.int('dev_size'),
    peStartSectors: r.int('pe_start'),
    peCount: r.int('pe_count'),
    extra: r.rest(),
  };
}

function parseLv(name: string, entries: readonly ConfigEntry[], pvByKey: ReadonlyMap<string, string>): LvMetadata {
  const where = `logical volume ${name}`;
  const r = new SectionReader(entries, where);
  const uuid = r.string('id');
  const status = r.strings('status');
  const allFlags = r.strings('flags');
  const tags = r.strings('tags');
  const segmentCount = r.int('segment_count');
  const segments: SegmentMetadata[] = [];
  for (let i = 1; i <= segmentCount; i++) {
    const body = r.section(`segment${i}`);
    if (body === undefined) fail(`${where}: segment${i} of ${segmentCount} is missing`);
    segments.push(parseSegment(`segment${i}`, body, pvByKey, where));
  }
  const extra = r.rest();
  const stray = extra.find((e) => e.kind === 'section' && /^segment[0-9]+$/.test(e.name));
  if (stray !== undefined) fail(`${where}: segment_count is ${segmentCount} but there are more segments`);
  return {
    name,
    uuid,
    status,
    flags: allFlags.filter((flag) => flag !== ACTIVATION_SKIP),
    activationSkip: allFlags.includes(ACTIVATION_SKIP),
    tags,
    segments,
    extra,
  };
}

/** Parses vgcfgbackup output. Throws METADATA_PARSE naming the line or object at fault. */
export function parseVgMetadata(text: string): VgMetadata {
  return vgFromTree(parseConfig(text), (lvEntries, pvByKey) => sectionsOf(lvEntries, 'logical_volumes').map((s) => parseLv(s.name, s.entries, pvByKey)));
}

/**
 * The VG of a parsed text, its LVs read by `readLvs` from the entries of `logical_volumes`
 * and the PVs' devices by key, after every check of the VG and its PVs.
 */
function vgFromTree<L>(top: readonly ConfigEntry[], readLvs: (lvEntries: readonly ConfigEntry[], pvByKey: ReadonlyMap<string, string>) => L[]): Omit<VgMetadata, 'lvs'> & { lvs: L[] } {
  const vgSections = top.filter((e) => e.kind === 'section');
  if (vgSections.length !== 1) fail(`expected exactly one volume group section, found ${vgSections.length}`);
  const vgEntry = vgSections[0]!;
  if (vgEntry.kind !== 'section') fail('unreachable');
  const header = top.filter((e) => e !== vgEntry);
  const r = new SectionReader(vgEntry.entries, `volume group ${vgEntry.name}`);
  const uuid = r.string('id');
  const seqno = r.int('seqno');
  const status = r.strings('status');
  const flags = r.strings('flags');
  const tags = r.strings('tags');
  const extentSizeSectors = r.int('extent_size');
  const pvEntries = r.section('physical_volumes') ?? [];
  const lvEntries = r.section('logical_volumes') ?? [];
  const extra = r.rest();

  const pvs = sectionsOf(pvEntries, 'physical_volumes').map((s) => parsePv(s.name, s.entries));
  if (new Set(pvs.map((pv) => pv.key)).size !== pvs.length) fail('two PV sections have the same name');
  const pvByKey = new Map(pvs.map((pv) => [pv.key, pv.device]));
  if (new Set(pvs.map((pv) => pv.device)).size !== pvs.length) fail('two PVs claim the same device');
  const lvs = readLvs(lvEntries, pvByKey);

  return { header, name: vgEntry.name, uuid, seqno, status, flags, tags, extentSizeSectors, extra, pvs, lvs };
}

/**
 * A VG's metadata less what only a commit needs (the LVs' status, their flags but
 * ACTIVATION_SKIP, and the entries thinlv does not interpret): what a report is made of
 * (diskMetadata.ts).
 */
export interface VgSummary extends Omit<VgMetadata, 'lvs'> {
  readonly lvs: readonly LvLayout[];
}

/** `vg` less what a summary leaves out. */
export function summaryOf(vg: VgMetadata): VgSummary {
  const strings = new StringTable();
  return { ...vg, lvs: vg.lvs.map((lv) => ownLvLayout(lv, strings)) };
}

/**
 * What a reader keeps of each LV of a summary, given the text's PVs (read before any LV):
 * the LV as the summary gives it, or what the reader makes of it at once (a report's LV,
 * one the reader holds already: diskMetadata.ts). Called for every LV as it is read, so
 * what it returns, not the LV read, is what the parse holds until it ends.
 */
export type LvKeeper = (pvs: readonly PvMetadata[]) => (lv: LvLayout) => LvLayout;

/**
 * summaryOf(parseVgMetadata(text)), each LV passed through `keepLv`, or the error
 * parseVgMetadata throws, without a tree or model of every LV at once: at 10,000 LVs the
 * tree is 17 MB and the model 13 more, which set a host daemon's peak memory (issue 14). In
 * LVM's layout each LV's section becomes its layout as soon as it ends
 * (parseVgSummaryLines); anything else goes to parseVgMetadata. The text may be its UTF-8
 * bytes as read, decoded a piece at a time (textLines.ts), never whole but for
 * parseVgMetadata.
 */
export function parseVgSummary(text: string | Uint8Array, keepLv?: LvKeeper): VgSummary {
  const lines = parseVgSummaryLines(text, keepLv);
  if (lines !== undefined) return lines;
  const summary = summaryOf(parseVgMetadata(wholeText(text)));
  if (keepLv === undefined) return summary;
  const keep = keepLv(summary.pvs);
  return { ...summary, lvs: summary.lvs.map((lv) => keep(lv)) };
}

/**
 * Lines a summary's parse shares (configLines.ts): the lines every LV repeats (status,
 * flags, a host's tags, segment fields) are among the first read; past them the table
 * would only keep unique lines (ids, stripes) alive to the end. Measured on 10,000 LVs: the
 * peak of a read 11 MB lower than with the default table.
 */
const SUMMARY_SHARED_LINES = 1024;

/** Why the fast path gives up; never seen outside it. */
class NotInLvmLayout extends Error {}

/**
 * The fast path of parseVgSummary: the line parser (configLines.ts) hands over each LV
 * section as it ends, and parseLv, the one parseVgMetadata uses, reads it at once against
 * the PVs read before it (LVM writes physical_volumes first). The rest of the tree (the VG
 * section with logical_volumes emptied) then goes through the same checks as in
 * parseVgMetadata, which must find the PVs the LVs were read against. Undefined, for
 * parseVgMetadata to answer, on text not in LVM's layout, LVs before their PVs, or any
 * error: so the answer is always parseVgMetadata's, and so is every error message.
 * Exported for the tests that compare the two.
 */
export function parseVgSummaryLines(text: string | Uint8Array, keepLv?: LvKeeper): VgSummary | undefined {
  const lvs: LvLayout[] = [];
  const strings = new StringTable();
  let pvByKey: ReadonlyMap<string, string> | undefined;
  let keep: (lv: LvLayout) => LvLayout = (lv) => lv;
  const onSectionEnd = (parents: readonly string[], name: string, entries: ConfigEntry[]): boolean => {
    if (parents.length === 1 && name === 'physical_volumes') {
      const pvs = sectionsOf(entries, name).map((s) => parsePv(s.name, s.entries));
      pvByKey = new Map(pvs.map((pv) => [pv.key, pv.device]));
      if (keepLv !== undefined) keep = keepLv(pvs);
      return false;
    }
    if (parents.length !== 2 || parents[1] !== 'logical_volumes') return false;
    if (pvByKey === undefined) throw new NotInLvmLayout('an LV comes before the PVs');
    lvs.push(keep(ownLvLayout(parseLv(name, entries, pvByKey), strings)));
    return true;
  };
  try {
    const top = parseConfigLines(text, { onSectionEnd, maxSharedLines: SUMMARY_SHARED_LINES });
    if (top === undefined) return undefined;
    return vgFromTree(top, (lvEntries, finalPvByKey) => {
      if (lvEntries.length > 0 || !sameMap(finalPvByKey, pvByKey)) throw new NotInLvmLayout('logical_volumes holds more than LVs, or other PVs');
      return lvs;
    });
  } catch {
    return undefined;
  }
}

function sameMap(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string> | undefined): boolean {
  return b !== undefined && a.size === b.size && [...a].every(([key, value]) => b.get(key) === value);
}

const assign = (key: string, value: ConfigValue): ConfigEntry => ({ kind: 'assign', key, value });
const section = (name: string, entries: ConfigEntry[]): ConfigEntry => ({ kind: 'section', name, entries });

function printSegment(index: number, segment: SegmentMetadata, pvKeyByDevice: ReadonlyMap<string, string>): ConfigEntry {
  const entries: ConfigEntry[] = [
    assign('start_extent', configInt(segment.logicalStart)),
    assign('extent_count', configInt(segment.extentCount)),
    assign('type', configString(segment.type)),
  ];
  if (segment.type === 'striped') {
    entries.push(assign('stripe_count', configInt(segment.stripes.length)));
    entries.push(
      assign('stripes', {
        kind: 'array',
        items: segment.stripes.flatMap((stripe) => {
          const key = pvKeyByDevice.get(stripe.pv);
          if (key === undefined) fail(`segment refers to unknown PV ${stripe.pv}`);
          return [configString(key), configInt(stripe.firstExtent)];
        }),
      }),
    );
  }
  return section(`segment${index + 1}`, [...entries, ...segment.extra]);
}

/** Prints VgMetadata as text vgcfgrestore accepts; parseVgMetadata(printVgMetadata(m)) deep-equals m. */
export function printVgMetadata(vg: VgMetadata): string {
  const pvKeyByDevice = new Map(vg.pvs.map((pv) => [pv.device, pv.key]));
  const withTags = (tags: readonly string[]): ConfigEntry[] => (tags.length > 0 ? [assign('tags', configStrings(tags))] : []);
  const pvs = vg.pvs.map((pv) =>
    section(pv.key, [
      assign('id', configString(pv.uuid)),
      assign('device', configString(pv.device)),
      assign('status', configStrings(pv.status)),
      assign('flags', configStrings(pv.flags)),
      ...withTags(pv.tags),
      assign('dev_size', configInt(pv.devSizeSectors)),
      assign('pe_start', configInt(pv.peStartSectors)),
      assign('pe_count', configInt(pv.peCount)),
      ...pv.extra,
    ]),
  );
  const lvs = vg.lvs.map((lv) =>
    section(lv.name, [
      assign('id', configString(lv.uuid)),
      assign('status', configStrings(lv.status)),
      assign('flags', configStrings(lv.activationSkip ? [...lv.flags, ACTIVATION_SKIP] : lv.flags)),
      ...withTags(lv.tags),
      ...lv.extra,
      assign('segment_count', configInt(lv.segments.length)),
      ...lv.segments.map((segment, index) => printSegment(index, segment, pvKeyByDevice)),
    ]),
  );
  const vgSection = section(vg.name, [
    assign('id', configString(vg.uuid)),
    assign('seqno', configInt(vg.seqno)),
    assign('status', configStrings(vg.status)),
    assign('flags', configStrings(vg.flags)),
    ...withTags(vg.tags),
    assign('extent_size', configInt(vg.extentSizeSectors)),
    ...vg.extra,
    section('physical_volumes', pvs),
    section('logical_volumes', lvs),
  ]);
  return printConfig([...vg.header, vgSection]);
}
