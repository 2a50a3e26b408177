// `thinlv vdi ACTION VG ...`: a JSON volume API for storage-manager plugins, modelled on
// the xapi-storage (SMAPIv3) Volume and Datapath calls so that a plugin is a thin shim.
// Every action prints one volume (src/vdi/volume.ts) as one JSON object on stdout, `list`
// an array of them; errors are always JSON ({"ok":false,"error":{code,message,data}},
// src/cli/main.ts) with the catalogue's exit code.
//
//   create, destroy, resize, set, unset   metadata changes: on the master's machine
//                                         (src/master/thinLvs.ts, thinLvTags.ts)
//   activate, deactivate                  through this host's daemon (its socket)
//   stat, list                            reads, on any host (src/vdi/readVolumes.ts)

import { randomBytes } from 'node:crypto';
import { ErrorCode, ThinlvError, UsageError } from '../../errors.js';
import { defaultSocketPath } from '../../host/socketPath.js';
import { newRequestId, requestOnce } from '../../host/socketServer.js';
import { createThinLv, removeThinLv, setVirtualSize } from '../../master/thinLvs.js';
import { changeThinLvTags, type ThinLvTagChange } from '../../master/thinLvTags.js';
import { invalidNameReason } from '../../metadata/names.js';
import { readVolumes, volumeNamed } from '../../vdi/readVolumes.js';
import type { Volume } from '../../vdi/volume.js';
import { MAX_KEY_VALUE_PAIRS, VDI_TAG, descriptionTag, keyValuePrefix, keyValueTag, nameTag } from '../../vdi/volumeTags.js';
import type { CommandContext } from '../context.js';
import { ensureOnMasterHost, withMetadataLock } from '../masterContext.js';
import { parseSize } from '../sizes.js';
import { validateVgName } from '../validate.js';
import { CLIENT_TIMEOUT_MS } from './lvextend.js';

export const VDI_ACTIONS = ['create', 'destroy', 'resize', 'stat', 'list', 'set', 'unset', 'activate', 'deactivate'] as const;
export type VdiAction = (typeof VDI_ACTIONS)[number];

export interface VdiArgs {
  readonly action: string;
  readonly vg: string;
  readonly key?: string | undefined;
  readonly name?: string | undefined;
  readonly description?: string | undefined;
  readonly virtualSize?: string | undefined;
  /** set/unset: the pair's key and value (SMAPIv3's k and v). */
  readonly k?: string | undefined;
  readonly v?: string | undefined;
  readonly socket?: string | undefined;
  readonly force?: boolean | undefined;
}

type OptionName = 'key' | 'name' | 'description' | 'virtualSize' | 'k' | 'v' | 'socket' | 'force';
const OPTION_FLAG: Readonly<Record<OptionName, string>> = {
  key: '--key', name: '--name', description: '--description', virtualSize: '--virtual-size', k: '--k', v: '--v', socket: '--socket', force: '--force',
};
/** The options each action takes; any other one given is refused, never ignored. */
const ACTION_OPTIONS: Readonly<Record<VdiAction, readonly OptionName[]>> = {
  create: ['key', 'name', 'description', 'virtualSize', 'force'],
  destroy: ['key'],
  resize: ['key', 'virtualSize', 'force'],
  stat: ['key'],
  list: [],
  set: ['key', 'name', 'description', 'k', 'v'],
  unset: ['key', 'k'],
  activate: ['key', 'socket'],
  deactivate: ['key', 'socket'],
};

/** Generated keys: "vdi-" and 12 hex digits (48 random bits). */
export const GENERATED_KEY_PREFIX = 'vdi-';

const isAction = (action: string): action is VdiAction => VDI_ACTIONS.some((a) => a === action);

