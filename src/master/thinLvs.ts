// Thin LVs: ordinary linear LVs that carry their virtual size as a tag and
// LVM's activation-skip flag, so a stock `vgchange -ay` never activates them
// from metadata that lacks a host's unreplayed extents.
//
// Every operation here is one metadata commit. A thin LV a host holds
// (thinlv_owner=<host>: active there, or in the middle of an extend) is that
// host's to grow, and its unreplayed extents are not in metadata yet, so the
// master refuses to remove, deflate or shrink the virtual size of a held LV
// (LV_IN_USE); raising the virtual size is safe (the host reads it again when an
// extend would pass the old one). An LV nobody holds has no unreplayed
// allocation anywhere: a host's release is replayed after its allocations, and a
// host allocates only while it holds the LV. A host that wants it later must
// claim it through a replay pass, which sees the change, so no host acts on the
// LV as it was before the change (I3).

import { ErrorCode, ThinlvError, UsageError } from '../errors.js';
import { chooseExtents } from '../extent/chooseExtents.js';
import { tailRanges } from '../extent/segments.js';
import { TAG, readThinlvVg, type ThinlvVg } from '../format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../lvm/commitBatch.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import { invalidNameReason } from '../metadata/names.js';
import { computeFreeExtents } from '../metadata/checkLayout.js';
import { extentSizeBytes, linearSegments, lvExtentCount, type VgMetadata } from '../metadata/vgModel.js';
import { checkOvercommit } from './overcommit.js';
import { runPass, MasterSession, type MasterDeps } from './replayPass.js';

export interface ThinLvSummary {
  readonly vg: string;
  readonly lv: string;
  readonly virtualBytes: number;
  readonly physicalBytes: number;
  readonly seqno: number;
  /** Said to the operator, the change made anyway (overcommit past the VG's size). */
  readonly warnings?: readonly string[];
}

function thinLvOf(vg: VgMetadata, name: string) {
  const thinlv = readThinlvVg(vg);
  const lv = vg.lvs.find((l) => l.name === name);
  if (lv === undefined) throw new ThinlvError(ErrorCode.lvNotFound, `LV ${vg.name}/${name} does not exist`, { vg: vg.name, lv: name });
  const thin = thinlv.thinLvs.get(name);
  if (thin === undefined) throw new ThinlvError('NOT_THIN_LV', `LV ${vg.name}/${name} is not a thinlv LV (it has no ${TAG.virtualBytes} tag); use lvm for it`, { vg: vg.name, lv: name });
  return { thinlv, lv, thin };
}

/** Refuses a change that only the holding host could make safely. */
function refuseIfHeld(vg: VgMetadata, name: string, what: string): void {
  const owner = thinLvOf(vg, name).thin.owner;
  if (owner !== undefined) {
    throw new ThinlvError('LV_IN_USE', `LV ${vg.name}/${name} is held by host ${owner} (active there, or being extended): deactivate it there before you ${what}`, { vg: vg.name, lv: name, owner });
  }
}

function checkLvName(name: string): void {
  const problem = invalidNameReason(name, 'LV');
  if (problem) throw new UsageError(ErrorCode.invalidArgument, `invalid LV name: ${problem}`, { lv: name });
  if (/^thinlv_/.test(name)) throw new UsageError(ErrorCode.invalidArgument, `LV names starting with "thinlv_" are reserved for thinlv's own LVs`, { lv: name });
}

/**
 * Creates a thin LV of `virtualBytes`, with `initialBytes` (at least one extent) allocated now.
 * `extraTags` (valid LVM tags, e.g. a VDI's name) are written in the same commit, so the LV
 * never exists without them.
 */
export async function createThinLv(lvm: LvmRunner, vgName: string, name: string, virtualBytes: number, initialBytes = 0, force = false, extraTags: readonly string[] = []): Promise<ThinLvSummary> {
  checkLvName(name);
  const vg = await readVgMetadata(lvm, vgName);
  const thinlv = readThinlvVg(vg);
  const extentBytes = extentSizeBytes(vg);
  if (virtualBytes < extentBytes) throw new UsageError(ErrorCode.invalidArgument, `virtual size ${virtualBytes} bytes is less than one extent (${extentBytes} bytes)`);
  if (initialBytes > virtualBytes) throw new UsageError(ErrorCode.invalidArgument, `initial size ${initialBytes} exceeds the virtual size ${virtualBytes}`);
  if (vg.lvs.some((lv) => lv.name === name)) throw new ThinlvError('LV_EXISTS', `LV ${vgName}/${name} already exists`, { vg: vgName, lv: name });
  const overcommit = checkOvercommit(vg, virtualSizes(thinlv), name, virtualBytes, force);
  // LVM cannot hold an LV of zero extents, so a thin LV starts with one.
  const extentCount = Math.max(1, Math.ceil(initialBytes / extentBytes));
  const chosen = chooseExtents(computeFreeExtents(vg), [], extentCount);
  if (!chosen.ok) {
    throw new ThinlvError(ErrorCode.insufficientExtents, `VG ${vgName} has ${chosen.availableExtentCount} free extents; ${name} needs ${extentCount}`, { vg: vgName, needed: extentCount, available: chosen.availableExtentCount });
  }
  const result = await commitBatch(lvm, vg, [
    { kind: 'createLv', name, ranges: chosen.ranges, activationSkip: true, tags: [`${TAG.virtualBytes}${virtualBytes}`, ...extraTags] },
  ]);
  return { vg: vgName, lv: name, virtualBytes, physicalBytes: extentCount * extentBytes, seqno: result.seqno, ...warned(overcommit.warning) };
}

