// `lvdisplay` and `lvdisplay -c`, as lvm prints them, with a thin LV's size, extent count
// and segment count including the allocations hosts have journaled and the master has not
// replayed yet. As for lvs (see lvs.ts), stock `lvm lvdisplay --readonly` prints every
// line, and thinlv rewrites only those three values of thin LVs with unreplayed extents:
//
//   lvdisplay      "  LV Size                16.00 MiB"   (lvm's display units, default r)
//                  "  Current LE             4"
//                  "  Segments               2"
//   lvdisplay -c   "  /dev/VG/LV:VG:access:status:number:open:SECTORS:CURRENT_LE:..."
//
// lvdisplay prints no seqno; its "Current LE" (the LV's metadata size) must equal the thin
// view's metadata size for every LV thinlv rewrites, or the master committed in between
// and both are read again.

import { ThinlvError } from '../../errors.js';
import type { CommandContext } from '../../cli/context.js';
import { COMMON_OPTIONS, flagSpec, hasOption, lastValue, LVM_EXIT, LvmUsageError, lvmArgsFor, parseLvmArgs, unsupportedSpec, valuedSpec, vgNamesIn, type ParsedLvmArgs } from '../lvmArgs.js';
import { formatSize, isUnitLetter, type SizeFormat } from '../sizeUnits.js';
import { compatContext, readonlyUnlessGiven, reportCompatError, RUNNER_OPTIONS, runStock, type StockResult } from '../stockLvm.js';
import { readThinView, type GrownThinLv, type ThinView } from '../thinSizes.js';

const COMMAND = 'lvdisplay';
const WHY = "thinlv rewrites a thin LV's size in lvdisplay's plain and -c forms only";
const OPTIONS = [
  flagSpec('all', 'a'),
  flagSpec('colon', 'c'),
  unsupportedSpec(flagSpec('columns', 'C'), `${WHY}; use lvs`),
  flagSpec('history', 'H'),
  unsupportedSpec(flagSpec('maps', 'm'), `${WHY}; use lvs --segments`),
  ...['options', 'sort', 'select', 'configreport', 'separator'].map((name) => unsupportedSpec(valuedSpec(name, { options: 'o', sort: 'O', select: 'S' }[name]), `${WHY} (it is an option of -C)`)),
  ...['aligned', 'binary', 'logonly', 'noheadings', 'segments', 'unbuffered'].map((name) => unsupportedSpec(flagSpec(name), `${WHY} (it is an option of -C)`)),
  flagSpec('foreign'),
  flagSpec('ignorelockingfailure'),
  flagSpec('nosuffix'),
  flagSpec('readonly'),
  flagSpec('shared'),
  valuedSpec('units'),
  ...COMMON_OPTIONS,
];
export const MAX_READS = 3;
const DEFAULT_UNIT = 'r';

interface Located {
  readonly vg: string;
  readonly view: ThinView;
  readonly lv: GrownThinLv;
}

export async function run(args: readonly string[]): Promise<number> {
  let parsed: ParsedLvmArgs;
  try {
    parsed = parseLvmArgs(COMMAND, args, OPTIONS);
    const units = lastValue(parsed, 'units');
    if (units !== undefined && !isUnitLetter(units)) throw new LvmUsageError(`  --units ${units} is not supported by thinlv's lvdisplay; use one of hHrRbBsSkKmMgGtTpPeE.\n`);
  } catch (error) {
    if (!(error instanceof LvmUsageError)) throw error;
    process.stderr.write(error.stderr);
    return LVM_EXIT.invalidCommandLine;
  }
  try {
    return await display(await compatContext(parsed), parsed);
  } catch (error) {
    return reportCompatError(COMMAND, error);
  }
}

