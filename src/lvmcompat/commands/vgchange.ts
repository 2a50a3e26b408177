// `vgchange -ay|-an VG...`, as lvm's vgchange prints and exits.
//
//   -ay  1. the thin LVs this host holds (tag thinlv_owner=<this host's daemon>), through
//           the host daemon: its table is metadata plus unreplayed segments
//        2. stock `vgchange -ay VG`: the ordinary LVs; thin LVs carry LVM's activation-
//           skip flag, so stock lvm leaves them alone. Its output and exit code are the
//           command's (its count is lvm's own: LVs device-mapper shows active)
//   -an  1. the thin LVs this host holds, deactivated through the daemon (which gives
//           up its hold on them), before stock lvm could remove their tables behind it
//        2. stock `vgchange -an VG`
// Thin LVs held by other hosts, or by none, are left alone: activating one here would
// take it from the host using it. No host daemon and no thin LV held by this machine's
// hostname: step 1 is skipped; held LVs with no daemon to serve them: exit 5, after
// step 2 has run. Other vgchange options change VG metadata and are refused: run them
// with lvm on the master machine.

import { hostname } from 'node:os';
import { isFormatted, ownerOf } from '../../format/thinlvVg.js';
import { readVgReport } from '../../lvm/readVgReport.js';
import type { CommandContext } from '../../cli/context.js';
import { flagSpec, lastValue, LVM_EXIT, LvmUsageError, unsupportedSpec, valuedSpec, type OptionSpec, type ParsedLvmArgs } from '../lvmArgs.js';
import { runStock } from '../stockLvm.js';
import { activateThinLv, deactivateThinLv, hostDaemonStatus } from '../hostDaemonRequests.js';
import { activationValue, isThinLv, lvmUsage, parseVgName, runLvmCompatCommand } from '../writeCommon.js';

const COMMAND = 'vgchange';
const WHY = "thinlv's vgchange changes activation only; run lvm's vgchange on the master machine for the rest";
const OPTIONS: readonly OptionSpec[] = [
  valuedSpec('activate', 'a'),
  flagSpec('force', 'f'),
  flagSpec('ignorelockingfailure'),
  flagSpec('noudevsync'),
  flagSpec('sysinit'),
  ...['addtag', 'deltag', 'alloc', 'autobackup:A', 'logicalvolume:l', 'maxphysicalvolumes:p', 'physicalextentsize:s', 'uuid:u', 'resizeable:x', 'systemid', 'locktype', 'lockstart', 'lockstop', 'profile', 'metadataprofile', 'vgmetadatacopies', 'setautoactivation', 'autoactivation', 'refresh', 'monitor', 'poll', 'select:S', 'clustered:c', 'activationmode'].map((spec) => {
    const [long, short] = spec.split(':') as [string, string | undefined];
    return unsupportedSpec(valuedSpec(long, short), WHY);
  }),
];

export const run = (args: readonly string[]): Promise<number> => runLvmCompatCommand(COMMAND, args, OPTIONS, change);

async function change(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const activate = activationValue(COMMAND, lastValue(parsed, 'activate'));
  if (activate === undefined) throw new LvmUsageError(`  No command with matching syntax recognised.  Run '${COMMAND} --help' for more information.\n`);
  if (parsed.positionals.length === 0) throw lvmUsage(COMMAND, "thinlv's vgchange needs the VG names (it does not change every VG lvm sees).");
  const vgs = parsed.positionals.map((text) => parseVgName(COMMAND, text));
  let exitCode: number = LVM_EXIT.ok;
  for (const vg of vgs) {
    const thinFailure = await changeThinLvs(context, vg, activate).catch((error: unknown) => {
      if (error instanceof Error && 'code' in error) return `  thinlv ${COMMAND}: ${error.message}\n`;
      throw error;
    });
    const stock = await runStock(context, COMMAND, [activate ? '-ay' : '-an', vg]);
    process.stdout.write(stock.stdout);
    process.stderr.write(stock.stderr);
    if (thinFailure !== undefined) process.stderr.write(thinFailure);
    if (stock.exitCode !== LVM_EXIT.ok) exitCode = stock.exitCode;
    else if (thinFailure !== undefined) exitCode = LVM_EXIT.failed;
  }
  return exitCode;
}

/** (De)activates the thin LVs this host holds; undefined when done, else what went wrong. */
async function changeThinLvs(context: CommandContext, vgName: string, activate: boolean): Promise<string | undefined> {
  // A VG lvm cannot read is reported by stock vgchange, worded as lvm words it.
  const vg = await readVgReport(context.lvm, vgName).catch(() => undefined);
  if (vg === undefined || !isFormatted(vg)) return undefined;
  const held = vg.lvs.filter((lv) => isThinLv(lv) && ownerOf(lv) !== undefined);
  if (held.length === 0) return undefined;
  const daemon = await hostDaemonStatus(vgName);
  if (daemon === undefined) {
    const mine = held.filter((lv) => ownerOf(lv) === hostname()).map((lv) => lv.name);
    return mine.length === 0 ? undefined : `  No thinlv host daemon serves ${vgName} here, so its thin LVs held by this host (${mine.join(', ')}) were not ${activate ? 'activated' : 'deactivated'}: start it (thinlv host run ${vgName} ${hostname()}).\n`;
  }
  for (const lv of held.filter((l) => ownerOf(l) === daemon.host)) {
    if (activate) await activateThinLv(vgName, lv.name);
    else await deactivateThinLv(vgName, lv.name);
  }
  return undefined;
}