const virtualSizes = (thinlv: ThinlvVg): Map<string, number> => new Map([...thinlv.thinLvs].map(([name, thin]) => [name, thin.virtualBytes]));
const warned = (warning: string | undefined): Pick<ThinLvSummary, 'warnings'> => (warning === undefined ? {} : { warnings: [warning] });

export async function removeThinLv(lvm: LvmRunner, vgName: string, name: string): Promise<{ vg: string; lv: string; seqno: number }> {
  const vg = await readVgMetadata(lvm, vgName);
  refuseIfHeld(vg, name, 'remove it');
  const result = await commitBatch(lvm, vg, [{ kind: 'removeLv', name }]);
  return { vg: vgName, lv: name, seqno: result.seqno };
}

export async function setVirtualSize(lvm: LvmRunner, vgName: string, name: string, virtualBytes: number, force = false): Promise<ThinLvSummary> {
  const vg = await readVgMetadata(lvm, vgName);
  const { lv, thinlv } = thinLvOf(vg, name);
  const physicalBytes = lvExtentCount(lv) * extentSizeBytes(vg);
  if (virtualBytes < physicalBytes) {
    throw new UsageError(ErrorCode.invalidArgument, `virtual size ${virtualBytes} bytes is below ${name}'s allocated ${physicalBytes} bytes; deflate it first (-L)`, { virtualBytes, physicalBytes });
  }
  if (virtualBytes < thinLvOf(vg, name).thin.virtualBytes) refuseIfHeld(vg, name, 'lower its virtual size');
  const overcommit = checkOvercommit(vg, virtualSizes(thinlv), name, virtualBytes, force);
  const result = await commitBatch(lvm, vg, [{ kind: 'setTag', lv: name, tag: `${TAG.virtualBytes}${virtualBytes}`, replacingPrefix: TAG.virtualBytes }]);
  return { vg: vgName, lv: name, virtualBytes, physicalBytes, seqno: result.seqno, ...warned(overcommit.warning) };
}

/**
 * Renames an LV of `vg` (the VG as read) in one commit. Refused with nothing written: a
 * missing LV (LV_NOT_FOUND), a name taken (LV_EXISTS), and a thin LV a host holds
 * (LV_IN_USE): its journal records and its table name it, and replay finds records by name,
 * so a held LV renamed would have its unreplayed extents released as "LV gone".
 * lvrename adds its own checks (the master machine, an LV active here) and lvm's words.
 */
export async function renameLv(lvm: LvmRunner, vg: VgMetadata, from: string, to: string): Promise<{ seqno: number }> {
  if (!vg.lvs.some((l) => l.name === from)) throw new ThinlvError(ErrorCode.lvNotFound, `LV ${vg.name}/${from} does not exist`, { vg: vg.name, lv: from });
  if (vg.lvs.some((l) => l.name === to)) throw new ThinlvError('LV_EXISTS', `LV ${vg.name}/${to} already exists`, { vg: vg.name, lv: to });
  const owner = readThinlvVg(vg).thinLvs.get(from)?.owner;
  if (owner !== undefined) {
    throw new ThinlvError('LV_IN_USE', `LV ${vg.name}/${from} is held by host ${owner} (active there, or being extended): deactivate it there before you rename it`, { vg: vg.name, lv: from, owner });
  }
  return { seqno: (await commitBatch(lvm, vg, [{ kind: 'renameLv', name: from, newName: to }])).seqno };
}

/** Shrinks the physical size of a thin LV (deflate), after replaying every journal. */
export async function deflateThinLv(deps: MasterDeps, vgName: string, name: string, physicalBytes: number): Promise<ThinLvSummary> {
  await runPass(deps, new MasterSession(), vgName);
  const vg = await readVgMetadata(deps.lvm, vgName);
  const { lv, thin } = thinLvOf(vg, name);
  refuseIfHeld(vg, name, 'deflate it');
  const extentBytes = extentSizeBytes(vg);
  const keepExtentCount = Math.max(1, Math.ceil(physicalBytes / extentBytes));
  const current = lvExtentCount(lv);
  if (keepExtentCount > current) {
    throw new UsageError(ErrorCode.invalidArgument, `${name} holds ${current * extentBytes} bytes; a deflate cannot grow it (hosts grow LVs: thinlv lvextend)`, { physicalBytes });
  }
  const segments = linearSegments(lv);
  if (segments === undefined) throw new ThinlvError(ErrorCode.unsupportedMetadata, `LV ${name} has non-linear segments`, { lv: name });
  const tail = tailRanges(segments, keepExtentCount);
  let seqno = vg.seqno;
  if (tail.length > 0) seqno = (await commitBatch(deps.lvm, vg, [{ kind: 'releaseRanges', lv: name, ranges: tail }])).seqno;
  return { vg: vgName, lv: name, virtualBytes: thin.virtualBytes, physicalBytes: keepExtentCount * extentBytes, seqno };
}
