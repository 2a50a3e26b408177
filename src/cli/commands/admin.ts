// Commands that change thinlv's layout in a VG: format, host add/remove/
// declare-dead, and thin LV create/remove/resize. Thin layers over src/master/,
// each run under withMetadataLock, so that commands on one VG take turns
// instead of failing each other with STALE_SEQNO.

import { ErrorCode, UsageError } from '../../errors.js';
import { faultsFromSpec } from '../../faults.js';
import { TAG, numericTag, validateHostName } from '../../format/thinlvVg.js';
import { readVgMetadata } from '../../lvm/commitBatch.js';
import { extentSizeBytes, lvExtentCount } from '../../metadata/vgModel.js';
import { formatVg } from '../../master/formatVg.js';
import { addHost, clearRejected, removeHost, type RemoveHostOptions } from '../../master/hostMembership.js';
import { createThinLv, deflateThinLv, removeThinLv, setVirtualSize } from '../../master/thinLvs.js';
import type { CommandContext } from '../context.js';
import { ensureOnMasterHost, masterDeps, withMetadataLock } from '../masterContext.js';
import { printResult } from '../output.js';
import { bytesToExtents, parseSize } from '../sizes.js';
import { splitLvPath, validateVgName } from '../validate.js';

export { splitLvPath };

export interface FormatArgs {
  readonly vg: string;
  readonly quantum?: string | undefined;
  readonly lowWater?: string | undefined;
  readonly reservePercent?: number | undefined;
  readonly expectedLvs?: number | undefined;
  readonly expectedSegments?: number | undefined;
}

export async function runFormat(context: CommandContext, args: FormatArgs): Promise<number> {
  validateVgName(args.vg);
  const vg = await readVgMetadata(context.lvm, args.vg);
  const extentBytes = extentSizeBytes(vg);
  const toExtents = (text: string | undefined, what: string): number | undefined =>
    text === undefined ? undefined : bytesToExtents(parseSize(text, what).bytes, extentBytes);
  if (args.reservePercent !== undefined && !(args.reservePercent >= 0 && args.reservePercent <= 50)) {
    throw new UsageError(ErrorCode.invalidArgument, `--reserve-percent must be from 0 to 50, got ${args.reservePercent}`);
  }
  const result = await withMetadataLock(context, args.vg, () =>
    formatVg(context.lvm, args.vg, {
      quantumExtents: toExtents(args.quantum, '--quantum'),
      lowWaterExtents: toExtents(args.lowWater, '--low-water'),
      reservePermille: args.reservePercent === undefined ? undefined : Math.round(args.reservePercent * 10),
      expectedLvCount: args.expectedLvs,
      expectedSegmentsPerLv: args.expectedSegments,
      faults: faultsFromSpec(process.env['THINLV_FAULTS']),
    }),
  );
  const s = result.settings;
  printResult(
    context,
    { vg: result.vg, seqno: result.seqno, settings: s },
    `formatted ${result.vg} for thinlv: quantum ${s.quantumExtents} extents (${s.quantumExtents * extentBytes} bytes), low-water ${s.lowWaterExtents} extents, reserve ${s.reservePermille / 10}%`,
  );
  return 0;
}

export async function runHostAdd(context: CommandContext, vgName: string, host: string): Promise<number> {
  validateVgName(vgName);
  validateHostName(host);
  await ensureOnMasterHost(context, vgName);
  const result = await withMetadataLock(context, vgName, () => addHost(masterDeps(context), vgName, host));
  printResult(context, { vg: vgName, ...result }, `host ${host} added to ${vgName} (created ${result.createdLvs.join(', ') || 'nothing new'}; initialised ${result.initialisedRings.join(', ') || 'no rings'}); the master's next pass grants its first quantum`);
  return 0;
}

export async function runHostRemove(context: CommandContext, vgName: string, host: string, mode: 'remove' | 'declare-dead', options: RemoveHostOptions = {}): Promise<number> {
  validateVgName(vgName);
  validateHostName(host);
  if (options.fenced === true && mode !== 'declare-dead') throw new UsageError(ErrorCode.invalidArgument, '--fenced goes with "host declare-dead" only');
  await ensureOnMasterHost(context, vgName);
  const result = await withMetadataLock(context, vgName, () => removeHost(masterDeps(context), vgName, host, mode, options));
  printResult(
    context,
    { vg: vgName, mode, ...result },
    `host ${host} ${mode === 'remove' ? 'removed from' : 'declared dead in'} ${vgName}: ${result.replayedRecordCount} journal records replayed, ${result.returnedExtentCount} pool extents returned to free space`,
  );
  return 0;
}

