// What the lvm-compatible commands that change metadata or activation share (lvcreate,
// lvremove, lvrename, lvchange, lvresize, lvextend, vgchange): running one as lvm runs,
// LV paths as lvm reads them, the master machine's rule, and lvm's wording of failures.
//
//   parse (lvmArgs.ts)  ── bad command line ──▶ lvm's message, exit 3
//     │
//   command body        ── LvmFailure ────────▶ its lvm-worded stderr, exit 5
//     │                 ── ThinlvError ───────▶ lvm's wording where lvm has one for the
//     │                                         condition (VG not found, ...), else
//     │                                         "  thinlv CMD: <thinlv's message>", exit 5
//   exit 0
//
// Metadata changes run where the VG's master runs (the VG tag thinlv_master=), as every
// thinlv metadata command does (src/cli/masterContext.ts), under the same per-VG metadata
// lock and through the same commit (src/lvm/commitBatch.ts): one commit per command.

import { hostname } from 'node:os';
import { ThinlvError } from '../errors.js';
import { readThinlvVg, isFormatted, TAG } from '../format/thinlvVg.js';
import { defaultSocketPath } from '../host/socketPath.js';
import type { VgLayout, LvLayout } from '../metadata/vgModel.js';
import { invalidNameReason } from '../metadata/names.js';
import type { CommandContext } from '../cli/context.js';
import { COMMON_OPTIONS, hasOption, LVM_EXIT, LvmUsageError, lvmArgsFor, parseLvmArgs, unsupportedSpec, flagSpec, type OptionSpec, type ParsedLvmArgs } from './lvmArgs.js';
import { compatContext, RUNNER_OPTIONS, runStock } from './stockLvm.js';
import { formatSize } from './sizeUnits.js';

/** A failure lvm would report: `stderr` is printed as it is, and the command exits with `exitCode`. */
export class LvmFailure extends Error {
  constructor(
    readonly stderr: string,
    readonly exitCode: number = LVM_EXIT.failed,
  ) {
    super(stderr.trim());
  }
}

/** An lvm-style failure of one or more lines, each indented as lvm indents them. */
export const lvmFailure = (...lines: string[]): LvmFailure => new LvmFailure(lines.map((line) => `  ${line}\n`).join(''));
/** A bad command line, worded as lvm words it after its parser (exit 3). */
export const lvmUsage = (command: string, line: string): LvmUsageError => new LvmUsageError(`  ${line}\n  Run \`${command} --help' for more information.\n`);

/** Common options these commands do not carry out, refused rather than ignored. */
const REFUSED_COMMON: readonly OptionSpec[] = [unsupportedSpec(flagSpec('test', 't'), 'thinlv has no dry run for metadata changes')];
const HELP_OPTIONS = ['help', 'longhelp', 'version'];

/** `specs` plus lvm's common options, --test refused. */
export const withCommonOptions = (specs: readonly OptionSpec[]): OptionSpec[] => [...specs, ...REFUSED_COMMON, ...COMMON_OPTIONS.filter((o) => o.long !== 'test')];

export type CommandBody = (context: CommandContext, parsed: ParsedLvmArgs) => Promise<number>;

/** Runs one lvm-compatible command: parses as lvm does, then `body`, printing failures as lvm does. */
export async function runLvmCompatCommand(command: string, args: readonly string[], specs: readonly OptionSpec[], body: CommandBody): Promise<number> {
  let parsed: ParsedLvmArgs;
  try {
    parsed = parseLvmArgs(command, args, withCommonOptions(specs));
  } catch (error) {
    if (!(error instanceof LvmUsageError)) throw error;
    process.stderr.write(error.stderr);
    return LVM_EXIT.invalidCommandLine;
  }
  try {
    const context = await compatContext(parsed);
    if (HELP_OPTIONS.some((name) => hasOption(parsed, name))) return await passToStock(context, command, lvmArgsFor(parsed, RUNNER_OPTIONS));
    return await body(context, parsed);
  } catch (error) {
    return reportFailure(command, error);
  }
}

function reportFailure(command: string, error: unknown): number {
  if (error instanceof LvmUsageError) {
    process.stderr.write(error.stderr);
    return LVM_EXIT.invalidCommandLine;
  }
  if (error instanceof LvmFailure) {
    process.stderr.write(error.stderr);
    return error.exitCode;
  }
  if (error instanceof ThinlvError && error.code !== 'INVARIANT_BROKEN') {
    process.stderr.write(lvmWording(command, error) ?? `  thinlv ${command}: ${error.message}\n`);
    return LVM_EXIT.failed;
  }
  throw error;
}

/** lvm's own text for a condition thinlv met, where lvm has one. */
function lvmWording(command: string, error: ThinlvError): string | undefined {
  const data = error.data as { vg?: unknown; master?: unknown; here?: unknown };
  if (error.code === 'VG_NOT_FOUND') {
    // thinlv's runner error carries lvm's args; the VG is the last of them.
    const args = (error.data as { args?: unknown }).args;
    const vg = Array.isArray(args) ? String(args.at(-1)) : undefined;
    if (vg !== undefined) return `  Volume group "${vg}" not found\n  Cannot process volume group ${vg}\n`;
  }
  if (error.code === 'NOT_ON_MASTER') return notOnMasterText(command, String(data.vg), String(data.master), String(data.here));
  return undefined;
}

