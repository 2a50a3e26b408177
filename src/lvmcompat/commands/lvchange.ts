// `lvchange -p r|rw`, `--addtag|--deltag TAG` and `-ay|-an|--refresh`, on one or more
// LVPATHs, as lvm's lvchange prints and exits.
//
// Metadata (permission, tags): ONE commit per VG on the master machine, for every LV
// named; an LV that cannot be changed (not found, already read-only, ...) is reported
// and the others are changed, exit 5, as lvm does. thinlv's own tags (thinlv_*) cannot be
// added or removed here: they are thinlv's state (owner, virtual size, cursors).
//
// Activation, on this machine, after the metadata change:
//   ordinary LV   stock `lvchange -ay|-an|--refresh` (its table is its metadata)
//   thin LV       the host daemon: -ay `activate` (claims the LV, loads metadata plus
//                 unreplayed segments), -an `deactivate` (removes the table, gives up
//                 the hold), --refresh `activate` again, which reloads that same table
//                 when the LV is active here. Never stock lvm: its table would lack
//                 unreplayed extents (DESIGN.md). An LV this host does not hold is not
//                 active here, so -an and --refresh leave it alone, as lvm does.
//   -an --deflate SIZE (thinlv's own option, thin LVs only): after deactivating, the
//                 daemon journals a deflate and waits for the master's pass: the LV's
//                 allocated extents past SIZE go back to VG free space if nobody holds
//                 it then (a size given as -L is read; the virtual size stays). Runs on
//                 any host with a daemon, whether or not the LV was active there.

import { hostname } from 'node:os';
import { commitBatch, readVgMetadata } from '../../lvm/commitBatch.js';
import { ownerOf } from '../../format/thinlvVg.js';
import { readVgReport } from '../../lvm/readVgReport.js';
import { invalidTagReason } from '../../metadata/names.js';
import type { LvMetadata } from '../../metadata/vgModel.js';
import type { MetadataChange } from '../../metadata/applyChanges.js';
import { withMetadataLock } from '../../cli/masterContext.js';
import type { CommandContext } from '../../cli/context.js';
import { flagSpec, hasOption, lastValue, LVM_EXIT, LvmUsageError, unsupportedSpec, valuedSpec, valuesOf, type OptionSpec, type ParsedLvmArgs } from '../lvmArgs.js';
import { parseSizeOption } from '../sizeArgs.js';
import { runStock } from '../stockLvm.js';
import { activateThinLv, deactivateThinLv, hostDaemonStatus } from '../hostDaemonRequests.js';
import { activationValue, failedToFind, isThinLv, isThinlvOwnLv, lvmFailure, lvmUsage, parseLvPath, refuseOffMaster, runLvmCompatCommand, type LvPath } from '../writeCommon.js';

const COMMAND = 'lvchange';
const WHY = 'thinlv changes only permission, tags and activation';
const OPTIONS: readonly OptionSpec[] = [
  valuedSpec('permission', 'p'),
  valuedSpec('addtag'),
  valuedSpec('deltag'),
  valuedSpec('activate', 'a'),
  valuedSpec('deflate'),
  flagSpec('refresh'),
  flagSpec('force', 'f'),
  flagSpec('noudevsync'),
  flagSpec('ignorelockingfailure'),
  ...['setactivationskip:k', 'contiguous:C', 'persistent:M', 'major:j', 'minor', 'readahead:r', 'alloc', 'monitor', 'poll', 'discards', 'zero:Z', 'errorwhenfull', 'metadataprofile', 'deltag_all', 'syncaction', 'writemostly', 'writebehind', 'minrecoveryrate', 'maxrecoveryrate', 'cachemode', 'cachepolicy', 'cachesettings', 'compression', 'deduplication', 'vdosettings', 'select:S'].map((spec) => {
    const [long, short] = spec.split(':') as [string, string | undefined];
    return unsupportedSpec(valuedSpec(long, short), WHY);
  }),
  unsupportedSpec(flagSpec('ignoreactivationskip', 'K'), 'thinlv activates thin LVs through the host daemon only'),
  unsupportedSpec(flagSpec('resync'), WHY),
  unsupportedSpec(flagSpec('rebuild'), WHY),
];

export type Activation = 'activate' | 'deactivate' | 'refresh';

export interface LvchangeRequest {
  readonly paths: readonly LvPath[];
  /** true: rw, false: r. */
  readonly writable: boolean | undefined;
  readonly addTags: readonly string[];
  readonly delTags: readonly string[];
  readonly activation: Activation | undefined;
  /** -an --deflate SIZE: the allocated bytes to keep. */
  readonly deflateToBytes: number | undefined;
}

export const run = (args: readonly string[]): Promise<number> => runLvmCompatCommand(COMMAND, args, OPTIONS, change);

