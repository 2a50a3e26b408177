// lvm's report columns, read from stock lvm's own output and printed back, with the
// cells of thin LVs that have unreplayed extents rewritten.
//
//   stock lvm, run with the caller's options plus
//     --separator <US> --aligned (unless the caller gave --separator without --aligned)
//     -o +lv_uuid,vg_name,vg_seqno,vg_tags       (hidden: which LV, VG and metadata a row shows)
//     headings always on                         (they name the columns; dropped again
//                                                 when the caller asked --noheadings)
//   -> cells exactly as lvm padded them; joined with the caller's separator (one space
//      by default) they are, byte for byte, what lvm prints for the caller's command.
//
// Rewriting a cell follows lvm's layout rules (libdm report), measured on lvm 2.03:
//   - every line starts with two spaces; cells are joined by the separator;
//   - aligned and buffered (the default): a column is as wide as its heading or its
//     widest value, whichever is wider, --noheadings or not; numbers and sizes are
//     right-aligned, the rest (and every heading) left-aligned;
//   - --unbuffered: each row on its own, a cell padded only to its column's heading
//     width; the heading line padded to the first row's values;
//   - --separator without --aligned: no padding at all.
// Only the columns thinlv rewrites are re-laid out; every other cell stays lvm's text.
//
// Segment reports (any segment column, e.g. vhd-util's `-o lv_name,lv_size,segtype,
// seg_count,seg_start,seg_size,devices`) list one row per segment. A thin LV's unreplayed
// extents become what the master's replay will commit: its last segment extended when they
// continue it, then one new row per new segment, its other cells copied from the LV's last
// row (a linear segment's type, stripes, tags).

import type { GrownThinLv } from './thinSizes.js';
import { formatSize, type SizeFormat } from './sizeUnits.js';
import type { LinearSegment } from '../extent/types.js';

/** Joins cells in the output thinlv asks lvm for: ASCII unit separator, never in a name, tag or path. */
export const CELL_SEPARATOR = '\u001f';
export const LINE_PREFIX = '  ';
/** Appended to the caller's fields, removed before printing. */
export const HIDDEN_FIELDS = ['lv_uuid', 'vg_name', 'vg_seqno', 'vg_tags'] as const;

export interface ReportLayout {
  /** Print the heading line (false with --noheadings). */
  readonly headings: boolean;
  /** lvm padded the cells (no --separator, or --aligned). */
  readonly aligned: boolean;
  /** False with --unbuffered. */
  readonly buffered: boolean;
  /** What joins cells in the output: --separator, or one space. */
  readonly separator: string;
}

export interface StockRow {
  /** The visible cells, as lvm padded them. */
  readonly cells: readonly string[];
  readonly lvUuid: string;
  readonly vgName: string;
  readonly seqno: number;
  readonly vgTags: readonly string[];
}

export interface StockReport {
  /** Heading cells as lvm padded them; undefined when lvm printed no rows at all. */
  readonly heading: readonly string[] | undefined;
  readonly rows: readonly StockRow[];
}

/** Stock lvm printed something this module cannot read: the report is not printed half-right. */
export class ReportFormatError extends Error {}

/** Reads the output of a report run as the header above describes. */
export function parseStockReport(stdout: string): StockReport {
  const lines = stdout.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const split = (line: string, index: number): string[] => {
    if (!line.startsWith(LINE_PREFIX)) throw new ReportFormatError(`line ${index + 1} of lvm's report does not start with two spaces: ${JSON.stringify(line)}`);
    const cells = line.slice(LINE_PREFIX.length).split(CELL_SEPARATOR);
    if (cells.length <= HIDDEN_FIELDS.length) throw new ReportFormatError(`line ${index + 1} of lvm's report has ${cells.length} cells`);
    return cells;
  };
  if (lines.length === 0) return { heading: undefined, rows: [] };
  const heading = split(lines[0]!, 0);
  const visible = heading.length - HIDDEN_FIELDS.length;
  const rows = lines.slice(1).map((line, index): StockRow => {
    const cells = split(line, index + 1);
    if (cells.length !== heading.length) throw new ReportFormatError(`line ${index + 2} of lvm's report has ${cells.length} cells, its heading ${heading.length}`);
    const [lvUuid, vgName, seqno, vgTags] = cells.slice(visible).map((c) => c.trim());
    if (!/^[0-9]+$/.test(seqno ?? '')) throw new ReportFormatError(`line ${index + 2} of lvm's report: VG seqno ${JSON.stringify(seqno)}`);
    return { cells: cells.slice(0, visible), lvUuid: lvUuid!, vgName: vgName!, seqno: Number(seqno), vgTags: vgTags === '' ? [] : vgTags!.split(',') };
  });
  return { heading: heading.slice(0, visible), rows };
}

