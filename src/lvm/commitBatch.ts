// One atomic LVM metadata commit for a whole batch of changes.
//
//   caller's model (read at seqno S) + changes
//     1. plan on the caller's model            -> INVALID_BATCH, before any lvm call
//     2. take lvm's local VG lock (flock V_<vg>): no lvm command here can slip in
//     3. read the current text                 -> seqno must still be S
//                                                 (the caller's model itself when the PVs'
//                                                 headers say its text is still there)
//                                                 (else STALE_SEQNO: someone else wrote)
//     4. plan again on what was read           -> the text to write, carrying seqno S
//     5. vgcfgrestore --nolocking --yes        -> LVM writes seqno S + 1
//     6. read it again                         -> must equal the plan, at seqno S + 1
//     7. release the lock
//
// Steps 3 and 6 read the PVs directly when lvm is restricted to known devices (see
// readVgMetadata), else run `vgcfgbackup --nolocking`: so a commit is one lvm call, the
// restore, where it was three. A runner that names its texts (LvmRunner.textKey: the
// simulator's LVM) lets step 3 skip the read the same way. The lock and the files handed
// to lvm are the runner's `local` when it has one (in memory in the simulator), else
// this machine's (machineLocal below).
//
// Why the text carries S and not S + 1: vgcfgrestore writes the file's seqno + 1,
// even when that is lower than the VG's (measured: it rolled a VG back from 25
// to 11). The check in step 3 under the lock is what makes that safe on this
// machine; on another machine (a second master by mistake) the seqno check
// still refuses, because its step-3 read sees our S + 1.
//
// Crash safety: LVM's own metadata write is atomic (new copy, then the
// pointer in the mda header), so a crash anywhere leaves either S or S + 1.
// A caller that crashed and retries re-reads and re-plans from whichever it
// finds: callers encode progress (cursors, generations) as tags in the same
// commit, which is what makes a retry harmless.

import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname as osHostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { CommitError, ErrorCode } from '../errors.js';
import { applyChanges, type MetadataChange, type NewLvIdentity } from '../metadata/applyChanges.js';
import type { VgMetadata } from '../metadata/vgModel.js';
import { noFaults, type FaultPoints } from '../faults.js';
import { DiskMetadataMiss, readVgMetadataFromDisk } from './diskMetadata.js';
import { parseVgMetadata, printVgMetadata } from './metadataText.js';
import { devicesToRead, noteDevices } from './readVgReport.js';
import type { LvmCallOptions, LvmLocal, LvmRunner } from './runLvm.js';
import { withVgLock, type VgLockOptions } from './vgLock.js';

/** LVM's id alphabet and layout (6-4-4-4-4-4-6 characters). */
const UUID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export function newLvmUuid(): string {
  const bytes = randomBytes(32);
  const chars = [...bytes].map((b) => UUID_CHARS[b % UUID_CHARS.length]!).join('');
  return [6, 4, 4, 4, 4, 4, 6].reduce<{ parts: string[]; at: number }>(
    (acc, length) => ({ parts: [...acc.parts, chars.slice(acc.at, acc.at + length)], at: acc.at + length }),
    { parts: [], at: 0 },
  ).parts.join('-');
}

export const systemIdentity: NewLvIdentity = {
  newUuid: newLvmUuid,
  nowSeconds: () => Math.floor(Date.now() / 1000),
  hostname: osHostname(),
};

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'thinlv-commit-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** This machine: lvm's lock directory (or `lock.lockDir`) and a temporary directory (private: mode 0600 files). */
export function machineLocal(lock: VgLockOptions = {}): LvmLocal {
  return {
    withVgLock: (vgName, fn) => withVgLock(vgName, fn, lock),
    withScratchDir: withTempDir,
    writeFile: (path, text) => writeFile(path, text, { mode: 0o600 }),
    readFile: (path) => readFile(path, 'utf8'),
  };
}

/**
 * Models read through a runner that names its texts (LvmRunner.textKey), with the key
 * read just before the text: a commit in between makes the next key differ, never the
 * other way round. Models are never changed in place, so the entry stays true of its model.
 */
const textKeyOf = new WeakMap<VgMetadata, string>();
/** The last model read through each such runner: any read of the same text returns it (lvmcache, too, parses a text once). */
const lastReadThrough = new WeakMap<LvmRunner, VgMetadata>();

export interface ReadVgOptions extends LvmCallOptions {
  readonly noLocking?: boolean;
  /** Ask lvm (vgcfgbackup), never the PVs directly. */
  readonly via?: 'lvm';
  /** A model read before: returned as it is when the PVs' headers (diskMetadata.ts), or the runner (LvmRunner.textKey), say its text is still the VG's. */
  readonly unlessUnchanged?: VgMetadata | undefined;
}

/**
 * The VG's metadata text: read from its PVs when thinlv knows where they are (devicesToRead;
 * diskMetadata.ts: the bytes vgcfgbackup would read, checked as lvm checks them, without
 * an lvm process), else, or when the PVs cannot vouch for it, with vgcfgbackup (one lvm call).
 * `unlessUnchanged` comes back as it is when the PVs or the runner (textKey) say its text is
 * still the VG's; through such a runner, so does the last model read through it.
 */
