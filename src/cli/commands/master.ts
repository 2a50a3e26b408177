// `thinlv master VG`: the replayer, as a daemon or a single pass (--once).
//
// One master per VG on a machine: an flock on /run/lock/thinlv/master-<vg>.lock
// (a fixed path, so no choice of options runs a second one beside it), whose
// file also holds the daemon's pid. SIGUSR1 asks for a pass now; SIGTERM
// and SIGINT let the pass in flight finish, then exit 0. A second master on
// another machine is stopped by the metadata seqno check, not by this lock.

import { hostname } from 'node:os';
import { join } from 'node:path';
import { isJournalError } from '../../../journal/index.js';
import { ErrorCode, ThinlvError, InvariantError } from '../../errors.js';
import { createStatusLvChange, StatusPublisher } from '../../master/masterStatus.js';
import type { MetadataChange } from '../../metadata/applyChanges.js';
import type { VgMetadata } from '../../metadata/vgModel.js';
import { acquireFileLock } from '../../fileLock.js';
import { TAG, readThinlvVg } from '../../format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../lvm/commitBatch.js';
import { MasterSession, runPass, type MasterDeps } from '../../master/replayPass.js';
import { RATE_WINDOW_MS } from '../../master/masterSession.js';
import { createLogger } from '../../log.js';
import { timedLvmRunner } from '../../metrics/lvmMetrics.js';
import { createMasterMetrics } from '../../metrics/masterMetrics.js';
import { parseListenAddress, startMetricsServer, type MetricsServer } from '../../metrics/metricsServer.js';
import { MasterState, openStateDb } from '../../state/index.js';
import type { CommandContext } from '../context.js';
import { lockHolder, masterDeps, masterLockPath, recordLockHolder } from '../masterContext.js';
import { validateVgName } from '../validate.js';

/** History for reports; losing it loses history, never correctness. */
export const MASTER_STATE_DIR = '/var/lib/thinlv';
export const DEFAULT_INTERVAL_MS = 2_000;
/** Between passes, how often the daemon looks at each journal's tail for a demand. */
export const DEFAULT_POLL_MS = 50;
/** The longest window a host's allocation rate may look back over (a day). */
export const MAX_RATE_WINDOW_MS = 86_400_000;
export const MIN_INTERVAL_MS = 10;
export const MAX_INTERVAL_MS = 3_600_000;
/** Passes --once runs back to back while journals hold more than one pass takes. */
export const MAX_ONCE_PASSES = 100;

export interface MasterArgs {
  readonly vg: string;
  readonly once: boolean;
  readonly intervalMs: number;
  /** Between passes, how often to look for a host waiting for extents. */
  readonly pollMs?: number | undefined;
  /** How far back a host's rate looks (0: no rate-sized grants). */
  readonly rateWindowMs?: number | undefined;
  /** Where the SQLite history lives; undefined keeps no history. */
  readonly stateDir: string | undefined;
  /** HOST:PORT to serve Prometheus metrics on (GET /metrics); undefined: no metrics. */
  readonly metricsListen?: string | undefined;
}

/**
 * Records this machine as the VG's master, so metadata commands elsewhere know where to
 * go, and creates the LV the master publishes its status in, in one commit.
 */
async function claimMaster(context: CommandContext, vgName: string): Promise<void> {
  const vg = await readVgMetadata(context.lvm, vgName);
  const current = readThinlvVg(vg).masterHost;
  const here = hostname();
  const changes: MetadataChange[] = [];
  if (current !== here) {
    if (current !== undefined) context.log.warn({ vg: vgName, previous: current, here }, 'taking over as master from another machine');
    changes.push({ kind: 'setTag', tag: `${TAG.master}${here}`, replacingPrefix: TAG.master });
  }
  const statusLv = statusLvChange(context, vg);
  if (statusLv !== undefined) changes.push(statusLv);
  if (changes.length > 0) await commitBatch(context.lvm, vg, changes);
}

/** The status LV's creation; a VG too full for it runs without a published status (reports say so). */
function statusLvChange(context: CommandContext, vg: VgMetadata): MetadataChange | undefined {
  try {
    return createStatusLvChange(vg);
  } catch (error) {
    if (!(error instanceof ThinlvError) || error.code !== ErrorCode.insufficientExtents) throw error;
    context.log.warn({ vg: vg.name, err: error }, 'no room for the status LV: thinlv status and free will not see this master');
    return undefined;
  }
}

/** The daemon's signals, and its wait between passes: SIGTERM and SIGINT stop, SIGUSR1 asks for a pass now. */
class PassSignals {
  stopping = false;
  /** A poke that lands while no sleep is in progress (a pass, a journal poll) is kept, not lost. */
  private poked = false;
  private wake: (() => void) | undefined;

  readonly onStop = (): void => {
    this.stopping = true;
    this.wake?.();
  };

  readonly onPoke = (): void => {
    this.poked = true;
    this.wake?.();
  };