async function display(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const colon = hasOption(parsed, 'colon');
  let early = new Map(vgNamesIn(parsed.positionals).map((vg) => [vg, readThinView(context, vg).catch(() => undefined)]));
  for (let read = 1; ; read++) {
    const stock = await runStock(context, COMMAND, lvmArgsFor(parsed, RUNNER_OPTIONS, readonlyUnlessGiven(parsed)));
    const lines = stock.stdout.split('\n');
    const shown = colon ? colonLvs(lines) : plainLvs(lines);
    const views = new Map<string, ThinView | undefined>();
    for (const vg of new Set(shown.map((s) => s.vg))) views.set(vg, (await early.get(vg)) ?? (await readThinView(context, vg)));
    const located = (vg: string, name: string): Located | undefined => {
      const view = views.get(vg);
      const lv = view === undefined ? undefined : [...view.grown.values()].find((g) => g.name === name);
      return view === undefined || lv === undefined ? undefined : { vg, view, lv };
    };
    const stale = shown.some((s) => {
      const found = located(s.vg, s.name);
      return found !== undefined && s.currentLe !== found.lv.metadataExtentCount;
    });
    if (stale && read < MAX_READS) {
      early = new Map();
      continue;
    }
    if (stale) throw new ThinlvError('LVM_FAILED', `the VG's metadata changed during each of ${MAX_READS} reads (the master is committing); run ${COMMAND} again`);
    const sizeFormat: SizeFormat = { unit: lastValue(parsed, 'units') ?? DEFAULT_UNIT, suffix: !hasOption(parsed, 'nosuffix'), style: 'display' };
    const patched = colon ? patchColon(lines, located) : patchPlain(lines, located, sizeFormat);
    return finish(stock, patched.join('\n'), [...views.values()]);
  }
}

function finish(stock: StockResult, stdout: string, views: readonly (ThinView | undefined)[]): number {
  process.stdout.write(stdout);
  process.stderr.write(stock.stderr + views.flatMap((view) => view?.warnings.map((w) => `  ${w}\n`) ?? []).join(''));
  return stock.exitCode;
}

interface ShownLv {
  readonly vg: string;
  readonly name: string;
  readonly currentLe: number;
}

// `lvdisplay -c`: "  /dev/VG/LV:VG:access:status:number:open:sectors:current LE:allocated LE:..."
const COLON_SECTORS = 6;
const COLON_CURRENT_LE = 7;

function colonFields(line: string): string[] | undefined {
  const fields = line.trimStart().split(':');
  return fields.length > COLON_CURRENT_LE && line.startsWith('  /') ? fields : undefined;
}

function colonLvs(lines: readonly string[]): ShownLv[] {
  return lines.flatMap((line) => {
    const fields = colonFields(line);
    return fields === undefined ? [] : [{ vg: fields[1]!, name: fields[0]!.slice(fields[0]!.lastIndexOf('/') + 1), currentLe: Number(fields[COLON_CURRENT_LE]) }];
  });
}

function patchColon(lines: readonly string[], located: (vg: string, name: string) => Located | undefined): string[] {
  return lines.map((line) => {
    const fields = colonFields(line);
    const found = fields === undefined ? undefined : located(fields[1]!, fields[0]!.slice(fields[0]!.lastIndexOf('/') + 1));
    if (fields === undefined || found === undefined) return line;
    fields[COLON_SECTORS] = String((found.lv.extentCount * found.view.extentSizeBytes) / 512);
    fields[COLON_CURRENT_LE] = String(found.lv.extentCount);
    return `${line.slice(0, line.length - line.trimStart().length)}${fields.join(':')}`;
  });
}

// Plain `lvdisplay`: one block per LV; its name and VG come before its size.
const LABELLED = /^(  (LV Name|VG Name|LV Size|Current LE|Segments) +)(.*)$/;

function plainLvs(lines: readonly string[]): ShownLv[] {
  const shown: ShownLv[] = [];
  let name = '';
  let vg = '';
  for (const line of lines) {
    const match = LABELLED.exec(line);
    if (match?.[2] === 'LV Name') name = match[3]!;
    if (match?.[2] === 'VG Name') vg = match[3]!;
    if (match?.[2] === 'Current LE') shown.push({ vg, name, currentLe: Number(match[3]) });
  }
  return shown;
}

function patchPlain(lines: readonly string[], located: (vg: string, name: string) => Located | undefined, sizeFormat: SizeFormat): string[] {
  let name = '';
  let vg = '';
  return lines.map((line) => {
    const match = LABELLED.exec(line);
    if (match === null) return line;
    const [, label, key, value] = match;
    if (key === 'LV Name') name = value!;
    if (key === 'VG Name') vg = value!;
    const found = key === 'LV Name' || key === 'VG Name' ? undefined : located(vg, name);
    if (found === undefined) return line;
    const { lv, view } = found;
    if (key === 'LV Size') return `${label}${formatSize(BigInt(lv.extentCount) * BigInt(view.extentSizeBytes), sizeFormat)}`;
    if (key === 'Current LE') return `${label}${lv.extentCount}`;
    return `${label}${lv.segments.length}`;
  });
}
