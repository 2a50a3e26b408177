// `lvs`, as lvm prints it, with the sizes of thin LVs including the allocations hosts have
// journaled and the master has not replayed yet (every host's, read from the LUN).
//
// Why run stock lvm underneath rather than compute the columns: byte-for-byte fidelity.
// lvm's report has dozens of fields, each with its own formatting (attr letters that
// depend on device-mapper state, percentages, times, units with "<" rounding), headings,
// sort orders, selection, and column widths set by the longest value or the field's own
// minimum; recomputing them would be a second, drifting copy of lvm. Stock `lvm lvs
// --readonly` prints all of it; thinlv asks it for cells it can split (see
// ../reportColumns.ts), and rewrites only the size cells of thin LVs with unreplayed
// extents, re-padding just those columns. A VG with nothing unreplayed prints exactly
// lvm's bytes. The cost: one `lvm lvs`, plus for a thinlv VG one `lvm fullreport` and a
// read of each host's journal, run at the same time when the command names the VG.
//
// Consistency: the report carries each VG's seqno (a hidden column); the thin view was
// read at some seqno too. When they differ the master committed in between, and both
// are read again (up to MAX_READS times), so an allocation is never counted twice or lost.

import { ThinlvError } from '../../errors.js';
import type { CommandContext } from '../../cli/context.js';
import { COMMON_OPTIONS, hasOption, lastValue, LVM_EXIT, LvmUsageError, lvmArgsFor, parseLvmArgs, REPORT_OPTIONS, valuesOf, vgNamesIn, type ParsedLvmArgs } from '../lvmArgs.js';
import { CELL_SEPARATOR, HIDDEN_FIELDS, parseStockReport, patchReport, printReport, ReportFormatError, type ReportLayout, type StockReport } from '../reportColumns.js';
import { isUnitLetter, type SizeFormat } from '../sizeUnits.js';
import { compatContext, readonlyUnlessGiven, reportCompatError, RUNNER_OPTIONS, runStock } from '../stockLvm.js';
import type { readThinView as ReadThinViewFn, ThinView } from '../thinSizes.js';

type ReadThinView = typeof ReadThinViewFn;

const COMMAND = 'lvs';
const OPTIONS = [...REPORT_OPTIONS, ...COMMON_OPTIONS];
/** Reads of the report and thin view while the master keeps committing between them. */
export const MAX_READS = 3;
/** lvm's default `--units` (lvm.conf global/units). */
const DEFAULT_UNIT = 'r';
const FORMAT_TAG = 'thinlv_format=';
/** Options that only print lvm's help or version: passed to lvm as they are. */
const HELP_OPTIONS = ['help', 'longhelp', 'version'];

export async function run(args: readonly string[]): Promise<number> {
  let parsed: ParsedLvmArgs;
  try {
    parsed = parseLvmArgs(COMMAND, args, OPTIONS);
    refuseWhatThinlvCannotPrint(parsed);
  } catch (error) {
    if (!(error instanceof LvmUsageError)) throw error;
    process.stderr.write(error.stderr);
    return LVM_EXIT.invalidCommandLine;
  }
  try {
    const context = await compatContext(parsed);
    if (HELP_OPTIONS.some((name) => hasOption(parsed, name))) return passThrough(context, parsed);
    return await report(context, parsed);
  } catch (error) {
    return reportCompatError(COMMAND, error);
  }
}

/** `--units` thinlv cannot print, and report formats other than lvm's columns: exit 3 as lvm does for bad input. */
function refuseWhatThinlvCannotPrint(parsed: ParsedLvmArgs): void {
  const units = lastValue(parsed, 'units');
  if (units !== undefined && !isUnitLetter(units)) {
    throw new LvmUsageError(
      /^[0-9]/.test(units)
        ? `  Units with a number (--units ${units}) are not supported by thinlv's lvs; use one of hHrRbBsSkKmMgGtTpPeE.\n`
        : `  Invalid units specification\n  Run \`lvs --help' for more information.\n`,
    );
  }
  const format = lastValue(parsed, 'reportformat');
  if (format !== undefined && format !== 'basic') {
    throw new LvmUsageError(`  --reportformat ${format} is not supported by thinlv's lvs (only basic, lvm's columns).\n`);
  }
}

async function passThrough(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const stock = await runStock(context, COMMAND, lvmArgsFor(parsed, RUNNER_OPTIONS));
  process.stdout.write(stock.stdout);
  process.stderr.write(stock.stderr);
  return stock.exitCode;
}

function layoutOf(parsed: ParsedLvmArgs): ReportLayout {
  const separator = lastValue(parsed, 'separator');
  return {
    headings: !hasOption(parsed, 'noheadings'),
    aligned: separator === undefined || hasOption(parsed, 'aligned'),
    buffered: !hasOption(parsed, 'unbuffered'),
    separator: separator ?? ' ',
  };
}

