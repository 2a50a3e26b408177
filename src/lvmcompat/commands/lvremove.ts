// `lvremove [-f] LVPATH...`, as lvm's lvremove prints and exits: every LV named is
// removed in ONE metadata commit on the master machine. A thin LV a host holds (active
// there, or being extended) is refused: its unreplayed extents live in that host's
// journal, and removing it would hand them to nobody (src/master/thinLvs.ts). An
// ordinary LV active on this machine is deactivated first with stock lvm, as lvremove
// does; one active elsewhere cannot be seen from here, as with stock lvm on a shared VG.
// LVs that cannot be removed are reported, the others removed, and the exit code is 5,
// as lvm does for a list.

import { existsSync } from 'node:fs';
import { commitBatch, readVgMetadata } from '../../lvm/commitBatch.js';
import { dmName } from '../../dm/deviceMapper.js';
import { ownerOf } from '../../format/thinlvVg.js';
import { withMetadataLock } from '../../cli/masterContext.js';
import type { CommandContext } from '../../cli/context.js';
import { flagSpec, LVM_EXIT, unsupportedSpec, type OptionSpec, type ParsedLvmArgs } from '../lvmArgs.js';
import { runStock } from '../stockLvm.js';
import { failedToFind, LvmFailure, isThinLv, isThinlvOwnLv, lvmUsage, parseLvPath, refuseOffMaster, runLvmCompatCommand, type LvPath } from '../writeCommon.js';

const COMMAND = 'lvremove';
const OPTIONS: readonly OptionSpec[] = [
  flagSpec('force', 'f'),
  flagSpec('noudevsync'),
  unsupportedSpec(flagSpec('select', 'S'), 'name the LVs to remove'),
  unsupportedSpec(flagSpec('removearchive'), 'thinlv keeps no lvm archives of its own'),
];

export const run = (args: readonly string[]): Promise<number> => runLvmCompatCommand(COMMAND, args, OPTIONS, remove);

/** Whether an ordinary LV is active on this machine (only device-mapper can say). */
export const isActiveHere = (context: CommandContext, path: LvPath): boolean => context.deviceMapper.available && existsSync(`/dev/mapper/${dmName(path.vg, path.lv)}`);

async function remove(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  if (parsed.positionals.length === 0) throw lvmUsage(COMMAND, 'Please enter one or more logical volume paths.');
  const paths = parsed.positionals.map((text) => parseLvPath(COMMAND, text));
  let exitCode: number = LVM_EXIT.ok;
  // One commit per VG named (in practice one: SM removes one LV at a time).
  for (const vg of [...new Set(paths.map((p) => p.vg))]) {
    const names = [...new Set(paths.filter((p) => p.vg === vg).map((p) => p.lv))].sort();
    const outcome = await withMetadataLock(context, vg, () => removeOnce(context, vg, names));
    for (const line of outcome.refused) process.stderr.write(line);
    for (const name of outcome.removed) process.stdout.write(`  Logical volume "${name}" successfully removed.\n`);
    if (outcome.refused.length > 0) exitCode = LVM_EXIT.failed;
  }
  return exitCode;
}

async function removeOnce(context: CommandContext, vgName: string, names: readonly string[]): Promise<{ removed: string[]; refused: string[] }> {
  const vg = await readVgMetadata(context.lvm, vgName);
  refuseOffMaster(vg, COMMAND);
  const removed: string[] = [];
  const refused: string[] = [];
  for (const name of names) {
    const lv = vg.lvs.find((l) => l.name === name);
    if (lv === undefined) refused.push(failedToFind({ vg: vgName, lv: name }).stderr);
    else if (isThinlvOwnLv(name)) refused.push(`  Logical volume ${vgName}/${name} belongs to thinlv: remove hosts with thinlv host remove.\n`);
    else if (isThinLv(lv) && ownerOf(lv) !== undefined) {
      refused.push(`  Logical volume ${vgName}/${name} is in use by host ${ownerOf(lv)} (thinlv: active there, or being extended); deactivate it there first.\n`);
    } else {
      // Only an ordinary LV can be active here without a hold: a thin one is held while active.
      if (isActiveHere(context, { vg: vgName, lv: name })) await deactivateOrdinary(context, { vg: vgName, lv: name });
      removed.push(name);
    }
  }
  if (removed.length > 0) await commitBatch(context.lvm, vg, removed.map((name) => ({ kind: 'removeLv' as const, name })));
  return { removed, refused };
}

/** Stock lvm deactivates an LV before removing it; thinlv does the same for ordinary LVs. */
async function deactivateOrdinary(context: CommandContext, path: LvPath): Promise<void> {
  const stock = await runStock(context, 'lvchange', ['-an', `${path.vg}/${path.lv}`]);
  if (stock.exitCode !== LVM_EXIT.ok) {
    throw new LvmFailure(`${stock.stderr}  Unable to deactivate logical volume "${path.lv}"\n`);
  }
}
