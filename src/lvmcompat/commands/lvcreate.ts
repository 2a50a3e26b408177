// `lvcreate -n NAME -L SIZE VG [--addtag TAG] [-W n] [-Z n] [-an | --inactive]`, and
// `-V SIZE` for a thin LV, as lvm's lvcreate prints and exits. One metadata commit on
// the master machine (src/lvm/commitBatch.ts), under thinlv's per-VG metadata lock.
//
// Thin or thick (README, "lvm-compatible commands that change metadata"):
//   -V SIZE                                  thin LV of virtual size SIZE; -L is what
//                                            is allocated now (default one extent)
//   --addtag thinlv_virtual_bytes=N          thin LV of virtual size N bytes; -L is
//                                            what is allocated now
//   --addtag thinlv_thin                     thin LV whose virtual size is -L; one
//                                            extent allocated now
//   VG tag thinlv_lvcreate_default=thin      the same for every lvcreate on the VG
//   otherwise                                what lvm creates: an ordinary LV of -L,
//                                            fully allocated, placed as lvm places it
// The two thinlv tags only choose; they are not kept on the LV (the virtual size is
// kept as thinlv's own tag, as `thinlv lvcreate` keeps it).
//
// Activation after creating, as lvm activates a new LV unless -an (or --inactive, the
// option XCP-ng's patched lvm2 has and SM passes; stock lvm 2.03 does not know it): an
// ordinary LV by stock `lvchange -ay`, a thin LV by the host daemon, which loads its
// table. thinlv never zeroes the start of a new LV, and says so as lvm does with -Z n.

import { readVgMetadata, commitBatch } from '../../lvm/commitBatch.js';
import { TAG, isFormatted } from '../../format/thinlvVg.js';
import { computeFreeExtents } from '../../metadata/checkLayout.js';
import { invalidNameReason, invalidTagReason } from '../../metadata/names.js';
import { extentSizeBytes, type VgMetadata } from '../../metadata/vgModel.js';
import { createThinLv } from '../../master/thinLvs.js';
import { withMetadataLock } from '../../cli/masterContext.js';
import type { CommandContext } from '../../cli/context.js';
import { flagSpec, hasOption, lastValue, LVM_EXIT, LvmUsageError, unsupportedSpec, valuedSpec, valuesOf, type OptionSpec, type ParsedLvmArgs } from '../lvmArgs.js';
import { runStock } from '../stockLvm.js';
import { placeNewLv } from '../ordinaryLvPlacement.js';
import { parseExtentsOption, parseSizeOption, targetExtents, type SizeArg } from '../sizeArgs.js';
import { activateThinLv } from '../hostDaemonRequests.js';
import { activationValue, displaySize, lvmFailure, lvmUsage, parseVgName, refuseOffMaster, runLvmCompatCommand, yesNo } from '../writeCommon.js';

const COMMAND = 'lvcreate';
/** The --addtag that asks for a thin LV whose virtual size is -L. */
export const THIN_TAG = 'thinlv_thin';
/** The VG tag that makes every lvcreate -L on the VG create a thin LV. */
export const LVCREATE_DEFAULT_TAG = 'thinlv_lvcreate_default=';

const WHY_LINEAR = 'thinlv creates linear LVs only';
const OPTIONS: readonly OptionSpec[] = [
  valuedSpec('name', 'n'),
  valuedSpec('size', 'L'),
  valuedSpec('extents', 'l'),
  valuedSpec('virtualsize', 'V'),
  valuedSpec('addtag'),
  valuedSpec('wipesignatures', 'W'),
  valuedSpec('zero', 'Z'),
  valuedSpec('activate', 'a'),
  // XCP-ng's lvm2 carries a patch adding --inactive to lvcreate; SM passes it.
  flagSpec('inactive'),
  ...['type', 'stripes:i', 'stripesize:I', 'mirrors:m', 'regionsize:R', 'chunksize:c', 'thinpool', 'cachepool', 'poolmetadatasize', 'vdopool'].map((spec) => {
    const [long, short] = spec.split(':') as [string, string | undefined];
    return unsupportedSpec(valuedSpec(long, short), WHY_LINEAR);
  }),
  unsupportedSpec(flagSpec('snapshot', 's'), WHY_LINEAR),
  unsupportedSpec(flagSpec('thin', 'T'), WHY_LINEAR),
  unsupportedSpec(flagSpec('cache', 'H'), WHY_LINEAR),
  ...['alloc', 'contiguous:C', 'persistent:M', 'major:j', 'minor', 'readahead:r', 'permission:p', 'setactivationskip:k', 'monitor', 'metadataprofile', 'errorwhenfull', 'discards'].map((spec) => {
    const [long, short] = spec.split(':') as [string, string | undefined];
    return unsupportedSpec(valuedSpec(long, short), 'thinlv places and flags the LVs it creates itself');
  }),
  unsupportedSpec(flagSpec('ignoreactivationskip', 'K'), 'thinlv activates thin LVs through the host daemon only'),
];