/** The report's lines as lvm prints them for the caller's layout. */
export function printReport(heading: readonly string[] | undefined, rows: readonly (readonly string[])[], layout: ReportLayout): string {
  if (heading === undefined) return '';
  const lines = layout.headings ? [heading, ...rows] : rows;
  return lines.map((cells) => `${LINE_PREFIX}${cells.join(layout.separator)}\n`).join('');
}

// What thinlv rewrites, found by heading (lvm 2.03's headings; `lvs -o lv_all,seg_all`).

type ColumnKind = 'lvSize' | 'segCount' | 'segStart' | 'segSize' | 'devices' | 'peRanges' | 'leRanges' | 'segtype' | 'stripes';

const KIND_BY_HEADING: Readonly<Record<string, ColumnKind>> = {
  LSize: 'lvSize',
  '#Seg': 'segCount',
  Start: 'segStart',
  SSize: 'segSize',
  Devices: 'devices',
  'PE Ranges': 'peRanges',
  'LE Ranges': 'leRanges',
  Type: 'segtype',
  '#Str': 'stripes',
  '#DStr': 'stripes',
};
const RIGHT_ALIGNED: ReadonlySet<ColumnKind> = new Set(['lvSize', 'segCount', 'segStart', 'segSize', 'stripes']);

/** Headings of lvm's segment fields: any of them makes the report one row per segment. */
const SEGMENT_HEADINGS: ReadonlySet<string> = new Set([
  'Type', '#Str', '#DStr', 'RSize', '#Cpy', 'DOff', 'NOff', '#Par', 'Stripe', 'Region', 'Chunk', '#Thins', 'Discards', 'CMFmt',
  'CacheMode', 'Zero', 'TransId', 'ThId', 'Start', 'SSize', 'Seg Tags', 'PE Ranges', 'LE Ranges', 'Metadata LE Ranges', 'Devices',
  'Metadata Devs', 'Monitor', 'CachePolicy', 'CacheSettings',
]);

export interface PatchInput {
  readonly report: StockReport;
  readonly layout: ReportLayout;
  /** Units of the size cells (the caller's --units and --nosuffix). */
  readonly sizeFormat: SizeFormat;
  /** Thin LVs with unreplayed extents, by uuid, each with its VG's extent size. */
  readonly grown: ReadonlyMap<string, { readonly lv: GrownThinLv; readonly extentSizeBytes: number }>;
  /** Every LV's metadata segments and extent size by uuid (to tell `Start`/`SSize` in bytes from those in extents). */
  readonly metadataSegments: ReadonlyMap<string, { readonly segments: readonly LinearSegment[]; readonly extentSizeBytes: number }>;
  /** Whether the caller's -o names seg_start_pe / seg_size_pe: used only when the cells cannot tell. */
  readonly extentsHint: { readonly start: boolean; readonly size: boolean };
}

interface OutputRow {
  /** lvm's padded cells; a rewritten column's cell is replaced by its value below. */
  readonly cells: string[];
  /** Column -> value (unpadded) for the columns this row rewrites. */
  readonly values: Map<number, string>;
}