const notOnMasterText = (command: string, vg: string, master: string, here: string): string =>
  `  Volume group "${vg}" is managed by thinlv: its metadata is changed only on its master machine ${master}, not on ${here}.\n  Run ${command} on ${master}.\n`;

/** Passes the command to stock lvm as it is: its output and exit code are the answer. */
export async function passToStock(context: CommandContext, command: string, args: readonly string[]): Promise<number> {
  const stock = await runStock(context, command, args);
  process.stdout.write(stock.stdout);
  process.stderr.write(stock.stderr);
  return stock.exitCode;
}

/**
 * Refuses a metadata change away from the VG's master machine, on the metadata the change
 * is planned on (ensureOnMasterHost's rule, without a second read of the VG).
 */
export function refuseOffMaster(vg: VgLayout, command: string): void {
  if (!isFormatted(vg)) return;
  const master = readThinlvVg(vg).masterHost;
  const here = hostname();
  if (master !== undefined && master !== here) throw new LvmFailure(notOnMasterText(command, vg.name, master, here));
}

export interface LvPath {
  readonly vg: string;
  readonly lv: string;
}

/** `VG/LV` or `/dev/VG/LV`, as lvm takes an LV; a bad one is refused as lvm refuses it (exit 3). */
export function parseLvPath(command: string, text: string): LvPath {
  const path = text.startsWith('/dev/') ? text.slice('/dev/'.length) : text;
  const match = /^([^/]+)\/([^/]+)$/.exec(path);
  if (match === null) throw lvmUsage(command, `Please specify a logical volume path (VG/LV or /dev/VG/LV), not "${text}".`);
  const [, vg, lv] = match as unknown as [string, string, string];
  if (invalidNameReason(vg, 'VG') !== undefined) throw lvmUsage(command, `Volume group name "${vg}" has invalid characters.`);
  if (invalidNameReason(lv, 'LV') !== undefined) throw lvmUsage(command, `Logical volume name "${lv}" is invalid.`);
  return { vg, lv };
}

/** A VG name as lvm takes one (`VG` or `/dev/VG`). */
export function parseVgName(command: string, text: string): string {
  const vg = text.startsWith('/dev/') ? text.slice('/dev/'.length) : text;
  if (invalidNameReason(vg, 'VG') !== undefined) throw lvmUsage(command, `Volume group name "${vg}" has invalid characters.`);
  return vg;
}

/** thinlv's own LVs (rings, pools, status) are changed by thinlv alone. */
export const isThinlvOwnLv = (name: string): boolean => name.startsWith('thinlv_');
/** A thin LV: an ordinary linear LV carrying its virtual size as a tag. */
export const isThinLv = (lv: LvLayout): boolean => !isThinlvOwnLv(lv.name) && lv.tags.some((t) => t.startsWith(TAG.virtualBytes));

export function refuseThinlvOwnLv(vg: string, lv: string): void {
  if (isThinlvOwnLv(lv)) throw lvmFailure(`Logical volume ${vg}/${lv} belongs to thinlv (its rings, pools and status LVs are changed only by thinlv's own commands).`);
}

/** The LV, or lvm's "not found" failure worded by the caller. */
export function lvNamed<T extends LvLayout>(lvs: readonly T[], name: string, notFound: () => LvmFailure): T {
  const lv = lvs.find((l) => l.name === name);
  if (lv === undefined) throw notFound();
  return lv;
}

export const failedToFind = (path: LvPath): LvmFailure => lvmFailure(`Failed to find logical volume "${path.vg}/${path.lv}"`);

/**
 * The host daemon's socket for `vg`: THINLV_SOCKET when set (lvm's command line has no
 * place for it; the same variable the resize hook reads), else the daemon's default.
 * Every request names its VG, so a socket of another VG's daemon refuses it (WRONG_VG).
 */
export const hostSocketPath = (vg: string): string => process.env['THINLV_SOCKET'] ?? defaultSocketPath(vg);

/** A size as lvm prints it in its messages ("16.00 MiB", "<1.20 GiB"). */
export const displaySize = (bytes: number): string => formatSize(BigInt(bytes), { unit: 'r', suffix: true, style: 'display' });

/** The yes/no value of options such as -W, -Z (y or n, as lvm takes them). */
export function yesNo(command: string, option: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'y' || value === 'Y') return true;
  if (value === 'n' || value === 'N') return false;
  throw new LvmUsageError(`  Invalid argument for --${option}: ${value}\n  Error during parsing of command line.\n`);
}

/** -a's value: true to activate, false to deactivate (lvm's y, n and their a, e, l, s forms). */
export function activationValue(command: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const match = /^[aels]?([yn])$/.exec(value);
  if (match === null) throw new LvmUsageError(`  Invalid argument for --activate: ${value}\n  Error during parsing of command line.\n`);
  return match[1] === 'y';
}