export interface LvcreateRequest {
  readonly vg: string;
  readonly name: string;
  /** -L or -l; undefined with -V alone. */
  readonly size: SizeArg | undefined;
  readonly virtualSize: SizeArg | undefined;
  /** --addtag values, less thinlv's choosing tags. */
  readonly tags: readonly string[];
  /** What the thinlv tags asked for. */
  readonly thinTag: { readonly virtualBytes: number | undefined } | undefined;
  readonly activate: boolean;
}

export const run = (args: readonly string[]): Promise<number> => runLvmCompatCommand(COMMAND, args, OPTIONS, create);

/** The command line read as lvm reads it, refused (exit 3) where lvm refuses it. Pure. */
export function readLvcreateRequest(parsed: ParsedLvmArgs): LvcreateRequest {
  const nameOption = lastValue(parsed, 'name');
  if (nameOption === undefined) throw new LvmUsageError(`  thinlv's lvcreate needs the new LV's name (-n NAME).\n  Run \`lvcreate --help' for more information.\n`);
  const [vgFromName, name] = nameOption.includes('/') ? (nameOption.split('/', 2) as [string, string]) : [undefined, nameOption];
  if (parsed.positionals.length > 1) throw lvmUsage(COMMAND, `Too many arguments: ${parsed.positionals.slice(1).join(' ')}`);
  const vgArg = parsed.positionals[0] ?? vgFromName;
  if (vgArg === undefined) throw lvmUsage(COMMAND, 'Please provide a volume group name');
  const vg = parseVgName(COMMAND, vgArg);
  if (vgFromName !== undefined && vgFromName !== vg) throw lvmUsage(COMMAND, `Inconsistent volume group names given: "${vgFromName}" and "${vg}"`);
  if (invalidNameReason(name, 'LV') !== undefined) throw lvmUsage(COMMAND, `Logical volume name "${name}" is invalid.`);

  const sizeText = lastValue(parsed, 'size');
  const extentsText = lastValue(parsed, 'extents');
  if (sizeText !== undefined && extentsText !== undefined) throw lvmUsage(COMMAND, 'Please specify either size or extents (not both).');
  const size = sizeText !== undefined ? parseSizeOption(sizeText) : extentsText !== undefined ? parseExtentsOption(COMMAND, extentsText) : undefined;
  const virtualText = lastValue(parsed, 'virtualsize');
  const virtualSize = virtualText === undefined ? undefined : parseSizeOption(virtualText);
  if (size === undefined && virtualSize === undefined) throw lvmUsage(COMMAND, 'Please specify either size or extents.');
  for (const [given, option] of [[size, sizeText !== undefined ? 'size' : 'extents'], [virtualSize, 'virtualsize']] as const) {
    if (given === undefined) continue;
    if (given.sign === '-') throw new LvmUsageError(`  Size may not be negative.\n  Invalid argument for --${option}: ${option === 'virtualsize' ? virtualText : (sizeText ?? extentsText)}\n  Error during parsing of command line.\n`);
    if (given.amount === 0) throw lvmUsage(COMMAND, `--${option} may not be zero.`);
  }

  let thinTag: LvcreateRequest['thinTag'];
  const tags: string[] = [];
  for (const tag of valuesOf(parsed, 'addtag')) {
    if (invalidTagReason(tag) !== undefined) throw new LvmUsageError(`  Invalid argument for --addtag: ${tag}\n  Error during parsing of command line.\n`);
    if (tag === THIN_TAG) thinTag = { virtualBytes: thinTag?.virtualBytes };
    else if (tag.startsWith(TAG.virtualBytes)) {
      const bytes = Number(tag.slice(TAG.virtualBytes.length));
      if (!/^[0-9]+$/.test(tag.slice(TAG.virtualBytes.length)) || !Number.isSafeInteger(bytes) || bytes === 0) throw lvmFailure(`Tag ${tag}: thinlv's virtual size must be a positive whole number of bytes.`);
      thinTag = { virtualBytes: bytes };
    } else if (tag.startsWith('thinlv_')) {
      throw lvmFailure(`Tag ${tag} is reserved for thinlv (only ${THIN_TAG} and ${TAG.virtualBytes}N choose a thin LV).`);
    } else tags.push(tag);
  }
  yesNo(COMMAND, 'wipesignatures', lastValue(parsed, 'wipesignatures'));
  yesNo(COMMAND, 'zero', lastValue(parsed, 'zero'));
  const activate = !hasOption(parsed, 'inactive') && activationValue(COMMAND, lastValue(parsed, 'activate')) !== false;
  return { vg, name, size, virtualSize, tags: [...new Set(tags)], thinTag, activate };
}

interface Created {
  readonly thin: boolean;
  readonly rounding: number | undefined;
  readonly warnings: readonly string[];
}

