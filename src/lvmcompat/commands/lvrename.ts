// `lvrename VG/OLD NEW` and `lvrename VG OLD NEW` (with or without /dev/), as lvm's
// lvrename prints and exits: one metadata commit on the master machine. Refused, with
// nothing written: a thin LV a host holds (its journal records and its table name it),
// an LV active on this machine (lvm renames its device-mapper device in the same step;
// thinlv's commit does not touch device-mapper), and thinlv's own LVs.

import { ThinlvError } from '../../errors.js';
import { readVgMetadata } from '../../lvm/commitBatch.js';
import { renameLv } from '../../master/thinLvs.js';
import { invalidNameReason } from '../../metadata/names.js';
import { withMetadataLock } from '../../cli/masterContext.js';
import type { CommandContext } from '../../cli/context.js';
import { flagSpec, LVM_EXIT, LvmUsageError, type OptionSpec, type ParsedLvmArgs } from '../lvmArgs.js';
import { lvmFailure, lvmUsage, parseLvPath, parseVgName, refuseOffMaster, refuseThinlvOwnLv, runLvmCompatCommand } from '../writeCommon.js';
import { isActiveHere } from './lvremove.js';

const COMMAND = 'lvrename';
const OPTIONS: readonly OptionSpec[] = [flagSpec('force', 'f'), flagSpec('noudevsync')];

export interface RenameRequest {
  readonly vg: string;
  readonly from: string;
  readonly to: string;
}

export const run = (args: readonly string[]): Promise<number> => runLvmCompatCommand(COMMAND, args, OPTIONS, rename);

/** The two forms lvm takes, refused (exit 3) where lvm refuses them. Pure. */
export function readRenameRequest(positionals: readonly string[]): RenameRequest {
  let vg: string;
  let from: string;
  let toText: string;
  if (positionals.length === 2) {
    ({ vg, lv: from } = parseLvPath(COMMAND, positionals[0]!));
    toText = positionals[1]!;
  } else if (positionals.length === 3) {
    vg = parseVgName(COMMAND, positionals[0]!);
    from = positionals[1]!;
    toText = positionals[2]!;
  } else {
    throw new LvmUsageError(`  No command with matching syntax recognised.  Run '${COMMAND} --help' for more information.\n`);
  }
  // The new name may carry the VG too (VG/NEW, /dev/VG/NEW); it must be the same VG.
  const toPath = toText.startsWith('/dev/') ? toText.slice('/dev/'.length) : toText;
  const slash = toPath.indexOf('/');
  const to = slash === -1 ? toPath : toPath.slice(slash + 1);
  if (slash !== -1 && toPath.slice(0, slash) !== vg) throw lvmUsage(COMMAND, `Logical volume names must have the same volume group ("${vg}" or "${toPath.slice(0, slash)}").`);
  if (invalidNameReason(from, 'LV') !== undefined) throw lvmUsage(COMMAND, `Logical volume name "${from}" is invalid`);
  if (invalidNameReason(to, 'LV') !== undefined) throw lvmUsage(COMMAND, `New logical volume name "${to}" is invalid`);
  return { vg, from, to };
}

async function rename(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const request = readRenameRequest(parsed.positionals);
  if (request.from === request.to) throw lvmFailure(`Old and new logical volume names must differ`);
  refuseThinlvOwnLv(request.vg, request.from);
  if (request.to.startsWith('thinlv_')) throw lvmFailure(`Logical volume names starting with "thinlv_" are reserved for thinlv's own LVs.`);
  await withMetadataLock(context, request.vg, async () => {
    const vg = await readVgMetadata(context.lvm, request.vg);
    refuseOffMaster(vg, COMMAND);
    if (isActiveHere(context, { vg: request.vg, lv: request.from })) throw lvmFailure(`Logical volume ${request.vg}/${request.from} is active on this machine; thinlv renames inactive LVs only: deactivate it first.`);
    await renameLv(context.lvm, vg, request.from, request.to).catch((error: unknown) => {
      throw inLvmWords(error, request);
    });
  });
  process.stdout.write(`  Renamed "${request.from}" to "${request.to}" in volume group "${request.vg}"\n`);
  return LVM_EXIT.ok;
}

/** renameLv's refusals as lvm's lvrename words them (thinlv's own for a held LV); anything else as it is. */
function inLvmWords(error: unknown, request: RenameRequest): unknown {
  if (!(error instanceof ThinlvError)) return error;
  switch (error.code) {
    case 'LV_NOT_FOUND':
      return lvmFailure(`Existing logical volume "${request.from}" not found in volume group "${request.vg}"`);
    case 'LV_EXISTS':
      return lvmFailure(`Logical Volume "${request.to}" already exists in volume group "${request.vg}"`);
    case 'LV_IN_USE':
      return lvmFailure(`Logical volume ${request.vg}/${request.from} is in use by host ${String(error.data['owner'])} (thinlv: active there, or being extended); deactivate it there before renaming it.`);
    default:
      return error;
  }
}
