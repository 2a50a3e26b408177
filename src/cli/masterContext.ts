// What metadata-changing commands need: the master's effects, the check that
// they run where the master runs, and the local lock that serialises them.
// thinlv's metadata changes happen on the master's machine; a command run on
// another host says where to run it instead of writing from the wrong place.
//
// Two commands that read the VG at the same seqno cannot both commit (the
// second gets STALE_SEQNO), so on the master's machine every metadata command
// holds a per-VG lock from its first read to its last commit. The master
// daemon does not take that lock (a pass must never wait behind an operator's
// command), so a command can still lose a race with a pass; it then re-reads
// and retries, a bounded number of times.

import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, ThinlvError } from '../errors.js';
import { acquireFileLock } from '../fileLock.js';
import { faultsFromSpec } from '../faults.js';
import { readThinlvVg } from '../format/thinlvVg.js';
import { readVgMetadata } from '../lvm/commitBatch.js';
import type { MasterDeps } from '../master/replayPass.js';
import { DEFAULT_LOCAL_LOCK_DIR } from '../ownership/localHostLock.js';
import { fileRegionOpener } from '../rings/ringRegions.js';
import type { CommandContext } from './context.js';
import { validateVgName } from './validate.js';

export function masterDeps(context: CommandContext): MasterDeps {
  return {
    lvm: context.lvm,
    regions: fileRegionOpener((level, message, data) => context.log[level](data ?? {}, message)),
    log: context.log,
    faults: faultsFromSpec(process.env['THINLV_FAULTS']),
    nowMs: () => Date.now(),
    sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
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

/**
 * Where the master and metadata locks live: thinlv's machine-local lock
 * directory (/run/lock/thinlv, shared with the host daemon's lock), always, not
 * an option, so that no choice of options lets two masters or two metadata
 * commands for one VG run side by side on one machine.
 */
export const LOCAL_LOCK_DIR = DEFAULT_LOCAL_LOCK_DIR;
/** How long a metadata command waits for another one on the same VG before LOCK_BUSY. */
export const METADATA_LOCK_TIMEOUT_MS = 120_000;
/** Attempts at a command whose commit found the VG changed (the master committed in between). */
export const MAX_STALE_SEQNO_ATTEMPTS = 8;
/** Mean wait before the second attempt; it grows with each attempt and is jittered by ±50%. */
const STALE_SEQNO_BACKOFF_MS = 50;

/** Lock paths depend on the VG name alone; lvm's name rules keep "/" and ".." out of them. */
export function masterLockPath(vgName: string): string {
  validateVgName(vgName);
  return join(LOCAL_LOCK_DIR, `master-${vgName}.lock`);
}

export function metadataLockPath(vgName: string): string {
  validateVgName(vgName);
  return join(LOCAL_LOCK_DIR, `metadata-${vgName}.lock`);
}

/** Writes our pid into a lock file we hold, so whoever finds it busy can say who holds it. */
export function recordLockHolder(path: string): void {
  writeFileSync(path, `${process.pid}\n`);
}

/** "pid N" from a lock file, or "an unknown process" (the holder may not have written it yet). */
export function lockHolder(path: string): string {
  try {
    const pid = readFileSync(path, 'utf8').trim();
    return /^\d+$/.test(pid) ? `pid ${pid}` : 'an unknown process';
  } catch {
    return 'an unknown process';
  }
}

export interface MetadataLockOptions {
  readonly timeoutMs?: number;
  readonly maxAttempts?: number;
}

/**
 * Runs `change` (a metadata command's reads and commits) holding the VG's local
 * metadata lock, and runs it again after a STALE_SEQNO: a stale commit wrote
 * nothing, and `change` re-reads the VG, so another attempt is a fresh start.
 */
export async function withMetadataLock<T>(context: Pick<CommandContext, 'log'>, vgName: string, change: () => Promise<T>, options: MetadataLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? METADATA_LOCK_TIMEOUT_MS;
  const path = metadataLockPath(vgName);
  const lock = await acquireFileLock(path, timeoutMs);
  if (lock === undefined) {
    const holder = lockHolder(path);
    throw new ThinlvError(
      ErrorCode.lockBusy,
      `another thinlv command (${holder}) has been changing VG ${vgName} on this machine for over ${timeoutMs} ms (lock ${path}): retry when it finishes`,
      { vg: vgName, path, holder, timeoutMs },
    );
  }
  try {
    recordLockHolder(path);
    return await retryStaleSeqno(context, vgName, change, options.maxAttempts ?? MAX_STALE_SEQNO_ATTEMPTS);
  } finally {
    lock.release();
  }
}

const isStaleSeqno = (error: unknown): boolean => error instanceof ThinlvError && error.code === ErrorCode.staleSeqno;

async function retryStaleSeqno<T>(context: Pick<CommandContext, 'log'>, vgName: string, change: () => Promise<T>, maxAttempts: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await change();
    } catch (error) {
      if (!isStaleSeqno(error) || attempt >= maxAttempts) throw error;
      const delayMs = Math.round(STALE_SEQNO_BACKOFF_MS * attempt * (0.5 + Math.random()));
      context.log.info({ vg: vgName, attempt, delayMs }, 'the VG changed before our commit (a master pass?); re-reading and retrying');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