async function create(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const request = readLvcreateRequest(parsed);
  if (request.name.startsWith('thinlv_')) throw lvmFailure(`Logical volume names starting with "thinlv_" are reserved for thinlv's own LVs.`);
  const created = await withMetadataLock(context, request.vg, () => createOnce(context, request));
  if (created.rounding !== undefined) process.stdout.write(`  Rounding up size to full physical extent ${displaySize(created.rounding)}\n`);
  for (const warning of created.warnings) process.stderr.write(`  ${warning}\n`);
  process.stderr.write(`  WARNING: Logical volume ${request.vg}/${request.name} not zeroed.\n`);
  if (request.activate) {
    const failure = await activateNew(context, request, created.thin);
    if (failure !== undefined) {
      process.stderr.write(`  Failed to activate new LV ${request.vg}/${request.name}: ${failure}\n  The LV was created; activate it with lvchange -ay or remove it with lvremove.\n`);
      return LVM_EXIT.failed;
    }
  }
  process.stdout.write(`  Logical volume "${request.name}" created.\n`);
  return LVM_EXIT.ok;
}

/** One attempt: reads the VG and creates the LV in one commit (withMetadataLock re-runs it after STALE_SEQNO). */
async function createOnce(context: CommandContext, request: LvcreateRequest): Promise<Created> {
  const vg = await readVgMetadata(context.lvm, request.vg);
  refuseOffMaster(vg, COMMAND);
  if (vg.lvs.some((lv) => lv.name === request.name)) throw lvmFailure(`Logical Volume "${request.name}" already exists in volume group "${request.vg}"`);
  const extentBytes = extentSizeBytes(vg);
  const thin = request.virtualSize !== undefined || request.thinTag !== undefined || vg.tags.includes(`${LVCREATE_DEFAULT_TAG}thin`);
  return thin ? createThin(context, vg, request, extentBytes) : createOrdinary(context, vg, request, extentBytes);
}

async function createOrdinary(context: CommandContext, vg: VgMetadata, request: LvcreateRequest, extentBytes: number): Promise<Created> {
  const target = targetExtents(request.size!, 0, extentBytes);
  const placement = placeNewLv(computeFreeExtents(vg), target.extentCount);
  if (!placement.ok) throw lvmFailure(`Volume group "${vg.name}" has insufficient free space (${placement.availableExtentCount} extents): ${target.extentCount} required.`);
  await commitBatch(context.lvm, vg, [{ kind: 'createLv', name: request.name, ranges: placement.ranges, tags: request.tags, activationSkip: false }]);
  return { thin: false, rounding: target.rounding, warnings: [] };
}

async function createThin(context: CommandContext, vg: VgMetadata, request: LvcreateRequest, extentBytes: number): Promise<Created> {
  if (!isFormatted(vg)) throw lvmFailure(`Volume group "${vg.name}" is not formatted for thinlv (thinlv format ${vg.name}), so it cannot hold a thin LV.`);
  // The virtual size: -V, else the tag's, else -L (rounded up to extents, as lvm rounds an LV).
  const virtualSize = request.virtualSize ?? (request.thinTag?.virtualBytes !== undefined ? { sign: undefined, amount: request.thinTag.virtualBytes, unit: 'bytes' as const } : request.size!);
  const virtual = targetExtents(virtualSize, 0, extentBytes);
  const virtualBytes = request.virtualSize === undefined && request.thinTag?.virtualBytes !== undefined ? request.thinTag.virtualBytes : virtual.extentCount * extentBytes;
  // Allocated now: -L when it is not the virtual size, else one extent.
  const sizeIsVirtual = request.virtualSize === undefined && request.thinTag?.virtualBytes === undefined;
  const initialBytes = sizeIsVirtual || request.size === undefined ? 0 : targetExtents(request.size, 0, extentBytes).extentCount * extentBytes;
  const free = computeFreeExtents(vg).extentCount;
  const initialExtents = Math.max(1, initialBytes / extentBytes);
  if (free < initialExtents) throw lvmFailure(`Volume group "${vg.name}" has insufficient free space (${free} extents): ${initialExtents} required.`);
  if (initialBytes > virtualBytes) throw lvmFailure(`Size ${displaySize(initialBytes)} is larger than the thin LV's virtual size ${displaySize(virtualBytes)}.`);
  const summary = await createThinLv(context.lvm, vg.name, request.name, virtualBytes, initialBytes, false, request.tags);
  return { thin: true, rounding: sizeIsVirtual ? virtual.rounding : undefined, warnings: summary.warnings ?? [] };
}

/** Activates the new LV here; undefined when done, else why not. */
async function activateNew(context: CommandContext, request: LvcreateRequest, thin: boolean): Promise<string | undefined> {
  if (thin) {
    try {
      await activateThinLv(request.vg, request.name);
      return undefined;
    } catch (error) {
      if (error instanceof Error && 'code' in error) return error.message;
      throw error;
    }
  }
  const stock = await runStock(context, 'lvchange', ['-ay', `${request.vg}/${request.name}`]);
  if (stock.exitCode === LVM_EXIT.ok) return undefined;
  return stock.stderr.trim() || `lvchange -ay exited ${stock.exitCode}`;
}