export async function runVdi(context: CommandContext, args: VdiArgs): Promise<number> {
  if (!isAction(args.action)) throw new UsageError(ErrorCode.invalidArgument, `unknown vdi action "${args.action}": one of ${VDI_ACTIONS.join(', ')}`, { action: args.action });
  validateVgName(args.vg);
  checkOptions(args.action, args);
  switch (args.action) {
    case 'create':
      return create(context, args);
    case 'destroy':
      return destroy(context, args.vg, requiredKey(args));
    case 'resize':
      return resize(context, args);
    case 'stat':
      return printVolume(await stat(context, args.vg, requiredKey(args)));
    case 'list': {
      const read = await readVolumes(context, args.vg);
      warn(read.warnings);
      process.stdout.write(`${JSON.stringify([...read.volumes.values()])}\n`);
      return 0;
    }
    case 'set':
    case 'unset':
      return changeTags(context, args.action, args);
    case 'activate':
    case 'deactivate':
      return changeActivation(context, args.action, args);
  }
}

function checkOptions(action: VdiAction, args: VdiArgs): void {
  const allowed = ACTION_OPTIONS[action];
  const given = (Object.keys(OPTION_FLAG) as OptionName[]).filter((option) => args[option] !== undefined && args[option] !== false);
  const refused = given.filter((option) => !allowed.includes(option));
  if (refused.length > 0) {
    throw new UsageError(ErrorCode.invalidArgument, `vdi ${action} does not take ${refused.map((o) => OPTION_FLAG[o]).join(', ')}${allowed.length > 0 ? ` (it takes ${allowed.map((o) => OPTION_FLAG[o]).join(', ')})` : ''}`, { action, refused: refused.map((o) => OPTION_FLAG[o]) });
  }
}

function required(value: string | undefined, flag: string, action: string): string {
  if (value === undefined) throw new UsageError(ErrorCode.invalidArgument, `vdi ${action} needs ${flag}`, { action, missing: flag });
  return value;
}

/** The volume's key, checked as an LV name before anything is read. */
function requiredKey(args: VdiArgs): string {
  const key = required(args.key, '--key', args.action);
  checkKey(key);
  return key;
}

function checkKey(key: string): void {
  const problem = invalidNameReason(key, 'LV');
  if (problem !== undefined) throw new UsageError(ErrorCode.invalidArgument, `invalid volume key (an LV name): ${problem}`, { key });
}

/** An absolute size; a plain number is bytes, as SMAPIv3 sizes are (units b s k m g t p e accepted). */
function virtualBytes(args: VdiArgs): number {
  const size = parseSize(required(args.virtualSize, '--virtual-size', args.action), '--virtual-size', 'b');
  if (size.relative !== undefined) throw new UsageError(ErrorCode.invalidArgument, '--virtual-size takes an absolute size (no + or -)', { value: args.virtualSize });
  return size.bytes;
}

async function create(context: CommandContext, args: VdiArgs): Promise<number> {
  const name = required(args.name, '--name', 'create');
  const key = args.key ?? `${GENERATED_KEY_PREFIX}${randomBytes(6).toString('hex')}`;
  checkKey(key);
  if (key.startsWith('thinlv_')) throw new UsageError(ErrorCode.invalidArgument, `volume keys starting with "thinlv_" are reserved for thinlv's own LVs`, { key });
  const bytes = virtualBytes(args);
  // Encoded (and refused when too long) before anything is read.
  const tags = [nameTag(name), ...(args.description !== undefined && args.description !== '' ? [descriptionTag(args.description)] : [])];
  await ensureOnMasterHost(context, args.vg);
  const result = await withMetadataLock(context, args.vg, () => createThinLv(context.lvm, args.vg, key, bytes, 0, args.force === true, tags));
  warn(result.warnings ?? []);
  return printVolume(await stat(context, args.vg, key));
}

async function destroy(context: CommandContext, vg: string, key: string): Promise<number> {
  await ensureOnMasterHost(context, vg);
  // What is printed: the volume as it was, read before it goes (an unknown key fails here).
  const volume = await stat(context, vg, key);
  await withMetadataLock(context, vg, () => removeThinLv(context.lvm, vg, key));
  return printVolume(volume);
}

