// `pvresize [--setphysicalvolumesize SIZE] [-y] PV...`, as lvm's pvresize prints and exits.
//
// It is stock lvm's pvresize under thinlv's rule for metadata changes: a PV of a VG
// formatted for thinlv is resized only on the VG's master machine (elsewhere it fails,
// naming that machine), under the metadata lock thinlv's own commits take, so commands
// on that machine take turns. The master's next commit checks the seqno it read, so it
// sees the change and re-reads, as after any lvm command. The PV's new extents become
// VG free space, which the master grants from; lvm itself refuses to shrink a PV below
// its allocated extents. A PV in no VG, or in a VG thinlv does not manage, goes to stock
// lvm unchanged.

import { isFormatted } from '../../format/thinlvVg.js';
import { withMetadataLock } from '../../cli/masterContext.js';
import type { CommandContext } from '../../cli/context.js';
import { readVgReport } from '../../lvm/readVgReport.js';
import { flagSpec, lvmArgsFor, valuedSpec, type OptionSpec, type ParsedLvmArgs } from '../lvmArgs.js';
import { RUNNER_OPTIONS } from '../stockLvm.js';
import { passToStock, refuseOffMaster, runLvmCompatCommand } from '../writeCommon.js';

const COMMAND = 'pvresize';
const OPTIONS: readonly OptionSpec[] = [valuedSpec('setphysicalvolumesize'), flagSpec('yes', 'y'), flagSpec('noudevsync')];

export const run = (args: readonly string[]): Promise<number> => runLvmCompatCommand(COMMAND, args, OPTIONS, resize);

async function resize(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const stockArgs = lvmArgsFor(parsed, RUNNER_OPTIONS);
  const managed: string[] = [];
  for (const vgName of await vgsOf(context, parsed.positionals)) {
    const vg = await readVgReport(context.lvm, vgName);
    if (!isFormatted(vg)) continue;
    refuseOffMaster(vg, COMMAND);
    managed.push(vgName);
  }
  // Locks in name order, so two commands on the same VGs never wait for each other.
  const locked = managed.sort().reduceRight<() => Promise<number>>((inner, vgName) => () => withMetadataLock(context, vgName, inner), () => passToStock(context, COMMAND, stockArgs));
  return locked();
}

/** The VGs the named PVs belong to; a device lvm does not know, or a PV in no VG, adds none (stock lvm reports it). */
async function vgsOf(context: CommandContext, devices: readonly string[]): Promise<string[]> {
  const names = new Set<string>();
  for (const device of devices) {
    const result = await context.lvm.run('pvs', ['--noheadings', '--readonly', '-o', 'vg_name', device], { allowFailure: true });
    const vgName = result.exitCode === 0 ? result.stdout.trim() : '';
    if (vgName !== '') names.add(vgName);
  }
  return [...names];
}