/** The caller's command with thinlv's separator, headings and hidden fields. */
function stockArgs(parsed: ParsedLvmArgs, layout: ReportLayout): string[] {
  return lvmArgsFor(parsed, [...RUNNER_OPTIONS, 'separator', 'aligned', 'noheadings'], [
    ...readonlyUnlessGiven(parsed),
    '--separator', CELL_SEPARATOR,
    ...(layout.aligned ? ['--aligned'] : []),
    '--options', `+${HIDDEN_FIELDS.join(',')}`,
  ]);
}

async function report(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const layout = layoutOf(parsed);
  // lvm first: it is the longest step, and the thin view's modules load while it runs.
  let stockRun = runStock(context, COMMAND, stockArgs(parsed, layout));
  const { readThinView } = await import('../thinSizes.js');
  // Started at once for the VGs the command names; a VG that is not thinlv's, or not there, costs one read.
  let early = new Map(vgNamesIn(parsed.positionals).map((vg) => [vg, readThinView(context, vg).catch(() => undefined)]));
  for (let read = 1; ; read++) {
    const stock = await stockRun;
    let parsedReport: StockReport;
    try {
      parsedReport = parseStockReport(stock.stdout);
    } catch (error) {
      if (!(error instanceof ReportFormatError)) throw error;
      throw new ThinlvError('LVM_OUTPUT_INVALID', `cannot read lvm's report: ${error.message}`);
    }
    const views = await thinViews(context, parsedReport, early, readThinView);
    const stale = [...views.values()].some((view) => parsedReport.rows.some((row) => row.vgName === view.vg.name && row.seqno !== view.vg.seqno));
    if (stale && read < MAX_READS) {
      early = new Map();
      stockRun = runStock(context, COMMAND, stockArgs(parsed, layout));
      continue;
    }
    if (stale) throw new ThinlvError('LVM_FAILED', `the VG's metadata changed during each of ${MAX_READS} reads (the master is committing); run ${COMMAND} again`);
    process.stdout.write(render(parsed, layout, parsedReport, views));
    const warnings = [...views.values()].flatMap((view) => view.warnings.map((w) => `  ${w}\n`));
    process.stderr.write(stock.stderr + warnings.join(''));
    return stock.exitCode;
  }
}

/** The thin view of every thinlv VG the report shows, reusing the reads started early. */
async function thinViews(context: CommandContext, stock: StockReport, early: ReadonlyMap<string, Promise<ThinView | undefined>>, readThinView: ReadThinView): Promise<Map<string, ThinView>> {
  const thinVgs = new Set(stock.rows.filter((row) => row.vgTags.some((tag) => tag.startsWith(FORMAT_TAG))).map((row) => row.vgName));
  const views = new Map<string, ThinView>();
  for (const vg of thinVgs) {
    // A read started early that failed is done again here, so its error is reported.
    const view = (await early.get(vg)) ?? (await readThinView(context, vg));
    if (view !== undefined) views.set(vg, view);
  }
  return views;
}

function render(parsed: ParsedLvmArgs, layout: ReportLayout, stock: StockReport, views: ReadonlyMap<string, ThinView>): string {
  const grown = new Map([...views.values()].flatMap((view) => [...view.grown.values()].map((lv) => [lv.uuid, { lv, extentSizeBytes: view.extentSizeBytes }] as const)));
  if (!stock.rows.some((row) => grown.has(row.lvUuid))) {
    return printReport(stock.heading, stock.rows.map((row) => row.cells), layout);
  }
  const metadataSegments = new Map(
    [...views.values()].flatMap((view) =>
      view.vg.lvs.map((lv) => [lv.uuid, { segments: lv.segments.map((s) => ({ logicalStart: s.logicalStart, extentCount: s.extentCount, pv: s.stripes[0]?.pv ?? '', firstExtent: s.stripes[0]?.firstExtent ?? 0 })), extentSizeBytes: view.extentSizeBytes }] as const),
    ),
  );
  const fields = valuesOf(parsed, 'options').join(',').toLowerCase().split(',');
  const sizeFormat: SizeFormat = { unit: lastValue(parsed, 'units') ?? DEFAULT_UNIT, suffix: !hasOption(parsed, 'nosuffix'), style: 'report' };
  try {
    const patched = patchReport({
      report: stock,
      layout,
      sizeFormat,
      grown,
      metadataSegments,
      extentsHint: { start: fields.some((f) => f.replace(/^\+/, '') === 'seg_start_pe'), size: fields.some((f) => f.replace(/^\+/, '') === 'seg_size_pe') },
    });
    return printReport(patched.heading, patched.rows, layout);
  } catch (error) {
    if (!(error instanceof ReportFormatError)) throw error;
    throw new ThinlvError('LVM_OUTPUT_INVALID', error.message);
  }
}