/** The command line read as lvm reads it, refused (exit 3) where lvm refuses it. Pure. */
export function readLvchangeRequest(parsed: ParsedLvmArgs): LvchangeRequest {
  const permission = lastValue(parsed, 'permission');
  if (permission !== undefined && permission !== 'r' && permission !== 'rw') throw new LvmUsageError(`  Invalid argument for --permission: ${permission}\n  Error during parsing of command line.\n`);
  const addTags = valuesOf(parsed, 'addtag');
  const delTags = valuesOf(parsed, 'deltag');
  for (const [tags, option] of [[addTags, 'addtag'], [delTags, 'deltag']] as const) {
    const bad = tags.find((tag) => invalidTagReason(tag) !== undefined);
    if (bad !== undefined) throw new LvmUsageError(`  Invalid argument for --${option}: ${bad}\n  Error during parsing of command line.\n`);
  }
  const activate = activationValue(COMMAND, lastValue(parsed, 'activate'));
  if (activate !== undefined && hasOption(parsed, 'refresh')) throw lvmUsage(COMMAND, 'Only one of --activate and --refresh may be given.');
  const activation: Activation | undefined = hasOption(parsed, 'refresh') ? 'refresh' : activate === undefined ? undefined : activate ? 'activate' : 'deactivate';
  if (permission === undefined && addTags.length === 0 && delTags.length === 0 && activation === undefined) {
    throw new LvmUsageError(`  No command with matching syntax recognised.  Run '${COMMAND} --help' for more information.\n`);
  }
  if (parsed.positionals.length === 0) throw lvmUsage(COMMAND, 'Please give logical volume path(s)');
  const deflateToBytes = readDeflateSize(lastValue(parsed, 'deflate'), activation);
  return { paths: parsed.positionals.map((text) => parseLvPath(COMMAND, text)), writable: permission === undefined ? undefined : permission === 'rw', addTags, delTags, activation, deflateToBytes };
}

/** `--deflate SIZE` (lvm's -L syntax, no sign, more than 0), only with -an. */
function readDeflateSize(text: string | undefined, activation: Activation | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (activation !== 'deactivate') throw lvmUsage(COMMAND, '--deflate is given with -an (it gives back extents of an LV being deactivated).');
  const size = parseSizeOption(text);
  if (size.sign !== undefined || size.amount <= 0) throw new LvmUsageError(`  Invalid argument for --deflate: ${text} (a size above 0, no sign)\n  Error during parsing of command line.\n`);
  return size.amount;
}

async function change(context: CommandContext, parsed: ParsedLvmArgs): Promise<number> {
  const request = readLvchangeRequest(parsed);
  const reserved = [...request.addTags, ...request.delTags].find((tag) => tag.startsWith('thinlv_'));
  if (reserved !== undefined) throw lvmFailure(`Tag ${reserved} is thinlv's own (its state lives in thinlv_* tags); it is changed only by thinlv.`);
  const changesMetadata = request.writable !== undefined || request.addTags.length > 0 || request.delTags.length > 0;
  if (changesMetadata && request.activation !== undefined) process.stderr.write('  WARNING: Combining activation change with other commands is not advised.\n');
  let exitCode: number = LVM_EXIT.ok;
  for (const vg of [...new Set(request.paths.map((p) => p.vg))]) {
    const names = [...new Set(request.paths.filter((p) => p.vg === vg).map((p) => p.lv))];
    if (changesMetadata) {
      const outcome = await withMetadataLock(context, vg, () => changeMetadataOnce(context, vg, names, request));
      for (const line of outcome.refused) process.stderr.write(line);
      for (const name of outcome.changed) process.stdout.write(`  Logical volume ${vg}/${name} changed.\n`);
      if (outcome.refused.length > 0) exitCode = LVM_EXIT.failed;
    }
    if (request.activation !== undefined) {
      const code = await changeActivation(context, vg, names, request, changesMetadata);
      if (code !== LVM_EXIT.ok) exitCode = code;
    }
  }
  return exitCode;
}

/** The metadata changes for one LV, or the line lvm prints when it cannot be changed. */
function changesFor(vg: string, lv: LvMetadata | undefined, name: string, request: LvchangeRequest): MetadataChange[] | string {
  if (lv === undefined) return failedToFind({ vg, lv: name }).stderr;
  if (isThinlvOwnLv(name)) return `  Logical volume ${vg}/${name} belongs to thinlv; it is changed only by thinlv.\n`;
  const changes: MetadataChange[] = [];
  if (request.writable !== undefined) {
    const writable = lv.status.includes('WRITE');
    if (writable === request.writable) return request.writable ? `  Logical volume ${vg}/${name} is already writable.\n` : `  Logical volume "${vg}/${name}" is already read only.\n`;
    changes.push({ kind: 'setLvWritable', lv: name, writable: request.writable });
  }
  for (const tag of request.addTags) changes.push({ kind: 'setTag', lv: name, tag });
  for (const tag of request.delTags) changes.push({ kind: 'removeTag', lv: name, tag });
  return changes;
}

