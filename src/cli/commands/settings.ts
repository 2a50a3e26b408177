// `thinlv set VG [--warn-percent N] [--critical-percent N] [--overcommit-limit-percent N|none]`:
// the VG's report and guard-rail settings, kept as VG tags (src/format/thinlvVg.ts) and
// changed in one metadata commit on the master machine. Pool settings (quantum, low-water,
// reserve) are `thinlv format`'s.

import { ErrorCode, UsageError } from '../../errors.js';
import { TAG, readAlertLevels, readThinlvVg } from '../../format/thinlvVg.js';
import { commitBatch, readVgMetadata, systemIdentity } from '../../lvm/commitBatch.js';
import { applyChanges, type MetadataChange } from '../../metadata/applyChanges.js';
import type { CommandContext } from '../context.js';
import { ensureOnMasterHost, withMetadataLock } from '../masterContext.js';
import { printResult } from '../output.js';
import { validateVgName } from '../validate.js';

/** The most an overcommit limit may say: 1000x. */
export const MAX_OVERCOMMIT_LIMIT_PERCENT = 100_000;

export interface SetArgs {
  readonly vg: string;
  readonly warnPercent?: number | undefined;
  readonly criticalPercent?: number | undefined;
  /** A percentage, or 'none' to remove the limit. */
  readonly overcommitLimitPercent?: string | undefined;
}

export async function runSet(context: CommandContext, args: SetArgs): Promise<number> {
  validateVgName(args.vg);
  const requested = settingChanges(args);
  if (requested.length === 0 && args.overcommitLimitPercent === undefined) {
    throw new UsageError(ErrorCode.invalidArgument, 'nothing to set: give --warn-percent, --critical-percent or --overcommit-limit-percent');
  }
  await ensureOnMasterHost(context, args.vg);
  const result = await withMetadataLock(context, args.vg, async () => {
    const vg = await readVgMetadata(context.lvm, args.vg);
    readThinlvVg(vg);
    // "none" removes whatever limit tag the VG has now.
    const removals: MetadataChange[] = args.overcommitLimitPercent === 'none' ? vg.tags.filter((t) => t.startsWith(TAG.overcommitLimitPercent)).map((tag) => ({ kind: 'removeTag', tag })) : [];
    const changes = [...requested, ...removals];
    // Refuses (before writing) a warning level above the critical one, counting the levels the VG keeps.
    const levels = readAlertLevels(applyChanges(vg, changes, systemIdentity));
    const seqno = changes.length > 0 ? (await commitBatch(context.lvm, vg, changes)).seqno : vg.seqno;
    return { vg: args.vg, seqno, warnPercent: levels.warnPermille / 10, criticalPercent: levels.criticalPermille / 10 };
  });
  printResult(context, result, `VG ${args.vg}: warning at ${result.warnPercent}%, critical at ${result.criticalPercent}% committed${overcommitText(args.overcommitLimitPercent)}.`);
  return 0;
}

/** The VG tags the arguments set, checked before anything is read ("none" is handled on the VG read). */
function settingChanges(args: SetArgs): MetadataChange[] {
  const changes: MetadataChange[] = [];
  const percentTag = (prefix: string, value: number | undefined, what: string): void => {
    if (value === undefined) return;
    if (!Number.isFinite(value) || value <= 0 || value > 100 || Math.round(value * 10) !== value * 10) {
      throw new UsageError(ErrorCode.invalidArgument, `${what} must be a percentage above 0 and at most 100, in tenths at most, got ${value}`);
    }
    changes.push({ kind: 'setTag', tag: `${prefix}${Math.round(value * 10)}`, replacingPrefix: prefix });
  };
  percentTag(TAG.warnPermille, args.warnPercent, '--warn-percent');
  percentTag(TAG.criticalPermille, args.criticalPercent, '--critical-percent');
  const limit = args.overcommitLimitPercent;
  if (limit !== undefined && limit !== 'none') {
    const value = Number(limit);
    if (!Number.isSafeInteger(value) || value < 100 || value > MAX_OVERCOMMIT_LIMIT_PERCENT) {
      throw new UsageError(ErrorCode.invalidArgument, `--overcommit-limit-percent must be a whole number from 100 to ${MAX_OVERCOMMIT_LIMIT_PERCENT}, or none, got ${limit}`);
    }
    changes.push({ kind: 'setTag', tag: `${TAG.overcommitLimitPercent}${value}`, replacingPrefix: TAG.overcommitLimitPercent });
  }
  return changes;
}

const overcommitText = (limit: string | undefined): string =>
  limit === undefined ? '' : limit === 'none' ? '; no overcommit limit' : `; lvcreate and lvresize -V refuse past ${Number(limit) / 100}x overcommit`;

