// `lvresize -L|-l SIZE LVPATH` and `lvextend -L|-l SIZE LVPATH`, as lvm prints and exits.
// SM resizes with lvresize (never lvextend) and answers "y" on stdin when shrinking.
//
//   current size = metadata, plus for a thin LV what hosts journaled and the master has
//                  not replayed (read-only, from the LUN: src/lvmcompat/thinSizes.ts)
//   grow   thin LV       the local host daemon's allocator (`extend`, by size, so a
//                        resent request grants nothing twice); no master, no lvm write
//          ordinary LV   one commit on the master machine: extents after the LV's end
//                        first, then the longest free runs (chooseExtents)
//   shrink thin LV       the master's deflate (src/master/thinLvs.ts): it replays every
//                        journal first and refuses an LV a host holds
//          ordinary LV   one commit on the master machine, the LV's tail to free space;
//                        lvm's question first when the LV is active here
// lvextend refuses anything but a grow, as lvm's does.

import { createInterface } from 'node:readline';
import { commitBatch, readVgMetadata } from '../lvm/commitBatch.js';
import { readVgReport } from '../lvm/readVgReport.js';
import { chooseExtents } from '../extent/chooseExtents.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { extentSizeBytes, linearSegments, lvExtentCount } from '../metadata/vgModel.js';
import { deflateThinLv } from '../master/thinLvs.js';
import { tailRanges } from '../extent/segments.js';
import { masterDeps, withMetadataLock } from '../cli/masterContext.js';
import type { CommandContext } from '../cli/context.js';
import { flagSpec, hasOption, lastValue, LVM_EXIT, LvmUsageError, unsupportedSpec, valuedSpec, type OptionSpec, type ParsedLvmArgs } from './lvmArgs.js';
import { parseExtentsOption, parseSizeOption, targetExtents, type SizeArg } from './sizeArgs.js';
import { readThinView } from './thinSizes.js';
import { extendThinLv } from './hostDaemonRequests.js';
import { displaySize, isThinLv, lvmFailure, lvmUsage, parseLvPath, refuseOffMaster, refuseThinlvOwnLv, runLvmCompatCommand, type LvPath } from './writeCommon.js';
import { isActiveHere } from './commands/lvremove.js';

export type ResizeCommand = 'lvresize' | 'lvextend';

const WHY = 'thinlv resizes linear LVs by size only';
const OPTIONS: readonly OptionSpec[] = [
  valuedSpec('size', 'L'),
  valuedSpec('extents', 'l'),
  flagSpec('force', 'f'),
  flagSpec('nofsck', 'n'),
  flagSpec('noudevsync'),
  unsupportedSpec(flagSpec('resizefs', 'r'), 'thinlv does not resize file systems'),
  unsupportedSpec(flagSpec('usepolicies'), WHY),
  ...['alloc', 'stripes:i', 'stripesize:I', 'mirrors:m', 'type', 'poolmetadatasize', 'fs', 'fsmode'].map((spec) => {
    const [long, short] = spec.split(':') as [string, string | undefined];
    return unsupportedSpec(valuedSpec(long, short), WHY);
  }),
];

export interface ResizeRequest {
  readonly path: LvPath;
  readonly size: SizeArg;
}

export const runResize = (command: ResizeCommand, args: readonly string[]): Promise<number> => runLvmCompatCommand(command, args, OPTIONS, (context, parsed) => resize(command, context, parsed));

/** The command line read as lvm reads it, refused (exit 3) where lvm refuses it. Pure. */
export function readResizeRequest(command: ResizeCommand, parsed: ParsedLvmArgs): ResizeRequest {
  const sizeText = lastValue(parsed, 'size');
  const extentsText = lastValue(parsed, 'extents');
  if (sizeText !== undefined && extentsText !== undefined) throw lvmUsage(command, 'Please specify either size or extents (not both).');
  if (sizeText === undefined && extentsText === undefined) throw lvmUsage(command, 'Please specify either size or extents.');
  if (parsed.positionals.length === 0) throw lvmUsage(command, 'Please provide the logical volume name');
  if (parsed.positionals.length > 1) throw new LvmUsageError(`  Physical volumes (${parsed.positionals.slice(1).join(' ')}) are not supported by thinlv's ${command}: thinlv chooses the extents.\n`);
  const size = sizeText !== undefined ? parseSizeOption(sizeText) : parseExtentsOption(command, extentsText!);
  if (command === 'lvextend' && size.sign === '-') throw lvmUsage(command, 'Negative argument not permitted - use lvreduce');
  return { path: parseLvPath(command, parsed.positionals[0]!), size };
}