/** The report with thin LVs' cells rewritten, laid out as lvm would: heading and rows. */
export function patchReport(input: PatchInput): { heading: string[] | undefined; rows: string[][] } {
  const { report, layout } = input;
  if (report.heading === undefined) return { heading: undefined, rows: [] };
  const headingTexts = report.heading.map((h) => h.trimEnd());
  const kinds = headingTexts.map((h) => KIND_BY_HEADING[h]);
  const segmentMode = headingTexts.some((h) => SEGMENT_HEADINGS.has(h));
  const unpad = (cell: string, column: number): string => {
    if (!layout.aligned) return cell;
    const kind = kinds[column];
    return kind !== undefined && RIGHT_ALIGNED.has(kind) ? cell.trimStart() : cell.trimEnd();
  };
  const inExtents = segmentMode ? extentColumns(input, kinds, unpad) : new Map<number, boolean>();

  const rows: OutputRow[] = [];
  const seenRows = new Map<string, number>();
  report.rows.forEach((row, index) => {
    const grown = input.grown.get(row.lvUuid);
    const out: OutputRow = { cells: [...row.cells], values: new Map() };
    rows.push(out);
    if (grown === undefined) return;
    const { lv, extentSizeBytes } = grown;
    const size = (extents: number): string => formatSize(BigInt(extents) * BigInt(extentSizeBytes), input.sizeFormat);
    const segmentIndex = seenRows.get(row.lvUuid) ?? 0;
    seenRows.set(row.lvUuid, segmentIndex + 1);
    const lastMetadata = lv.metadataSegments.length - 1;
    const setLvColumns = (target: OutputRow): void => {
      kinds.forEach((kind, column) => {
        if (kind === 'lvSize') target.values.set(column, size(lv.extentCount));
        if (kind === 'segCount') target.values.set(column, String(lv.segments.length));
      });
    };
    setLvColumns(out);
    if (!segmentMode || segmentIndex !== lastMetadata) return;
    const isLastRowOfLv = !report.rows.slice(index + 1).some((r) => r.lvUuid === row.lvUuid);
    if (!isLastRowOfLv) {
      throw new ReportFormatError(`lvm's report shows LV ${lv.name} with more rows than its ${lv.metadataSegments.length} segments`);
    }
    setSegmentColumns(out, kinds, inExtents, lv.segments[lastMetadata]!, size);
    for (const segment of lv.segments.slice(lastMetadata + 1)) {
      const added: OutputRow = { cells: [...row.cells], values: new Map() };
      setLvColumns(added);
      setSegmentColumns(added, kinds, inExtents, segment, size);
      rows.push(added);
    }
  });
  for (const [uuid, count] of seenRows) {
    const lv = input.grown.get(uuid)!.lv;
    if (segmentMode && count !== lv.metadataSegments.length) {
      throw new ReportFormatError(`lvm's report shows ${count} of LV ${lv.name}'s ${lv.metadataSegments.length} segments (a --select on segments?): thinlv cannot tell where its unreplayed extents go`);
    }
  }
  return layOut(report.heading, headingTexts, rows, kinds, unpad, layout);
}

function setSegmentColumns(target: OutputRow, kinds: readonly (ColumnKind | undefined)[], inExtents: ReadonlyMap<number, boolean>, segment: LinearSegment, size: (extents: number) => string): void {
  const range = `${segment.pv}:${segment.firstExtent}-${segment.firstExtent + segment.extentCount - 1}`;
  kinds.forEach((kind, column) => {
    if (kind === 'segStart') target.values.set(column, inExtents.get(column) === true ? String(segment.logicalStart) : size(segment.logicalStart));
    if (kind === 'segSize') target.values.set(column, inExtents.get(column) === true ? String(segment.extentCount) : size(segment.extentCount));
    if (kind === 'devices') target.values.set(column, `${segment.pv}(${segment.firstExtent})`);
    if (kind === 'peRanges' || kind === 'leRanges') target.values.set(column, range);
    if (kind === 'segtype') target.values.set(column, 'linear');
    if (kind === 'stripes') target.values.set(column, '1');
  });
}

/**
 * For each `Start` and `SSize` column: true when it counts extents (seg_start_pe,
 * seg_size_pe), false when it is in units. Both share a heading, so the cells decide:
 * a row whose segment is known reads as one or the other.
 */
