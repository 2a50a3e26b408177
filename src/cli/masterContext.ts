// What metadata-changing commands need: the master's effects, and the check
// that they run where the master runs. thinlv's metadata changes happen on the
// master's machine (lvm's local VG lock then serialises them with the master
// daemon, and the seqno check guards against anything elsewhere); a command run
// on another host says where to run it instead of writing from the wrong place.

import { hostname } from 'node:os';
import { ThinlvError } from '../errors.js';
import { faultsFromSpec } from '../faults.js';
import { readThinlvVg } from '../format/thinlvVg.js';
import { readVgMetadata } from '../lvm/commitBatch.js';
import type { MasterDeps } from '../master/replayPass.js';
import { fileRegionOpener } from '../rings/ringRegions.js';
import type { CommandContext } from './context.js';

export function masterDeps(context: CommandContext): MasterDeps {
  return {
    lvm: context.lvm,
    regions: fileRegionOpener((level, message, data) => context.log[level](data ?? {}, message)),
    log: context.log,
    faults: faultsFromSpec(process.env['THINLV_FAULTS']),
    nowMs: () => Date.now(),
  };
}

/** Refuses to run a metadata change away from the machine where the VG's master runs. */
export async function ensureOnMasterHost(context: CommandContext, vgName: string): Promise<void> {
  const vg = await readVgMetadata(context.lvm, vgName);
  const master = readThinlvVg(vg).masterHost;
  const here = hostname();
  if (master !== undefined && master !== here) {
    throw new ThinlvError('NOT_ON_MASTER', `VG ${vgName}'s master runs on ${master}, not on ${here}: run this command on ${master}`, { vg: vgName, master, here });
  }
}