export async function runHostClearRejected(context: CommandContext, vgName: string, host: string): Promise<number> {
  validateVgName(vgName);
  validateHostName(host);
  await ensureOnMasterHost(context, vgName);
  const result = await withMetadataLock(context, vgName, () => clearRejected(masterDeps(context), vgName, host));
  printResult(context, { vg: vgName, ...result }, `host ${host}: forgot ${result.clearedCount} rejected journal records; thinlv check no longer reports them`);
  return 0;
}

export async function runLvCreate(context: CommandContext, args: { vg: string; name: string; virtualSize: string; size?: string | undefined; force?: boolean }): Promise<number> {
  validateVgName(args.vg);
  await ensureOnMasterHost(context, args.vg);
  const virtual = parseSize(args.virtualSize, '-V');
  const initial = args.size === undefined ? { bytes: 0, relative: undefined } : parseSize(args.size, '-L');
  if (virtual.relative || initial.relative) throw new UsageError(ErrorCode.invalidArgument, 'lvcreate takes absolute sizes (no + or -)');
  const result = await withMetadataLock(context, args.vg, () => createThinLv(context.lvm, args.vg, args.name, virtual.bytes, initial.bytes, args.force === true));
  printResult(context, { ...result }, `Logical volume "${args.name}" created: virtual ${result.virtualBytes} bytes, allocated ${result.physicalBytes} bytes.`);
  return 0;
}

export async function runLvRemove(context: CommandContext, path: string): Promise<number> {
  const { vg, lv } = splitLvPath(path);
  await ensureOnMasterHost(context, vg);
  const result = await withMetadataLock(context, vg, () => removeThinLv(context.lvm, vg, lv));
  printResult(context, { ...result }, `Logical volume "${lv}" successfully removed.`);
  return 0;
}

export async function runLvResize(context: CommandContext, args: { path: string; virtualSize?: string | undefined; size?: string | undefined; force?: boolean }): Promise<number> {
  const { vg, lv } = splitLvPath(args.path);
  if ((args.virtualSize === undefined) === (args.size === undefined)) {
    throw new UsageError(ErrorCode.invalidArgument, 'give exactly one of -V (new virtual size) or -L (deflate: new, smaller physical size)');
  }
  await ensureOnMasterHost(context, vg);
  // A relative size is resolved inside the lock, on the sizes each attempt reads.
  const result = await withMetadataLock(context, vg, () => resizeThinLv(context, vg, lv, args));
  printResult(context, { ...result }, `Logical volume ${vg}/${lv}: virtual ${result.virtualBytes} bytes, allocated ${result.physicalBytes} bytes.`);
  return 0;
}

async function resizeThinLv(context: CommandContext, vg: string, lv: string, args: { virtualSize?: string | undefined; size?: string | undefined; force?: boolean }) {
  const metadata = await readVgMetadata(context.lvm, vg);
  const target = metadata.lvs.find((l) => l.name === lv);
  const currentVirtual = (target && numericTag(target.tags, TAG.virtualBytes, `LV ${lv}`)) ?? 0;
  const currentPhysical = target ? lvExtentCount(target) * extentSizeBytes(metadata) : 0;
  const resolve = (text: string, what: string, current: number): number => {
    const size = parseSize(text, what);
    const bytes = size.relative === '+' ? current + size.bytes : size.relative === '-' ? current - size.bytes : size.bytes;
    if (bytes <= 0) throw new UsageError(ErrorCode.invalidArgument, `${what} ${text} leaves no size`);
    return bytes;
  };
  return args.virtualSize !== undefined
    ? setVirtualSize(context.lvm, vg, lv, resolve(args.virtualSize, '-V', currentVirtual), args.force === true)
    : deflateThinLv(masterDeps(context), vg, lv, resolve(args.size!, '-L', currentPhysical));
}