async function resize(command: ResizeCommand, context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const { path, size } = readResizeRequest(command, parsed);
  refuseThinlvOwnLv(path.vg, path.lv);
  // Read-only: a grow runs on any host, and the current size of a thin LV needs the journals.
  const view = await readThinView(context, path.vg);
  const vg = view?.vg ?? (await readVgReport(context.lvm, path.vg));
  const lv = vg.lvs.find((l) => l.name === path.lv);
  if (lv === undefined) throw lvmFailure(`Logical volume ${path.lv} not found in volume group ${path.vg}.`);
  const thin = isThinLv(lv);
  const extentBytes = extentSizeBytes(vg);
  const current = (thin ? view?.grown.get(lv.uuid)?.extentCount : undefined) ?? lvExtentCount(lv);
  const target = targetExtents(size, current, extentBytes);
  if (target.rounding !== undefined) process.stdout.write(`  Rounding size to boundary between physical extents: ${displaySize(target.rounding)}.\n`);
  const wanted = target.extentCount;
  if (command === 'lvextend' && wanted <= current) throw lvmFailure(`New size given (${wanted} extents) not larger than existing size (${current} extents)`);
  if (wanted < 1) throw lvmFailure(`Unable to reduce ${path.vg}/${path.lv} below 1 extent.`);
  if (wanted === current) throw lvmFailure(`New size (${wanted} extents) matches existing size (${current} extents).`);
  let before = current;
  if (wanted > current) {
    if (thin) {
      const result = await extendThinLv(path.vg, path.lv, wanted * extentBytes);
      before = result.sizeBytes / result.extentSizeBytes - result.extentsGranted;
    } else {
      before = await withMetadataLock(context, path.vg, () => growOrdinary(context, command, path, wanted));
    }
  } else {
    if (!thin && isActiveHere(context, path) && !hasOption(parsed, 'force') && !hasOption(parsed, 'yes')) await confirmReduce(path, wanted * extentBytes);
    // "Before" stays the size read above (metadata plus unreplayed allocations), which is what the LV had.
    await withMetadataLock(context, path.vg, () => (thin ? deflateThin(context, command, path, wanted) : shrinkOrdinary(context, command, path, wanted)));
  }
  process.stdout.write(
    `  Size of logical volume ${path.vg}/${path.lv} changed from ${displaySize(before * extentBytes)} (${before} extents) to ${displaySize(wanted * extentBytes)} (${wanted} extents).\n` +
      `  Logical volume ${path.vg}/${path.lv} successfully resized.\n`,
  );
  return LVM_EXIT.ok;
}

/** Reads the LV for a commit on the master machine; returns the metadata and the LV's linear segments. */
async function readForCommit(context: CommandContext, command: ResizeCommand, path: LvPath) {
  const vg = await readVgMetadata(context.lvm, path.vg);
  refuseOffMaster(vg, command);
  const lv = vg.lvs.find((l) => l.name === path.lv);
  if (lv === undefined) throw lvmFailure(`Logical volume ${path.lv} not found in volume group ${path.vg}.`);
  const segments = linearSegments(lv);
  if (segments === undefined) throw lvmFailure(`Logical volume ${path.vg}/${path.lv} is not linear; thinlv resizes linear LVs only.`);
  return { vg, lv, segments };
}

/** Grows an ordinary LV to `wanted` extents in one commit; returns its extents before. */
async function growOrdinary(context: CommandContext, command: ResizeCommand, path: LvPath, wanted: number): Promise<number> {
  const { vg, lv, segments } = await readForCommit(context, command, path);
  const current = lvExtentCount(lv);
  if (wanted <= current) throw lvmFailure(`New size given (${wanted} extents) not larger than existing size (${current} extents)`);
  const chosen = chooseExtents(computeFreeExtents(vg), segments, wanted - current);
  if (!chosen.ok) throw lvmFailure(`Insufficient free space: ${wanted - current} extents needed, but only ${chosen.availableExtentCount} available`);
  await commitBatch(context.lvm, vg, [{ kind: 'appendRanges', lv: path.lv, ranges: chosen.ranges }]);
  return current;
}

/** Shrinks an ordinary LV to `wanted` extents in one commit, its tail back to free space. */
async function shrinkOrdinary(context: CommandContext, command: ResizeCommand, path: LvPath, wanted: number): Promise<void> {
  const { vg, lv, segments } = await readForCommit(context, command, path);
  const current = lvExtentCount(lv);
  if (wanted >= current) throw lvmFailure(`New size (${wanted} extents) matches existing size (${current} extents).`);
  await commitBatch(context.lvm, vg, [{ kind: 'releaseRanges', lv: path.lv, ranges: tailRanges(segments, wanted) }]);
}

/** Deflates a thin LV, under the master's rules: every journal replayed first, a held LV refused. */
async function deflateThin(context: CommandContext, command: ResizeCommand, path: LvPath, wanted: number): Promise<void> {
  const { vg } = await readForCommit(context, command, path);
  await deflateThinLv(masterDeps(context), path.vg, path.lv, wanted * extentSizeBytes(vg));
}

/** lvm's question before reducing an active LV; anything but y stops the command, nothing written. */
async function confirmReduce(path: LvPath, sizeBytes: number): Promise<void> {
  process.stderr.write(`  WARNING: Reducing active logical volume to ${displaySize(sizeBytes)}.\n  THIS MAY DESTROY YOUR DATA (filesystem etc.)\n`);
  process.stdout.write(`Do you really want to reduce ${path.vg}/${path.lv}? [y/n]: `);
  const answer = await new Promise<string>((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.once('line', (line) => {
      lines.close();
      resolve(line);
    });
    lines.once('close', () => resolve(''));
  });
  if (!/^\s*y/i.test(answer)) throw lvmFailure(`Logical volume ${path.vg}/${path.lv} NOT reduced.`);
}