function extentColumns(input: PatchInput, kinds: readonly (ColumnKind | undefined)[], unpad: (cell: string, column: number) => string): Map<number, boolean> {
  const result = new Map<number, boolean>();
  kinds.forEach((kind, column) => {
    if (kind !== 'segStart' && kind !== 'segSize') return;
    const seen = new Map<string, number>();
    for (const row of input.report.rows) {
      const index = seen.get(row.lvUuid) ?? 0;
      seen.set(row.lvUuid, index + 1);
      const known = input.metadataSegments.get(row.lvUuid);
      const segment = known?.segments[index];
      if (known === undefined || segment === undefined) continue;
      const extentSizeBytes = known.extentSizeBytes;
      const extents = kind === 'segStart' ? segment.logicalStart : segment.extentCount;
      const asCount = String(extents);
      const asSize = formatSize(BigInt(extents) * BigInt(extentSizeBytes), input.sizeFormat);
      const value = unpad(row.cells[column]!, column);
      if (asCount === asSize || (value !== asCount && value !== asSize)) continue;
      result.set(column, value === asCount);
      return;
    }
    result.set(column, kind === 'segStart' ? input.extentsHint.start : input.extentsHint.size);
  });
  return result;
}

/** Pads every rewritten column as lvm would; other columns keep lvm's cells. */
function layOut(
  stockHeading: readonly string[],
  headingTexts: readonly string[],
  rows: readonly OutputRow[],
  kinds: readonly (ColumnKind | undefined)[],
  unpad: (cell: string, column: number) => string,
  layout: ReportLayout,
): { heading: string[]; rows: string[][] } {
  const heading = [...stockHeading];
  const cells = rows.map((row) => [...row.cells]);
  const rewritten = new Set(rows.flatMap((row) => [...row.values.keys()]));
  for (const column of rewritten) {
    const values = rows.map((row) => row.values.get(column) ?? unpad(row.cells[column]!, column));
    if (!layout.aligned) {
      values.forEach((value, index) => (cells[index]![column] = value));
      continue;
    }
    const kind = kinds[column];
    const pad = (value: string, width: number): string => (kind !== undefined && RIGHT_ALIGNED.has(kind) ? value.padStart(width) : value.padEnd(width));
    const headingWidth = headingTexts[column]!.length;
    const baseWidth = layout.buffered ? bufferedBaseWidth(rows, column, headingWidth, unpad) : unbufferedBaseWidth(rows, column, headingWidth, unpad);
    if (layout.buffered) {
      const width = Math.max(baseWidth, ...values.map((v) => v.length));
      values.forEach((value, index) => (cells[index]![column] = pad(value, width)));
      heading[column] = headingTexts[column]!.padEnd(width);
    } else {
      values.forEach((value, index) => (cells[index]![column] = pad(value, Math.max(baseWidth, value.length))));
      heading[column] = headingTexts[column]!.padEnd(Math.max(baseWidth, values[0]?.length ?? 0));
    }
  }
  return { heading, rows: cells };
}

// lvm pads a column to its field's own minimum width where that exceeds the heading's
// (the LV name's is 4, wider than "LV"). thinlv cannot ask for it, but a cell padded past
// both its heading and every value shows it; otherwise the heading's width stands.

function bufferedBaseWidth(rows: readonly OutputRow[], column: number, headingWidth: number, unpad: (cell: string, column: number) => string): number {
  const stockCells = rows.map((row) => row.cells[column]!);
  const stockWidth = Math.max(0, ...stockCells.map((cell) => cell.length));
  const widestValue = Math.max(0, ...stockCells.map((cell) => unpad(cell, column).length));
  return stockWidth > Math.max(headingWidth, widestValue) ? stockWidth : headingWidth;
}

function unbufferedBaseWidth(rows: readonly OutputRow[], column: number, headingWidth: number, unpad: (cell: string, column: number) => string): number {
  let width = headingWidth;
  for (const row of rows) {
    const cell = row.cells[column]!;
    if (cell.length > Math.max(headingWidth, unpad(cell, column).length)) width = Math.max(width, cell.length);
  }
  return width;
}
