// Reads a VG's thin LVs as volumes, on any host, without writing: sizes from the thin
// view (src/lvmcompat/thinSizes.ts: `lvm fullreport --readonly` plus every host's journal
// read from the LUN, so an allocation journaled and not replayed yet counts), and the LV's
// permission from the metadata text (vgcfgbackup), since the report does not carry it.
//
// The two reads are two lvm calls, and the master may commit between them; they are
// taken again (at most MAX_READ_ATTEMPTS times) until both show the same seqno. Past
// that, only a volume's read_write could be stale, and an LV that is not in both reads
// is left out, as if the read had come a moment earlier or later.

import { ErrorCode, ThinlvError } from '../errors.js';
import type { CommandContext } from '../cli/context.js';
import { readThinlvVg } from '../format/thinlvVg.js';
import { readVgMetadata } from '../lvm/commitBatch.js';
import { readThinView } from '../lvmcompat/thinSizes.js';
import { lvExtentCount, type VgMetadata } from '../metadata/vgModel.js';
import { volumeOf, type Volume } from './volume.js';

export const MAX_READ_ATTEMPTS = 3;

export interface VolumesRead {
  readonly vg: string;
  readonly seqno: number;
  /** By key (LV name), in LV name order. */
  readonly volumes: ReadonlyMap<string, Volume>;
  /** Every LV of the VG by name, thin or not: to tell LV_NOT_FOUND from NOT_THIN_LV. */
  readonly lvNames: ReadonlySet<string>;
  /** What could not be counted (a host journal that cannot be read), one line each. */
  readonly warnings: readonly string[];
}

export async function readVolumes(context: CommandContext, vgName: string): Promise<VolumesRead> {
  for (let attempt = 1; ; attempt++) {
    const metadata = await readVgMetadata(context.lvm, vgName);
    // NOT_FORMATTED (or FORMAT_VERSION) before anything else is read.
    readThinlvVg(metadata);
    const view = await readThinView(context, vgName);
    if (view === undefined) throw new ThinlvError('NOT_FORMATTED', `VG ${vgName} is not formatted for thinlv: run "thinlv format ${vgName}" first`, { vg: vgName });
    if (view.vg.seqno !== metadata.seqno && attempt < MAX_READ_ATTEMPTS) {
      context.log.debug({ vg: vgName, attempt, reportSeqno: view.vg.seqno, metadataSeqno: metadata.seqno }, 'the VG changed between reads; reading again');
      continue;
    }
    const volumes = new Map<string, Volume>();
    const thinLvs = [...readThinlvVg(view.vg).thinLvs.values()].sort((a, b) => (a.lv.name < b.lv.name ? -1 : a.lv.name > b.lv.name ? 1 : 0));
    for (const thin of thinLvs) {
      const writable = writableByUuid(metadata, thin.lv.uuid);
      if (writable === undefined) continue;
      const grown = view.grown.get(thin.lv.uuid);
      volumes.set(
        thin.lv.name,
        volumeOf({
          vgName,
          lvName: thin.lv.name,
          lvUuid: thin.lv.uuid,
          tags: thin.lv.tags,
          virtualBytes: thin.virtualBytes,
          allocatedExtentCount: grown?.extentCount ?? lvExtentCount(thin.lv),
          extentSizeBytes: view.extentSizeBytes,
          writable,
        }),
      );
    }
    return { vg: vgName, seqno: view.vg.seqno, volumes, lvNames: new Set(view.vg.lvs.map((lv) => lv.name)), warnings: view.warnings };
  }
}

/** Whether LVM's metadata lets the LV be written (`lvchange -p r` drops WRITE); undefined when the LV is not there. */
function writableByUuid(metadata: VgMetadata, uuid: string): boolean | undefined {
  const lv = metadata.lvs.find((l) => l.uuid === uuid);
  return lv === undefined ? undefined : lv.status.includes('WRITE');
}

/** The volume `key`, or LV_NOT_FOUND / NOT_THIN_LV. */
export function volumeNamed(read: VolumesRead, key: string): Volume {
  const volume = read.volumes.get(key);
  if (volume !== undefined) return volume;
  if (read.lvNames.has(key)) {
    throw new ThinlvError('NOT_THIN_LV', `LV ${read.vg}/${key} is not a thin LV (nor a volume): thinlv vdi manages thin LVs only`, { vg: read.vg, key });
  }
  throw new ThinlvError(ErrorCode.lvNotFound, `no volume ${key} in VG ${read.vg} (thinlv vdi list ${read.vg} lists them)`, { vg: read.vg, key });
}
