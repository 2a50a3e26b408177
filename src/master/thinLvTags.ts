// Tags of a thin LV that thinlv does not interpret itself (a VDI's name, description and
// key-value pairs: src/vdi/volumeTags.ts), changed in one metadata commit on the master's
// machine. Tags move no extent, so a held (active) LV may have them changed: the host
// holding it reads only the virtual-size and owner tags, which no change here touches.
//
// Safe to repeat: each change sets a tag after removing those of its prefix, or removes
// one, so running it again leaves the same tags; a change that would leave the tags as
// they are commits nothing.

import { ErrorCode, InvariantError, ThinlvError } from '../errors.js';
import { TAG, readThinlvVg } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../lvm/commitBatch.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import type { MetadataChange } from '../metadata/applyChanges.js';

/** Set a tag (removing first every tag of `replacingPrefix`), or remove every tag of a prefix. */
export type ThinLvTagChange = { readonly kind: 'set'; readonly tag: string; readonly replacingPrefix: string } | { readonly kind: 'removePrefix'; readonly prefix: string };

/** Prefixes of the tags thinlv itself reads on a thin LV: never changed here. */
const THINLV_OWN_PREFIXES = [TAG.virtualBytes, TAG.owner];

export interface ThinLvTagsResult {
  readonly vg: string;
  readonly lv: string;
  readonly seqno: number;
  readonly committed: boolean;
}

export async function changeThinLvTags(lvm: LvmRunner, vgName: string, lvName: string, changes: readonly ThinLvTagChange[], checkTags?: (tagsAfter: readonly string[]) => void): Promise<ThinLvTagsResult> {
  for (const change of changes) {
    const prefix = change.kind === 'set' ? change.replacingPrefix : change.prefix;
    if (prefix.length === 0 || THINLV_OWN_PREFIXES.some((own) => own.startsWith(prefix) || prefix.startsWith(own)) || (change.kind === 'set' && !change.tag.startsWith(prefix))) {
      throw new InvariantError(`a thin LV tag change must stay off thinlv's own tags and within its prefix`, { change });
    }
  }
  const vg = await readVgMetadata(lvm, vgName);
  const lv = vg.lvs.find((l) => l.name === lvName);
  if (lv === undefined) throw new ThinlvError(ErrorCode.lvNotFound, `LV ${vgName}/${lvName} does not exist`, { vg: vgName, lv: lvName });
  if (!readThinlvVg(vg).thinLvs.has(lvName)) {
    throw new ThinlvError('NOT_THIN_LV', `LV ${vgName}/${lvName} is not a thinlv LV (it has no ${TAG.virtualBytes} tag)`, { vg: vgName, lv: lvName });
  }
  let tags = [...lv.tags];
  const metadataChanges: MetadataChange[] = [];
  for (const change of changes) {
    if (change.kind === 'set') {
      const next = [...tags.filter((t) => !t.startsWith(change.replacingPrefix)), change.tag];
      if (sameTags(tags, next)) continue;
      tags = next;
      metadataChanges.push({ kind: 'setTag', lv: lvName, tag: change.tag, replacingPrefix: change.replacingPrefix });
    } else {
      for (const tag of tags.filter((t) => t.startsWith(change.prefix))) metadataChanges.push({ kind: 'removeTag', lv: lvName, tag });
      tags = tags.filter((t) => !t.startsWith(change.prefix));
    }
  }
  // Refuses (before writing) what the tags would be after: too many pairs, say.
  checkTags?.(tags);
  if (metadataChanges.length === 0) return { vg: vgName, lv: lvName, seqno: vg.seqno, committed: false };
  const result = await commitBatch(lvm, vg, metadataChanges);
  return { vg: vgName, lv: lvName, seqno: result.seqno, committed: true };
}

const sameTags = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && new Set([...a, ...b]).size === new Set(a).size;