export async function readVgMetadata(lvm: LvmRunner, vgName: string, options: ReadVgOptions = {}): Promise<VgMetadata> {
  const viaLvm = options.via === 'lvm';
  const devices = viaLvm ? undefined : await devicesToRead(lvm, vgName);
  if (devices !== undefined) {
    try {
      return await readVgMetadataFromDisk(devices, vgName, options.unlessUnchanged);
    } catch (error) {
      if (!(error instanceof DiskMetadataMiss)) throw error;
    }
  }
  const key = viaLvm ? undefined : await lvm.textKey?.(vgName);
  for (const known of key === undefined ? [] : [options.unlessUnchanged, lastReadThrough.get(lvm)]) {
    if (known?.name === vgName && textKeyOf.get(known) === key) return known;
  }
  const local = lvm.local ?? machineLocal();
  const metadata = await local.withScratchDir(async (dir) => {
    const file = join(dir, 'vg.txt');
    const lockArgs = options.noLocking ? ['--nolocking'] : [];
    await lvm.run('vgcfgbackup', [...lockArgs, '-f', file, vgName], options);
    return local.readVgFile !== undefined ? local.readVgFile(file) : parseVgMetadata(await local.readFile(file));
  });
  if (key !== undefined) {
    textKeyOf.set(metadata, key);
    lastReadThrough.set(lvm, metadata);
  }
  await noteDevices(lvm, vgName, metadata.pvs.map((pv) => pv.device));
  return metadata;
}

/** The parts of two models that must agree after a commit: everything but the header and the seqno. */
function comparable(vg: VgMetadata): unknown {
  const { header: _header, seqno: _seqno, ...rest } = vg;
  return rest;
}

export interface CommitOptions extends LvmCallOptions {
  readonly identity?: NewLvIdentity;
  /** Where lvm's lock is on this machine; unused when the runner brings its own `local`. */
  readonly lock?: VgLockOptions;
  /** Named points inside the commit ("commit.afterBackup", "commit.afterRestore") for crash tests. */
  readonly faults?: FaultPoints;
  /**
   * `applyChanges(base, changes)` as the caller already worked it out (a pass plans its
   * refill on the replayed VG), so step 1 is not done twice. It must be exactly that.
   */
  readonly planned?: VgMetadata;
}

export interface CommitResult {
  /** The VG as LVM now holds it (read back after writing). */
  readonly metadata: VgMetadata;
  readonly seqno: number;
}

/**
 * Writes all `changes` to the VG as ONE metadata commit, on top of `base` (the
 * model the caller read). Refuses with INVALID_BATCH before running lvm when the
 * batch is invalid on `base`, with STALE_SEQNO when the VG moved past base.seqno,
 * and with READBACK_MISMATCH when LVM holds something other than what was planned.
 */
export async function commitBatch(lvm: LvmRunner, base: VgMetadata, changes: readonly MetadataChange[], options: CommitOptions = {}): Promise<CommitResult> {
  const identity = options.identity ?? systemIdentity;
  // Step 1: refuse a bad batch before touching lvm at all.
  const plannedOnBase = options.planned ?? applyChanges(base, changes, identity);
  const vgName = base.name;
  const local = lvm.local ?? machineLocal(options.lock);

  return local.withVgLock(
    vgName,
    () =>
      local.withScratchDir(async (dir) => {
        // Unchanged since `base` was read (its text still the VG's): `base` itself, nothing parsed.
        const current = await readVgMetadata(lvm, vgName, { ...options, noLocking: true, unlessUnchanged: base });
        if (current.seqno !== base.seqno || current.uuid !== base.uuid) {
          throw new CommitError(
            ErrorCode.staleSeqno,
            `VG ${vgName} changed since it was read (seqno ${base.seqno}, now ${current.seqno}); nothing was written: re-read the VG and retry`,
            { vg: vgName, expectedSeqno: base.seqno, currentSeqno: current.seqno },
          );
        }
        // The same seqno means the same metadata, so the first plan normally stands; if the
        // caller's model differs from what LVM holds (built by hand, or from another reader),
        // plan again on what LVM wrote so its entries are kept exactly as written.
        const planned = current === base || isDeepStrictEqual(comparable(current), comparable(base)) ? plannedOnBase : applyChanges(current, changes, identity);
        const file = join(dir, 'vg-next.txt');
        const next = { ...planned, seqno: current.seqno };
        await local.writeFile(file, printVgMetadata(next), next);
        await (options.faults ?? noFaults).hit('commit.afterBackup');
        await lvm.run('vgcfgrestore', ['--nolocking', '--yes', '-f', file, vgName], options);
        await (options.faults ?? noFaults).hit('commit.afterRestore');

        const written = await readVgMetadata(lvm, vgName, { ...options, noLocking: true });
        if (written.seqno !== current.seqno + 1 || !isDeepStrictEqual(comparable(written), comparable(planned))) {
          throw new CommitError(
            ErrorCode.readbackMismatch,
            `VG ${vgName} read back after the commit differs from what was written (seqno ${written.seqno}, expected ${current.seqno + 1}); stop and run "thinlv check ${vgName}"`,
            { vg: vgName, expectedSeqno: current.seqno + 1, seqno: written.seqno },
          );
        }
        return { metadata: written, seqno: written.seqno };
      }),
  );
}