  /** Waits out `intervalMs`, looking every `pollMs` whether a host needs a pass now (a demand, or a pool gone below low-water); a signal ends it at once. */
  async untilNextPass(intervalMs: number, pollMs: number, passWanted: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + intervalMs;
    // Look at once: a demand journaled while the last pass ran is served without a poll's delay.
    let wanted = await passWanted();
    while (!wanted && !this.stopping && !this.poked && Date.now() < deadline) {
      await this.sleep(Math.min(deadline - Date.now(), pollMs));
      if (this.stopping || this.poked) break;
      wanted = await passWanted();
    }
    this.poked = false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.wake = undefined;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}

/** One pass, then the published status; returns whether journals hold more than the pass took. */
async function passAndPublish(deps: MasterDeps, session: MasterSession, publisher: StatusPublisher, args: MasterArgs): Promise<boolean> {
  const atMs = deps.nowMs();
  try {
    const result = await runPass(deps, session, args.vg);
    if (result.committed || result.replayedRecordCount > 0) deps.log.info({ vg: args.vg, ...result }, 'pass done');
    publisher.publish(session, { atMs, durationMs: deps.nowMs() - atMs, result });
    return result.moreWaiting;
  } catch (error) {
    // A broken invariant must stop the master before it writes anything else (its status
    // included); an operating error (lvm, a ring that cannot be read) is logged, published
    // and retried next interval.
    const operating = (error instanceof ThinlvError && !(error instanceof InvariantError)) || isJournalError(error);
    if (!operating) publisher.halt();
    else publisher.publish(session, { atMs, durationMs: deps.nowMs() - atMs, error });
    if (args.once || !operating) throw error;
    deps.log.error({ vg: args.vg, err: error }, 'pass failed; retrying next interval');
    return false;
  }
}

export async function runMaster(context: CommandContext, args: MasterArgs): Promise<number> {
  validateVgName(args.vg);
  if (!Number.isSafeInteger(args.intervalMs) || args.intervalMs < MIN_INTERVAL_MS || args.intervalMs > MAX_INTERVAL_MS) {
    throw new ThinlvError('INVALID_ARGUMENT', `--interval-ms must be from ${MIN_INTERVAL_MS} to ${MAX_INTERVAL_MS}, got ${args.intervalMs}`);
  }
  const rateWindowMs = args.rateWindowMs ?? RATE_WINDOW_MS;
  if (!Number.isSafeInteger(rateWindowMs) || rateWindowMs < 0 || rateWindowMs > MAX_RATE_WINDOW_MS) {
    throw new ThinlvError('INVALID_ARGUMENT', `--rate-window-ms must be from 0 to ${MAX_RATE_WINDOW_MS}, got ${rateWindowMs}`);
  }
  const pollMs = args.pollMs ?? DEFAULT_POLL_MS;
  if (!Number.isSafeInteger(pollMs) || pollMs < MIN_INTERVAL_MS || pollMs > MAX_INTERVAL_MS) {
    throw new ThinlvError('INVALID_ARGUMENT', `--poll-ms must be from ${MIN_INTERVAL_MS} to ${MAX_INTERVAL_MS}, got ${pollMs}`);
  }
  const metricsAddress = args.metricsListen === undefined ? undefined : parseListenAddress(args.metricsListen);
  const lockPath = masterLockPath(args.vg);
  const lock = await acquireFileLock(lockPath, 0);
  if (lock === undefined) {
    const holder = lockHolder(lockPath);
    throw new ThinlvError('MASTER_RUNNING', `a master for VG ${args.vg} already runs on this machine (${holder} holds ${lockPath}): stop it first`, { vg: args.vg, lockPath, holder });
  }
  recordLockHolder(lockPath);
  // Daemon logs are JSON lines on stdout, for journald or a log shipper.
  const log = createLogger(context.options.logLevel === 'warn' ? 'info' : context.options.logLevel, 1);
  const db = args.stateDir === undefined ? undefined : openStateDb(join(args.stateDir, `master-${args.vg}.db`));
  const history = db === undefined ? undefined : new MasterState(db);
  const metrics = metricsAddress === undefined ? undefined : createMasterMetrics(args.vg, args.intervalMs);
  const lvm = metrics === undefined ? context.lvm : timedLvmRunner(context.lvm, metrics.lvmCalls);
  const deps = { ...masterDeps({ ...context, log, lvm }), history, observer: metrics };
  let metricsServer: MetricsServer | undefined;
  // The daemon keeps each host's journal reader between passes (see MasterSession).
  const session = new MasterSession({ keepJournalsOpen: !args.once, intervalMs: args.intervalMs, rateWindowMs });
  const publisher = new StatusPublisher({ regions: deps.regions, log, nowMs: deps.nowMs, history }, { vg: args.vg, intervalMs: args.intervalMs });

  const signals = new PassSignals();
  process.on('SIGTERM', signals.onStop);
  process.on('SIGINT', signals.onStop);
  process.on('SIGUSR1', signals.onPoke);
  try {
    if (metrics !== undefined && metricsAddress !== undefined) metricsServer = await startMetricsServer(metrics.registry, metricsAddress, log);
    await claimMaster({ ...context, log }, args.vg);
    log.info({ vg: args.vg, once: args.once, intervalMs: args.intervalMs }, 'master started');
    for (let pass = 0; !signals.stopping; pass++) {
      const moreWaiting = await passAndPublish(deps, session, publisher, args);
      if (args.once) {
        if (!moreWaiting || pass + 1 >= MAX_ONCE_PASSES) break;
        continue;
      }
      if (moreWaiting) continue;
      // A host that waits for extents (a demand record) gets its pass now, not an interval later.
      await signals.untilNextPass(args.intervalMs, pollMs, () => session.passWanted());
    }
    log.info({ vg: args.vg }, 'master stopped');
    return 0;
  } finally {
    process.off('SIGTERM', signals.onStop);
    process.off('SIGINT', signals.onStop);
    process.off('SIGUSR1', signals.onPoke);
    await publisher.stopped(session);
    await session.close();
    await metricsServer?.close();
    db?.close();
    lock.release();
  }
}