async function resize(context: CommandContext, args: VdiArgs): Promise<number> {
  const key = requiredKey(args);
  const bytes = virtualBytes(args);
  await ensureOnMasterHost(context, args.vg);
  const result = await withMetadataLock(context, args.vg, () => setVirtualSize(context.lvm, args.vg, key, bytes, args.force === true));
  warn(result.warnings ?? []);
  return printVolume(await stat(context, args.vg, key));
}

async function changeTags(context: CommandContext, action: 'set' | 'unset', args: VdiArgs): Promise<number> {
  const key = requiredKey(args);
  const changes: ThinLvTagChange[] = [];
  if (action === 'unset') {
    changes.push({ kind: 'removePrefix', prefix: keyValuePrefix(required(args.k, '--k', action)) });
  } else {
    if (args.name === undefined && args.description === undefined && args.k === undefined) {
      throw new UsageError(ErrorCode.invalidArgument, 'vdi set needs --k K --v V (a key-value pair), --name or --description', { action });
    }
    if ((args.k === undefined) !== (args.v === undefined)) throw new UsageError(ErrorCode.invalidArgument, 'vdi set takes --k and --v together', { action });
    if (args.name !== undefined) changes.push({ kind: 'set', tag: nameTag(args.name), replacingPrefix: VDI_TAG.name });
    if (args.description === '') changes.push({ kind: 'removePrefix', prefix: VDI_TAG.description });
    else if (args.description !== undefined) changes.push({ kind: 'set', tag: descriptionTag(args.description), replacingPrefix: VDI_TAG.description });
    if (args.k !== undefined) changes.push({ kind: 'set', tag: keyValueTag(args.k, args.v!), replacingPrefix: keyValuePrefix(args.k) });
  }
  await ensureOnMasterHost(context, args.vg);
  await withMetadataLock(context, args.vg, () => changeThinLvTags(context.lvm, args.vg, key, changes, refuseTooManyPairs));
  return printVolume(await stat(context, args.vg, key));
}

function refuseTooManyPairs(tags: readonly string[]): void {
  const pairCount = tags.filter((t) => t.startsWith(VDI_TAG.keyValue)).length;
  if (pairCount > MAX_KEY_VALUE_PAIRS) {
    throw new UsageError(ErrorCode.invalidArgument, `a volume holds at most ${MAX_KEY_VALUE_PAIRS} key-value pairs (each is a tag in the VG's shared metadata area): unset one first`, { maxPairs: MAX_KEY_VALUE_PAIRS });
  }
}

/** Asks this host's daemon (which alone knows the LV's unreplayed extents) to (de)activate it. */
async function changeActivation(context: CommandContext, op: 'activate' | 'deactivate', args: VdiArgs): Promise<number> {
  const key = requiredKey(args);
  // The VG's metadata first: the daemon's copy may be older than a destroy, and it would
  // ask the master for an LV that is gone (and wait for its answer) instead of saying so.
  await stat(context, args.vg, key);
  const reply = await requestOnce(args.socket ?? defaultSocketPath(args.vg), { id: newRequestId(), op, vg: args.vg, lv: key }, CLIENT_TIMEOUT_MS);
  if (!reply.ok) throw new ThinlvError(reply.error.code, reply.error.message, reply.error.data ?? {});
  return printVolume(await stat(context, args.vg, key));
}

async function stat(context: CommandContext, vg: string, key: string): Promise<Volume> {
  const read = await readVolumes(context, vg);
  warn(read.warnings);
  return volumeNamed(read, key);
}

function printVolume(volume: Volume): number {
  process.stdout.write(`${JSON.stringify(volume)}\n`);
  return 0;
}

/** Warnings go to stderr, so that stdout holds the JSON alone. */
function warn(warnings: readonly string[]): void {
  for (const warning of warnings) process.stderr.write(`${warning}\n`);
}