async function changeMetadataOnce(context: CommandContext, vgName: string, names: readonly string[], request: LvchangeRequest): Promise<{ changed: string[]; refused: string[] }> {
  const vg = await readVgMetadata(context.lvm, vgName);
  refuseOffMaster(vg, COMMAND);
  const changed: string[] = [];
  const refused: string[] = [];
  const changes: MetadataChange[] = [];
  for (const name of names) {
    const planned = changesFor(vgName, vg.lvs.find((l) => l.name === name), name, request);
    if (typeof planned === 'string') refused.push(planned);
    else {
      changes.push(...planned);
      changed.push(name);
    }
  }
  if (changes.length > 0) await commitBatch(context.lvm, vg, changes);
  return { changed, refused };
}

/** (De)activates or refreshes each LV here: thin ones through the host daemon, others through stock lvm. */
async function changeActivation(context: CommandContext, vgName: string, names: readonly string[], request: LvchangeRequest, metadataChanged: boolean): Promise<number> {
  const activation = request.activation!;
  // A read-only report: activation changes no metadata, and runs on any host.
  const vg = await readVgReport(context.lvm, vgName);
  let exitCode: number = LVM_EXIT.ok;
  let daemonHost: string | undefined | null = null;
  for (const name of names) {
    const lv = vg.lvs.find((l) => l.name === name);
    if (lv === undefined) {
      // Already reported with the metadata change.
      if (!metadataChanged) process.stderr.write(failedToFind({ vg: vgName, lv: name }).stderr);
      exitCode = LVM_EXIT.failed;
      continue;
    }
    if (!isThinLv(lv)) {
      const code = request.deflateToBytes === undefined ? await changeStockActivation(context, vgName, name, activation) : refuseDeflate(vgName, name);
      if (code !== LVM_EXIT.ok) exitCode = code;
      continue;
    }
    if (activation === 'activate') {
      await activateThinLv(vgName, name);
      continue;
    }
    if (request.deflateToBytes !== undefined) {
      const code = await deactivateAndDeflate(vgName, name, request.deflateToBytes);
      if (code !== LVM_EXIT.ok) exitCode = code;
      continue;
    }
    // -an and --refresh act only on an LV this host holds; ask the daemon which host it is once.
    if (daemonHost === null) daemonHost = (await hostDaemonStatus(vgName))?.host;
    const owner = ownerOf(lv);
    if (daemonHost === undefined) {
      if (owner === hostname()) throw lvmFailure(`No thinlv host daemon serves ${vgName} here, and ${vgName}/${name} is held by this host: start it (thinlv host run ${vgName} ${owner}).`);
      continue;
    }
    if (owner !== daemonHost) continue;
    if (activation === 'deactivate') await deactivateThinLv(vgName, name);
    else await activateThinLv(vgName, name);
  }
  return exitCode;
}

async function changeStockActivation(context: CommandContext, vgName: string, name: string, activation: Activation): Promise<number> {
  const option = activation === 'refresh' ? '--refresh' : activation === 'activate' ? '-ay' : '-an';
  const stock = await runStock(context, COMMAND, [option, `${vgName}/${name}`]);
  process.stdout.write(stock.stdout);
  process.stderr.write(stock.stderr);
  return stock.exitCode;
}

function refuseDeflate(vgName: string, name: string): number {
  process.stderr.write(`  Logical volume ${vgName}/${name} is not a thin LV: --deflate gives back extents of thin LVs only (shrink others with lvreduce).\n`);
  return LVM_EXIT.failed;
}

/** -an --deflate: the daemon deactivates, journals the deflate and waits for the master; says what came of it. */
async function deactivateAndDeflate(vgName: string, name: string, deflateToBytes: number): Promise<number> {
  const { deflate } = await deactivateThinLv(vgName, name, deflateToBytes);
  if (deflate === undefined) throw lvmFailure(`The host daemon serving ${vgName} here does not know --deflate: upgrade it.`);
  if (!deflate.replayed) {
    process.stderr.write(`  WARNING: ${vgName}/${name} deactivated; its deflate is journaled (seq ${deflate.seq}) but the master has not replayed it yet: check that "thinlv master ${vgName}" runs. It applies on the master's next pass.\n`);
    return LVM_EXIT.ok;
  }
  if (deflate.sizeBytes > deflate.targetBytes) {
    const why = deflate.heldBy === null ? 'another host held it when the master replayed the deflate' : `host ${deflate.heldBy} held it when the master replayed the deflate`;
    process.stderr.write(`  Logical volume ${vgName}/${name} was not deflated: ${why}. Deactivate it there and deflate again.\n`);
    return LVM_EXIT.failed;
  }
  process.stdout.write(`  Logical volume ${vgName}/${name} deactivated and deflated: ${deflate.sizeBytes} bytes allocated.\n`);
  return LVM_EXIT.ok;
}
