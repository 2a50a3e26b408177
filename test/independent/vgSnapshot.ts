// Reads a VG's LVM metadata the way src/records/RECORDS.md says a reader should:
// `vgcfgbackup -f FILE` and our own text parser (lvmText.ts). No import from src/.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseLvmText, type LvmSection, type LvmValue } from './lvmText.js';

const run = promisify(execFile);
export const SECTOR_BYTES = 512;

export interface SnapshotPv {
  /** The key in the metadata text (pv0, pv1, ...), which segments name. */
  readonly key: string;
  readonly uuid: string;
  readonly device: string;
  readonly peStartSectors: number;
  readonly peCount: number;
}

export interface SnapshotSegment {
  readonly logicalStart: number;
  readonly extentCount: number;
  /** Undefined for a segment type other than linear (one stripe). */
  readonly pvUuid: string | undefined;
  readonly firstExtent: number;
  readonly type: string;
}

export interface SnapshotLv {
  readonly name: string;
  readonly uuid: string;
  readonly tags: readonly string[];
  readonly flags: readonly string[];
  readonly segments: readonly SnapshotSegment[];
  readonly extentCount: number;
}

export interface VgSnapshot {
  readonly name: string;
  readonly seqno: number;
  readonly extentSizeSectors: number;
  readonly tags: readonly string[];
  readonly pvs: readonly SnapshotPv[];
  readonly lvs: readonly SnapshotLv[];
}

let driverLoadedArgs: string[] | undefined;

/** `--driverloaded n` when device-mapper is missing (`dmsetup version` fails), as lvm needs then. */
async function lvmDriverArgs(): Promise<string[]> {
  if (driverLoadedArgs === undefined) {
    driverLoadedArgs = await run('dmsetup', ['version'], { timeout: 10_000 }).then(
      () => [],
      () => ['--driverloaded', 'n'],
    );
  }
  return driverLoadedArgs;
}

/** The VG's metadata text as vgcfgbackup writes it. */
export async function readMetadataText(vgName: string, devices: readonly string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-indep-'));
  try {
    const file = join(dir, 'vg.txt');
    const args = ['vgcfgbackup', ...devices.flatMap((d) => ['--devices', d]), ...(await lvmDriverArgs()), '-f', file, vgName];
    await run('lvm', args, { timeout: 60_000, env: { ...process.env, LC_ALL: 'C', LVM_SUPPRESS_FD_WARNINGS: '1' } });
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const str = (value: LvmValue | undefined, what: string): string => {
  if (typeof value !== 'string') throw new Error(`metadata: ${what} is not a string`);
  return value;
};
const int = (value: LvmValue | undefined, what: string): number => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new Error(`metadata: ${what} is not an integer`);
  return value;
};
const strings = (value: LvmValue | undefined): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);

/**
 * Builds the snapshot from metadata text. `devices`: the devices the VG was read
 * with; with one device every PV must be it, with several the metadata's device hint
 * must name one of them (this checker does not read PV labels).
 */
export function snapshotFromText(text: string, devices: readonly string[]): VgSnapshot {
  const root = parseLvmText(text);
  const vgName = root.order[0];
  if (vgName === undefined) throw new Error('metadata: no VG section');
  const vg = root.sections.get(vgName)!;
  const pvSection = vg.sections.get('physical_volumes');
  const pvs: SnapshotPv[] = [];
  for (const key of pvSection?.order ?? []) {
    const pv = pvSection!.sections.get(key)!;
    const hint = typeof pv.values.get('device') === 'string' ? (pv.values.get('device') as string) : '';
    const device = devices.length === 1 ? devices[0]! : devices.find((d) => d === hint);
    if (device === undefined) throw new Error(`metadata: PV ${key} (device hint ${hint}) is none of ${devices.join(', ')}`);
    pvs.push({ key, uuid: str(pv.values.get('id'), `${key}.id`), device, peStartSectors: int(pv.values.get('pe_start'), `${key}.pe_start`), peCount: int(pv.values.get('pe_count'), `${key}.pe_count`) });
  }
  const uuidByKey = new Map(pvs.map((p) => [p.key, p.uuid]));
  const lvSection = vg.sections.get('logical_volumes');
  const lvs: SnapshotLv[] = [];
  for (const name of lvSection?.order ?? []) lvs.push(readLv(name, lvSection!.sections.get(name)!, uuidByKey));
  return { name: vgName, seqno: int(vg.values.get('seqno'), 'seqno'), extentSizeSectors: int(vg.values.get('extent_size'), 'extent_size'), tags: strings(vg.values.get('tags')), pvs, lvs };
}

function readLv(name: string, lv: LvmSection, uuidByKey: ReadonlyMap<string, string>): SnapshotLv {
  const segments: SnapshotSegment[] = [];
  for (const key of lv.order.filter((k) => /^segment[0-9]+$/.test(k))) {
    const seg = lv.sections.get(key)!;
    const type = str(seg.values.get('type'), `${name}.${key}.type`);
    const stripes = seg.values.get('stripes');
    const linear = type === 'striped' && seg.values.get('stripe_count') === 1 && Array.isArray(stripes) && stripes.length === 2;
    segments.push({
      logicalStart: int(seg.values.get('start_extent'), `${name}.${key}.start_extent`),
      extentCount: int(seg.values.get('extent_count'), `${name}.${key}.extent_count`),
      pvUuid: linear ? uuidByKey.get(String(stripes[0])) : undefined,
      firstExtent: linear ? Number(stripes[1]) : -1,
      type,
    });
  }
  segments.sort((a, b) => a.logicalStart - b.logicalStart);
  return {
    name,
    uuid: str(lv.values.get('id'), `${name}.id`),
    tags: strings(lv.values.get('tags')),
    flags: strings(lv.values.get('flags')),
    segments,
    extentCount: segments.reduce((sum, s) => sum + s.extentCount, 0),
  };
}

export async function readVgSnapshot(vgName: string, devices: readonly string[]): Promise<VgSnapshot> {
  return snapshotFromText(await readMetadataText(vgName, devices), devices);
}

/** The value of the one tag `key=value` on an object, as an integer; undefined when absent. */
export function tagNumber(tags: readonly string[], key: string): number | undefined {
  const found = tags.filter((t) => t.startsWith(`${key}=`));
  if (found.length === 0) return undefined;
  if (found.length > 1) throw new Error(`two ${key} tags: ${found.join(', ')}`);
  return Number(found[0]!.slice(key.length + 1));
}
